"""Multi-scale structural similarity (MS-SSIM, Wang, Simoncelli & Bovik 2003) per image, 2-D and 3-D.

MS-SSIM compares two images at M scales: scale 1 is the image, each further scale the previous one
average-pooled by 2 along every spatial axis. With ``cs_j`` the mean contrast-structure term of
SSIM at scale j and ``ssim_M`` the mean SSIM at the coarsest scale,

    MS-SSIM = ssim_M ** w_M * prod_{j < M} cs_j ** w_j,

with Wang et al.'s five weights :data:`MS_SSIM_WEIGHTS` by default. The SSIM terms are those of
:func:`taskloss.metrics.ssim` (same window, constants and covariance, see
:func:`taskloss.metrics.ssim.ssim_terms`).

Where published implementations differ, ``style`` picks whose numbers to reproduce:

================  ==========================================  ==========================================
                  ``"pytorch_msssim"`` (default)              ``"torchmetrics"``
================  ==========================================  ==========================================
border            every scale's maps over the *valid* region  ``cs_j`` over the valid region, the
                  (window wholly inside; as :func:`ssim`)     coarsest SSIM over the whole image,
                                                              reflect-padded (``F.pad(mode="reflect")``)
odd sizes         a zero is padded at both ends of an odd     the last row/column of an odd axis is
                  axis and counted in the 2 x 2 average       dropped (``avg_pool2d(x, 2)``)
                  (``avg_pool2d(x, 2, padding=n % 2)``)
channels          MS-SSIM per channel, then mean              per-scale terms averaged over channels,
                                                              then the product
negative terms    ``relu`` on each ``cs_j`` and ``ssim_M``    ``relu`` on each (torchmetrics'
                                                              default ``normalize="relu"``)
smallest size     ``16 (w - 1) + 1`` for 5 scales, window w   ``16 w`` for 5 scales
================  ==========================================  ==========================================

``"pytorch_msssim"`` equals ``pytorch_msssim.ms_ssim(x, y, data_range=L, size_average=False)``,
``"torchmetrics"`` equals ``torchmetrics.functional.image.multiscale_structural_similarity_index_measure(
x, y, data_range=L, reduction="none")``, both for the default Gaussian window (tests/metrics/test_ms_ssim.py;
agreement in docs/metrics.md). torchmetrics also clamps each local variance at 0; the variances
here are exact in exact arithmetic, so that clamp only moves rounding-level negatives (not done).
The ``relu`` makes MS-SSIM lie in [0, 1]: a fractional power of a negative term is undefined.
"""

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from taskloss.errors import InputError
from taskloss.metrics.data_range import DataRange, resolve_data_range
from taskloss.metrics.ssim import _CPU_CHUNK_ELEMENTS, Convention, ssim_terms, window
from taskloss.validation import check_image_pair, explain_nonfinite

Style = Literal["pytorch_msssim", "torchmetrics"]
STYLES: tuple[Style, ...] = ("pytorch_msssim", "torchmetrics")

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Wang, Simoncelli & Bovik (2003), Sec. 3: the exponents of scales 1 (finest) to 5, fitted to
human ratings; also pytorch-msssim's ``weights`` and torchmetrics' ``betas`` defaults."""


def ms_ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: DataRange | None = None,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    convention: Convention = "gaussian",
    style: Style = "pytorch_msssim",
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """MS-SSIM per image (see the module docstring for the definition and the two styles).

    Args:
        pred: predictions (B, C, H, W) or (B, C, D, H, W), real floating point. Volumes use the
            3-D window and 2 x 2 x 2 pooling.
        target: references of the same shape.
        data_range: L of SSIM's constants at every scale, required: a number, a tensor (B,), or
            "target_max" / "target_range" (resolved once, on the full-size target).
        weights: one exponent per scale, finest first; their number is the number of scales
            (default Wang et al.'s five). Fewer scales fit smaller images, e.g.
            ``MS_SSIM_WEIGHTS[:3]``; the weights are used as given, not renormalised.
        convention: the SSIM window of :func:`taskloss.metrics.ssim`: "gaussian" (11 taps, sigma
            1.5, population covariance; the references' window) or "fastmri" (7-tap uniform,
            sample covariance).
        style: "pytorch_msssim" or "torchmetrics": whose border, odd-size and channel conventions.
        k1: constant of the luminance term.
        k2: constant of the contrast-structure term.

    Returns:
        MS-SSIM of each image, shape (B,), in [0, 1]; 1 for identical images. Differentiable
        with respect to ``pred`` (:class:`taskloss.losses.MSSSIMLoss` is ``1 - ms_ssim``).

    Raises:
        InputError: for invalid tensors, data_range, weights, convention or style, and for images
            too small for the scales and window (the message names the smallest size and the fix).

    Examples:
        >>> target = torch.rand(2, 1, 176, 180, dtype=torch.float64)
        >>> ms_ssim(target, target, data_range=1.0).round(decimals=12)
        tensor([1., 1.], dtype=torch.float64)
        >>> noisy = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
        >>> bool((ms_ssim(noisy, target, data_range=1.0, style="torchmetrics") < 1).all())
        True
    """
    pred, target = check_image_pair(pred, target, finite=False)
    check_ms_ssim_options(weights, convention, style)
    peak = resolve_data_range(data_range, target)
    kernels, cov_norm = window(convention, pred)
    _check_size(tuple(pred.shape[2:]), len(weights), convention, style)
    exponents = torch.tensor(list(weights), dtype=pred.dtype, device=pred.device)
    chunk = _chunk_size(pred)
    parts = [_ms_ssim(pred[i : i + chunk], target[i : i + chunk], peak[i : i + chunk], exponents, kernels,
                      cov_norm, k1, k2, style) for i in range(0, pred.shape[0], chunk)]
    result = parts[0] if len(parts) == 1 else torch.cat(parts)
    explain_nonfinite(result, pred=pred, target=target)
    return result


def check_ms_ssim_options(weights: object, convention: object, style: object) -> None:
    """Check MS-SSIM's options without images (:class:`taskloss.losses.MSSSIMLoss` fails fast with it).

    Raises:
        InputError: for weights that are not a non-empty sequence of finite numbers >= 0 with a
            positive sum, an unknown convention or an unknown style.

    Examples:
        >>> check_ms_ssim_options(MS_SSIM_WEIGHTS[:3], "gaussian", "torchmetrics")
        >>> check_ms_ssim_options((), "gaussian", "pytorch_msssim")
        Traceback (most recent call last):
        ...
        taskloss.errors.InputError: weights=() must be a non-empty sequence of numbers >= 0, ...
    """
    numbers = (isinstance(weights, Sequence) and not isinstance(weights, str) and len(weights) > 0
               and all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights))
    if not numbers or not all(math.isfinite(w) and w >= 0 for w in weights) or not sum(weights) > 0:
        raise InputError(f"weights={weights!r} must be a non-empty sequence of numbers >= 0, one per scale "
                         "(finest first), not all 0; use MS_SSIM_WEIGHTS (Wang et al.'s five) or a prefix "
                         "such as MS_SSIM_WEIGHTS[:3] for fewer scales")
    if convention not in ("gaussian", "fastmri"):
        raise InputError(f"convention={convention!r} is unknown; use 'gaussian' (11-tap Gaussian, "
                         "population covariance) or 'fastmri' (7-tap uniform, sample covariance)")
    if style not in STYLES:
        raise InputError(f"style={style!r} is unknown; use 'pytorch_msssim' (valid borders, odd sizes "
                         "padded) or 'torchmetrics' (reflect-padded coarsest scale, odd sizes cropped)")


def smallest_size(scales: int, window_size: int, style: Style) -> int:
    """The smallest spatial size whose every scale is at least as large as the window.

    "pytorch_msssim" halves an odd size n to (n + 1) / 2, "torchmetrics" to (n - 1) / 2.

    Examples:
        >>> smallest_size(5, 11, "pytorch_msssim"), smallest_size(5, 11, "torchmetrics")
        (161, 176)
    """
    factor = 2 ** (scales - 1)
    return factor * (window_size - 1) + 1 if style == "pytorch_msssim" else factor * window_size


def _check_size(spatial: tuple[int, ...], scales: int, convention: str, style: Style) -> None:
    window_size = 11 if convention == "gaussian" else 7
    needed = smallest_size(scales, window_size, style)
    if min(spatial) >= needed:
        return
    fits = [n for n in range(scales - 1, 0, -1) if smallest_size(n, window_size, style) <= min(spatial)]
    fixes = []
    if fits:
        fixes.append(f"fewer scales (weights=MS_SSIM_WEIGHTS[:{fits[0]}] fits)")
    small = smallest_size(scales, 7, style)
    if convention == "gaussian" and small <= min(spatial):
        fixes.append(f"the 7-tap window (convention='fastmri', needs >= {small})")
    fixes.append("larger images")
    raise InputError(f"MS-SSIM with {scales} scales and a {window_size}-tap window needs every spatial size "
                     f">= {needed} (style={style!r}), got {spatial}; use " + " or ".join(fixes))


def _chunk_size(x: torch.Tensor) -> int:
    """Images per chunk on CPU (cache-sized, as :func:`taskloss.metrics.ssim` chunks); all on GPU."""
    if x.device.type != "cpu":
        return x.shape[0]
    return max(1, _CPU_CHUNK_ELEMENTS // (4 * x[0].numel()))


def _ms_ssim(x: torch.Tensor, y: torch.Tensor, peak: torch.Tensor, exponents: torch.Tensor,
             kernels: list[torch.Tensor], cov_norm: float, k1: float, k2: float, style: Style) -> torch.Tensor:
    """MS-SSIM (B,) of one checked chunk."""
    scales = exponents.numel()
    terms = []  # per scale: (B, C) means
    for scale in range(scales):
        last = scale == scales - 1
        if last and style == "torchmetrics":
            radii = [k.numel() // 2 for k in kernels]
            pad = [r for r in reversed(radii) for _ in range(2)]
            x, y = F.pad(x, pad, mode="reflect"), F.pad(y, pad, mode="reflect")
        lum_num, lum_den, cs_num, cs_den = ssim_terms(x, y, peak, kernels, cov_norm, k1, k2)
        ratio = (lum_num * cs_num) / (lum_den * cs_den) if last else cs_num / cs_den
        terms.append(ratio.flatten(2).mean(dim=2))
        if not last:
            x, y = _downsample(x, style), _downsample(y, style)
    stacked = torch.stack(terms)  # (M, B, C)
    if style == "torchmetrics":
        stacked = stacked.mean(dim=2, keepdim=True)
    powered = stacked.relu().pow(exponents.reshape(-1, 1, 1))
    return powered.prod(dim=0).mean(dim=1)


def _downsample(x: torch.Tensor, style: Style) -> torch.Tensor:
    pool = F.avg_pool2d if x.ndim == 4 else F.avg_pool3d
    if style == "pytorch_msssim":
        return pool(x, kernel_size=2, padding=[n % 2 for n in x.shape[2:]])
    return pool(x, kernel_size=2)
