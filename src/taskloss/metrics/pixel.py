"""Pixel-wise error metrics: MAE, MSE, NMSE and PSNR, one value per image.

All functions take ``pred`` and ``target`` of shape (B, C, H, W) or (B, C, D, H, W), real floating
point, and return a tensor of shape (B,): the mean (or norm ratio) over every channel and voxel of
each image. Nothing is pooled over the batch; reductions happen in reporting.
"""

import torch

from taskloss.metrics.data_range import DataRange, resolve_data_range
from taskloss.validation import check_image_pair, explain_nonfinite


def _per_image(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


def _squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # In place on the fresh difference: one temporary instead of two, several times faster on
    # large CPU batches (allocation dominates); autograd allows it since sub keeps no output.
    return _per_image(pred - target).square_()


def _checked(result: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    explain_nonfinite(result, pred=pred, target=target)
    return result


def sqrt_zero_safe(values: torch.Tensor) -> torch.Tensor:
    """``sqrt`` of values >= 0 whose gradient at 0 is 0, not NaN (d sqrt(v) = dv / (2 sqrt(v)) is 0 / 0).

    The inner ``where`` keeps 0 out of ``sqrt`` so its backward never meets 1 / 0 (the class of
    MONAI#8412); elsewhere the value and gradient are those of ``sqrt``. Used wherever a loss takes a
    square root of something that can be exactly 0 (NMSE unsquared, VSI's gradient magnitudes, an
    observer's d').

    Examples:
        >>> v = torch.tensor([0.0, 4.0], requires_grad=True)
        >>> sqrt_zero_safe(v).sum().backward()
        >>> v.grad
        tensor([0.0000, 0.2500])
    """
    positive = values > 0
    return torch.where(positive, torch.where(positive, values, 1.0).sqrt(), 0.0)


def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image: mean |pred - target|. Shape (B,).

    Examples:
        >>> pred = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 2, 2)
        >>> mae(pred, torch.zeros_like(pred))  # (0 + 1 + 2 + 3) / 4
        tensor([1.5000])
    """
    pred, target = check_image_pair(pred, target, finite=False)
    return _checked(_per_image(pred - target).abs_().mean(dim=1), pred, target)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: mean (pred - target)^2. Shape (B,).

    Examples:
        >>> pred = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 2, 2)
        >>> mse(pred, torch.zeros_like(pred))  # (0 + 1 + 4 + 9) / 4
        tensor([3.5000])
    """
    pred, target = check_image_pair(pred, target, finite=False)
    return _checked(_squared_error(pred, target).mean(dim=1), pred, target)


def nmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised MSE per image as fastMRI defines it: ||target - pred||^2 / ||target||^2.

    Zero for a perfect prediction, 1 for an all-zero prediction. fastMRI computes it per volume;
    here each batch item is one "volume" (pass volumes as (B, C, D, H, W) to match). Shape (B,).
    A target that is zero everywhere gives +inf (or NaN if pred is zero too).

    Examples:
        >>> target = torch.tensor([3.0, 4.0]).reshape(1, 1, 1, 2)
        >>> nmse(0.5 * target, target), nmse(torch.zeros_like(target), target)  # (6.25 / 25), 1
        (tensor([0.2500]), tensor([1.]))
    """
    pred, target = check_image_pair(pred, target, finite=False)
    error = _squared_error(pred, target).sum(dim=1)
    return _checked(error / _per_image(target).square().sum(dim=1), pred, target)


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: DataRange | None = None
         ) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB: 10 log10(L^2 / MSE).

    Equals ``skimage.metrics.peak_signal_noise_ratio(target[i], pred[i], data_range=L[i])`` for
    every image i. Identical images (MSE = 0) give +inf, as in skimage; report them as such or
    exclude them explicitly.

    Args:
        pred: predictions (B, C, H, W) or (B, C, D, H, W).
        target: references of the same shape.
        data_range: L, required: a number, a tensor (B,), or "target_max" / "target_range"
            (see :mod:`taskloss.metrics.data_range`).

    Returns:
        PSNR in dB, shape (B,).

    Examples:
        >>> target = torch.zeros(2, 1, 4, 4)
        >>> pred = target + torch.tensor([0.1, 0.01]).reshape(2, 1, 1, 1)  # MSE 1e-2 and 1e-4
        >>> psnr(pred, target, data_range=1.0).round(decimals=2)  # 10 log10(1 / MSE)
        tensor([20., 40.])
    """
    pred, target = check_image_pair(pred, target, finite=False)
    peak = resolve_data_range(data_range, target)
    error = _squared_error(pred, target).mean(dim=1)
    return _checked(10.0 * torch.log10(peak.square() / error), pred, target)
