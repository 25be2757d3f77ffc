"""Colour conversions and input checks shared by the 2-D perceptual measures (HaarPSI, VSI).

Every conversion takes RGB images (B, 3, H, W), or grayscale ones (B, 1, H, W) taken as R = G = B
(the same values, without the copies), and returns (B, 3, H, W); none clamps its input.
The matrices and constants are those of the standards (and of piq 0.8.0's
``piq.functional.colour_conversion``, whose conventions :func:`taskloss.metrics.haarpsi` and
:func:`taskloss.metrics.vsi` follow so that their values agree with piq's). Written here because
torch has no colour conversions and piq cannot be a dependency (it imports torchvision).
"""

import torch

from taskloss.errors import InputError
from taskloss.validation import check_image_pair

YIQ_FROM_RGB: tuple[tuple[float, float, float], ...] = (
    (0.299, 0.587, 0.114),
    (0.5959, -0.2746, -0.3213),
    (0.2115, -0.5227, 0.3112),
)
"""NTSC YIQ from RGB (FCC coefficients to four decimals, as piq's ``rgb2yiq``), HaarPSI's colour space."""

LMN_FROM_RGB: tuple[tuple[float, float, float], ...] = (
    (0.06, 0.63, 0.27),
    (0.30, 0.04, -0.35),
    (0.34, -0.60, 0.17),
)
"""The opponent colour space LMN of Geusebroek et al. (2001) from RGB, used by VSI (Zhang, Shen & Li 2014)."""

XYZ_FROM_LINEAR_SRGB: tuple[tuple[float, float, float], ...] = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
"""CIE XYZ from linear sRGB (IEC 61966-2-1, D65 primaries; Lindbloom's seven-digit matrix)."""

SRGB_LINEAR_THRESHOLD = 0.04045
"""sRGB decoding (IEC 61966-2-1): linear segment ``v / 12.92`` up to here, ``((v + 0.055) / 1.055) ** 2.4`` above."""

LAB_WHITE_D50: tuple[float, float, float] = (0.9642119944211994, 1.0, 0.8251882845188288)
"""The reference white of Lab: CIE D50, 2-degree observer (piq's default, as MATLAB's ``makecform('srgb2lab')``).
XYZ is divided by it without chromatic adaptation from sRGB's D65, as piq does."""

LAB_EPSILON = 0.008856
"""CIE's 216 / 24389, to four significant digits (piq): the cube root applies above, the linear segment below."""
LAB_KAPPA = 903.3
"""CIE's 24389 / 27, rounded (piq): the slope of Lab's linear segment, ``(kappa t + 16) / 116``."""


def _mix(x: torch.Tensor, matrix: tuple[tuple[float, float, float], ...]) -> torch.Tensor:
    """Apply a 3 x 3 channel matrix to (B, 3, H, W), or to (B, 1, H, W) as three equal channels."""
    weights = torch.tensor(matrix, dtype=x.dtype, device=x.device)
    if x.shape[1] == 1:
        return weights.sum(dim=1).reshape(1, 3, 1, 1) * x
    return torch.einsum("oc,bchw->bohw", weights, x)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """YIQ (:data:`YIQ_FROM_RGB`) of RGB images (B, 3, H, W) or (B, 1, H, W), any scale (the map is linear)."""
    return _mix(x, YIQ_FROM_RGB)


def rgb_to_lmn(x: torch.Tensor) -> torch.Tensor:
    """LMN (:data:`LMN_FROM_RGB`) of RGB images (B, 3, H, W) or (B, 1, H, W), any scale (the map is linear)."""
    return _mix(x, LMN_FROM_RGB)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* of sRGB images (B, 3, H, W) or grayscale (B, 1, H, W) in [0, 1], white :data:`LAB_WHITE_D50`.

    Each piece is evaluated on its own side of the threshold only (``clamp`` inside ``where``), so
    values outside [0, 1] stay finite and the gradient is finite everywhere: piq multiplies both
    pieces by masks instead, which gives NaN for inputs below -0.055 and a NaN gradient at black
    (0 ** (1/3) in the masked-out cube root).

    Examples:
        >>> white = torch.ones(1, 3, 1, 1, dtype=torch.float64)  # sRGB white: a*, b* != 0 without adaptation
        >>> rgb_to_lab(white).flatten().round(decimals=2).tolist()
        [100.0, -2.39, -19.36]
    """
    linear = torch.where(x > SRGB_LINEAR_THRESHOLD,
                         ((x.clamp_min(SRGB_LINEAR_THRESHOLD) + 0.055) / 1.055) ** 2.4, x / 12.92)
    white = torch.tensor(LAB_WHITE_D50, dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1)
    t = _mix(linear, XYZ_FROM_LINEAR_SRGB) / white
    f = torch.where(t > LAB_EPSILON, t.clamp_min(LAB_EPSILON) ** (1.0 / 3.0), (LAB_KAPPA * t + 16.0) / 116.0)
    f_x, f_y, f_z = f.unbind(dim=1)
    return torch.stack([116.0 * f_y - 16.0, 500.0 * (f_x - f_y), 200.0 * (f_y - f_z)], dim=1)


def check_colour_pair(pred: object, target: object, measure: str, min_size: int,
                      why: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a pair of 2-D grayscale or RGB batches for a measure defined on 2-D images only.

    Args:
        pred: the predicted images, (B, 1, H, W) or (B, 3, H, W).
        target: the reference images of the same shape.
        measure: the measure's name for the messages ("HaarPSI").
        min_size: the smallest height and width the measure accepts.
        why: what needs ``min_size`` pixels, for the message.

    Returns:
        ``(pred, target)``, typed as tensors.

    Raises:
        InputError: for a volume (the message shows how to score it slice by slice), anything
            :func:`taskloss.validation.check_image_pair` refuses, a channel count other than 1 or 3,
            or an image smaller than ``min_size``.
    """
    if isinstance(pred, torch.Tensor) and pred.ndim == 5:
        raise InputError(f"{measure} is defined for 2-D images but pred is a volume of shape {tuple(pred.shape)}; "
                         "score its slices as a batch of images, e.g. x.movedim(2, 1).flatten(0, 1) for "
                         "(B * D, C, H, W) slices along D")
    pred_t, target_t = check_image_pair(pred, target, ndims=(4,), finite=False)
    channels = pred_t.shape[1]
    if channels not in (1, 3):
        raise InputError(f"{measure} takes grayscale (1 channel) or RGB (3 channels) images, got {channels} "
                         f"channels (shape {tuple(pred_t.shape)}); score other channels one at a time as "
                         "grayscale (x[:, i:i + 1]), and complex images (2 channels) as magnitudes")
    height, width = pred_t.shape[2:]
    if min(height, width) < min_size:
        raise InputError(f"{measure} needs height and width >= {min_size} ({why}), got {height} x {width}; "
                         "use larger images")
    return pred_t, target_t
