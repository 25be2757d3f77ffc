"""The ``data_range`` argument of PSNR and SSIM, made explicit.

PSNR and SSIM depend on the dynamic range L of the images (PSNR = 10 log10(L^2 / MSE); SSIM's
stabilisers C1 = (K1 L)^2, C2 = (K2 L)^2). Libraries disagree on its default (skimage raises for
floats, pytorch-msssim assumes 255, torchmetrics infers it from the batch), so taskloss has no
default: every call names it.
"""

import sys
import warnings
from pathlib import Path
from typing import Literal, TypeAlias

import torch

from taskloss.errors import DataRangeWarning, InputError
from taskloss.validation import check_finite

DataRangePolicy: TypeAlias = Literal["target_max", "target_range"]
DataRange: TypeAlias = float | torch.Tensor | DataRangePolicy
"""A number, a per-image tensor of shape (B,), or a named policy:

- ``"target_max"``: each target image's maximum (fastMRI and Seitzer et al. for magnitude images);
- ``"target_range"``: each target image's maximum minus minimum.
"""

POLICIES: tuple[DataRangePolicy, ...] = ("target_max", "target_range")

_HOW_TO_CHOOSE = (
    "pass data_range=1.0 for images scaled to [0, 1], another number for a fixed intensity scale, "
    "a tensor of shape (B,) for one range per image, or a policy: 'target_max' (fastMRI, Seitzer "
    "et al.) or 'target_range'"
)


def resolve_data_range(data_range: DataRange | None, target: torch.Tensor) -> torch.Tensor:
    """Turn ``data_range`` into one positive value per image.

    Args:
        data_range: a number, a tensor of shape (B,) or (), or one of :data:`POLICIES`.
        target: reference images (B, C, ...), used by the policies.

    Returns:
        Tensor of shape (B,), dtype and device of ``target``, every value finite and > 0.

    Raises:
        InputError: when ``data_range`` is missing, unknown, of the wrong shape, or not positive.
    """
    batch = target.shape[0]
    if data_range is None:
        raise InputError(f"data_range is required: {_HOW_TO_CHOOSE}")
    if isinstance(data_range, str):
        flat = target.detach().reshape(batch, -1)
        if data_range == "target_max":
            values = flat.amax(dim=1)
        elif data_range == "target_range":
            values = flat.amax(dim=1) - flat.amin(dim=1)
        else:
            raise InputError(f"data_range={data_range!r} is not a known policy; {_HOW_TO_CHOOSE}")
        if not bool(torch.isfinite(values).all()):
            check_finite(target, "target")
    elif isinstance(data_range, torch.Tensor):
        if data_range.ndim > 1 or (data_range.ndim == 1 and data_range.numel() != batch):
            raise InputError(f"data_range has shape {tuple(data_range.shape)}; a tensor data_range "
                             f"must have shape ({batch},) (one value per image) or ()")
        values = data_range.detach().to(dtype=target.dtype, device=target.device).expand(batch)
    elif isinstance(data_range, int | float) and not isinstance(data_range, bool):
        values = torch.full((batch,), float(data_range), dtype=target.dtype, device=target.device)
    else:
        raise InputError(f"data_range has type {type(data_range).__name__}; {_HOW_TO_CHOOSE}")
    if not bool(torch.isfinite(values).all() and (values > 0).all()):
        raise InputError(f"data_range must be finite and > 0 for every image, got "
                         f"{values.tolist()[:8]}; {_HOW_TO_CHOOSE}")
    if not isinstance(data_range, str):
        _warn_if_inconsistent(values, target)
    return values


INCONSISTENT_FACTOR = 2.0
"""A given data_range is reported when a target image spans more than this many times it."""


def _outside_taskloss() -> int:
    """The ``stacklevel`` of the first caller outside the taskloss package (the user's line)."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _warn_if_inconsistent(values: torch.Tensor, target: torch.Tensor) -> None:
    """Warn (:class:`DataRangeWarning`) when a target's spread is far beyond the given data_range.

    A warning, not an error: the range is the caller's statement about the data, and a target may
    legitimately overshoot it a little (noise, interpolation); a spread more than
    :data:`INCONSISTENT_FACTOR` times the range (HU images scored with ``data_range=1``) means
    the constants of SSIM/PSNR are wrong by orders of magnitude and the scores meaningless.
    """
    flat = target.detach().reshape(target.shape[0], -1)
    spread = flat.amax(dim=1) - flat.amin(dim=1)
    too_wide = torch.isfinite(spread) & (spread > INCONSISTENT_FACTOR * values)  # NaN/inf: an error later
    if bool(too_wide.any()):
        index = int(too_wide.nonzero()[0, 0])
        warnings.warn(f"data_range={float(values[index]):.4g} but target image {index} spans "
                      f"{float(spread[index]):.4g} (from {float(flat[index].min()):.4g} to "
                      f"{float(flat[index].max()):.4g}); give the range the data can take (e.g. 4095 for "
                      "12-bit, the HU window for CT) or data_range='target_range'",
                      DataRangeWarning, stacklevel=_outside_taskloss())
