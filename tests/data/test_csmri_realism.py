"""Gibbs ringing and partial Fourier in the csmri simulator: off by default (data unchanged), ringing
and zeroed k-space columns computed by hand, and the options' errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from taskloss.config import validate_config
from taskloss.data.csmri import (
    CsmriConfig,
    _coarse_start,
    _slice_grid,
    partial_fourier_lines,
    simulate_csmri,
    truncate_kspace,
)
from taskloss.data.kspace import fft2c
from taskloss.errors import ConfigError

SMALL = {"subjects": 3, "slices": 4, "size": 32, "anatomy": "ellipsoid"}
TWO = SMALL | {"slices": 2}
VARIED = {"subjects": 3, "slices": 3, "size": 33, "anatomy": "ellipsoid", "phase": True, "texture": 0.1,
          "zoom": 1.5, "orientations": ("axial", "coronal", "sagittal")}


def numpy_fft2c(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def numpy_ifft2c(k: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


# Sums over the data of these configs made by the code before gibbs and partial_fourier existed
# (commit ebade04): sum |image|, sum of the real parts, lesion pixels.
BEFORE = [(SMALL, 3264.0889847079525, 3195.636439888361, 5), (VARIED, 2994.3006013762497, 1888.4035629533482, 10)]


@pytest.mark.parametrize(("settings", "magnitude", "real", "lesion"), BEFORE)
def test_options_off_leave_the_data_as_before(settings, magnitude, real, lesion):
    data = simulate_csmri(CsmriConfig(**settings))
    assert float(data.images.abs().double().sum()) == pytest.approx(magnitude, rel=1e-6)
    assert float(data.images.real.double().sum()) == pytest.approx(real, rel=1e-6)
    assert int(data.labels.sum()) == lesion


def test_options_set_to_off_equal_the_defaults():
    settings = VARIED | {"slices": 1}
    default, explicit = (simulate_csmri(CsmriConfig(**settings, **off)) for off in
                         ({}, {"gibbs": 1, "partial_fourier": 1.0}))
    assert torch.equal(explicit.images, default.images) and torch.equal(explicit.labels, default.labels)


@pytest.mark.parametrize("size", [32, 33])
def test_gibbs_grid_holds_the_pixel_centres_every_factor_points(size):
    coarse = _slice_grid(CsmriConfig(**SMALL | {"size": size}), (0.0, 0.0, 0.0), None)
    fine = _slice_grid(CsmriConfig(**SMALL | {"size": size, "gibbs": 2}), (0.0, 0.0, 0.0), None)
    start = _coarse_start(size, 2)
    assert fine.shape[1:3] == (2 * size, 2 * size)
    assert torch.equal(fine[:, start::2, start::2], coarse)
    step = fine[0, 0, 1, 0] - fine[0, 0, 0, 0]  # columns along x, half a pixel apart
    assert float(step) == pytest.approx(220.0 / size / 2)


def test_gibbs_phantom_follows_the_finer_pixel():
    assert CsmriConfig(size=64).phantom_spacing_mm() == 3  # 220 / 64 = 3.4 mm pixels
    assert CsmriConfig(size=64, gibbs=2).phantom_spacing_mm() == 1  # 1.7 mm


def test_truncated_kspace_matches_numpy_and_rings_at_a_sharp_edge():
    fine = torch.zeros(1, 1, 64, 64, dtype=torch.complex64)
    fine[..., 16:48, 16:48] = 1  # a sharp square, 32 fine pixels wide
    truncated = truncate_kspace(fine, 32)
    by_hand = numpy_ifft2c(numpy_fft2c(fine[0, 0].numpy().astype(np.complex128))[16:48, 16:48])
    np.testing.assert_allclose(truncated[0, 0].numpy(), by_hand, atol=1e-6)
    row = truncated[0, 0, 16].real / 2  # the orthonormal FFTs scale by 64 / 32; plateau 1
    assert float(row.max()) > 1.05 and float(row.min()) < -0.03  # overshoot inside, undershoot outside
    direct = torch.zeros(32, 32)
    direct[8:24, 8:24] = 1  # the same square formed at 32 px directly: no ringing
    assert float(direct.max()) == 1 and float(direct.min()) == 0


@pytest.mark.parametrize("side", [64, 66])
def test_truncation_keeps_dc_at_the_centre(side):
    constant = torch.ones(1, 1, side, side, dtype=torch.complex64)
    truncated = truncate_kspace(constant, side // 2)  # 32 and the odd 33: a constant stays real
    np.testing.assert_allclose(truncated.numpy(), np.full(truncated.shape, side / (side // 2)), atol=1e-6)


def test_gibbs_option_rings_outside_the_head():
    plain = simulate_csmri(CsmriConfig(**TWO, noise=0.0)).images.abs()
    ringing = simulate_csmri(CsmriConfig(**TWO, noise=0.0, gibbs=2)).images.abs()
    assert plain.shape == ringing.shape == (6, 1, 32, 32)
    assert float(ringing.amax()) == pytest.approx(1.0)
    tissue = (plain >= 1e-6).float()  # air is 0 without ringing, but for the FFTs' round-off
    near = (F.max_pool2d(tissue, 3, 1, 1) > 0) & (tissue == 0)  # air next to the head
    far = F.max_pool2d(tissue, 9, 1, 4) == 0  # air 5 pixels or more from it
    assert near.float().mean() > 0.05 and far.float().mean() > 0.05
    assert float(plain[tissue == 0].amax()) < 1e-6
    assert float(ringing[tissue == 0].amax()) > 0.02  # the head's edge rings into the air
    assert float(ringing[near].mean()) > 3 * float(ringing[far].mean()) > 0  # and decays away from it


def test_partial_fourier_zeroes_the_unacquired_columns_of_the_ground_truth():
    config = CsmriConfig(**TWO, partial_fourier=0.625)
    kspace = fft2c(simulate_csmri(config).images)
    acquired = partial_fourier_lines(32, 0.625)
    assert acquired == 20 and acquired / 32 == 0.625
    assert float(kspace[..., acquired:].abs().amax()) < 1e-6 * float(kspace.abs().amax())  # noise not acquired
    assert bool((kspace[..., :acquired].abs().sum(dim=(0, 1, 2)) > 1e-3).all())  # every acquired column


def test_partial_fourier_image_is_the_zero_filled_reconstruction():
    full = simulate_csmri(CsmriConfig(**TWO, noise=0.0)).images[:, 0].numpy().astype(np.complex128)
    partial = simulate_csmri(CsmriConfig(**TWO, noise=0.0, partial_fourier=0.75)).images[:, 0].numpy()
    kspace = numpy_fft2c(full)
    kspace[..., 24:] = 0
    by_hand = numpy_ifft2c(kspace)
    by_hand /= np.abs(by_hand).max(axis=(-2, -1), keepdims=True)
    np.testing.assert_allclose(partial, by_hand, atol=1e-5)


@pytest.mark.parametrize(("width", "share", "lines"), [(64, 0.625, 40), (32, 0.51, 17), (33, 0.51, 17),
                                                       (10, 1.0, 10), (320, 0.75, 240)])
def test_partial_fourier_lines_keep_dc_and_one_half(width, share, lines):
    assert partial_fourier_lines(width, share) == lines


@pytest.mark.parametrize(("settings", "message"), [
    ({"partial_fourier": 0.5}, "data: partial_fourier: Input should be greater than 0.5"),
    ({"partial_fourier": 1.25}, "data: partial_fourier: Input should be less than or equal to 1"),
    ({"gibbs": 0}, "data: gibbs: Input should be greater than or equal to 1"),
    ({"gibbs": 9}, "data: gibbs: Input should be less than or equal to 8"),
    ({"gibbs": True}, "data: gibbs: Input should be a valid integer"),
])
def test_bad_values_name_the_key(settings, message):
    with pytest.raises(ConfigError) as error:
        validate_config(CsmriConfig, settings, "data")
    assert str(error.value) == message
