"""Pixel losses against numpy, scipy and scikit-image."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import log_softmax
from skimage.metrics import structural_similarity

from taskloss.errors import ConfigError, InputError
from taskloss.losses import (
    CrossEntropyLoss,
    FrequencyMSELoss,
    L1Loss,
    MSELoss,
    MSSSIMLoss,
    NMSELoss,
    SSIMLoss,
    cross_entropy_loss,
    frequency_mse_loss,
    l1_loss,
    mse_loss,
    nmse_loss,
    ssim_loss,
)
from taskloss.metrics.data_range import _HOW_TO_CHOOSE as HOW_TO_CHOOSE


@pytest.fixture()
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(3, 2, 15, 17, dtype=torch.float64), torch.rand(3, 2, 15, 17, dtype=torch.float64)


def test_l1_and_mse_match_numpy_per_image_and_torch_on_average(pair) -> None:
    pred, target = pair
    diff = (pred - target).numpy().reshape(3, -1)
    np.testing.assert_allclose(l1_loss(pred, target, reduction="none"), np.abs(diff).mean(1))
    np.testing.assert_allclose(mse_loss(pred, target, reduction="none"), (diff**2).mean(1))
    torch.testing.assert_close(l1_loss(pred, target), F.l1_loss(pred, target))
    torch.testing.assert_close(mse_loss(pred, target), F.mse_loss(pred, target))


def test_nmse_fastmri_and_dagan_forms(pair) -> None:
    pred, target = pair
    p, t = pred.numpy().reshape(3, -1), target.numpy().reshape(3, -1)
    squared = ((t - p) ** 2).sum(1) / (t**2).sum(1)
    dagan = np.sqrt(((p - t) ** 2).sum(1)) / np.sqrt((t**2).sum(1))  # DAGAN's g_nmse, per image
    np.testing.assert_allclose(nmse_loss(pred, target, reduction="none"), squared)
    np.testing.assert_allclose(nmse_loss(pred, target, squared=False), dagan.mean())
    assert float(nmse_loss(target, target)) == 0.0


def test_frequency_loss_matches_dagan_with_numpy_fft() -> None:
    pred = torch.rand(2, 1, 15, 18, dtype=torch.float64) * 2 - 1
    target = torch.rand(2, 1, 15, 18, dtype=torch.float64) * 2 - 1
    # DAGAN: x -> (x + 1) / 2, |fft2| (unnormalised), squared difference, mean over (H, W), mean over batch.
    mag = [np.abs(np.fft.fft2((x.numpy()[:, 0] + 1) / 2)) for x in (pred, target)]
    dagan = ((mag[0] - mag[1]) ** 2).mean(axis=(1, 2))
    backward = frequency_mse_loss(pred, target, input_range=(-1.0, 1.0), norm="backward", reduction="none")
    np.testing.assert_allclose(backward, dagan, rtol=1e-10)
    ortho = frequency_mse_loss(pred, target, input_range=(-1.0, 1.0))
    np.testing.assert_allclose(ortho, dagan.mean() / (15 * 18), rtol=1e-10)


def test_frequency_loss_gradcheck_and_half_precision_input() -> None:
    pred = torch.rand(1, 1, 5, 6, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 1, 5, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: frequency_mse_loss(p, target), (pred,))
    half = frequency_mse_loss(pred.detach().half(), target.half())
    assert half.dtype == torch.float32 and torch.isfinite(half)


def test_ssim_loss_is_one_minus_skimage_ssim() -> None:
    rng = np.random.default_rng(3)
    target = rng.random((2, 1, 23, 25))
    pred = np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1)
    expected = [1 - structural_similarity(target[i, 0], pred[i, 0], gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=1.0) for i in range(2)]
    values = ssim_loss(torch.from_numpy(pred), torch.from_numpy(target), data_range=1.0, reduction="none")
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    with pytest.raises(InputError, match="data_range is required"):
        ssim_loss(torch.from_numpy(pred), torch.from_numpy(target))


def test_ssim_loss_gradcheck() -> None:
    pred = torch.rand(1, 1, 11, 12, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 1, 11, 12, dtype=torch.float64)
    # fast_mode checks the Jacobian along random directions: 2 evaluations instead of 2 per pixel.
    assert torch.autograd.gradcheck(lambda p: ssim_loss(p, target, data_range=1.0), (pred,), fast_mode=True)


def _numpy_cross_entropy(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    log_p = log_softmax(logits, axis=1)
    picked = np.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]
    w = weights[labels]
    return -(w * picked).reshape(len(labels), -1).sum(1) / w.reshape(len(labels), -1).sum(1)


def test_cross_entropy_matches_numpy_per_image_and_torch_on_average() -> None:
    logits = torch.randn(3, 4, 7, 9, dtype=torch.float64)
    labels = torch.randint(0, 4, (3, 1, 7, 9))
    weights = torch.tensor([0.2, 1.0, 3.0, 0.5], dtype=torch.float64)
    per_image = cross_entropy_loss(logits, labels, class_weights=weights, reduction="none")
    expected = _numpy_cross_entropy(logits.numpy(), labels[:, 0].numpy(), weights.numpy())
    np.testing.assert_allclose(per_image, expected)
    torch.testing.assert_close(cross_entropy_loss(logits, labels[:, 0], class_weights=weights),
                               torch.nn.CrossEntropyLoss(weight=weights)(logits, labels[:, 0]))
    uniform = cross_entropy_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64))
    assert abs(float(uniform) - np.log(3)) < 1e-6


@pytest.mark.parametrize(
    ("logits", "labels", "kwargs", "message"),
    [
        (torch.randn(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64), {},
         "logits have 1 channel; cross-entropy needs one channel per class"),
        (torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4), {}, "labels must be an int64 tensor"),
        (torch.randn(1, 2, 4, 4), torch.full((1, 4, 4), 2), {}, r"labels hold values in \[2, 2\] but"),
        (torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.int64), {},
         r"need labels of shape \(1, 4, 4\)"),
        (torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64),
         {"class_weights": torch.ones(3)}, r"class_weights must be a tensor of shape \(2,\)"),
        (torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64),
         {"class_weights": torch.tensor([-1.0, 1.0])}, "class_weights must be >= 0"),
    ],
)
def test_cross_entropy_bad_inputs(logits, labels, kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        cross_entropy_loss(logits, labels, **kwargs)


@pytest.mark.parametrize(
    ("module", "function"),
    [
        (L1Loss(reduction="none"), lambda p, t: l1_loss(p, t, reduction="none")),
        (MSELoss(), mse_loss),
        (NMSELoss(squared=False), lambda p, t: nmse_loss(p, t, squared=False)),
        (FrequencyMSELoss(norm="backward"), lambda p, t: frequency_mse_loss(p, t, norm="backward")),
        (SSIMLoss(data_range="target_max"), lambda p, t: ssim_loss(p, t, data_range="target_max")),
    ],
)
def test_modules_equal_their_functions(module, function) -> None:
    pred, target = torch.rand(2, 1, 13, 12), torch.rand(2, 1, 13, 12)
    torch.testing.assert_close(module(pred, target), function(pred, target))


def test_cross_entropy_module_moves_its_weights() -> None:
    module = CrossEntropyLoss(class_weights=torch.tensor([1.0, 2.0])).double()
    logits, labels = torch.randn(2, 2, 3, 3, dtype=torch.float64), torch.randint(0, 2, (2, 3, 3))
    torch.testing.assert_close(module(logits, labels),
                               cross_entropy_loss(logits, labels, class_weights=torch.tensor([1.0, 2.0])))
    assert list(module.state_dict()) == []


def test_volumes_and_bad_reduction() -> None:
    pred, target = torch.rand(2, 1, 3, 4, 5), torch.rand(2, 1, 3, 4, 5)
    assert l1_loss(pred, target, reduction="none").shape == (2,)
    with pytest.raises(ConfigError, match="reduction='sum' is unknown"):
        mse_loss(pred, target, reduction="sum")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"expected \(B, C, H, W\)"):
        frequency_mse_loss(pred, target)
    with pytest.raises(ConfigError, match="norm='forward' is unknown"):
        frequency_mse_loss(pred[:, :, 0], target[:, :, 0], norm="forward")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: L1Loss(reduction="sum"), ConfigError, "reduction='sum' is unknown; use 'mean' or 'none' (per image)"),
        (lambda: MSELoss(reduction=None), ConfigError, "reduction=None is unknown; use 'mean' or 'none' (per image)"),
        (lambda: NMSELoss(squared="yes"), ConfigError,
         "squared='yes' must be True (||pred - target||^2 / ||target||^2, fastMRI's NMSE) or False (its square root, "
         "DAGAN's)"),
        (lambda: NMSELoss(reduction="batchmean"), ConfigError,
         "reduction='batchmean' is unknown; use 'mean' or 'none' (per image)"),
        (lambda: FrequencyMSELoss(input_range=(1.0, -1.0)), ConfigError,
         "input_range=(1.0, -1.0) must be (low, high) with low < high, two finite numbers, e.g. (0.0, 1.0), or "
         "DAGAN's (-1.0, 1.0)"),
        (lambda: FrequencyMSELoss(input_range=(0.0, float("inf"))), ConfigError,
         "input_range=(0.0, inf) must be (low, high) with low < high, two finite numbers, e.g. (0.0, 1.0), or "
         "DAGAN's (-1.0, 1.0)"),
        (lambda: FrequencyMSELoss(input_range=(0.0,)), ConfigError,
         "input_range=(0.0,) must be (low, high) with low < high, two finite numbers, e.g. (0.0, 1.0), or "
         "DAGAN's (-1.0, 1.0)"),
        (lambda: FrequencyMSELoss(norm="forward"), ConfigError,
         "norm='forward' is unknown; use 'ortho' or 'backward' (unnormalised)"),
        (lambda: SSIMLoss(data_range=0.0), InputError,
         "data_range must be finite and > 0 for every image, got 0.0; " + HOW_TO_CHOOSE),
        (lambda: SSIMLoss(data_range="max"), InputError, "data_range='max' is not a known policy; " + HOW_TO_CHOOSE),
        (lambda: SSIMLoss(data_range=None), InputError, "data_range is required: " + HOW_TO_CHOOSE),
        (lambda: SSIMLoss(data_range=1.0, convention="uniform"), InputError,
         "convention='uniform' is unknown; use 'gaussian' (11-tap Gaussian, population covariance) or 'fastmri' "
         "(7-tap uniform, sample covariance)"),
        (lambda: SSIMLoss(data_range=1.0, reduction="sum"), ConfigError,
         "reduction='sum' is unknown; use 'mean' or 'none' (per image)"),
        (lambda: MSSSIMLoss(data_range=-1.0), InputError,
         "data_range must be finite and > 0 for every image, got -1.0; " + HOW_TO_CHOOSE),
        (lambda: MSSSIMLoss(data_range=1.0, reduction="sum"), ConfigError,
         "reduction='sum' is unknown; use 'mean' or 'none' (per image)"),
        (lambda: CrossEntropyLoss(class_weights=[1.0, 2.0]), ConfigError,
         "class_weights must be a 1-D float tensor (K,), one weight per class, got list; "
         "e.g. torch.tensor([1.0, 5.0])"),
        (lambda: CrossEntropyLoss(class_weights=torch.ones(2, 2)), ConfigError,
         "class_weights must be a 1-D float tensor (K,), one weight per class, got shape (2, 2), torch.float32; "
         "e.g. torch.tensor([1.0, 5.0])"),
        (lambda: CrossEntropyLoss(class_weights=torch.tensor([1, 2])), ConfigError,
         "class_weights must be a 1-D float tensor (K,), one weight per class, got shape (2,), torch.int64; "
         "e.g. torch.tensor([1.0, 5.0])"),
        (lambda: CrossEntropyLoss(class_weights=torch.tensor([0.0, 0.0])), ConfigError,
         "class_weights must be >= 0, finite and not all 0, got [0.0, 0.0]"),
        (lambda: CrossEntropyLoss(class_weights=torch.tensor([1.0, float("nan")])), ConfigError,
         "class_weights must be >= 0, finite and not all 0, got [1.0, nan]"),
        (lambda: CrossEntropyLoss(reduction="sum"), ConfigError,
         "reduction='sum' is unknown; use 'mean' or 'none' (per image)"),
    ],
)
def test_each_bad_option_fails_when_the_module_is_built(build, error, message) -> None:
    with pytest.raises(error) as raised:
        build()
    assert str(raised.value) == message


def test_functions_check_the_same_options() -> None:
    pred, target = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    with pytest.raises(ConfigError, match=r"^squared=1 must be True"):
        nmse_loss(pred, target, squared=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^input_range=\(0.0, 0.0\) must be \(low, high\) with low < high"):
        frequency_mse_loss(pred, target, input_range=(0.0, 0.0))
    with pytest.raises(ConfigError, match=r"^reduction='sum' is unknown"):  # before the logits are looked at
        cross_entropy_loss(torch.rand(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64), reduction="sum")
    with pytest.raises(InputError, match=r"^class_weights must be >= 0, finite and not all 0, got \[1.0, inf\]$"):
        cross_entropy_loss(torch.rand(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64),
                           class_weights=torch.tensor([1.0, float("inf")]))
