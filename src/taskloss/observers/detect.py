"""Linear model observers for a signal-known-exactly detection task: NPW, NPWE, Hotelling and CHO.

Each observer scores an image ``g`` (flattened to P pixels) with a linear template, ``t = w^T g``
(Barrett & Myers, Foundations of Image Science, 2004, ch. 13):

- ``"npw"``, the non-prewhitening matched filter: ``w = ds``, the expected signal;
- ``"npwe"``, NPW with an eye filter E (:func:`taskloss.observers.channels.eye_filter`):
  ``w = F^-1[E^2 F[ds]]``, the signal as the eye passes it, matched to the image as the eye passes it;
- ``"hotelling"``, the ideal linear observer: ``w = K^-1 ds`` with K the pixel covariance;
- ``"cho"``, the channelized Hotelling observer: the image reduced to C channel outputs
  ``v = U^T g`` (U the P x C channels, :mod:`taskloss.observers.channels`), then ``w_v = K_v^-1 U^T ds``
  with ``K_v`` the channel covariance.

``ds`` is the mean signal-present minus the mean signal-absent image, or ``U^T`` of the given
``signal``; a covariance is ``(K_present + K_absent) / 2`` of the training images (the LCD-CT
toolbox's choice). For Gaussian noise of covariance K the observers' detectability is, in closed
form, ``d'^2 = s^T K^-1 s`` (Hotelling) and ``d' = s^T s / sqrt(s^T K s)`` (NPW); in white noise of
standard deviation sigma both equal ``|s| / sigma``.

Resubstitution bias: a template estimated from the very images it scores fits their noise and
overstates d' (most for Hotelling, whose P x P covariance is fitted). Here every score comes from a
template that never saw that image: the images of each class are split by a seeded random
permutation into two halves; the template estimated on one half (both classes) scores the other
half, and the halves swap (2-fold cross-validation). The two templates' scores are put on one
scale before they are pooled: each is centred on the midpoint of its training classes' mean score
and divided by its training pooled standard deviation, both from the training half only.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg

from taskloss.errors import InputError
from taskloss.observers.channels import LCD_CT_PIXELS_PER_DEGREE, eye_filter, make_channels
from taskloss.observers.roc import auc_delong, dprime
from taskloss.validation import check_finite

OBSERVERS = ("npw", "npwe", "hotelling", "cho")
MIN_IMAGES = 4
"""Images per class at the least: each half of the 2-fold split needs 2 per class for a variance."""


@dataclass(frozen=True, eq=False)
class Detectability:
    """One observer's performance on a detection task.

    Attributes:
        observer: "npw", "npwe", "hotelling" or "cho".
        channels: the CHO's channel family ("laguerre-gauss", "gabor", "dog"); None for the others.
        n_channels: channels (CHO) or pixels (the others) the template weighs.
        auc: Mann-Whitney area under the ROC curve of the cross-validated scores, in [0, 1].
        auc_ci: DeLong confidence interval (low, high) of ``auc``.
        snr: the detectability index d' of the scores (the LCD-CT toolbox's "SNR").
        snr_ci: normal-theory confidence interval (low, high) of ``snr``.
        confidence: coverage of both intervals.
        scores_present: each signal-present image's score, in input order (n_present,), in units of
            the training noise's standard deviation.
        scores_absent: each signal-absent image's score, in input order (n_absent,).
    """

    observer: str
    channels: str | None
    n_channels: int
    auc: float
    auc_ci: tuple[float, float]
    snr: float
    snr_ci: tuple[float, float]
    confidence: float
    scores_present: np.ndarray
    scores_absent: np.ndarray

    @property
    def n_present(self) -> int:
        """Number of signal-present images scored."""
        return int(self.scores_present.size)

    @property
    def n_absent(self) -> int:
        """Number of signal-absent images scored."""
        return int(self.scores_absent.size)

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """The empirical ROC curve: (false-positive rates, true-positive rates), from (0, 0) to (1, 1).

        Examples:
            >>> rng = np.random.default_rng(0)
            >>> result = detectability(rng.normal(1, 1, (40, 4, 4)), rng.normal(0, 1, (40, 4, 4)), "npw")
            >>> fpr, tpr = result.roc()
            >>> float(fpr[0]), float(tpr[-1])
            (0.0, 1.0)
        """
        from sklearn.metrics import roc_curve

        labels = np.r_[np.ones(self.n_present), np.zeros(self.n_absent)]
        fpr, tpr, _ = roc_curve(labels, np.r_[self.scores_present, self.scores_absent])
        return fpr, tpr


def detectability(
    present: object,
    absent: object,
    observer: str,
    *,
    channels: str | None = None,
    channel_width: float | None = None,
    n_channels: int | None = None,
    signal: object = None,
    internal_noise: float = 0.0,
    pixels_per_degree: float = LCD_CT_PIXELS_PER_DEGREE,
    confidence: float = 0.95,
    seed: int = 0,
    paired: bool = False,
) -> Detectability:
    """Score signal-present against signal-absent images with a model observer (signal known exactly).

    The template is estimated on one half of the images and scores the other, then the halves swap
    (2-fold cross-validation, see the module's docstring): no image is scored by a template fitted
    to it, so d' and AUC carry no resubstitution bias (a template fitted to half the images is a
    little worse than one fitted to all: the estimate errs low, most for Hotelling with few images
    per pixel).

    Args:
        present: signal-present images or ROIs (N_p, H, W), a NumPy array or tensor, the signal at the
            same place in each (for the CHO, at the ROI's centre ``((H - 1) / 2, (W - 1) / 2)``).
        absent: signal-absent images (N_a, H, W) of the same H, W; one independent noise (and
            background) realisation per image.
        observer: "npw", "npwe", "hotelling" or "cho".
        channels: the CHO's channels, "laguerre-gauss", "gabor" or "dog"
            (:func:`taskloss.observers.channels.make_channels`); required for "cho", refused otherwise.
        channel_width: the Laguerre-Gauss width in pixels (required with those channels).
        n_channels: channel count for "laguerre-gauss" (default 5) and "dog" (default 10).
        signal: the expected signal (H, W) (present minus absent, noiseless); None estimates it as the
            training half's mean difference. Covariances are always estimated from the images.
        internal_noise: variance of Gaussian noise added to every score, as a multiple of the
            training half's score variance (>= 0; 0 for none): the "induced internal noise" model
            that scales with external noise (Burgess & Colborne, JOSA A 5(4), 1988). Expected d'
            then falls by ``sqrt(1 + internal_noise)``.
        pixels_per_degree: NPWE only: image pixels per degree of visual angle (the default is the
            LCD-CT toolbox's display, about 20.7).
        confidence: coverage of the AUC and d' intervals, in (0, 1).
        seed: seed of the split into halves and of the internal noise.
        paired: ``present[i]`` and ``absent[i]`` show the same background (one scene with and without
            the signal, each with its own noise): the split keeps each pair in one half, so no template
            scores an image whose twin it was fitted to. Needs N_p = N_a. The intervals still treat the
            classes as independent samples.

    Returns:
        A :class:`Detectability` with AUC, d', their intervals and every image's score.

    Raises:
        InputError: not a stack (N, H, W) of real numbers; sizes that differ; NaN or infinity; fewer
            than 4 images per class; a set whose images are all identical; too few images for the
            covariance (Hotelling: more than the pixel count; CHO: more than the channel count);
            an unknown observer or channel family; a setting that does not apply.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> signal = np.zeros((8, 8)); signal[3:5, 3:5] = 0.5  # |s| = 1
        >>> absent = rng.normal(size=(1000, 8, 8))
        >>> present = rng.normal(size=(1000, 8, 8)) + signal
        >>> result = detectability(present, absent, "npw", signal=signal)
        >>> round(result.snr, 1), result.auc_ci[0] < result.auc < result.auc_ci[1]
        (1.0, True)
    """
    if observer not in OBSERVERS:
        raise InputError(f"observer={observer!r} is unknown; use one of {', '.join(OBSERVERS)}")
    present_images = _as_stack(present, "present")
    absent_images = _as_stack(absent, "absent")
    size = present_images.shape[1:]
    if absent_images.shape[1:] != size:
        raise InputError(f"present images are {size[0]} x {size[1]} but absent images are "
                         f"{absent_images.shape[1]} x {absent_images.shape[2]}; crop both to the same ROI size")
    expected = None if signal is None else _as_signal(signal, size)
    if not internal_noise >= 0 or not math.isfinite(internal_noise):
        raise InputError(f"internal_noise must be a finite number >= 0, got {internal_noise}; 0 for none")
    basis = _channels(observer, channels, channel_width, n_channels, size)
    features = present_images.shape[1] * present_images.shape[2] if basis is None else basis.shape[1]
    if observer in ("hotelling", "cho"):
        _check_enough_images(observer, channels, features, present_images.shape[0], absent_images.shape[0])
    weights = _template_maker(observer, size, pixels_per_degree)
    p_features = _features(present_images, basis)
    a_features = _features(absent_images, basis)
    s_features = None if expected is None else _features(expected[None], basis)[0]
    if paired and len(p_features) != len(a_features):
        raise InputError(f"paired=True needs one absent image per present image, got {len(p_features)} present and "
                         f"{len(a_features)} absent; pass the pairs in the same order, or paired=False")
    rng = np.random.default_rng(seed)
    p_halves = np.array_split(rng.permutation(len(p_features)), 2)
    a_halves = p_halves if paired else np.array_split(rng.permutation(len(a_features)), 2)
    scores_p, scores_a = np.empty(len(p_features)), np.empty(len(a_features))
    for test in (0, 1):
        train_p, train_a = p_features[p_halves[1 - test]], a_features[a_halves[1 - test]]
        w = weights(train_p, train_a, s_features)
        centre, spread = _standardisation(train_p @ w, train_a @ w)
        scores_p[p_halves[test]] = (p_features[p_halves[test]] @ w - centre) / spread
        scores_a[a_halves[test]] = (a_features[a_halves[test]] @ w - centre) / spread
    if internal_noise > 0:
        scores_p += rng.normal(0.0, math.sqrt(internal_noise), scores_p.shape)
        scores_a += rng.normal(0.0, math.sqrt(internal_noise), scores_a.shape)
    auc, auc_ci = auc_delong(scores_p, scores_a, confidence)
    snr, snr_ci = dprime(scores_p, scores_a, confidence)
    return Detectability(observer=observer, channels=channels, n_channels=features, auc=auc, auc_ci=auc_ci,
                         snr=snr, snr_ci=snr_ci, confidence=confidence, scores_present=scores_p,
                         scores_absent=scores_a)


def _as_stack(images: object, name: str) -> np.ndarray:
    """A stack (N, H, W) of finite real numbers, not all images identical, as float64."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu()
        if images.is_complex():
            raise InputError(f"{name} is complex ({images.dtype}); pass magnitudes (x.abs())")
        images = images.double().numpy()
    array = np.asarray(images)
    if array.dtype.kind not in "fiub":
        raise InputError(f"{name} has dtype {array.dtype}; pass real numbers (magnitudes of complex images)")
    if array.ndim != 3:
        raise InputError(f"{name} has shape {array.shape}; expected a stack of images (N, H, W) "
                         "(squeeze the channel axis of (N, 1, H, W) with x[:, 0])")
    if min(array.shape[1:]) < 1:
        raise InputError(f"{name} has shape {array.shape}, with empty images; pass ROIs of at least 1 x 1")
    array = array.astype(np.float64)
    check_finite(torch.from_numpy(array), name)
    if array.shape[0] < MIN_IMAGES:
        raise InputError(f"{name} holds {array.shape[0]} images; an observer needs at least {MIN_IMAGES} per class "
                         "(half of them train its template, half are scored)")
    if not np.ptp(array, axis=0).any():
        raise InputError(f"{name}: all {array.shape[0]} images are identical (no image-to-image variation); an "
                         "observer needs one independent noise realisation per image")
    return array


def _as_signal(signal: object, size: tuple[int, ...]) -> np.ndarray:
    if isinstance(signal, torch.Tensor):
        signal = signal.detach().cpu().double().numpy()
    array = np.asarray(signal, dtype=np.float64)
    if array.shape != tuple(size):
        raise InputError(f"signal has shape {array.shape} but the images are {size[0]} x {size[1]}; pass the "
                         "expected signal (H, W) on the images' grid")
    check_finite(torch.from_numpy(array), "signal")
    return array


def _channels(observer: str, channels: str | None, width: float | None, n_channels: int | None,
              size: tuple[int, ...]) -> np.ndarray | None:
    """The CHO's channel matrix U (P, C); None for the observers that weigh every pixel."""
    if observer != "cho":
        given = [f"{k}={v!r}" for k, v in (("channels", channels), ("channel_width", width),
                                          ("n_channels", n_channels)) if v is not None]
        if given:
            raise InputError(f"{', '.join(given)} applies to observer='cho' only, not {observer!r}; leave it out")
        return None
    if channels is None:
        raise InputError("observer='cho' needs channels: 'laguerre-gauss' (with channel_width), 'gabor' or 'dog'")
    basis = make_channels(channels, (int(size[0]), int(size[1])), n_channels, width)
    return _orthonormal_span(basis.reshape(basis.shape[0], -1).T)


CHANNEL_RANK_TOLERANCE = 1e-6
"""Singular values of the channel matrix below this fraction of the largest are dropped (channels that
are linear combinations of others on this ROI, as Abbey & Barrett's widest DOG channels on a small ROI)."""


def _orthonormal_span(basis: np.ndarray) -> np.ndarray:
    """An orthonormal basis (P, C') of the span of the channels (P, C), by SVD.

    The CHO's d' and scores do not change under an invertible linear map of the channels (the
    template ``K_v^-1 U^T ds`` absorbs it), so the span is all that matters; an orthonormal basis of
    it keeps the channel covariance invertible where channels are (nearly) linearly dependent. (The
    LCD-CT toolbox takes the pseudo-inverse of the covariance instead, which keeps the noise of the
    nearly dependent directions.)
    """
    left, singular, _ = np.linalg.svd(basis, full_matrices=False)
    return left[:, singular > CHANNEL_RANK_TOLERANCE * singular[0]]


def _check_enough_images(observer: str, channels: str | None, features: int, n_present: int,
                         n_absent: int) -> None:
    """Refuse a covariance that its training half cannot make invertible: it needs more images than features.

    The pooled covariance of a half of ``n_p // 2 + n_a // 2`` training images has
    ``n_p // 2 + n_a // 2 - 2`` degrees of freedom; it is singular unless that is at least ``features``.
    """
    if n_present // 2 + n_absent // 2 - 2 >= features:
        return
    needed = 2 * math.ceil((features + 2) / 2)
    if observer == "hotelling":
        raise InputError(f"observer='hotelling' on {features} pixels needs at least {needed} images per class (its "
                         f"pixel covariance, estimated on half of them, must be invertible); present has {n_present}"
                         f" and absent {n_absent}; add images, crop a smaller ROI, or use observer='cho'")
    raise InputError(f"observer='cho' with {features} {channels} channels (independent on this ROI) needs at least "
                     f"{needed} images per class "
                     f"(its channel covariance, estimated on half of them, must be invertible); present has "
                     f"{n_present} and absent {n_absent}; add images or use fewer channels (n_channels)")


def _features(images: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """Images (N, H, W) as rows (N, P) of pixels, or (N, C) of channel outputs ``U^T g``."""
    flat = images.reshape(images.shape[0], -1)
    return flat if basis is None else flat @ basis


def _template_maker(observer: str, size: tuple[int, ...], pixels_per_degree: float):
    """The function (train_present, train_absent, signal_features | None) -> template for ``observer``."""
    if observer == "npwe":
        eye2 = eye_filter((int(size[0]), int(size[1])), pixels_per_degree) ** 2

    def template(train_p: np.ndarray, train_a: np.ndarray, signal: np.ndarray | None) -> np.ndarray:
        mean_difference = train_p.mean(axis=0) - train_a.mean(axis=0) if signal is None else signal
        if observer == "npw":
            return mean_difference
        if observer == "npwe":
            spectrum = np.fft.fft2(mean_difference.reshape(size)) * eye2
            return np.fft.ifft2(spectrum).real.ravel()
        covariance = (np.cov(train_p, rowvar=False) + np.cov(train_a, rowvar=False)) / 2
        return _solve(np.atleast_2d(covariance), mean_difference, observer)

    return template


def _solve(covariance: np.ndarray, vector: np.ndarray, observer: str) -> np.ndarray:
    """``covariance^-1 vector`` by Cholesky; a singular covariance is an InputError."""
    try:
        return linalg.cho_solve(linalg.cho_factor(covariance), vector)
    except linalg.LinAlgError:
        what = "pixel" if observer == "hotelling" else "channel"
        raise InputError(f"the {what} covariance of the training images is singular (some {what}s do not vary or "
                         "vary together); crop the ROI to where the images vary, or use fewer channels") from None


def _standardisation(train_p: np.ndarray, train_a: np.ndarray) -> tuple[float, float]:
    """Midpoint of the training classes' mean scores and their pooled standard deviation."""
    spread = math.sqrt((np.var(train_p, ddof=1) + np.var(train_a, ddof=1)) / 2)
    if spread == 0:
        raise InputError("the observer's template gives every training image the same score (the signal estimate "
                         "is zero, or the images do not vary where the template looks); check the ROI and signal")
    return (float(train_p.mean()) + float(train_a.mean())) / 2, spread
