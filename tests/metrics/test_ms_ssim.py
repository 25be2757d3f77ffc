"""MS-SSIM against pytorch-msssim and torchmetrics on real images that packages ship, 2-D and 3-D."""

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as reference_pytorch_msssim
from scipy import ndimage
from skimage import data as skdata
from skimage.transform import resize
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from taskloss.data.samples import mni_slice, shepp_logan
from taskloss.errors import InputError
from taskloss.filters import gaussian_kernel1d
from taskloss.losses import MSSSIMLoss, ms_ssim_loss
from taskloss.metrics import MS_SSIM_WEIGHTS, ms_ssim


def _batch(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, 3) float64 -> (1, C, H, W)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64))
    tensor = tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor[None]
    return tensor[None].contiguous()


def _degrade(image: np.ndarray, kind: str) -> np.ndarray:
    if kind == "noise":
        return np.clip(image + np.random.default_rng(3).normal(0.0, 0.05, image.shape), 0, 1)
    if kind == "blur":
        sigma = (1.2, 1.2, 0) if image.ndim == 3 else 1.2
        return ndimage.gaussian_filter(image, sigma)
    if kind == "contrast":
        return 0.7 * image + 0.2
    if kind == "inverted":  # contrast-structure terms < 0 at the finest scales: the relu acts
        return 1.0 - image
    raise ValueError(kind)


@pytest.fixture(scope="session")
def images() -> dict[str, np.ndarray]:
    """Real images (float64 in [0, 1]): odd and even sizes, grayscale and RGB, all >= 176."""
    camera = skdata.camera() / 255.0
    return {
        "camera_odd": resize(camera, (177, 203), anti_aliasing=True),
        "camera_crop": camera[100:292, 150:342],
        "mni_axial": mni_slice(axis=2).astype(np.float64),  # 233 x 197
        "shepp_logan": shepp_logan(181).astype(np.float64),
        "chelsea_rgb": resize(skdata.chelsea() / 255.0, (180, 271), anti_aliasing=True),
    }


PAIRS = [("camera_odd", "noise"), ("camera_odd", "contrast"), ("camera_crop", "blur"), ("mni_axial", "noise"),
         ("shepp_logan", "blur"), ("shepp_logan", "inverted"), ("chelsea_rgb", "noise")]


@pytest.mark.parametrize(("name", "kind"), PAIRS)
def test_equals_pytorch_msssim_and_torchmetrics(images, name, kind):
    target = _batch(images[name])
    pred = _batch(_degrade(images[name], kind))
    got = ms_ssim(pred, target, data_range=1.0)
    expected = reference_pytorch_msssim(pred, target, data_range=1.0, size_average=False)
    # pytorch-msssim builds its Gaussian in float32 (sum 1 - 3e-8): 3e-6 at most measured here.
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    window = gaussian_kernel1d(1.5, 5).reshape(1, 1, 1, 11).repeat(target.shape[1], 1, 1, 1)
    exact = reference_pytorch_msssim(pred, target, data_range=1.0, size_average=False, win=window)
    torch.testing.assert_close(got, exact, rtol=0, atol=1e-12)  # with a float64 window: rounding only
    got_tm = ms_ssim(pred, target, data_range=1.0, style="torchmetrics")
    expected_tm = multiscale_structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    torch.testing.assert_close(got_tm, expected_tm, rtol=0, atol=1e-8)  # 1.1e-9 measured (dense 2-D kernel)
    if kind == "inverted":
        assert got.item() == 0.0 and got_tm.item() == 0.0  # relu'd negative terms, as both references


def test_styles_differ_where_documented(images):
    """Same image: the styles agree to 1e-3 but not 1e-5 (border of the coarsest scale, odd sizes)."""
    target = _batch(images["camera_odd"])
    pred = _batch(_degrade(images["camera_odd"], "noise"))
    a = ms_ssim(pred, target, data_range=1.0).item()
    b = ms_ssim(pred, target, data_range=1.0, style="torchmetrics").item()
    assert 1e-5 < abs(a - b) < 2e-3


@pytest.fixture(scope="session")
def mni_volume() -> np.ndarray:
    from nilearn.datasets import load_mni152_template  # shipped with nilearn, no download

    volume = np.asarray(load_mni152_template(resolution=1).get_fdata(), dtype=np.float64)
    return volume / volume.max()


def test_3d_equals_references_on_mni152(mni_volume):
    """Volumes: 3-D window and 2 x 2 x 2 pooling; two scales (five would need 161^3 voxels)."""
    weights = MS_SSIM_WEIGHTS[:2]
    target = torch.from_numpy(mni_volume[80:103, 30:191, 25:186].copy())[None, None]  # 23 x 161 x 161
    pred = torch.from_numpy(ndimage.gaussian_filter(target[0, 0].numpy(), 1.0))[None, None]
    got = ms_ssim(pred, target, data_range=1.0, weights=weights)
    window = gaussian_kernel1d(1.5, 5).reshape(1, 1, 1, 1, 11)
    expected = reference_pytorch_msssim(pred, target, data_range=1.0, size_average=False, win=window,
                                        weights=list(weights))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert 0.5 < got.item() < 1.0
    small_target, small_pred = target[..., 60:84, 50:75], pred[..., 60:84, 50:75]  # torchmetrics' 3-D kernel is dense
    got_tm = ms_ssim(small_pred, small_target, data_range=1.0, weights=weights, style="torchmetrics")
    expected_tm = multiscale_structural_similarity_index_measure(
        small_pred, small_target, data_range=1.0, reduction="none", betas=weights)
    torch.testing.assert_close(got_tm, expected_tm, rtol=0, atol=1e-9)


def test_properties(images):
    target = _batch(images["camera_crop"])
    pred = _batch(_degrade(images["camera_crop"], "blur"))
    for style in ("pytorch_msssim", "torchmetrics"):
        assert ms_ssim(target, target, data_range=1.0, style=style).item() == pytest.approx(1.0, abs=1e-12)
        forward = ms_ssim(pred, target, data_range=1.0, style=style)
        torch.testing.assert_close(forward, ms_ssim(target, pred, data_range=1.0, style=style), rtol=0,
                                   atol=1e-14)
        assert 0.0 < forward.item() < 1.0


def test_batch_equals_per_image_with_per_image_data_range(images):
    target = torch.cat([_batch(images["camera_crop"]), 0.5 * _batch(images["camera_crop"]).flip(-1)])
    pred = torch.cat([_batch(_degrade(images["camera_crop"], "noise")), 0.5 * target[1:].roll(3, -1)])
    got = ms_ssim(pred, target, data_range="target_max")
    for i in range(2):
        peak = float(target[i].max())
        expected = reference_pytorch_msssim(pred[i : i + 1], target[i : i + 1], data_range=peak, size_average=False)
        assert got[i].item() == pytest.approx(expected.item(), abs=1e-5)
    torch.testing.assert_close(got[1:], ms_ssim(pred[1:], target[1:], data_range=0.5), rtol=0, atol=1e-14)


def test_fewer_scales_and_uniform_window_fit_smaller_images():
    x = torch.rand(1, 1, 41, 44, dtype=torch.float64)
    y = (x + 0.1 * torch.rand_like(x)).clamp(0, 1)
    three = ms_ssim(y, x, data_range=1.0, weights=MS_SSIM_WEIGHTS[:3])
    one = ms_ssim(y, x, data_range=1.0, weights=(1.0,))
    from taskloss.metrics import ssim

    torch.testing.assert_close(one, ssim(y, x, data_range=1.0).relu(), rtol=0, atol=1e-14)  # one scale: SSIM
    assert 0 < three.item() < 1
    assert 0 < ms_ssim(y, x, data_range=1.0, weights=MS_SSIM_WEIGHTS[:3], convention="fastmri").item() < 1


@pytest.mark.parametrize(
    ("shape", "kwargs", "message"),
    [
        ((1, 1, 128, 200), {}, "MS-SSIM with 5 scales and a 11-tap window needs every spatial size >= 161 "
         "(style='pytorch_msssim'), got (128, 200); use fewer scales (weights=MS_SSIM_WEIGHTS[:4] fits) or "
         "the 7-tap window (convention='fastmri', needs >= 97) or larger images"),
        ((1, 1, 60, 100), {}, "needs every spatial size >= 161 (style='pytorch_msssim'), got (60, 100); "
         "use fewer scales (weights=MS_SSIM_WEIGHTS[:3] fits) or larger images"),
        ((1, 1, 170, 170), {"style": "torchmetrics"}, "needs every spatial size >= 176 (style='torchmetrics')"),
        ((1, 1, 8, 8), {}, "got (8, 8); use larger images"),
        ((1, 1, 20, 161, 161), {}, "got (20, 161, 161); use fewer scales (weights=MS_SSIM_WEIGHTS[:1] fits)"),
    ],
)
def test_too_small_names_the_size_and_the_fix(shape, kwargs, message):
    x = torch.rand(shape)
    with pytest.raises(InputError) as error:
        ms_ssim(x, x, data_range=1.0, **kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "data_range is required"),
        ({"data_range": 1.0, "weights": ()}, "weights=() must be a non-empty sequence of numbers >= 0, one per "
         "scale (finest first), not all 0; use MS_SSIM_WEIGHTS (Wang et al.'s five) or a prefix such as "
         "MS_SSIM_WEIGHTS[:3] for fewer scales"),
        ({"data_range": 1.0, "weights": (0.5, -0.5)}, "weights=(0.5, -0.5) must be"),
        ({"data_range": 1.0, "weights": "0.5"}, "weights='0.5' must be"),
        ({"data_range": 1.0, "style": "skimage"}, "style='skimage' is unknown; use 'pytorch_msssim' (valid "
         "borders, odd sizes padded) or 'torchmetrics' (reflect-padded coarsest scale, odd sizes cropped)"),
        ({"data_range": 1.0, "convention": "box"}, "convention='box' is unknown"),
    ],
)
def test_bad_arguments(kwargs, message):
    x = torch.rand(2, 1, 161, 161)
    with pytest.raises(InputError) as error:
        ms_ssim(x, x, **kwargs)
    assert message in str(error.value)


def test_loss_gradcheck_float64():
    torch.manual_seed(0)
    target = torch.rand(1, 1, 21, 22, dtype=torch.float64)  # two scales of the 11-tap window
    pred = (target + 0.2 * torch.rand_like(target)).requires_grad_()
    for style in ("pytorch_msssim", "torchmetrics"):
        weights = (0.4, 0.6) if style == "pytorch_msssim" else (1.0,)
        assert torch.autograd.gradcheck(
            lambda p, w=weights, s=style: ms_ssim_loss(p, target, data_range=1.0, weights=w, style=s,
                                                       reduction="none"), (pred,))
    big_target = torch.rand(1, 1, 176, 177, dtype=torch.float64)
    big_pred = (big_target + 0.2 * torch.rand_like(big_target)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: ms_ssim_loss(p, big_target, data_range=1.0), (big_pred,),
                                    fast_mode=True)  # the default five scales


def test_loss_module_and_fail_fast():
    target = torch.rand(3, 1, 161, 165, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    loss = MSSSIMLoss(data_range=1.0, reduction="none")
    values = loss(pred, target)
    torch.testing.assert_close(values, 1.0 - ms_ssim(pred, target, data_range=1.0))
    values.sum().backward()
    assert pred.grad is not None and bool(torch.isfinite(pred.grad).all())
    assert target.grad is None
    for kwargs, message in [
        ({"data_range": None}, "data_range is required"),
        ({"data_range": "max"}, "data_range='max' is not a known policy"),
        ({"data_range": 0.0}, "data_range must be finite and > 0 for every image, got 0.0"),
        ({"data_range": 1.0, "weights": []}, "weights=[] must be a non-empty sequence"),
        ({"data_range": 1.0, "style": "piq"}, "style='piq' is unknown"),
        ({"data_range": 1.0, "convention": "box"}, "convention='box' is unknown"),
    ]:
        with pytest.raises(InputError) as error:
            MSSSIMLoss(**kwargs)
        assert message in str(error.value)
    from taskloss.errors import ConfigError

    with pytest.raises(ConfigError, match="reduction='sum' is unknown"):
        MSSSIMLoss(data_range=1.0, reduction="sum")
