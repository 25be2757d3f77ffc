"""FID and KID on feature vectors: closed forms worked by hand, torchmetrics on the same features, bad input."""

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn

from taskloss.errors import InputError
from taskloss.metrics.distribution import KIDResult, frechet_distance, kernel_inception_distance


def _with_moments(rng: np.random.Generator, n: int, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """n samples whose sample mean and sample covariance (divisor n - 1) are exactly ``mean`` and ``cov``."""
    x = rng.normal(size=(n, mean.size))
    x -= x.mean(axis=0)
    whitening = np.linalg.cholesky(np.cov(x, rowvar=False))
    white = np.linalg.solve(whitening, x.T).T  # sample covariance exactly I
    return white @ np.linalg.cholesky(cov).T + mean


def test_fid_of_gaussians_with_diagonal_covariances_is_the_hand_worked_value() -> None:
    # mu_a = (1, 2, 0), var_a = (4, 1, 9); mu_b = 0, var_b = (1, 4, 1). By hand:
    # |mu_a - mu_b|^2 = 1 + 4 + 0 = 5; tr(S_a + S_b - 2 (S_a S_b)^1/2) = sum (sd_a - sd_b)^2
    # = (2 - 1)^2 + (1 - 2)^2 + (3 - 1)^2 = 6; FID = 11.
    rng = np.random.default_rng(0)
    a = _with_moments(rng, 50, np.array([1.0, 2.0, 0.0]), np.diag([4.0, 1.0, 9.0]))
    b = _with_moments(rng, 40, np.zeros(3), np.diag([1.0, 4.0, 1.0]))
    assert float(frechet_distance(a, b)) == pytest.approx(11.0, abs=1e-10)
    assert float(frechet_distance(b, a)) == pytest.approx(11.0, abs=1e-10)


def test_fid_of_rotated_gaussians_keeps_the_hand_worked_value() -> None:
    # A common rotation R: S = R D R^T for both sets; the covariances commute, so the value is that of D.
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    rng = np.random.default_rng(2)
    a = _with_moments(rng, 30, rotation @ [1.0, 2.0, 0.0], rotation @ np.diag([4.0, 1.0, 9.0]) @ rotation.T)
    b = _with_moments(rng, 30, np.zeros(3), rotation @ np.diag([1.0, 4.0, 1.0]) @ rotation.T)
    assert float(frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float())) == pytest.approx(
        11.0, abs=1e-4)  # float32 input, float64 inside


def test_fid_of_a_set_with_itself_is_zero_and_a_shift_adds_its_square() -> None:
    features = torch.randn(20, 6, dtype=torch.float64)
    assert abs(float(frechet_distance(features, features))) < 1e-10
    shift = torch.arange(6, dtype=torch.float64)
    assert float(frechet_distance(features, features + shift)) == pytest.approx(float(shift.square().sum()), abs=1e-9)


class _Identity(nn.Module):
    """torchmetrics' feature extractor slot filled by the identity: the 'images' are the features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.fixture(scope="module")
def feature_sets() -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated, shifted, heavy-tailed features; fewer rows than features in neither set."""
    generator = torch.Generator().manual_seed(3)
    mixing = torch.randn(16, 16, generator=generator, dtype=torch.float64)
    a = torch.randn(60, 16, generator=generator, dtype=torch.float64) @ mixing
    b = (torch.randn(45, 16, generator=generator, dtype=torch.float64) ** 3) @ mixing + 0.5
    return a, b


def test_fid_equals_torchmetrics_on_the_same_features(feature_sets) -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    a, b = feature_sets
    metric = FrechetInceptionDistance(feature=_Identity(16))
    metric.update(a, real=True)
    metric.update(b, real=False)
    reference = float(metric.compute())
    assert float(frechet_distance(a, b)) == pytest.approx(reference, rel=1e-9)


def test_fid_agrees_with_scipy_sqrtm() -> None:
    # pytorch-fid's route: tr sqrtm(S_a S_b) by scipy's Schur method. Singular covariances (N < F),
    # as with few images and wide layers: the eigenvalue route and sqrtm agree to 1e-6 relative.
    generator = torch.Generator().manual_seed(4)
    a = torch.randn(12, 40, generator=generator, dtype=torch.float64).relu()
    b = torch.randn(15, 40, generator=generator, dtype=torch.float64).relu() * 1.5
    cov_a, cov_b = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    mean_term = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    reference = mean_term + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root)
    assert float(frechet_distance(a, b)) == pytest.approx(reference, rel=1e-6)


def test_kid_of_a_tiny_linear_kernel_example_is_the_hand_worked_value() -> None:
    # degree 1, gamma 1, coef0 0: k(x, y) = x y. a = (1, 3), b = (0, 2), m = 2, by hand:
    # within a: 2 * (1 * 3) / (2 * 1) = 3; within b: 0; across: 2 * (1 + 3) * (0 + 2) / 4 = 4 -> 3 + 0 - 4 = -1.
    a, b = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [2.0]])
    result = kernel_inception_distance(a, b, subsets=3, subset_size=2, degree=1, gamma=1.0, coef0=0.0)
    assert isinstance(result, KIDResult)
    assert float(result.mean) == pytest.approx(-1.0, abs=1e-12) and float(result.std) == pytest.approx(0.0, abs=1e-12)


def test_kid_equals_torchmetrics_with_the_same_subset_draws(feature_sets) -> None:
    from torchmetrics.image.kid import KernelInceptionDistance

    a, b = feature_sets
    metric = KernelInceptionDistance(feature=_Identity(16), subsets=7, subset_size=30)
    metric.update(a, real=True)
    metric.update(b, real=False)
    torch.manual_seed(5)
    reference_mean, reference_std = metric.compute()
    ours = kernel_inception_distance(a, b, subsets=7, subset_size=30, generator=torch.Generator().manual_seed(5))
    assert float(ours.mean) == pytest.approx(float(reference_mean), rel=1e-9)
    assert float(ours.std) == pytest.approx(float(reference_std), rel=1e-9)
    assert float(ours.std) > 0  # the subsets differ


def test_kid_over_whole_sets_does_not_depend_on_the_draws(feature_sets) -> None:
    a, b = (features[:40] for features in feature_sets)
    first = kernel_inception_distance(a, b, subsets=2, subset_size=40, generator=torch.Generator().manual_seed(1))
    other = kernel_inception_distance(a, b, subsets=1, subset_size=40, generator=torch.Generator().manual_seed(9))
    assert float(first.std) < 1e-12 * abs(float(first.mean))
    assert float(other.mean) == pytest.approx(float(first.mean), rel=1e-12)


@pytest.mark.parametrize(("a", "b", "message"), [
    (torch.zeros(1, 3), torch.zeros(4, 3),
     "features_a has 1 rows; the Fréchet distance needs at least 2 images per set"),
    (torch.zeros(4, 3), torch.zeros(4, 5),
     "features_a has 3 features per row but features_b has 5; take both from the same layer of the same network"),
    (torch.zeros(4, 3, 2, 2), torch.zeros(4, 3),
     "features_a has shape (4, 3, 2, 2); the Fréchet distance needs feature vectors (N, F), one row per image "
     "(pool feature maps first, e.g. with taskloss.features.distribution.image_features)"),
    (torch.zeros(4, 3), torch.full((4, 3), float("nan")),
     "features_b holds NaN or infinite values; fix the images or the network producing them"),
])
def test_fid_bad_input_gets_one_clear_error(a, b, message) -> None:
    with pytest.raises(InputError) as caught:
        frechet_distance(a, b)
    assert str(caught.value) == message


def test_kid_bad_options_get_one_clear_error() -> None:
    a = torch.zeros(5, 3)
    with pytest.raises(InputError) as caught:
        kernel_inception_distance(a, torch.zeros(4, 3), subset_size=1000)
    assert str(caught.value) == ("subset_size=1000 must be between 2 and the smaller set's 4 rows; pass "
                                 "subset_size=4 or more features")
    with pytest.raises(InputError) as caught:
        kernel_inception_distance(a, a, subsets=0, subset_size=2)
    assert str(caught.value) == "subsets=0 and degree=3 must both be >= 1"
    with pytest.raises(InputError, match="features_b has 1 rows; the kernel inception distance needs at least 2"):
        kernel_inception_distance(a, torch.zeros(1, 3), subset_size=2)
