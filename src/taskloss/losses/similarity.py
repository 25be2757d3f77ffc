"""Perceptual similarity losses without learned weights: ``1 - HaarPSI`` and ``1 - VSI``.

Kastryulin et al. (IEEE Access 11, 2023) found HaarPSI and VSI among the measures that follow
radiologists' ratings of MR images best. Each loss is a function and an ``nn.Module``; inputs are
2-D images (B, 1, H, W) or (B, 3, H, W) in [0, data_range], ``reduction="mean"`` returns the mean
of the per-image values and ``"none"`` the values (B,). They reuse :mod:`taskloss.metrics`, so
each loss equals one minus the metric of the same name.
"""

import torch
from torch import nn

from taskloss.errors import ConfigError
from taskloss.losses.pixel import Reduction, detached, reduce_values
from taskloss.metrics.data_range import DataRange, check_data_range
from taskloss.metrics.haarpsi import haarpsi
from taskloss.metrics.vsi import vsi


def haarpsi_loss(pred: torch.Tensor, target: torch.Tensor, *, data_range: DataRange | None = None,
                 subsample: bool = True, reduction: Reduction = "mean") -> torch.Tensor:
    """``1 - HaarPSI`` per image (:func:`taskloss.metrics.haarpsi`; same arguments, data_range required).

    Examples:
        >>> target = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> haarpsi_loss(target, target, data_range=1.0).abs() < 1e-5  # 0 up to float32 rounding
        tensor(True)
    """
    values = haarpsi(pred, detached(target), data_range=data_range, subsample=subsample)
    return reduce_values(1.0 - values, reduction)


def vsi_loss(pred: torch.Tensor, target: torch.Tensor, *, data_range: DataRange | None = None,
             reduction: Reduction = "mean") -> torch.Tensor:
    """``1 - VSI`` per image (:func:`taskloss.metrics.vsi`; same arguments, data_range required)."""
    return reduce_values(1.0 - vsi(pred, detached(target), data_range=data_range), reduction)


def _check_options(data_range: object, reduction: object) -> None:
    check_data_range(data_range)
    if reduction not in ("mean", "none"):
        raise ConfigError(f"reduction={reduction!r} is unknown; use 'mean' or 'none' (per image)")


class HaarPSILoss(nn.Module):
    """Module form of :func:`haarpsi_loss`: ``1 - HaarPSI``; ``data_range`` is required.

    Args:
        data_range: as :func:`taskloss.metrics.haarpsi` (a number, a tensor (B,) or a policy).
        subsample: the 2 x 2 average before the Haar filters (default True, the published HaarPSI).
        reduction: "mean" or "none".

    Raises:
        InputError: for an invalid data_range (when the loss is built).
        ConfigError: for an unknown reduction.

    Examples:
        >>> loss = HaarPSILoss(data_range=1.0)
        >>> pred = torch.rand(2, 3, 32, 40, requires_grad=True)
        >>> loss(pred, torch.rand(2, 3, 32, 40)).backward()
        >>> pred.grad.shape
        torch.Size([2, 3, 32, 40])
    """

    def __init__(self, data_range: DataRange, subsample: bool = True, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_options(data_range, reduction)
        self.data_range = data_range
        self.subsample = subsample
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return haarpsi_loss(pred, target, data_range=self.data_range, subsample=self.subsample,
                            reduction=self.reduction)


class VSILoss(nn.Module):
    """Module form of :func:`vsi_loss`: ``1 - VSI``; ``data_range`` is required.

    Args:
        data_range: as :func:`taskloss.metrics.vsi` (a number, a tensor (B,) or a policy).
        reduction: "mean" or "none".

    Raises:
        InputError: for an invalid data_range (when the loss is built).
        ConfigError: for an unknown reduction.

    Examples:
        >>> loss = VSILoss(data_range=1.0)
        >>> pred = torch.rand(2, 1, 32, 40, requires_grad=True)
        >>> loss(pred, torch.rand(2, 1, 32, 40)).backward()
        >>> bool(pred.grad.isfinite().all())
        True
    """

    def __init__(self, data_range: DataRange, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_options(data_range, reduction)
        self.data_range = data_range
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return vsi_loss(pred, target, data_range=self.data_range, reduction=self.reduction)
