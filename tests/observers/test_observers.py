"""taskloss.observers: closed forms of detectability, channels, DeLong's AUC interval, the bias guard, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage, stats
from sklearn.metrics import roc_auc_score

from taskloss.errors import InputError
from taskloss.observers import (
    DENSE_DOG,
    auc_delong,
    detectability,
    dog_channels,
    eye_filter,
    gabor_channels,
    laguerre_gauss_channels,
    roi_grid,
)

N = 2000  # images per class: d' has a standard error of about 0.04 at d' = 2
SIDE = 8


def _gaussian_signal(side: int, sd: float, norm: float) -> np.ndarray:
    y, x = roi_grid((side, side))
    signal = np.exp(-(x**2 + y**2) / (2 * sd**2))
    return signal * norm / np.linalg.norm(signal)


@pytest.fixture(scope="session")
def white():
    """White Gaussian noise, sigma = 1, and a Gaussian signal with |s| = 2: ideal d' = 2."""
    rng = np.random.default_rng(1)
    signal = _gaussian_signal(SIDE, 1.5, 2.0)
    return rng.normal(size=(N, SIDE, SIDE)) + signal, rng.normal(size=(N, SIDE, SIDE)), signal


@pytest.mark.parametrize(("observer", "kwargs"), [
    ("npw", {}), ("hotelling", {}),
    ("cho", {"channels": "laguerre-gauss", "channel_width": 1.5 * math.sqrt(2 * math.pi)}),
])
@pytest.mark.parametrize("known", [False, True])
def test_white_noise_observers_reach_the_norm_of_the_signal_over_sigma(white, observer, kwargs, known):
    present, absent, signal = white
    result = detectability(present, absent, observer, signal=signal if known else None, **kwargs)
    assert result.snr == pytest.approx(2.0, rel=0.05)  # ideal |s| / sigma = 2
    assert result.auc == pytest.approx(stats.norm.cdf(result.snr / math.sqrt(2)), abs=0.01)
    assert result.snr_ci[0] < result.snr < result.snr_ci[1] and result.auc_ci[0] < result.auc < result.auc_ci[1]


def test_correlated_noise_hotelling_and_npw_match_their_closed_forms():
    rng = np.random.default_rng(2)
    side = 6
    pixels = side * side
    # Noise n = B z1 + 0.5 z2 with B a Gaussian blur (sigma 1 px, scipy's reflect borders): K = B B^T + 0.25 I.
    blur = np.stack([ndimage.gaussian_filter(e.reshape(side, side), 1.0).ravel() for e in np.eye(pixels)], axis=1)
    covariance = blur @ blur.T + 0.25 * np.eye(pixels)
    signal = _gaussian_signal(side, 1.0, 1.2).ravel()

    def noise(n):
        return (rng.normal(size=(n, pixels)) @ blur.T + 0.5 * rng.normal(size=(n, pixels))).reshape(n, side, side)

    present, absent = noise(3000) + signal.reshape(side, side), noise(3000)
    hotelling = math.sqrt(signal @ np.linalg.solve(covariance, signal))
    npw = signal @ signal / math.sqrt(signal @ covariance @ signal)
    assert hotelling > 1.1 * npw  # the correlation matters: the two closed forms differ
    result_h = detectability(present, absent, "hotelling", signal=signal.reshape(side, side))
    result_n = detectability(present, absent, "npw", signal=signal.reshape(side, side))
    for result, closed_form in ((result_h, hotelling), (result_n, npw)):
        half_width = (result.snr_ci[1] - result.snr_ci[0]) / 2  # 1.96 standard errors
        assert abs(result.snr - closed_form) < 1.5 * half_width  # within 3 standard errors (about 6 %)
        assert result.auc == pytest.approx(stats.norm.cdf(result.snr / math.sqrt(2)), abs=0.01)


def test_lg_cho_on_a_gaussian_signal_is_within_a_few_percent_of_ideal():
    side, sd = 16, 2.0
    signal = _gaussian_signal(side, sd, 2.0)
    # 5 channels of twice the matched width (a = sd sqrt(2 pi) would make channel 0 the signal itself).
    channels = laguerre_gauss_channels((side, side), 5, 2 * sd * math.sqrt(2 * math.pi)).reshape(5, -1).T
    projected = channels @ np.linalg.lstsq(channels, signal.ravel(), rcond=None)[0]
    efficiency = np.linalg.norm(projected) / np.linalg.norm(signal)  # CHO d' / ideal d' in white noise
    assert 0.97 < efficiency < 1.0
    rng = np.random.default_rng(3)
    present, absent = rng.normal(size=(N, side, side)) + signal, rng.normal(size=(N, side, side))
    result = detectability(present, absent, "cho", channels="laguerre-gauss",
                           channel_width=2 * sd * math.sqrt(2 * math.pi))
    assert result.snr == pytest.approx(2.0 * efficiency, rel=0.05)


def test_no_signal_auc_interval_holds_one_half_where_resubstitution_would_not():
    rng = np.random.default_rng(4)
    present, absent = rng.normal(size=(100, SIDE, SIDE)), rng.normal(size=(100, SIDE, SIDE))
    # Resubstitution: a Hotelling template fitted to the very images it scores finds a "signal" in noise.
    difference = present.mean(0).ravel() - absent.mean(0).ravel()
    pooled = (np.cov(present.reshape(100, -1), rowvar=False) + np.cov(absent.reshape(100, -1), rowvar=False)) / 2
    w = np.linalg.solve(pooled, difference)
    assert roc_auc_score(np.r_[np.ones(100), np.zeros(100)],
                         np.r_[present.reshape(100, -1) @ w, absent.reshape(100, -1) @ w]) > 0.8
    for observer, kwargs in (("hotelling", {}), ("npw", {}), ("cho", {"channels": "dog"})):
        result = detectability(present, absent, observer, **kwargs)
        assert result.auc_ci[0] < 0.5 < result.auc_ci[1], observer
        assert result.snr_ci[0] < 0.0 < result.snr_ci[1], observer


def test_internal_noise_divides_d_prime_by_the_root_of_one_plus_its_ratio(white):
    present, absent, signal = white
    result = detectability(present, absent, "npw", signal=signal, internal_noise=3.0)
    assert result.snr == pytest.approx(2.0 / 2.0, rel=0.06)


def test_scores_keep_the_input_order_and_tensors_give_the_numpy_result(white):
    present, absent, signal = white
    present = present[:200].copy()
    present[17] += 5 * signal
    result = detectability(present, absent[:200], "npwe")
    assert int(np.argmax(result.scores_present)) == 17
    from_tensors = detectability(torch.from_numpy(present).float(), torch.from_numpy(absent[:200]).float(), "npwe")
    np.testing.assert_allclose(from_tensors.scores_present, result.scores_present, rtol=1e-4, atol=1e-4)
    fpr, tpr = result.roc()
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_delong_matches_its_definition_and_the_intervals_cover():
    rng = np.random.default_rng(5)
    x, y = np.round(rng.normal(1, 1, 30), 1), np.round(rng.normal(0, 1, 40), 1)  # ties on purpose
    psi = (x[:, None] > y[None]) + 0.5 * (x[:, None] == y[None])  # DeLong et al. 1988, structural components
    v10, v01 = psi.mean(1), psi.mean(0)
    se = math.sqrt(v10.var(ddof=1) / 30 + v01.var(ddof=1) / 40)
    auc, (low, high) = auc_delong(x, y)
    assert auc == pytest.approx(roc_auc_score(np.r_[np.ones(30), np.zeros(40)], np.r_[x, y]), abs=1e-12)
    assert (low, high) == pytest.approx((auc - 1.959964 * se, auc + 1.959964 * se), abs=1e-6)
    # Coverage of the 95 % intervals over 2000 repetitions of Gaussian scores with d' = 1.
    from taskloss.observers import dprime

    hits_auc = hits_d = 0
    true_auc = stats.norm.cdf(1 / math.sqrt(2))
    for _ in range(2000):
        p, a = rng.normal(1, 1, 50), rng.normal(0, 1, 50)
        _, (lo, hi) = auc_delong(p, a)
        hits_auc += lo < true_auc < hi
        _, (lo, hi) = dprime(p, a)
        hits_d += lo < 1.0 < hi
    assert 0.93 < hits_auc / 2000 < 0.97 and 0.93 < hits_d / 2000 < 0.97


def test_lg_channels_are_orthonormal_and_dog_channels_have_their_frequency_profile():
    lg = laguerre_gauss_channels((64, 64), 6, 8.0).reshape(6, -1)
    np.testing.assert_allclose(lg @ lg.T, np.eye(6), atol=1e-6)
    side = 65  # odd: the centre is a pixel, so the DFT of the ifftshifted channel is real
    dog = dog_channels((side, side))
    sigma0, alpha, q = DENSE_DOG[:3]
    f = np.fft.fftfreq(side)
    rho2 = f[:, None] ** 2 + f[None] ** 2
    for j in (4, 6, 8):
        s = sigma0 * alpha**j
        profile = np.exp(-rho2 / (2 * (q * s) ** 2)) - np.exp(-rho2 / (2 * s**2))
        spectrum = np.fft.fft2(np.fft.ifftshift(dog[j])).real
        np.testing.assert_allclose(spectrum, profile, atol=2e-3)
    gabor = gabor_channels((side, side))  # channel 0: band [1/16, 1/8], centre 3/32 cycles/pixel along x
    magnitude = np.abs(np.fft.fft2(np.fft.ifftshift(gabor[0])))
    row, col = np.unravel_index(np.argmax(magnitude), magnitude.shape)
    assert f[row] == 0 and abs(abs(f[col]) - 3 / 32) <= 1 / side
    eye = eye_filter((side, side), 20.0)  # peak of f^1.3 exp(-0.04 f^2) at sqrt(1.3 / 0.08) = 4.03 cycles/degree
    row, col = np.unravel_index(np.argmax(eye), eye.shape)
    assert abs(math.hypot(f[row], f[col]) * 20.0 - math.sqrt(1.3 / 0.08)) <= 20.0 / side


def _stack(n=8, side=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, side, side))


@pytest.mark.parametrize(("present", "absent", "kwargs", "message"), [
    (_stack(), _stack(side=6), {"observer": "npw"},
     "present images are 8 x 8 but absent images are 6 x 6; crop both to the same ROI size"),
    (_stack(n=6), _stack(n=6), {"observer": "cho", "channels": "laguerre-gauss", "channel_width": 3.0,
                                "n_channels": 6},
     "observer='cho' with 6 laguerre-gauss channels (independent on this ROI) needs at least 8 images per class "
     "(its channel covariance, estimated on half of them, must be invertible); present has 6 and absent 6; add "
     "images or use fewer "
     "channels (n_channels)"),
    (_stack(n=40), _stack(n=40), {"observer": "hotelling"},
     "observer='hotelling' on 64 pixels needs at least 66 images per class (its pixel covariance, estimated on half "
     "of them, must be invertible); present has 40 and absent 40; add images, crop a smaller ROI, or use "
     "observer='cho'"),
    (np.where(np.arange(8)[:, None, None] == 3, np.nan, _stack()), _stack(), {"observer": "npw"},
     "present holds 64 NaN and 0 infinite values; fix the data or the model producing them (e.g. torch.nan_to_num) "
     "before scoring"),
    (_stack(), np.ones((8, 8, 8)), {"observer": "npw"},
     "absent: all 8 images are identical (no image-to-image variation); an observer needs one independent noise "
     "realisation per image"),
    (_stack(n=3), _stack(), {"observer": "npw"},
     "present holds 3 images; an observer needs at least 4 per class (half of them train its template, half are "
     "scored)"),
    (_stack(), _stack(), {"observer": "ideal"}, "observer='ideal' is unknown; use one of npw, npwe, hotelling, cho"),
    (_stack(), _stack(), {"observer": "cho"},
     "observer='cho' needs channels: 'laguerre-gauss' (with channel_width), 'gabor' or 'dog'"),
    (_stack(), _stack(), {"observer": "npw", "channels": "dog"},
     "channels='dog' applies to observer='cho' only, not 'npw'; leave it out"),
    (_stack(n=40), _stack(n=40), {"observer": "cho", "channels": "laguerre-gauss"},
     "channels='laguerre-gauss' needs channel_width (the Gaussian width in pixels); about 2/3 of a disc signal's "
     "radius, or 2.5 x a Gaussian signal's standard deviation"),
    (_stack(), _stack(), {"observer": "npw", "signal": np.ones((4, 4))},
     "signal has shape (4, 4) but the images are 8 x 8; pass the expected signal (H, W) on the images' grid"),
    (_stack()[:, None], _stack(), {"observer": "npw"},
     "present has shape (8, 1, 8, 8); expected a stack of images (N, H, W) (squeeze the channel axis of "
     "(N, 1, H, W) with x[:, 0])"),
])
def test_bad_input_gets_its_message(present, absent, kwargs, message):
    with pytest.raises(InputError) as error:
        detectability(present, absent, **kwargs)
    assert str(error.value) == message


def test_paired_images_stay_together_in_the_split():
    rng = np.random.default_rng(3)
    backgrounds = rng.normal(size=(40, 8, 8)) * 3  # strong anatomy, shared by each pair
    signal = np.zeros((8, 8))
    signal[3:5, 3:5] = 0.5
    present = backgrounds + signal + rng.normal(size=(40, 8, 8)) * 0.3
    absent = backgrounds + rng.normal(size=(40, 8, 8)) * 0.3
    paired = detectability(present, absent, "npw", signal=signal, paired=True, seed=1)
    # NPW with the signal known: template s, score (x . s - centre) / spread with a centre and spread per fold.
    # A pair scored by one fold's template: (score_p - score_a) / ((p - a) . s) is 1 / spread, two values in all.
    ratios = (paired.scores_present - paired.scores_absent) / np.einsum("nij,ij->n", present - absent, signal)
    assert len(np.unique(np.round(ratios, 9))) == 2
    unpaired = detectability(present, absent, "npw", signal=signal, seed=1)
    ratios = (unpaired.scores_present - unpaired.scores_absent) / np.einsum("nij,ij->n", present - absent, signal)
    assert len(np.unique(np.round(ratios, 9))) > 2  # pairs split across the folds
    with pytest.raises(InputError, match="paired=True needs one absent image per present image, got 40 present "
                                         "and 39 absent"):
        detectability(present, absent[:39], "npw", signal=signal, paired=True)
