import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from taskloss.errors import InputError
from taskloss.metrics import ssim, ssim_map

GAUSSIAN = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}


def _skimage(target: np.ndarray, pred: np.ndarray, convention: str, data_range: float) -> float:
    options = GAUSSIAN if convention == "gaussian" else {}
    return structural_similarity(target, pred, data_range=data_range, **options)


@pytest.mark.parametrize("convention", ["gaussian", "fastmri"])
@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_equals_skimage_on_real_images(degraded_pairs, convention, dtype, tolerance):
    for label, target, pred in degraded_pairs:
        expected = _skimage(target.astype(dtype_np(dtype)), pred.astype(dtype_np(dtype)),
                            convention, data_range=1.0)
        got = ssim(as_batch(pred, dtype), as_batch(target, dtype), data_range=1.0,
                   convention=convention)
        assert got.shape == (1,)
        assert abs(got.item() - expected) < tolerance, label


def dtype_np(dtype: torch.dtype) -> type:
    return np.float32 if dtype == torch.float32 else np.float64


def as_batch(image: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).to(dtype)[None, None]


def test_batch_equals_per_image_with_per_image_data_range(degraded_pairs):
    pairs = [(t, p) for _, t, p in degraded_pairs if t.shape == degraded_pairs[0][1].shape]
    target = torch.stack([torch.from_numpy(t) for t, _ in pairs])[:, None]
    pred = torch.stack([torch.from_numpy(p) for _, p in pairs])[:, None]
    got = ssim(pred, target, data_range="target_max")
    expected = [_skimage(t, p, "gaussian", data_range=t.max()) for t, p in pairs]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)


def test_large_batch_is_chunked_consistently():
    target = torch.rand(40, 1, 70, 66, dtype=torch.float64)
    pred = target + 0.1 * torch.randn_like(target)
    whole = ssim(pred, target, data_range=1.0)
    one_by_one = torch.cat([ssim(pred[i : i + 1], target[i : i + 1], data_range=1.0) for i in range(40)])
    torch.testing.assert_close(whole, one_by_one, rtol=0, atol=1e-12)


def test_multichannel_is_mean_over_channels():
    target = torch.rand(2, 3, 32, 29, dtype=torch.float64)
    pred = target + 0.05 * torch.randn_like(target)
    for i in range(2):
        expected = structural_similarity(target[i].numpy(), pred[i].numpy(), channel_axis=0,
                                         data_range=1.0, **GAUSSIAN)
        assert ssim(pred, target, data_range=1.0)[i].item() == pytest.approx(expected, abs=1e-10)


def test_3d_equals_skimage_3d():
    volume = torch.rand(2, 1, 13, 17, 15, dtype=torch.float64)
    noisy = volume + 0.1 * torch.randn_like(volume)
    got = ssim(noisy, volume, data_range=1.0)
    for convention in ("gaussian", "fastmri"):
        got = ssim(noisy, volume, data_range=1.0, convention=convention)
        for i in range(2):
            expected = _skimage(volume[i, 0].numpy(), noisy[i, 0].numpy(), convention, 1.0)
            assert got[i].item() == pytest.approx(expected, abs=1e-10)


def test_properties(real_images):
    image = as_batch(real_images["ct"], torch.float64)
    other = as_batch(np.flipud(real_images["ct"]).copy(), torch.float64)
    assert ssim(image, image, data_range=1.0).item() == pytest.approx(1.0, abs=1e-12)
    forward = ssim(image, other, data_range=1.0)
    torch.testing.assert_close(forward, ssim(other, image, data_range=1.0))
    assert -1.0 <= forward.item() < 1.0
    assert ssim(-image, image, data_range=1.0).item() < 0


def test_map_mean_equals_value_and_has_valid_shape():
    target = torch.rand(3, 2, 31, 40, dtype=torch.float64)
    pred = target.flip(-1)
    maps = ssim_map(pred, target, data_range=1.0)
    assert maps.shape == (3, 2, 21, 30)
    torch.testing.assert_close(maps.mean(dim=(1, 2, 3)), ssim(pred, target, data_range=1.0))
    assert ssim_map(pred, target, data_range=1.0, convention="fastmri").shape == (3, 2, 25, 34)


def test_gradcheck_float64():
    target = torch.rand(2, 1, 12, 13, dtype=torch.float64)
    pred = (target + 0.2 * torch.rand_like(target)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: ssim(p, target, data_range=1.0), (pred,))
    assert torch.autograd.gradcheck(lambda p: ssim(p, target, data_range=1.0, convention="fastmri"),
                                    (pred,))


def test_loss_gradient_moves_towards_target():
    target = torch.rand(1, 1, 24, 24)
    pred = torch.rand(1, 1, 24, 24, requires_grad=True)
    optimiser = torch.optim.Adam([pred], lr=0.05)
    first = None
    for _ in range(20):
        loss = 1 - ssim(pred, target, data_range=1.0).mean()
        first = loss.item() if first is None else first
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "data_range is required"),
        ({"data_range": 0.0}, "must be finite and > 0"),
        ({"data_range": -1.0}, "must be finite and > 0"),
        ({"data_range": "max"}, "not a known policy"),
        ({"data_range": torch.ones(3)}, "must have shape (2,)"),
        ({"data_range": 1.0, "convention": "box"}, "convention='box' is unknown"),
    ],
)
def test_bad_arguments(kwargs, message):
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ssim(x, x, **kwargs)


def test_too_small_for_window():
    x = torch.rand(1, 1, 10, 32)
    with pytest.raises(InputError, match=r"needs every spatial size >= 11.*convention='fastmri'"):
        ssim(x, x, data_range=1.0)
    assert ssim(x, x, data_range=1.0, convention="fastmri").item() == pytest.approx(1.0)
