"""HaarPSI, the Haar wavelet-based perceptual similarity index (Reisenhofer et al. 2018), per image.

Reisenhofer, Bosse, Kutyniok & Wiegand, "A Haar wavelet-based perceptual similarity index for image
quality assessment", Signal Processing: Image Communication 61 (2018). On luminance (Y of YIQ for
RGB images, the image itself for grayscale), Haar wavelet filters of 2, 4 and 8 taps give
horizontal and vertical detail coefficients h_j, v_j at scales j = 1, 2, 3. Per orientation o,

    local similarity  S_o = (s(|o_1(x)|, |o_1(y)|) + s(|o_2(x)|, |o_2(y)|)) / 2,
    weight            W_o = max(|o_3(x)|, |o_3(y)|),      s(a, b) = (2 a b + C) / (a^2 + b^2 + C),

and for RGB a third, chromatic term (mean of s over the 2 x 2 averaged |I| and |Q|, weighted by
the mean of W_h and W_v). Then

    HaarPSI = ( logit( sum l_alpha(S) W / sum W ) / alpha )^2,   l_alpha(t) = 1 / (1 + exp(-alpha t)),

with the published constants :data:`HAARPSI_C` and :data:`HAARPSI_ALPHA` on the 0-255 scale: the
images are mapped from [0, data_range] to [0, 255] first. HaarPSI lies in (0, 1], 1 for identical
images, and is symmetric in its arguments.

Conventions where implementations differ follow piq 0.8.0's ``piq.haarpsi`` (so the values agree
with piq's to rounding, tests/metrics/test_haarpsi.py): the 2 x 2 average before filtering (the
authors' "viewing distance" subsampling) averages pixels (2i, 2i + 1), with a zero row/column
appended to an odd axis and counted; the even Haar filters are aligned as piq's (which it documents
as MATLAB's ``conv2(..., 'same')``), with zero borders; the I and Q channels are averaged over 2 x 2
with a zero row and column appended; ``eps`` (the dtype's machine epsilon) is added to both sums
of the score.
"""

import torch
import torch.nn.functional as F

from taskloss.metrics.colour import check_colour_pair, rgb_to_yiq
from taskloss.metrics.data_range import DataRange, resolve_data_range
from taskloss.validation import explain_nonfinite

HAARPSI_C = 30.0
"""Reisenhofer et al. (2018): the constant C of the similarity s(a, b), for the 0-255 scale."""
HAARPSI_ALPHA = 4.2
"""Reisenhofer et al. (2018): the slope alpha of the logistic function l_alpha."""
HAARPSI_SCALES = 3
"""Haar filters of 2, 4 and 8 taps: scales 1 and 2 give the similarity, scale 3 the weights."""
PIXEL_SCALE = 255.0
"""The scale C is defined on: images are mapped from [0, data_range] to [0, 255]."""


def haarpsi(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: DataRange | None = None,
    subsample: bool = True,
) -> torch.Tensor:
    """HaarPSI per image (see the module docstring for the definition and conventions).

    Args:
        pred: predictions (B, 1, H, W) grayscale or (B, 3, H, W) RGB, real floating point, in
            [0, data_range].
        target: references of the same shape.
        data_range: the intensity range L mapped to 255, required: a number, a tensor (B,), or
            "target_max" / "target_range" (see :mod:`taskloss.metrics.data_range`).
        subsample: average 2 x 2 blocks first (the published HaarPSI, default). Without it the
            filters run at full resolution, for images whose pixels are already coarse.

    Returns:
        HaarPSI of each image, shape (B,), in (0, 1]; 1 for identical images. Differentiable with
        respect to ``pred`` (:class:`taskloss.losses.HaarPSILoss` is ``1 - haarpsi``).

    Raises:
        InputError: for invalid tensors or data_range, a volume, a channel count other than 1 or
            3, or images smaller than 16 x 16 (8 x 8 without ``subsample``): the 8-tap filter must
            fit the image it filters.

    Examples:
        >>> target = torch.rand(2, 1, 64, 48, dtype=torch.float64)
        >>> haarpsi(target, target, data_range=1.0).round(decimals=10)
        tensor([1., 1.], dtype=torch.float64)
        >>> haarpsi(target.flip(-1), target, data_range=1.0) < 1
        tensor([True, True])
    """
    coarsest = 2**HAARPSI_SCALES
    min_size = 2 * coarsest if subsample else coarsest
    why = f"the {coarsest}-tap Haar filter" + (" after the 2 x 2 average" if subsample else "")
    pred, target = check_colour_pair(pred, target, "HaarPSI", min_size, why)
    peak = resolve_data_range(data_range, target)
    scale = (PIXEL_SCALE / peak).reshape(-1, 1, 1, 1)
    both = torch.cat([pred * scale, target * scale])  # x and y filtered as one batch
    if both.shape[1] == 3:
        both = rgb_to_yiq(both)
    if subsample:
        both = _average_halves(both)
    result = _haarpsi(both, pred.shape[0])
    explain_nonfinite(result, pred=pred, target=target)
    return result


def _average_halves(x: torch.Tensor) -> torch.Tensor:
    """2 x 2 block means (pixels 2i, 2i + 1), a zero appended to an odd axis and counted (as piq)."""
    height, width = x.shape[2:]
    return F.avg_pool2d(F.pad(x, [0, width % 2, 0, height % 2]), kernel_size=2)


def _haar_magnitudes(luminance: torch.Tensor) -> torch.Tensor:
    """|Haar detail coefficients| (N, 2 * scales, H, W): per scale, across rows then across columns.

    The k-tap Haar filter (k = 2h = 2^j) is (1 / k) times +1 on its first h rows (columns) and -1 on
    the other h; aligned as piq's, an output pixel sees h - 1 pixels before it and h after it, zero
    beyond the border. Its value is (1 / k) times the difference of two h x k box sums, and box sums
    of 2, 4 and 8 pixels come from doubling (a sum of 2m is two sums of m), so every scale costs a
    few additions instead of piq's k x k convolution (``avg_pool2d`` with these windows is slower
    still on CPU: benchmarks/measures.py).
    """
    height, width = luminance.shape[2:]
    reach = 2 ** (HAARPSI_SCALES - 1)  # h of the coarsest filter: pad h - 1 before and h after, once
    padded = F.pad(luminance, [reach - 1, reach, reach - 1, reach])
    along_columns, along_rows = _box_sums(padded, dim=3, largest=2 * reach), _box_sums(padded, dim=2, largest=2 * reach)
    magnitudes = []
    for level in range(1, HAARPSI_SCALES + 1):
        half = 2 ** (level - 1)
        start = reach - half  # the window of output pixel i starts at padded index i + start
        rows = _box_sums(along_columns[2 * half][..., start:start + width], dim=2, largest=half)[half]  # h x k
        columns = _box_sums(along_rows[2 * half][:, :, start:start + height], dim=3, largest=half)[half]
        magnitudes.append((rows[:, :, start:start + height] - rows[:, :, reach:reach + height]) / (2 * half))
        magnitudes.append((columns[..., start:start + width] - columns[..., reach:reach + width]) / (2 * half))
    return torch.cat(magnitudes, dim=1).abs()


def _box_sums(x: torch.Tensor, dim: int, largest: int) -> dict[int, torch.Tensor]:
    """Sums of m = 1, 2, 4, ..., largest consecutive values along ``dim``: entry t of m sums x[t .. t + m - 1]."""
    sums = {1: x}
    m = 1
    while m < largest:
        m *= 2
        previous = sums[m // 2]
        length = previous.shape[dim] - m // 2
        sums[m] = previous.narrow(dim, 0, length) + previous.narrow(dim, m // 2, length)
    return sums


def _similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (2.0 * a * b + HAARPSI_C) / (a * a + b * b + HAARPSI_C)


def _haarpsi(both: torch.Tensor, batch: int) -> torch.Tensor:
    """HaarPSI (B,) from x and y stacked along the batch, (2B, C, H, W) on the 0-255 scale (YIQ for RGB)."""
    mag_x, mag_y = _haar_magnitudes(both[:, :1]).split(batch)
    fine = 2 * (HAARPSI_SCALES - 1)  # channels of scales 1 and 2: (across rows, across columns) per scale
    weights = torch.maximum(mag_x[:, fine:], mag_y[:, fine:])  # (B, 2, H, W), scale 3
    similarity = _similarity(mag_x[:, :fine], mag_y[:, :fine])
    local = (similarity[:, 0:2] + similarity[:, 2:4]) / 2.0  # per orientation, mean over scales 1 and 2
    if both.shape[1] == 3:
        chroma = F.avg_pool2d(F.pad(both[:, 1:], [0, 1, 0, 1]), kernel_size=2, stride=1).abs()
        chroma_x, chroma_y = chroma.split(batch)
        local = torch.cat([local, _similarity(chroma_x, chroma_y).mean(dim=1, keepdim=True)], dim=1)
        weights = torch.cat([weights, weights.mean(dim=1, keepdim=True)], dim=1)
    eps = torch.finfo(both.dtype).eps
    score = (((HAARPSI_ALPHA * local).sigmoid() * weights).sum(dim=(1, 2, 3)) + eps) / (weights.sum(dim=(1, 2, 3))
                                                                                      + eps)
    return (torch.logit(score) / HAARPSI_ALPHA).square()
