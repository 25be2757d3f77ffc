import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_laplace
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

from taskloss.errors import InputError
from taskloss.metrics import hfen, laplacian_of_gaussian, mae, mse, nmse, psnr, ssim

ALL_METRICS = {
    "mae": mae,
    "mse": mse,
    "nmse": nmse,
    "hfen": hfen,
    "psnr": lambda p, t: psnr(p, t, data_range=1.0),
    "ssim": lambda p, t: ssim(p, t, data_range=1.0, convention="fastmri"),
}


def _pair(target: np.ndarray, pred: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(pred)[None, None], torch.from_numpy(target)[None, None]


def test_psnr_equals_skimage_per_image(degraded_pairs):
    for label, target, pred in degraded_pairs:
        p, t = _pair(target, pred)
        for data_range in (1.0, float(target.max() - target.min())):
            expected = peak_signal_noise_ratio(target, pred, data_range=data_range)
            assert psnr(p, t, data_range=data_range).item() == pytest.approx(expected, abs=1e-9), label
        expected = peak_signal_noise_ratio(target, pred, data_range=target.max())
        assert psnr(p, t, data_range="target_max").item() == pytest.approx(expected, abs=1e-9)


def test_psnr_is_per_image_not_pooled():
    target = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    pred = target.clone()
    pred[0] += 0.1
    pred[1] += 0.01
    got = psnr(pred, target, data_range=1.0)
    torch.testing.assert_close(got, torch.tensor([20.0, 40.0], dtype=torch.float64))
    pooled = 10 * np.log10(1 / ((0.01 + 0.0001) / 2))
    assert not np.isclose(got.mean().item(), pooled)


def test_psnr_float32_close_to_skimage(degraded_pairs):
    _, target, pred = degraded_pairs[0]
    p, t = _pair(target.astype(np.float32), pred.astype(np.float32))
    expected = peak_signal_noise_ratio(target.astype(np.float32), pred.astype(np.float32), data_range=1.0)
    assert psnr(p, t, data_range=1.0).item() == pytest.approx(expected, abs=1e-4)


def test_identical_images_give_infinite_psnr_and_zero_errors():
    x = torch.rand(3, 1, 9, 11)
    assert torch.isinf(psnr(x, x, data_range=1.0)).all()
    for metric in (mae, mse, nmse, hfen):
        assert (metric(x, x) == 0).all()


def test_mae_mse_nmse_by_hand(degraded_pairs):
    for label, target, pred in degraded_pairs:
        p, t = _pair(target, pred)
        assert mae(p, t).item() == pytest.approx(np.abs(pred - target).mean(), rel=1e-12), label
        assert mse(p, t).item() == pytest.approx(mean_squared_error(target, pred), rel=1e-12)
        # fastMRI: np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2
        expected = np.linalg.norm(target - pred) ** 2 / np.linalg.norm(target) ** 2
        assert nmse(p, t).item() == pytest.approx(expected, rel=1e-12)
    assert nmse(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)).item() == 1.0


def test_hfen_equals_scipy_log(degraded_pairs):
    for label, target, pred in degraded_pairs:
        p, t = _pair(target, pred)
        reference = gaussian_laplace(target, 1.5)
        expected = np.linalg.norm(gaussian_laplace(pred, 1.5) - reference) / np.linalg.norm(reference)
        assert hfen(p, t).item() == pytest.approx(expected, rel=1e-10), label


def test_log_3d_and_tiny_images_equal_scipy():
    volume = torch.rand(1, 2, 5, 8, 9, dtype=torch.float64)
    got = laplacian_of_gaussian(volume)
    for c in range(2):
        np.testing.assert_allclose(got[0, c].numpy(), gaussian_laplace(volume[0, c].numpy(), 1.5),
                                   atol=1e-12)
    tiny = torch.rand(1, 1, 3, 4, dtype=torch.float64)  # smaller than the kernel radius (6)
    np.testing.assert_allclose(laplacian_of_gaussian(tiny)[0, 0].numpy(),
                               gaussian_laplace(tiny[0, 0].numpy(), 1.5), atol=1e-12)


def test_hfen_ranks_blur_worse_than_small_noise(real_images):
    target = torch.from_numpy(real_images["mni_axial"])[None, None]
    blurred = torch.nn.functional.avg_pool2d(target, 5, stride=1, padding=2, count_include_pad=False)
    noisy = target + 0.005 * torch.randn_like(target)
    assert hfen(blurred, target).item() > hfen(noisy, target).item()


@pytest.mark.parametrize("name", sorted(ALL_METRICS))
def test_float32_and_float64_and_odd_shapes(name):
    metric = ALL_METRICS[name]
    target = torch.rand(3, 2, 17, 23, dtype=torch.float64)
    pred = target + 0.05 * torch.randn_like(target)
    double = metric(pred, target)
    single = metric(pred.float(), target.float())
    assert double.shape == single.shape == (3,)
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    torch.testing.assert_close(single.double(), double, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ALL_METRICS))
def test_volumes(name):
    target = torch.rand(2, 1, 11, 12, 13, dtype=torch.float64)
    pred = target + 0.05 * torch.randn_like(target)
    assert ALL_METRICS[name](pred, target).shape == (2,)


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(ALL_METRICS))
def test_cuda_matches_cpu(name):
    target = torch.rand(3, 1, 32, 32)
    pred = target + 0.05 * torch.randn_like(target)
    cpu = ALL_METRICS[name](pred, target)
    torch.testing.assert_close(ALL_METRICS[name](pred.cuda(), target.cuda()).cpu(), cpu, rtol=1e-4,
                               atol=1e-5)


def _bad_inputs() -> list[tuple[str, object, object, str]]:
    x = torch.rand(2, 1, 16, 16)
    nan = x.clone()
    nan[0, 0, 3, 3] = float("nan")
    inf = x.clone()
    inf[1, 0, 0, 0] = float("inf")
    return [
        ("shape mismatch", x, torch.rand(2, 1, 16, 15), r"pred has shape \(2, 1, 16, 16\) but target"),
        ("nan in pred", nan, x, r"pred holds 1 NaN and 0 infinite values"),
        ("inf in target", x, inf, r"target holds 0 NaN and 1 infinite values"),
        ("integer", (x * 255).to(torch.uint8), x, r"pred has dtype torch.uint8"),
        ("complex", x.to(torch.complex64), x, r"pred is complex"),
        ("empty batch", torch.rand(0, 1, 16, 16), torch.rand(0, 1, 16, 16), r"pred is empty"),
        ("no channel axis", torch.rand(16, 16), torch.rand(16, 16), r"expected \(B, C, H, W\) or"),
        ("numpy", x.numpy(), x, r"pred must be a torch.Tensor, got ndarray"),
        ("dtype mismatch", x.double(), x, r"pred is torch.float64 but target is torch.float32"),
    ]


@pytest.mark.parametrize("name", sorted(ALL_METRICS))
@pytest.mark.parametrize(("case", "pred", "target", "message"), _bad_inputs(), ids=lambda v: v if
                         isinstance(v, str) and " " in v else "")
def test_bad_input_raises_value_error_naming_the_problem(name, case, pred, target, message):
    with pytest.raises(ValueError, match=message) as info:
        ALL_METRICS[name](pred, target)
    assert isinstance(info.value, InputError)


def test_nan_target_with_policy_names_the_nan_not_the_range():
    x = torch.rand(1, 1, 16, 16)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="target holds 1 NaN"):
        psnr(x, bad, data_range="target_max")


def test_data_range_policies():
    target = torch.stack([torch.full((1, 4, 4), 2.0), torch.linspace(-1, 3, 16).reshape(1, 4, 4)])
    pred = target + 0.1
    torch.testing.assert_close(
        psnr(pred[1:], target[1:], data_range="target_range"), psnr(pred[1:], target[1:], data_range=4.0))
    torch.testing.assert_close(
        psnr(pred, target, data_range="target_max"), psnr(pred, target, data_range=torch.tensor([2.0, 3.0])))
    with pytest.raises(InputError, match="must be finite and > 0"):
        psnr(pred, target, data_range="target_range")  # the constant image has range 0


@pytest.mark.parametrize("name", ["mae", "mse", "nmse", "psnr", "hfen"])
def test_gradcheck_float64(name):
    target = torch.rand(2, 1, 9, 10, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: ALL_METRICS[name](p, target), (pred,))
