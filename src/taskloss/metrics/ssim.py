"""Structural similarity (SSIM, Wang et al. 2004) per image, 2-D and 3-D, differentiable.

Two conventions, both equal to scikit-image's ``structural_similarity`` for the same settings:

- ``"gaussian"`` (default; Wang et al., Seitzer et al.): Gaussian window of 11 taps per axis
  (sigma 1.5, truncated at 3.5 sigma), population covariance. Equals
  ``structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=L)``.
- ``"fastmri"``: uniform 7-tap window per axis, sample covariance (N / (N - 1)). Equals
  skimage's defaults ``structural_similarity(x, y, data_range=L)``, as fastMRI evaluates.

Both use K1 = 0.01, K2 = 0.03 and average the SSIM map over its *valid* region only (the
positions where the whole window lies inside the image; skimage crops the same border), and over
channels. A 3-D input (B, C, D, H, W) uses the 3-D window, as skimage does for a 3-D array.
"""

from typing import Literal

import torch

from taskloss.errors import InputError
from taskloss.filters import gaussian_kernel1d, separable_filter, uniform_kernel1d
from taskloss.metrics.data_range import DataRange, resolve_data_range
from taskloss.validation import check_image_pair, explain_nonfinite

Convention = Literal["gaussian", "fastmri"]

GAUSSIAN_SIGMA = 1.5
GAUSSIAN_TRUNCATE = 3.5  # skimage's truncation: radius = int(3.5 * 1.5 + 0.5) = 5, 11 taps
UNIFORM_SIZE = 7

# On CPU the batch is filtered in chunks of about this many values per map stack (8 MB in float32):
# the working set then stays in cache and no large temporaries are allocated. One chunk is one
# vectorised call over many images, not a loop over images (see benchmarks/metrics.py).
_CPU_CHUNK_ELEMENTS = 2**21


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: DataRange | None = None,
    convention: Convention = "gaussian",
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """SSIM per image, the mean of the valid SSIM map over channels and positions.

    Args:
        pred: predictions (B, C, H, W) or (B, C, D, H, W), real floating point.
        target: references of the same shape.
        data_range: L in C1 = (k1 L)^2, C2 = (k2 L)^2, required: a number, a tensor (B,), or
            "target_max" / "target_range" (see :mod:`taskloss.metrics.data_range`).
        convention: "gaussian" (11-tap Gaussian, sigma 1.5, population covariance) or "fastmri"
            (7-tap uniform, sample covariance); see the module docstring.
        k1: constant of the luminance term.
        k2: constant of the contrast-structure term.

    Returns:
        SSIM of each image, shape (B,), in [-1, 1]; 1 for identical images. Differentiable with
        respect to ``pred`` (``1 - ssim`` serves as a loss).

    Raises:
        InputError: for invalid tensors, a missing or non-positive data_range, an unknown
            convention, or a spatial size smaller than the window.

    Examples:
        >>> target = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> ssim(target, target, data_range=1.0)
        tensor([1., 1.])
        >>> ssim(0.5 * target, target, data_range=1.0).round(decimals=4)  # skimage's value (module docstring)
        tensor([0.6414, 0.6415])
    """
    return _ssim(pred, target, data_range, convention, k1, k2, mean=True)


def ssim_map(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: DataRange | None = None,
    convention: Convention = "gaussian",
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """The SSIM map over the valid region, for figures: shape (B, C, H - w + 1, W - w + 1).

    For 3-D input, (B, C, D - w + 1, H - w + 1, W - w + 1); w is the window size (11 for
    "gaussian", 7 for "fastmri"). Arguments as in :func:`ssim`, whose value is this map's mean.

    Examples:
        >>> target = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> local = ssim_map(0.5 * target, target, data_range=1.0)  # the valid positions of the 11-tap window
        >>> local.shape, bool(torch.allclose(local.flatten(1).mean(1), ssim(0.5 * target, target, data_range=1.0)))
        (torch.Size([2, 1, 22, 22]), True)
    """
    return _ssim(pred, target, data_range, convention, k1, k2, mean=False)


def _ssim(pred: torch.Tensor, target: torch.Tensor, data_range: DataRange | None, convention: str,
          k1: float, k2: float, mean: bool) -> torch.Tensor:
    """Validate, then compute the maps chunk by chunk (each reduced to its mean when ``mean``)."""
    pred, target = check_image_pair(pred, target, finite=False)
    peak = resolve_data_range(data_range, target)
    kernels, cov_norm = window(convention, pred)
    _check_size(pred, kernels[0].numel(), convention)
    chunk = _chunk_size(pred)
    parts = []
    for i in range(0, pred.shape[0], chunk):
        maps = _ssim_maps(pred[i : i + chunk], target[i : i + chunk], peak[i : i + chunk], kernels, cov_norm, k1, k2)
        parts.append(maps.flatten(1).mean(dim=1) if mean else maps)
    result = parts[0] if len(parts) == 1 else torch.cat(parts)
    explain_nonfinite(result.reshape(result.shape[0], -1).sum(dim=1), pred=pred, target=target)
    return result


def window(convention: str, like: torch.Tensor) -> tuple[list[torch.Tensor], float]:
    """The 1-D window of each spatial axis and the covariance factor of ``convention``.

    Args:
        convention: "gaussian" or "fastmri" (see the module docstring).
        like: a tensor (B, C, *spatial) whose dtype, device and rank the window takes.

    Returns:
        ``(kernels, cov_norm)``: one kernel per spatial axis; 1.0 (population covariance) or
        N / (N - 1) for a window of N samples (sample covariance).

    Raises:
        InputError: for an unknown convention.

    Examples:
        >>> kernels, cov_norm = window("fastmri", torch.zeros(1, 1, 8, 8))
        >>> len(kernels), kernels[0].numel(), round(cov_norm, 4)  # 7 x 7 window, 49 / 48
        (2, 7, 1.0208)
    """
    n_spatial = like.ndim - 2
    if convention == "gaussian":
        radius = int(GAUSSIAN_TRUNCATE * GAUSSIAN_SIGMA + 0.5)
        kernel = gaussian_kernel1d(GAUSSIAN_SIGMA, radius, dtype=like.dtype, device=like.device)
        cov_norm = 1.0
    elif convention == "fastmri":
        kernel = uniform_kernel1d(UNIFORM_SIZE, dtype=like.dtype, device=like.device)
        n_window = UNIFORM_SIZE**n_spatial
        cov_norm = n_window / (n_window - 1.0)
    else:
        raise InputError(f"convention={convention!r} is unknown; use 'gaussian' (11-tap Gaussian, "
                         "population covariance) or 'fastmri' (7-tap uniform, sample covariance)")
    return [kernel] * n_spatial, cov_norm


def _check_size(x: torch.Tensor, window: int, convention: str) -> None:
    spatial = tuple(x.shape[2:])
    if min(spatial) < window:
        raise InputError(f"SSIM with convention={convention!r} needs every spatial size >= "
                         f"{window}, got {spatial}; use larger images"
                         + (" or convention='fastmri' (7-tap window)" if window > 7 else ""))


def _chunk_size(x: torch.Tensor) -> int:
    if x.device.type != "cpu":
        return x.shape[0]
    per_image = 4 * x[0].numel()
    return max(1, _CPU_CHUNK_ELEMENTS // per_image)


def _ssim_maps(
    x: torch.Tensor,
    y: torch.Tensor,
    peak: torch.Tensor,
    kernels: list[torch.Tensor],
    cov_norm: float,
    k1: float,
    k2: float,
) -> torch.Tensor:
    """SSIM maps (B, C, *valid) of a batch; ``peak`` has shape (B,)."""
    luminance_num, luminance_den, cs_num, cs_den = ssim_terms(x, y, peak, kernels, cov_norm, k1, k2)
    return (luminance_num * cs_num) / (luminance_den * cs_den)


def ssim_terms(
    x: torch.Tensor,
    y: torch.Tensor,
    peak: torch.Tensor,
    kernels: list[torch.Tensor],
    cov_norm: float,
    k1: float,
    k2: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Numerators and denominators of SSIM's luminance and contrast-structure terms, valid region.

    SSIM = (luminance_num / luminance_den) * (cs_num / cs_den); MS-SSIM
    (:mod:`taskloss.metrics.ms_ssim`) uses the contrast-structure ratio alone at its coarser
    scales. Unvalidated building block: ``x`` and ``y`` are checked batches (B, C, *spatial) at
    least as large as the window, ``peak`` has shape (B,), ``kernels`` and ``cov_norm`` come from
    :func:`window`.

    Returns:
        ``(luminance_num, luminance_den, cs_num, cs_den)``, each (B, C, *valid).

    Examples:
        >>> x = torch.rand(2, 1, 16, 16, dtype=torch.float64)
        >>> kernels, cov_norm = window("gaussian", x)
        >>> terms = ssim_terms(x, x, torch.ones(2, dtype=torch.float64), kernels, cov_norm, 0.01, 0.03)
        >>> tuple(terms[0].shape), bool(torch.allclose(terms[2], terms[3]))  # cs = 1 for identical images
        ((2, 1, 6, 6), True)
    """
    batch, channels = x.shape[:2]
    # Four local means suffice: SSIM needs var_x + var_y only as a sum, so x^2 + y^2 is filtered
    # as one map instead of two.
    stacked = torch.cat([x, y, x * x + y * y, x * y], dim=1)
    means = separable_filter(stacked, kernels, padding="valid")
    mu_x, mu_y, mean_sq, mean_xy = means.split(channels, dim=1)
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x + mu_y * mu_y
    shape = (batch,) + (1,) * (x.ndim - 1)
    c1 = (k1 * peak).square().reshape(shape)
    c2 = (k2 * peak).square().reshape(shape)
    return (2.0 * mu_xy + c1, mu_sq + c1, 2.0 * cov_norm * (mean_xy - mu_xy) + c2,
            cov_norm * (mean_sq - mu_sq) + c2)
