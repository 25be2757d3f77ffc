"""The ``data_range`` argument of PSNR and SSIM, made explicit.

PSNR and SSIM depend on the dynamic range L of the images (PSNR = 10 log10(L^2 / MSE); SSIM's
stabilisers C1 = (K1 L)^2, C2 = (K2 L)^2). Libraries disagree on its default (skimage raises for
floats, pytorch-msssim assumes 255, torchmetrics infers it from the batch), so taskloss has no
default: every call names it.
"""

import math
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

- ``"target_max"``: each target image's (batch item's) maximum (Seitzer et al. for magnitude
  images). fastMRI takes the maximum of the whole *volume*: that is ``"target_max"`` only when each
  batch item is a volume (B, C, D, H, W); for a batch of 2-D slices pass
  ``data_range=per_volume_max(target, volume)`` instead;
- ``"target_range"``: each target image's maximum minus minimum.
"""

POLICIES: tuple[DataRangePolicy, ...] = ("target_max", "target_range")

_HOW_TO_CHOOSE = (
    "pass data_range=1.0 for images scaled to [0, 1], another number for a fixed intensity scale, "
    "a tensor of shape (B,) for one range per image (per_volume_max(target, volume) gives fastMRI's "
    "volume maximum to each slice), or a policy: 'target_max' (each image's maximum, Seitzer et al.) "
    "or 'target_range'"
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

    Examples:
        >>> target = torch.tensor([[0.5, 2.0], [1.0, 4.0]]).reshape(2, 1, 1, 2)
        >>> resolve_data_range("target_max", target), resolve_data_range("target_range", target)
        (tensor([2., 4.]), tensor([1.5000, 3.0000]))
        >>> resolve_data_range(1.0, target / 4)  # a number: the same range for every image
        tensor([1., 1.])
    """
    batch = target.shape[0]
    check_data_range(data_range)
    if isinstance(data_range, str):
        flat = target.detach().reshape(batch, -1)
        values = flat.amax(dim=1)
        if data_range == "target_range":
            values = values - flat.amin(dim=1)
        if not bool(torch.isfinite(values).all()):
            check_finite(target, "target")
    elif isinstance(data_range, torch.Tensor):
        if data_range.ndim == 1 and data_range.numel() != batch:
            raise InputError(f"data_range has shape {tuple(data_range.shape)}; a tensor data_range "
                             f"must have shape ({batch},) (one value per image) or ()")
        values = data_range.detach().to(dtype=target.dtype, device=target.device).expand(batch)
    else:
        values = torch.full((batch,), float(data_range), dtype=target.dtype, device=target.device)
    if not bool(torch.isfinite(values).all() and (values > 0).all()):
        raise InputError(f"data_range must be finite and > 0 for every image, got "
                         f"{values.tolist()[:8]}; {_HOW_TO_CHOOSE}")
    if not isinstance(data_range, str):
        _warn_if_inconsistent(values, target)
    return values


def check_data_range(data_range: object) -> None:
    """Check ``data_range`` before any image is seen (a loss's constructor fails fast with it).

    Tests what needs no target: not missing, a known policy, a tensor of at most one dimension,
    or a finite number > 0. :func:`resolve_data_range` runs it and then checks the values
    against the batch.

    Raises:
        InputError: naming what is wrong and how to choose a data_range.

    Examples:
        >>> check_data_range(1.0)
        >>> check_data_range("target_max")
        >>> check_data_range("max")
        Traceback (most recent call last):
        ...
        taskloss.errors.InputError: data_range='max' is not a known policy; pass data_range=1.0 ...
    """
    if data_range is None:
        raise InputError(f"data_range is required: {_HOW_TO_CHOOSE}")
    if isinstance(data_range, str):
        if data_range not in POLICIES:
            raise InputError(f"data_range={data_range!r} is not a known policy; {_HOW_TO_CHOOSE}")
    elif isinstance(data_range, torch.Tensor):
        if data_range.ndim > 1:
            raise InputError(f"data_range has shape {tuple(data_range.shape)}; a tensor data_range "
                             "must have shape (B,) (one value per image) or ()")
    elif isinstance(data_range, int | float) and not isinstance(data_range, bool):
        if not (math.isfinite(data_range) and data_range > 0):
            raise InputError(f"data_range must be finite and > 0 for every image, got {data_range!r}; "
                             f"{_HOW_TO_CHOOSE}")
    else:
        raise InputError(f"data_range has type {type(data_range).__name__}; {_HOW_TO_CHOOSE}")


def per_volume_max(target: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
    """The maximum of each image's whole volume, one value per image: fastMRI's data range for slices.

    fastMRI's evaluation (``fastmri/evaluate.py``) scores a volume with ``maxval = gt.max()`` over
    all of its slices: PSNR of the volume, and SSIM as the mean over slices of the 2-D SSIM with
    that maximum. ``data_range="target_max"`` takes each batch item's own maximum, so on a batch of
    slices it gives each slice its own maximum instead. Pass this function's result as
    ``data_range`` to score slices against their volume's maximum; averaging the per-slice SSIM of
    one volume (``convention="fastmri"``) then reproduces fastMRI's volume SSIM.

    Args:
        target: reference images (B, C, H, W) (or any (B, ...)), slices of one or more volumes.
        volume: int64 tensor (B,): which volume each image belongs to (any ids; images of one
            volume need not be adjacent).

    Returns:
        Tensor (B,), dtype and device of ``target``: for each image, the maximum of ``target`` over
        every image with the same ``volume`` id.

    Raises:
        InputError: when ``volume`` is not an int64 tensor of shape (B,) on the target's device.

    Examples:
        >>> slices = torch.tensor([1.0, 3.0, 2.0, 5.0]).reshape(4, 1, 1, 1)
        >>> per_volume_max(slices, torch.tensor([0, 0, 1, 1]))
        tensor([3., 3., 5., 5.])
    """
    batch = target.shape[0]
    if not isinstance(volume, torch.Tensor) or volume.dtype != torch.int64 or volume.shape != (batch,):
        found = (f"{volume.dtype} of shape {tuple(volume.shape)}" if isinstance(volume, torch.Tensor)
                 else type(volume).__name__)
        raise InputError(f"volume must be an int64 tensor of shape ({batch},), one volume id per target "
                         f"image, got {found}; e.g. torch.tensor([0, 0, 1, 1]) for two volumes of two slices")
    if volume.device != target.device:
        raise InputError(f"volume is on {volume.device} but target is on {target.device}; move both to "
                         "the same device")
    image_max = target.detach().reshape(batch, -1).amax(dim=1)
    ids, index = torch.unique(volume, return_inverse=True)
    volume_max = image_max.new_full((ids.numel(),), -torch.inf).scatter_reduce(0, index, image_max, "amax")
    return volume_max[index]


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
