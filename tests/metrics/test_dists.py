"""DISTS (Ding et al. 2020): the formula on features, the measure with the shipped alpha/beta on a seeded VGG-16.

References: the formula re-computed here in numpy as DISTS_pytorch writes it (population moments, covariance as
``mean(x y) - mu_x mu_y``, alpha and beta divided by their total, ``1 - sum``), and torchmetrics' ``DISTSNetwork``
(DISTS_pytorch's code) run offline on the same VGG-16, handed to it in torchvision's layout.
"""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from taskloss.errors import DataError, InputError, MissingWeightsError
from taskloss.features import DISTS, VGG16Features
from taskloss.features.weights import DISTS_WEIGHTS, packaged_path
from taskloss.metrics import DISTS_C1, DISTS_C2, dists_distance

torchmetrics_dists = pytest.importorskip("torchmetrics.functional.image.dists")

CHANNELS = (3, 64, 128, 256, 512, 512)


def _numpy_dists(pred: list[np.ndarray], target: list[np.ndarray], alpha: np.ndarray, beta: np.ndarray,
                 ) -> np.ndarray:
    """DISTS_pytorch's sums, written out."""
    total = alpha.sum() + beta.sum()
    similarity = np.zeros(pred[0].shape[0])
    start = 0
    for x, y in zip(pred, target, strict=True):
        a, b = alpha[start:start + x.shape[1]] / total, beta[start:start + x.shape[1]] / total
        start += x.shape[1]
        mx, my = x.mean(axis=(2, 3)), y.mean(axis=(2, 3))
        vx, vy = x.var(axis=(2, 3)), y.var(axis=(2, 3))
        cov = (x * y).mean(axis=(2, 3)) - mx * my
        texture = (2 * mx * my + 1e-6) / (mx**2 + my**2 + 1e-6)
        structure = (2 * cov + 1e-6) / (vx + vy + 1e-6)
        similarity += (texture * a).sum(axis=1) + (structure * b).sum(axis=1)
    return 1 - similarity


def _shipped() -> dict[str, torch.Tensor]:
    return torch.load(packaged_path(DISTS_WEIGHTS), map_location="cpu", weights_only=True)


def test_dists_distance_is_the_published_formula_on_given_features() -> None:
    assert DISTS_C1 == DISTS_C2 == 1e-6
    generator = torch.Generator().manual_seed(0)
    shapes = [(2, 3, 9, 7), (2, 5, 4, 3), (2, 4, 1, 2)]
    pred = [torch.rand(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    target = [p + 0.5 * torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in pred]
    alpha = torch.rand(12, generator=generator, dtype=torch.float64)
    beta = torch.rand(12, generator=generator, dtype=torch.float64)
    value = dists_distance(pred, target, list(alpha.split((3, 5, 4))), list(beta.split((3, 5, 4))))
    expected = _numpy_dists([p.numpy() for p in pred], [t.numpy() for t in target], alpha.numpy(), beta.numpy())
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)
    assert expected.min() > 0.05
    assert torch.equal(dists_distance(pred, pred, list(alpha.split((3, 5, 4))), list(beta.split((3, 5, 4)))),
                       torch.zeros(2, dtype=torch.float64))


def test_dists_distance_by_hand() -> None:
    # One channel, pixels (1, 3) against (3, 1): means 2 and 2 (texture 1), variances 1, covariance -1.
    x = torch.tensor([[[[1.0, 3.0]]]], dtype=torch.float64)
    y = x.flip(-1)
    structure = (2 * -1 + 1e-6) / (1 + 1 + 1e-6)
    value = dists_distance([x], [y], [torch.tensor([1.0], dtype=torch.float64)], [torch.tensor([3.0],
                                                                                                dtype=torch.float64)])
    torch.testing.assert_close(value, torch.tensor([1 - (1 * 1 + 3 * structure) / 4], dtype=torch.float64))


def test_dists_distance_gradients_and_bad_input() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 4, 5, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 3, 4, 5, generator=generator, dtype=torch.float64)
    weights = [torch.rand(3, generator=generator, dtype=torch.float64)]
    assert torch.autograd.gradcheck(lambda p: dists_distance([p], [y], weights, weights), (x,))
    with pytest.raises(InputError) as caught:
        dists_distance([x], [y], weights, [])
    assert str(caught.value) == ("dists_distance needs one target activation, one alpha and one beta per pred "
                                 "activation, got 1, 1, 1 and 0")
    with pytest.raises(InputError) as caught:
        dists_distance([x], [y[:, :, 1:]], weights, weights)
    assert str(caught.value) == ("stage 0: pred activation (2, 3, 4, 5), target (2, 3, 3, 5), alpha (3,) and beta "
                                 "(3,) must be (N, C, H, W) twice and (C,)")


def test_dists_equals_the_formula_recomputed_on_vgg16_with_l2_pooling() -> None:
    measure = DISTS(weights="random", seed=2).double()
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 41, 35, generator=generator, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    features = VGG16Features("random", pooling="l2", seed=2).double().features
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).reshape(1, 3, 1, 1)

    def stages(images: torch.Tensor) -> list[np.ndarray]:
        h, start, out = (images - mean) / std, 0, [images.numpy()]
        with torch.no_grad():
            for end in (4, 9, 16, 23, 30):  # DISTS_pytorch's stage1 ... stage5
                h = features[start:end](h)
                out.append(h.numpy().copy())
                start = end
        return out

    shipped = _shipped()
    expected = _numpy_dists(stages(x), stages(y), shipped["alpha"].double().flatten().numpy(),
                            shipped["beta"].double().flatten().numpy())
    np.testing.assert_allclose(measure(x, y, data_range=1.0).numpy(), expected, rtol=1e-10)


def _torchmetrics_dists(seed: int, monkeypatch: pytest.MonkeyPatch) -> torch.nn.Module:
    """torchmetrics' DISTS with its shipped alpha/beta on our seeded VGG-16 (max pooling; torchmetrics replaces the
    pools at 4, 9, 16 and 23 with its own L2 pooling), without torchvision."""
    features = VGG16Features("random", seed=seed).features
    monkeypatch.setattr(torchmetrics_dists, "_TORCHVISION_AVAILABLE", True)
    monkeypatch.setattr(torchmetrics_dists, "VGG16_Weights", SimpleNamespace(DEFAULT=None), raising=False)
    monkeypatch.setattr(torchmetrics_dists, "vgg16", lambda weights=None: SimpleNamespace(features=features),
                        raising=False)
    return torchmetrics_dists.DISTSNetwork()


def test_dists_equals_torchmetrics_on_real_images(real_images, monkeypatch) -> None:
    reference = _torchmetrics_dists(seed=6, monkeypatch=monkeypatch)
    measure = DISTS(weights="random", seed=6)
    mr = torch.from_numpy(real_images["mr"][8:56, 10:55]).float()  # 48 x 45
    blurred = torch.nn.functional.avg_pool2d(mr[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
    pred = torch.stack([blurred, 0.7 * mr + 0.2])[:, None]
    target = torch.stack([mr, mr])[:, None]
    with torch.no_grad():
        expected = reference(pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)).flatten()
    # float32: torchmetrics' 1 - sum rounds at ~6e-8 absolute and its covariance mean(xy) - mu_x mu_y cancels
    # (ours sums 1 - l and 1 - s, and centres first).
    torch.testing.assert_close(measure(pred, target, data_range=1.0), expected, rtol=1e-5, atol=2e-7)
    with torch.no_grad():
        expected64 = reference.double()(pred.double().expand(-1, 3, -1, -1), target.double().expand(-1, 3, -1, -1))
    # float64 differs by torchmetrics' float32 ImageNet mean/std buffers (~1e-8).
    torch.testing.assert_close(measure.double()(pred.double(), target.double(), data_range=1.0),
                               expected64.flatten(), rtol=1e-6, atol=0)
    assert expected.min() > 1e-3


def test_identical_images_odd_and_tiny_sizes_and_data_range() -> None:
    measure = DISTS(weights="random")
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 17, 23, generator=generator)
    y = torch.rand(2, 3, 17, 23, generator=generator)
    assert torch.equal(measure(x, x, data_range=1.0), torch.zeros(2))
    value = measure(x, y, data_range=1.0)
    assert value.shape == (2,) and (value > 0).all()
    torch.testing.assert_close(measure(100 * x - 50, 100 * y - 50, data_range=(-50.0, 50.0)), value, rtol=1e-5,
                               atol=0)
    assert measure.min_input_size() == 1  # L2 pooling maps n pixels to ceil(n / 2): every size has 1 pixel
    tiny = measure(x[:, :, :1, :1], y[:, :, :1, :1], data_range=1.0)
    assert torch.isfinite(tiny).all()


def test_gradcheck_through_the_measure() -> None:
    measure = DISTS(weights="random", seed=1).double()
    generator = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 12, 10, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 12, 10, generator=generator, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: measure(p, y, data_range=1.0), (x,), fast_mode=True)


def test_alpha_beta_load_and_the_exact_errors(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(DISTS_WEIGHTS.env, raising=False)
    shipped = _shipped()
    assert {key: tuple(value.shape) for key, value in shipped.items()} == {"alpha": (1, 1475, 1, 1),
                                                                             "beta": (1, 1475, 1, 1)}
    assert sum(CHANNELS) == 1475
    default = DISTS(weights="random")
    assert torch.equal(default.alpha, shipped["alpha"].flatten()) and torch.equal(default.beta,
                                                                                   shipped["beta"].flatten())
    path = tmp_path / "weights.pt"
    mine = {"alpha": torch.full((1, 1475, 1, 1), 0.5), "beta": torch.full((1, 1475, 1, 1), 0.25)}
    torch.save(mine, path)
    assert torch.equal(DISTS(weights="random", alpha_beta_path=path).beta, torch.full((1475,), 0.25))
    monkeypatch.setenv(DISTS_WEIGHTS.env, str(path))
    assert torch.equal(DISTS(weights="random").alpha, torch.full((1475,), 0.5))
    monkeypatch.delenv(DISTS_WEIGHTS.env)
    torch.save({"alpha": mine["alpha"]}, path)
    with pytest.raises(DataError) as caught:
        DISTS(weights="random", alpha_beta_path=path)
    assert str(caught.value) == (f"weights file {path} lacks 1 of the 2 DISTS tensors (first: 'beta'); pass the "
                                 "published weights.pt, whose keys are alpha and beta")
    monkeypatch.setattr("taskloss.features.perceptual_distances.DISTS_WEIGHTS",
                        dataclasses.replace(DISTS_WEIGHTS, packaged=(("no_such_pkg", "weights.pt"),)))
    with pytest.raises(MissingWeightsError) as caught:
        DISTS(weights="random")
    assert str(caught.value) == (
        "DISTS alpha and beta weights.pt were not found; provide weights.pt (pip install torchmetrics or "
        "DISTS_pytorch, whose wheels ship it) in one of these ways: pass alpha_beta_path='/path/to/weights.pt', set "
        "the environment variable TASKLOSS_DISTS_WEIGHTS=/path/to/weights.pt, or install a package that ships it "
        "(no_such_pkg)")
    with pytest.raises(MissingWeightsError, match=r"^alpha_beta_path='/nowhere/weights.pt' is not a file; provide"):
        DISTS(weights="random", alpha_beta_path="/nowhere/weights.pt")
