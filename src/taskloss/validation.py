"""Checks of tensor arguments shared by metrics, losses and networks.

Each check raises :class:`taskloss.errors.InputError` (a ``ValueError``) whose message names the
argument, what was wrong and how to fix it.
"""

from collections.abc import Sequence

import torch

from taskloss.errors import InputError

IMAGE_NDIMS = (4, 5)
"""Accepted ranks: images (B, C, H, W) and volumes (B, C, D, H, W)."""


def check_float_tensor(x: object, name: str, ndims: Sequence[int] = IMAGE_NDIMS) -> torch.Tensor:
    """Check that ``x`` is a non-empty real floating-point tensor of one of the ranks ``ndims``.

    Args:
        x: the object to check.
        name: the argument's name, used in the error message.
        ndims: the accepted numbers of dimensions.

    Returns:
        ``x``, typed as a tensor.

    Raises:
        InputError: when ``x`` is not a tensor, is integer, boolean or complex, has another rank,
            or has an empty batch or spatial dimension. A tensor on the meta device passes: networks
            run on shapes alone there (parameter and FLOP counts); metrics and losses, which need
            values, refuse it in :func:`check_image_pair`.
    """
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}; convert it with "
                         "torch.as_tensor(..., dtype=torch.float32)")
    if x.is_complex():
        raise InputError(f"{name} is complex ({x.dtype}); pass magnitudes (x.abs()) or the real and "
                         "imaginary parts as 2 channels (torch.view_as_real)")
    if not x.is_floating_point():
        raise InputError(f"{name} has dtype {x.dtype}; a floating-point tensor is needed: convert "
                         "with x.float() (and, for PSNR/SSIM, pass the intensity range as data_range)")
    if x.ndim not in ndims:
        shapes = " or ".join(_rank_names(n) for n in ndims)
        raise InputError(f"{name} has shape {tuple(x.shape)}; expected {shapes} "
                         "(add the missing batch/channel axes with x[None, None])")
    if x.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one image")
    return x


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise :class:`InputError` when ``x`` holds NaN or infinite values."""
    if not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise InputError(f"{name} holds {n_nan} NaN and {n_inf} infinite values; fix the data or "
                         "the model producing them (e.g. torch.nan_to_num) before scoring")


def check_image_pair(
    pred: object,
    target: object,
    ndims: Sequence[int] = IMAGE_NDIMS,
    finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a prediction/target pair: real float tensors with values (not on the meta device), of equal
    shape and rank in ``ndims``.

    Args:
        pred: the predicted images.
        target: the reference images.
        ndims: the accepted numbers of dimensions.
        finite: also require every value to be finite (costs one pass and, on CUDA, a sync).

    Returns:
        ``(pred, target)``, typed as tensors.
    """
    pred_t = check_float_tensor(pred, "pred", ndims)
    target_t = check_float_tensor(target, "target", ndims)
    for name, tensor in (("pred", pred_t), ("target", target_t)):
        if tensor.device.type == "meta":
            raise InputError(f"{name} is on the meta device (a shape without values); create it on a real "
                             "device (e.g. module.to_empty(device='cpu') and load its weights) before use")
    if pred_t.shape != target_t.shape:
        raise InputError(f"pred has shape {tuple(pred_t.shape)} but target has shape "
                         f"{tuple(target_t.shape)}; they must be equal (resize or crop one of them)")
    if pred_t.dtype != target_t.dtype:
        raise InputError(f"pred is {pred_t.dtype} but target is {target_t.dtype}; cast both to the "
                         "same floating dtype")
    if pred_t.device != target_t.device:
        raise InputError(f"pred is on {pred_t.device} but target is on {target_t.device}; move both "
                         "to the same device")
    if finite:
        check_finite(pred_t, "pred")
        check_finite(target_t, "target")
    return pred_t, target_t


def check_class_indices(labels: object) -> torch.Tensor:
    """Check that ``labels`` is an int64 tensor of class indices (shape is the caller's to check).

    Raises:
        InputError: naming the dtype or type found, and the conversion.
    """
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        found = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise InputError(f"labels must be an int64 tensor of class indices, got {found}; convert "
                         "with labels.long()")
    return labels


RANGE_TOLERANCE = 0.1
"""Fraction of a declared intensity range that values may exceed it by before it is called wrong."""


def check_declared_range(x: torch.Tensor, name: str, value_range: tuple[float, float], advice: str, *,
                         argument: str = "input_range") -> None:
    """Raise :class:`InputError` when ``x`` leaves ``value_range`` by more than :data:`RANGE_TOLERANCE`
    of its width (a wrong intensity scale, e.g. HU given where [0, 1] was declared).

    Args:
        x: the values (one host sync for their minimum and maximum).
        name: the argument's name, used in the error message.
        value_range: the declared (low, high).
        advice: what to do, the end of the message.
        argument: the name under which the caller declared the range (``input_range`` for losses,
            ``data_range`` for metrics), used in the error message.
    """
    low, high = value_range
    margin = RANGE_TOLERANCE * (high - low)
    x_min, x_max = (float(v) for v in torch.aminmax(x.detach()))
    if x_min < low - margin or x_max > high + margin:
        raise InputError(f"{name} has values in [{x_min:.4g}, {x_max:.4g}] but {argument}={value_range}; "
                         f"{advice.format(low=x_min, high=x_max)}")


def explain_nonfinite(result: torch.Tensor, **inputs: torch.Tensor) -> None:
    """Raise for non-finite inputs if ``result`` is not finite; otherwise do nothing.

    Metrics check finiteness after computing instead of before: NaN and Inf inputs always make the
    per-image result NaN or infinite, and checking a (B,) result is far cheaper than scanning every
    input value. When the inputs are finite (PSNR of identical images is +inf), nothing is raised.

    Args:
        result: the per-image metric values.
        inputs: the tensors the metric was computed from, by argument name.
    """
    if bool(torch.isfinite(result).all()):
        return
    for name, tensor in inputs.items():
        check_finite(tensor, name)


def _rank_names(ndim: int) -> str:
    return {4: "(B, C, H, W)", 5: "(B, C, D, H, W)", 3: "(C, H, W)", 2: "(H, W)"}.get(
        ndim, f"{ndim} dimensions")
