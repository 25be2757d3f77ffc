"""taskloss.data.signals: signal profiles by hand, insertion and ROIs, contrast choice, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from taskloss.data.signals import (
    Signal,
    calibrate_contrast,
    cut_rois,
    dprime_for_auc,
    insert_signals,
    white_noise_contrast,
)
from taskloss.errors import InputError
from taskloss.observers import detectability


def test_profiles_equal_their_formulas_at_hand_picked_pixels():
    gaussian = Signal("gaussian", 2.0, 0.3).render((9, 11), (4.0, 5.5))
    assert gaussian[4, 5] == pytest.approx(0.3 * math.exp(-0.25 / 8))  # r^2 = 0.5^2
    assert gaussian[1, 7] == pytest.approx(0.3 * math.exp(-(9 + 2.25) / 8))
    disc = Signal("disc", 3.0, -0.2, edge=0.5).render((9, 9), (4.0, 4.0))
    assert disc[4, 4] == pytest.approx(-0.2 * special.erfc(-3 / (0.5 * math.sqrt(2))) / 2)
    assert disc[4, 7] == pytest.approx(-0.1)  # on the rim r = radius: half the contrast
    line = Signal("line", 6.0, 1.0, width=1.0, angle=90.0).render((11, 11), (5.0, 5.0))
    assert line[2, 5] == pytest.approx(1.0) and line[8, 5] == pytest.approx(1.0)  # ends at y = 5 -+ 3
    assert line[0, 5] == pytest.approx(math.exp(-4 / 2))  # 2 px beyond the end
    assert line[5, 7] == pytest.approx(math.exp(-4 / 2))  # 2 px to the side


def test_line_angle_is_counter_clockwise_with_rows_pointing_down():
    line = Signal("line", 8.0, 1.0, width=0.5, angle=45.0).render((9, 9), (4.0, 4.0))
    assert line[2, 6] == pytest.approx(1.0)  # up and to the right of the centre
    assert line[6, 6] < 1e-6


def test_insertion_is_deterministic_keeps_rois_inside_and_adds_exactly_the_signal():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(20, 30, 25))
    signal = Signal("disc", 3.0, 0.5)
    first = insert_signals(images, signal, (12, 9), seed=4)
    again = insert_signals(torch.from_numpy(images), signal, (12, 9), seed=4)
    np.testing.assert_array_equal(first.locations, again.locations)
    assert not np.array_equal(first.locations, insert_signals(images, signal, (12, 9), seed=5).locations)
    np.testing.assert_array_equal(first.absent, images)
    y, x = first.locations.T
    assert (y - 5.5 >= 0).all() and (y + 6.5 <= 30).all() and (x - 4 >= 0).all() and (x + 5 <= 25).all()
    difference = cut_rois(first.present, first.locations, (12, 9)) - cut_rois(first.absent, first.locations, (12, 9))
    np.testing.assert_allclose(difference, np.broadcast_to(signal.roi((12, 9)), difference.shape), atol=1e-12)


def test_mask_restricts_the_centres():
    mask = np.zeros((40, 40), dtype=bool)
    mask[30:, 30:] = True
    inserted = insert_signals(np.zeros((50, 40, 40)), Signal("gaussian", 1.0, 1.0), (7, 7), mask=mask, seed=1)
    assert (inserted.locations >= 30).all() and (inserted.locations <= 36).all()  # ROI inside: centre <= 36


def test_cut_rois_of_a_tensor_is_differentiable_and_keeps_the_channel_axis():
    images = torch.rand(3, 1, 10, 10, dtype=torch.float64, requires_grad=True)
    rois = cut_rois(images, [(4.5, 4.5), (2.5, 6.5), (6.5, 2.5)], (6, 6))
    assert rois.shape == (3, 1, 6, 6)
    rois.sum().backward()
    assert images.grad.sum().item() == 3 * 36


def test_white_noise_contrast_reaches_the_target_dprime():
    signal = Signal("gaussian", 1.5, -1.0)
    contrast = white_noise_contrast(signal, (8, 8), sigma=0.5, dprime=2.0)
    assert contrast < 0
    s = signal.with_contrast(contrast).roi((8, 8))
    rng = np.random.default_rng(3)
    present, absent = rng.normal(0, 0.5, (2000, 8, 8)) + s, rng.normal(0, 0.5, (2000, 8, 8))
    assert detectability(present, absent, "npw", signal=s).snr == pytest.approx(2.0, abs=0.1)  # template s: dark too


def test_dprime_for_auc_inverts_phi_of_d_over_root_2():
    assert stats.norm.cdf(dprime_for_auc(0.85) / math.sqrt(2)) == pytest.approx(0.85)


def test_calibrated_contrast_reaches_the_target_on_correlated_backgrounds():
    """Blurred noise (correlated, not white): the calibrated CHO d' holds on fresh images."""
    from scipy import ndimage

    rng = np.random.default_rng(7)

    def backgrounds(n: int) -> np.ndarray:
        return ndimage.gaussian_filter(rng.normal(size=(n, 40, 40)), (0, 1.0, 1.0))

    signal, roi = Signal("gaussian", 2.0, 1.0), (15, 15)
    options = {"channels": "laguerre-gauss", "channel_width": 2.0 * math.sqrt(2 * math.pi)}
    target = dprime_for_auc(0.85)
    contrast = calibrate_contrast(backgrounds(600), signal, roi, target, **options)
    fresh = backgrounds(3000)
    inserted = insert_signals(fresh[:1500], signal.with_contrast(contrast), roi, seed=11)
    absent_at = insert_signals(fresh[1500:], signal, roi, seed=12).locations
    result = detectability(cut_rois(inserted.present, inserted.locations, roi), cut_rois(fresh[1500:], absent_at, roi),
                           "cho", **options)
    assert result.snr == pytest.approx(target, abs=0.2)  # calibration on 300 per class: se of d' ~0.1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "square", "size": 2.0, "contrast": 1.0},
     "signal kind 'square' is unknown; use one of gaussian, disc, line"),
    ({"kind": "disc", "size": 0.0, "contrast": 1.0}, "signal size must be a finite number of pixels > 0, got 0.0"),
    ({"kind": "disc", "size": 2.0, "contrast": 0.0}, "signal contrast must be a finite nonzero number, got 0.0; pick "
                                                     "one with white_noise_contrast or calibrate_contrast"),
    ({"kind": "line", "size": 2.0, "contrast": 1.0, "width": -1.0},
     "signal width must be a finite number of pixels > 0, got -1.0"),
])
def test_bad_signals_are_refused_with_their_message(kwargs, message):
    with pytest.raises(InputError) as error:
        Signal(**kwargs)
    assert str(error.value) == message


def test_bad_insertions_are_refused_with_their_message():
    signal = Signal("gaussian", 1.0, 1.0)
    with pytest.raises(InputError, match=r"^roi_size \(9, 9\) is larger than the images \(8 x 8\); pick a smaller"):
        insert_signals(np.zeros((2, 8, 8)), signal, (9, 9))
    with pytest.raises(InputError, match=r"^images has shape \(2, 1, 8, 8\) and dtype float64; expected real images"):
        insert_signals(np.zeros((2, 1, 8, 8)), signal, (3, 3))
    with pytest.raises(InputError, match=r"^images holds 1 NaN or infinite values; pass finite images$"):
        insert_signals(np.where(np.eye(8)[None] > 0, np.nan, 0.0)[:, :1], signal, (1, 3))
    with pytest.raises(InputError, match=r"^mask leaves no location for a 3 x 3 ROI in image 0; enlarge the mask"):
        insert_signals(np.zeros((2, 8, 8)), signal, (3, 3), mask=np.zeros((8, 8), dtype=bool))
    with pytest.raises(InputError, match=r"^location 1 \(4, 4\) is not the centre of a 4 x 4 ROI inside the 8 x 8 "
                                         r"image \(its corner must be a whole pixel in the image\)"):
        insert_signals(np.zeros((2, 8, 8)), signal, (4, 4), locations=[(3.5, 3.5), (4.0, 4.0)])
    with pytest.raises(InputError, match=r"^location 0 \(7.5, 1.5\) is not the centre of a 4 x 4 ROI inside"):
        cut_rois(np.zeros((1, 8, 8)), [(7.5, 1.5)], (4, 4))
    with pytest.raises(InputError, match=r"^images holds 4 images; calibration needs at least 8 \(half with the"):
        calibrate_contrast(np.zeros((4, 8, 8)), signal, (3, 3), 1.0)
