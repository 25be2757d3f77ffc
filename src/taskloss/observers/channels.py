"""Channels of the channelized Hotelling observer and the eye filter of the NPWE observer.

Every channel set is returned as an array (C, H, W) of float64, each channel centred on the ROI's
centre ``((H - 1) / 2, (W - 1) / 2)`` (the convention of the FDA LCD-CT toolbox, DIDSR/LCD_CT, whose
channel definitions these follow): on an even side the centre lies between two pixels, so put the
signal there too (:func:`roi_grid` gives the offsets). Rows are ``y`` (down), columns ``x``.

The channel profiles are written here by hand: no Python library ships them (the LCD-CT toolbox is
MATLAB); the Laguerre polynomials come from :func:`scipy.special.eval_laguerre`.
"""

import math

import numpy as np
from scipy.special import eval_laguerre

from taskloss.errors import InputError

LG_CHANNELS = 5
"""Default number of Laguerre-Gauss channels (``nch`` of the LCD-CT toolbox's ``lg_cho_2d``)."""

DENSE_DOG = (0.005, 1.4, 1.67, 10)
"""Dense difference-of-Gaussians channels (sigma_0 in cycles/pixel, alpha, Q, channels): Abbey &
Barrett, "Human- and model-observer performance in ramp-spectrum noise", JOSA A 18(3), 2001, as the
LCD-CT toolbox's ``dog_cho_2d`` sets them."""

GABOR_BANDS = 4
GABOR_ORIENTATIONS = 4
GABOR_HIGHEST_FREQUENCY = 1 / 8
"""Gabor channels of the LCD-CT toolbox's ``gabor_cho_2d``: octave bands below 1/8 cycles/pixel
([1/16, 1/8], [1/32, 1/16], ...), each at its band centre with a Gaussian envelope of FWHM
``4 ln 2 / (pi * bandwidth)``, at orientations ``k pi / 4``, phase 0: 16 channels."""

EYE_EXPONENT = 1.3
EYE_DECAY = 0.04
"""The eye filter ``E(f) = f^1.3 exp(-0.04 f^2)``, f in cycles/degree (peak near 4 cycles/degree):
Burgess, "Statistically defined backgrounds: performance of a modified nonprewhitening observer
model", JOSA A 11(4), 1994, with the constant 0.04 of the LCD-CT toolbox's ``npwe_2d``."""

LCD_CT_PIXELS_PER_DEGREE = 500.0 * math.pi / 180.0 / (54.0 / 128.0)
"""Image pixels per degree of visual angle in the LCD-CT toolbox's NPWE: 128 pixels shown on 54 mm,
viewed from 50 cm (about 20.7)."""

CHANNEL_FAMILIES = ("laguerre-gauss", "gabor", "dog")


def roi_grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``(y, x)`` of every pixel from the ROI centre ``((H - 1) / 2, (W - 1) / 2)``, each (H, W).

    Examples:
        >>> y, x = roi_grid((3, 4))
        >>> y[:, 0].tolist(), x[0].tolist()
        ([-1.0, 0.0, 1.0], [-1.5, -0.5, 0.5, 1.5])
    """
    height, width = size
    y = np.arange(height, dtype=np.float64) - (height - 1) / 2
    x = np.arange(width, dtype=np.float64) - (width - 1) / 2
    return np.meshgrid(y, x, indexing="ij")


def laguerre_gauss_channels(size: tuple[int, int], n_channels: int, width: float) -> np.ndarray:
    """Laguerre-Gauss channels ``u_j(r) = sqrt(2) / a * exp(-pi r^2 / a^2) * L_j(2 pi r^2 / a^2)``.

    ``L_j`` is the Laguerre polynomial of order j (Barrett & Myers, Foundations of Image Science,
    2004; Gallas & Barrett, JOSA A 20(9), 2003). The functions are orthonormal over the plane, so on
    an ROI several widths across their Gram matrix is close to the identity.

    Args:
        size: ROI (H, W).
        n_channels: number of channels, orders 0 .. n_channels - 1, >= 1.
        width: the Gaussian width ``a`` in pixels, > 0; the first channel is a Gaussian of standard
            deviation ``a / sqrt(2 pi)``. The LCD-CT toolbox suggests about 2/3 of a disc signal's
            radius; for a Gaussian signal of standard deviation s, ``a = s sqrt(2 pi)`` makes the
            first channel the signal itself.

    Returns:
        Channels (n_channels, H, W), float64.

    Examples:
        >>> laguerre_gauss_channels((9, 9), 3, 4.0).shape
        (3, 9, 9)
    """
    if n_channels < 1 or not width > 0:
        raise InputError(f"laguerre-gauss channels need n_channels >= 1 and channel_width > 0 (pixels), got "
                         f"{n_channels} and {width}; pass e.g. n_channels=5, channel_width=2/3 of the signal radius")
    y, x = roi_grid(size)
    q = 2 * math.pi * (x**2 + y**2) / width**2
    gauss = math.sqrt(2) / width * np.exp(-q / 2)
    return np.stack([gauss * eval_laguerre(j, q) for j in range(n_channels)])


def dog_channels(size: tuple[int, int], n_channels: int = DENSE_DOG[3],
                 parameters: tuple[float, float, float] = DENSE_DOG[:3]) -> np.ndarray:
    """Difference-of-Gaussians channels, radially symmetric band-pass filters (Abbey & Barrett 2001).

    In frequency (rho in cycles/pixel) channel j is ``exp(-rho^2 / (2 (Q s_j)^2)) - exp(-rho^2 / (2 s_j^2))``
    with ``s_j = sigma_0 * alpha^j``. The channel image is its exact inverse Fourier transform,
    ``2 pi (Q s_j)^2 exp(-2 pi^2 (Q s_j)^2 r^2) - 2 pi s_j^2 exp(-2 pi^2 s_j^2 r^2)``, sampled at the
    pixels' distance r from the centre (the toolbox samples the frequency profile on the DFT grid
    instead: the same function up to aliasing).

    Args:
        size: ROI (H, W).
        n_channels: number of channels, j = 0 .. n_channels - 1.
        parameters: (sigma_0, alpha, Q); the default is Abbey & Barrett's dense set, :data:`DENSE_DOG`.

    Returns:
        Channels (n_channels, H, W), float64.

    Examples:
        >>> dog_channels((16, 16)).shape
        (10, 16, 16)
    """
    if n_channels < 1:
        raise InputError(f"dog channels need n_channels >= 1, got {n_channels}; the dense set has 10")
    sigma0, alpha, q = parameters
    y, x = roi_grid(size)
    r2 = x**2 + y**2
    channels = []
    for j in range(n_channels):
        wide, narrow = q * sigma0 * alpha**j, sigma0 * alpha**j
        channels.append(2 * math.pi * wide**2 * np.exp(-2 * math.pi**2 * wide**2 * r2)
                        - 2 * math.pi * narrow**2 * np.exp(-2 * math.pi**2 * narrow**2 * r2))
    return np.stack(channels)


def gabor_channels(size: tuple[int, int], bands: int = GABOR_BANDS, orientations: int = GABOR_ORIENTATIONS,
                   highest_frequency: float = GABOR_HIGHEST_FREQUENCY) -> np.ndarray:
    """Gabor channels ``exp(-4 ln 2 r^2 / w^2) cos(2 pi f (x cos t + y sin t))`` in octave bands.

    Band b spans ``[f_b / 2, f_b]`` with ``f_b = highest_frequency / 2^b``; its channels have the band
    centre ``f = 3 f_b / 4`` and the envelope FWHM ``w = 4 ln 2 / (pi f_b / 2)``, at the orientations
    ``t = k pi / orientations`` (phase 0), as the LCD-CT toolbox's ``gabor_cho_2d``.

    Args:
        size: ROI (H, W).
        bands: number of octave bands.
        orientations: orientations per band.
        highest_frequency: upper edge of the first band, cycles/pixel.

    Returns:
        Channels (bands * orientations, H, W), float64, band-major.

    Examples:
        >>> gabor_channels((32, 32)).shape
        (16, 32, 32)
    """
    y, x = roi_grid(size)
    r2 = x**2 + y**2
    channels = []
    upper = highest_frequency
    for _ in range(bands):
        lower = upper / 2
        centre, bandwidth = (upper + lower) / 2, upper - lower
        fwhm = 4 * math.log(2) / (math.pi * bandwidth)
        envelope = np.exp(-4 * math.log(2) * r2 / fwhm**2)
        for k in range(orientations):
            theta = k * math.pi / orientations
            channels.append(envelope * np.cos(2 * math.pi * centre * (x * math.cos(theta) + y * math.sin(theta))))
        upper = lower
    return np.stack(channels)


def make_channels(family: str, size: tuple[int, int], n_channels: int | None,
                  channel_width: float | None) -> np.ndarray:
    """The channel set ``family`` on an ROI of ``size``: (C, H, W) float64.

    Args:
        family: "laguerre-gauss", "gabor" or "dog".
        size: ROI (H, W).
        n_channels: channels of "laguerre-gauss" (default :data:`LG_CHANNELS`) or "dog" (default 10);
            must be None for "gabor" (16 channels, fixed).
        channel_width: the Laguerre-Gauss width in pixels (required there, refused elsewhere).

    Raises:
        InputError: an unknown family, or a width or count the family does not take.

    Examples:
        >>> make_channels("laguerre-gauss", (8, 8), None, 3.0).shape
        (5, 8, 8)
    """
    if family not in CHANNEL_FAMILIES:
        raise InputError(f"channels={family!r} is unknown; use one of {', '.join(CHANNEL_FAMILIES)}")
    if family == "laguerre-gauss":
        if channel_width is None:
            raise InputError("channels='laguerre-gauss' needs channel_width (the Gaussian width in pixels); "
                             "about 2/3 of a disc signal's radius, or 2.5 x a Gaussian signal's standard deviation")
        return laguerre_gauss_channels(size, LG_CHANNELS if n_channels is None else n_channels, channel_width)
    if channel_width is not None:
        raise InputError(f"channel_width applies to laguerre-gauss channels only, not {family!r}; leave it out")
    if family == "dog":
        return dog_channels(size, DENSE_DOG[3] if n_channels is None else n_channels)
    if n_channels is not None:
        raise InputError(f"gabor channels are a fixed set of {GABOR_BANDS * GABOR_ORIENTATIONS} (4 octave bands x 4 "
                         "orientations); leave n_channels out")
    return gabor_channels(size)


def eye_filter(size: tuple[int, int], pixels_per_degree: float) -> np.ndarray:
    """The eye filter ``E(f) = f^1.3 exp(-0.04 f^2)`` on the DFT frequencies of an ROI (NumPy's FFT order).

    Args:
        size: ROI (H, W).
        pixels_per_degree: image pixels per degree of visual angle at the reading distance, > 0
            (the LCD-CT toolbox's display: :data:`LCD_CT_PIXELS_PER_DEGREE`).

    Returns:
        (H, W) float64, zero at f = 0 (the filter removes the mean), for ``numpy.fft.fft2`` spectra.

    Examples:
        >>> e = eye_filter((64, 64), LCD_CT_PIXELS_PER_DEGREE)
        >>> float(e[0, 0]), bool(e.max() > 0)
        (0.0, True)
    """
    if not pixels_per_degree > 0:
        raise InputError(f"pixels_per_degree must be > 0, got {pixels_per_degree}; about 20.7 for the LCD-CT "
                         "toolbox's display (128 pixels on 54 mm viewed from 50 cm)")
    fy = np.fft.fftfreq(size[0])[:, None] * pixels_per_degree
    fx = np.fft.fftfreq(size[1])[None, :] * pixels_per_degree
    f2 = fx**2 + fy**2
    return f2 ** (EYE_EXPONENT / 2) * np.exp(-EYE_DECAY * f2)
