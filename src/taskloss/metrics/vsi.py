"""VSI, the visual saliency-induced index (Zhang, Shen & Li 2014), per image, with SDSP saliency.

Zhang, Shen & Li, "VSI: a visual saliency-induced index for perceptual image quality assessment",
IEEE Trans. Image Processing 23(10), 2014. With VS the visual saliency map of an image (SDSP,
:func:`sdsp`), G its gradient magnitude (Scharr filters on the L channel of LMN) and M, N its
chromatic channels (LMN, :func:`taskloss.metrics.colour.rgb_to_lmn`), and
s(a, b; c) = (2 a b + c) / (a^2 + b^2 + c):

    S = s(VS_x, VS_y; C1) * s(G_x, G_y; C2)^alpha * (s(M_x, M_y; C3) s(N_x, N_y; C3))^beta,
    VSI = sum S * max(VS_x, VS_y) / sum max(VS_x, VS_y),

with the published constants (:data:`VSI_C1` ... :data:`VSI_BETA`) on the 0-255 scale: images are
mapped from [0, data_range] to [0, 255] first. A negative chromatic product is raised to beta as
the real part of the complex power, |t|^beta cos(beta pi) (as the authors' MATLAB code, which
takes ``real(...)``). VSI is at most 1, 1 for identical images, and symmetric.

SDSP (Zhang, Gu & Li 2013, "SDSP: a novel saliency detection method by combining simple priors")
multiplies three priors computed on the image resized to 256 x 256 in CIE Lab: a frequency prior
(a log-Gabor band-pass of each Lab channel, the magnitude over channels), a location prior (a
Gaussian around the centre) and a colour prior (warm colours: a*, b* normalised to [0, 1] per
image); the product is resized back and normalised to [0, 1] per image.

Conventions where implementations differ follow piq 0.8.0's ``piq.vsi`` (so the values agree with
piq's to rounding, tests/metrics/test_vsi.py): grayscale images are RGB with R = G = B; the resize to
256 x 256 is bilinear without antialiasing (``align_corners=False``), the resize back bilinear with
``align_corners=True``; Lab uses sRGB decoding and the D50 white without adaptation
(:func:`taskloss.metrics.colour.rgb_to_lab`); the location prior is centred on pixel (127, 127);
images whose smaller side is n >= 384 are averaged over k x k blocks, k = round(n / 256) (Python's
half-to-even ``round``), after replicating k // 2 pixels before each axis and (k - 1) // 2 after;
the Scharr filters are zero-padded; ``eps`` (the dtype's machine epsilon) is added to both sums of
the score and to the ranges of the normalisations.
"""

import math

import torch
import torch.nn.functional as F

from taskloss.metrics.colour import check_colour_pair, rgb_to_lab, rgb_to_lmn
from taskloss.metrics.data_range import DataRange, resolve_data_range
from taskloss.metrics.pixel import sqrt_zero_safe
from taskloss.validation import explain_nonfinite

VSI_C1 = 1.27
"""Zhang, Shen & Li (2014): the constant of the saliency similarity (0-255 scale)."""
VSI_C2 = 386.0
"""Zhang, Shen & Li (2014): the constant of the gradient similarity."""
VSI_C3 = 130.0
"""Zhang, Shen & Li (2014): the constant of the chromatic similarities (M and N)."""
VSI_ALPHA = 0.40
"""Zhang, Shen & Li (2014): the exponent of the gradient similarity."""
VSI_BETA = 0.02
"""Zhang, Shen & Li (2014): the exponent of the chromatic similarity."""
SDSP_OMEGA0 = 0.021
"""Zhang, Gu & Li (2013): the centre frequency of SDSP's log-Gabor filter (cycles per pixel)."""
SDSP_SIGMA_F = 1.34
"""Zhang, Gu & Li (2013): the bandwidth parameter of the log-Gabor filter."""
SDSP_SIGMA_D = 145.0
"""Zhang, Gu & Li (2013): the width of the location prior, in pixels of the 256 x 256 image."""
SDSP_SIGMA_C = 0.001
"""Zhang, Gu & Li (2013): the width of the colour prior."""
SDSP_SIZE = 256
"""SDSP's working size: every image is resized to 256 x 256 (VSI's MATLAB code and piq)."""
VSI_MIN_SIZE = 3
"""The 3 x 3 Scharr filters need 3 pixels per axis."""
PIXEL_SCALE = 255.0
"""The scale the constants are defined on: images are mapped from [0, data_range] to [0, 255]."""

SCHARR_SMOOTHING = (3.0 / 16.0, 10.0 / 16.0, 3.0 / 16.0)
"""VSI's gradient operator, Scharr's 3 x 3 filter ((-3, 0, 3), (-10, 0, 10), (-3, 0, 3)) / 16 (piq's
``scharr_filter``), is this smoothing across the central difference (-1, 0, 1)."""


def vsi(pred: torch.Tensor, target: torch.Tensor, *, data_range: DataRange | None = None) -> torch.Tensor:
    """VSI per image (see the module docstring for the definition and conventions).

    Args:
        pred: predictions (B, 1, H, W) grayscale or (B, 3, H, W) RGB, real floating point, in
            [0, data_range]. Grayscale is taken as RGB with R = G = B (VSI is defined on colour
            images; piq repeats the channel, with the same values).
        target: references of the same shape.
        data_range: the intensity range L mapped to 255, required: a number, a tensor (B,), or
            "target_max" / "target_range" (see :mod:`taskloss.metrics.data_range`).

    Returns:
        VSI of each image, shape (B,), at most 1 (in practice in (0, 1]); 1 for identical images.
        Differentiable with respect to ``pred``, with finite gradients also on flat and black
        regions (:class:`taskloss.losses.VSILoss` is ``1 - vsi``).

    Raises:
        InputError: for invalid tensors or data_range, a volume, a channel count other than 1 or
            3, or images smaller than 3 x 3.

    Examples:
        >>> target = torch.rand(2, 3, 40, 52, dtype=torch.float64)
        >>> vsi(target, target, data_range=1.0).round(decimals=10)
        tensor([1., 1.], dtype=torch.float64)
        >>> vsi(target.flip(-1), target, data_range=1.0) < 1
        tensor([True, True])
    """
    pred, target = check_colour_pair(pred, target, "VSI", VSI_MIN_SIZE, "the 3 x 3 Scharr filters")
    peak = resolve_data_range(data_range, target)
    scale = (PIXEL_SCALE / peak).reshape(-1, 1, 1, 1)
    both = torch.cat([pred * scale, target * scale])  # x and y as one batch; grayscale stays 1 channel
    saliency = sdsp(both / PIXEL_SCALE)
    lmn = rgb_to_lmn(both)
    block = max(1, round(min(both.shape[2:]) / SDSP_SIZE))
    if block > 1:
        saliency, lmn = _block_means(saliency, block), _block_means(lmn, block)
    batch = pred.shape[0]
    vs_x, vs_y = saliency.split(batch)
    grad_x, grad_y = _gradient_magnitude(lmn[:, :1]).split(batch)
    lmn_x, lmn_y = lmn.split(batch)
    chroma = _similarity(lmn_x[:, 1:2], lmn_y[:, 1:2], VSI_C3) * _similarity(lmn_x[:, 2:], lmn_y[:, 2:], VSI_C3)
    chroma_power = chroma.abs().pow(VSI_BETA) * torch.where(chroma < 0, math.cos(VSI_BETA * math.pi), 1.0)
    local = _similarity(vs_x, vs_y, VSI_C1) * _similarity(grad_x, grad_y, VSI_C2).pow(VSI_ALPHA) * chroma_power
    weights = torch.maximum(vs_x, vs_y)
    eps = torch.finfo(weights.dtype).eps
    result = ((local * weights).sum(dim=(1, 2, 3)) + eps) / (weights.sum(dim=(1, 2, 3)) + eps)
    explain_nonfinite(result, pred=pred, target=target)
    return result


def sdsp(rgb: torch.Tensor) -> torch.Tensor:
    """SDSP visual saliency (Zhang, Gu & Li 2013) of RGB images, as VSI uses it.

    Args:
        rgb: sRGB images (N, 3, H, W) in [0, 1], or grayscale (N, 1, H, W) taken as R = G = B.

    Returns:
        Saliency maps (N, 1, H, W), each normalised to [0, 1) (its minimum 0, its maximum 1 - eps / range).
    """
    size = (SDSP_SIZE, SDSP_SIZE)
    lab = rgb_to_lab(F.interpolate(rgb, size=size, mode="bilinear", align_corners=False))
    # The log-Gabor filter is real and even, so the filtered image is real: the half spectrum of rfft2 suffices.
    bands = torch.fft.irfft2(torch.fft.rfft2(lab) * _log_gabor(lab), s=size)
    frequency = sqrt_zero_safe(bands.square().sum(dim=1, keepdim=True))
    rows = torch.arange(SDSP_SIZE, dtype=lab.dtype, device=lab.device) - (SDSP_SIZE // 2 - 1)
    distance = rows.square()[:, None] + rows.square()[None, :]
    location = torch.exp(-distance / SDSP_SIGMA_D**2)
    chromatic = _normalise(lab[:, 1:]).square().sum(dim=1, keepdim=True)
    colour = 1.0 - torch.exp(-chromatic / SDSP_SIGMA_C**2)
    saliency = F.interpolate(frequency * location * colour, size=rgb.shape[2:], mode="bilinear", align_corners=True)
    return _normalise(saliency)


def _log_gabor(like: torch.Tensor) -> torch.Tensor:
    """SDSP's log-Gabor transfer function on rfft2's frequency grid of (SDSP_SIZE, SDSP_SIZE).

    exp(-log(r / omega0)^2 / (2 sigma_f^2)) for frequencies 0 < r <= 0.5 (cycles per pixel), 0 at
    DC and beyond the Nyquist circle, as piq's ``_log_gabor``.
    """
    rows = torch.fft.fftfreq(SDSP_SIZE, dtype=torch.float64)
    columns = torch.fft.rfftfreq(SDSP_SIZE, dtype=torch.float64)
    radius = (rows.square()[:, None] + columns.square()[None, :]).sqrt()
    inside = (radius > 0) & (radius <= 0.5)
    response = torch.exp(-torch.log(torch.where(inside, radius, 1.0) / SDSP_OMEGA0).square() / (2 * SDSP_SIGMA_F**2))
    return torch.where(inside, response, 0.0).to(dtype=like.dtype, device=like.device)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Each map (per image and channel) mapped to [0, 1) by its minimum and range (+ eps, as piq)."""
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    return (x - low) / (high - low + torch.finfo(x.dtype).eps)


def _block_means(x: torch.Tensor, block: int) -> torch.Tensor:
    """k x k block means after replicating k // 2 pixels before and (k - 1) // 2 after each axis (piq)."""
    before, after = block // 2, (block - 1) // 2
    return F.avg_pool2d(F.pad(x, [before, after, before, after], mode="replicate"), kernel_size=block)


def _gradient_magnitude(luminance: torch.Tensor) -> torch.Tensor:
    """sqrt(G_x^2 + G_y^2) of (N, 1, H, W) with the Scharr filters, zero-padded to the same size.

    Scharr's filter is separable, (3, 10, 3) / 16 across the difference (-1, 0, 1): computed by
    slicing, which on CPU is several times faster than the 3 x 3 convolution and its backward.
    """
    height, width = luminance.shape[2:]
    padded = F.pad(luminance, [1, 1, 1, 1])
    across_columns = padded[..., 2:] - padded[..., :-2]  # (N, 1, H + 2, W)
    across_rows = padded[:, :, 2:] - padded[:, :, :-2]  # (N, 1, H, W + 2)
    g_x = sum(w * across_columns[:, :, i:i + height] for i, w in enumerate(SCHARR_SMOOTHING))
    g_y = sum(w * across_rows[..., i:i + width] for i, w in enumerate(SCHARR_SMOOTHING))
    return sqrt_zero_safe(g_x.square() + g_y.square())



def _similarity(a: torch.Tensor, b: torch.Tensor, constant: float) -> torch.Tensor:
    return (2.0 * a * b + constant) / (a * a + b * b + constant)
