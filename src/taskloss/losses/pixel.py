"""Pixel losses: L1, MSE, NMSE, frequency-domain MSE, SSIM and MS-SSIM losses and cross-entropy.

Each is a function and an ``nn.Module`` wrapping it. Inputs are images (B, C, H, W) or volumes
(B, C, D, H, W); ``reduction="mean"`` returns a scalar, the mean of the per-image values (equal to
the mean over all elements for L1 and MSE, as ``torch.nn.functional.l1_loss``), and
``reduction="none"`` the per-image values, shape (B,). L1, MSE, NMSE, SSIM and MS-SSIM reuse
:mod:`taskloss.metrics`, so a loss and the metric of the same name always agree.

Each module checks its options when it is built (a wrong one fails there, not at the first batch):
an unknown ``reduction``, ``norm`` or ``squared`` raises :class:`~taskloss.errors.ConfigError`, as do
class weights that are not a 1-D tensor of finite numbers >= 0, not all 0; ``data_range`` and
``convention`` are checked by the metric's own checks (:class:`~taskloss.errors.InputError`).
"""

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from taskloss.data.kspace import fft2c
from taskloss.errors import ConfigError, InputError
from taskloss.metrics import mae, mse, nmse, ssim
from taskloss.metrics.data_range import DataRange, check_data_range
from taskloss.metrics.ms_ssim import MS_SSIM_WEIGHTS, Style, check_ms_ssim_options, ms_ssim
from taskloss.metrics.pixel import sqrt_zero_safe
from taskloss.metrics.ssim import Convention, window
from taskloss.validation import check_class_indices, check_float_tensor, check_image_pair

Reduction = Literal["mean", "none"]
FFTNorm = Literal["ortho", "backward"]
REDUCTIONS = ("mean", "none")
FFT_NORMS = ("ortho", "backward")


def detached(target: object) -> object:
    """The target without gradient: losses train ``pred`` only (a target that requires grad, e.g.
    another network's output, must not receive gradients from this loss)."""
    return target.detach() if isinstance(target, torch.Tensor) else target


def check_reduction(reduction: object) -> None:
    """Refuse a ``reduction`` other than "mean" and "none".

    Raises:
        ConfigError: naming the two.

    Examples:
        >>> check_reduction("none")
        >>> check_reduction("sum")
        Traceback (most recent call last):
        ...
        taskloss.errors.ConfigError: reduction='sum' is unknown; use 'mean' or 'none' (per image)
    """
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction={reduction!r} is unknown; use 'mean' or 'none' (per image)")


def reduce_values(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Per-image values (B,) -> their mean (a scalar) or themselves."""
    check_reduction(reduction)
    return values.mean() if reduction == "mean" else values


def _check_squared(squared: object) -> None:
    if not isinstance(squared, bool):
        raise ConfigError(f"squared={squared!r} must be True (||pred - target||^2 / ||target||^2, fastMRI's "
                          "NMSE) or False (its square root, DAGAN's)")


def _check_frequency_options(input_range: object, norm: object) -> None:
    pair = isinstance(input_range, Sequence) and not isinstance(input_range, str) and len(input_range) == 2
    numbers = pair and all(isinstance(v, int | float) and not isinstance(v, bool) for v in input_range)
    if not numbers or not all(math.isfinite(v) for v in input_range) or not input_range[0] < input_range[1]:
        raise ConfigError(f"input_range={input_range!r} must be (low, high) with low < high, two finite numbers, "
                          "e.g. (0.0, 1.0), or DAGAN's (-1.0, 1.0)")
    if norm not in FFT_NORMS:
        raise ConfigError(f"norm={norm!r} is unknown; use 'ortho' or 'backward' (unnormalised)")


def l1_loss(pred: torch.Tensor, target: torch.Tensor, *, reduction: Reduction = "mean") -> torch.Tensor:
    """Mean absolute error (:func:`taskloss.metrics.mae` per image).

    Examples:
        >>> pred = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 2, 2)
        >>> l1_loss(pred, torch.zeros_like(pred))  # (0 + 1 + 2 + 3) / 4
        tensor(1.5000)
        >>> l1_loss(torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3), reduction="none")
        tensor([1., 1.])
    """
    return reduce_values(mae(pred, detached(target)), reduction)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, *, reduction: Reduction = "mean") -> torch.Tensor:
    """Mean squared error (:func:`taskloss.metrics.mse` per image).

    Examples:
        >>> pred = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 2, 2)
        >>> mse_loss(pred, torch.zeros_like(pred))  # (0 + 1 + 4 + 9) / 4
        tensor(3.5000)
    """
    return reduce_values(mse(pred, detached(target)), reduction)


def nmse_loss(
    pred: torch.Tensor, target: torch.Tensor, *, squared: bool = True, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Normalised error per image, ``||pred - target||^2 / ||target||^2`` (fastMRI's NMSE).

    Args:
        pred: predictions (B, C, ...).
        target: references of the same shape; none may be zero everywhere.
        squared: False gives ``||pred - target|| / ||target||``, the square root, which is what
            DAGAN's code calls NMSE and trains on (weight 15).
        reduction: "mean" or "none".

    Returns:
        Scalar or (B,). With ``squared=False`` the gradient at zero error is 0 (the subgradient
        ``torch.linalg.vector_norm`` takes there) instead of the NaN of ``sqrt`` at 0.

    Examples:
        >>> target = torch.tensor([3.0, 4.0]).reshape(1, 1, 1, 2)
        >>> pred = torch.zeros(1, 1, 1, 2, requires_grad=True)
        >>> nmse_loss(pred, target, squared=False)
        tensor(1., grad_fn=<MeanBackward0>)
        >>> exact = target.clone().requires_grad_()
        >>> nmse_loss(exact, target, squared=False).backward()
        >>> exact.grad.flatten().tolist()
        [0.0, 0.0]
    """
    _check_squared(squared)
    values = nmse(pred, detached(target))
    return reduce_values(values if squared else sqrt_zero_safe(values), reduction)



def frequency_mse_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    input_range: tuple[float, float] = (0.0, 1.0),
    norm: FFTNorm = "ortho",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """MSE between the Fourier magnitudes of two images (DAGAN's frequency loss).

    Each channel of each image is scaled from ``input_range`` to [0, 1], transformed by the 2-D FFT
    over (H, W) (centred, :func:`taskloss.data.kspace.fft2c`; the shift does not change the value),
    and the mean over all frequencies and channels of ``(|F pred| - |F target|)^2`` is taken.

    Args:
        pred: images (B, C, H, W).
        target: references of the same shape.
        input_range: the range mapped to [0, 1] before the FFT (DAGAN: (-1, 1)).
        norm: "ortho" (orthonormal, the project's convention: the value does not grow with the
            image size) or "backward" (unnormalised, as DAGAN's TensorFlow code: H * W times the
            "ortho" value). ``input_range=(-1, 1), norm="backward"`` reproduces DAGAN's ``g_fft``.
        reduction: "mean" or "none".

    Examples:
        A constant offset c changes only the zero frequency, by c * sqrt(H W) (orthonormal FFT): on 4 x 4
        images the mean over the 16 frequencies of (4 c)^2 is c^2, and H W = 16 times that unnormalised.

        >>> offset = torch.full((1, 1, 4, 4), 0.5)
        >>> zero = torch.zeros_like(offset)
        >>> frequency_mse_loss(offset, zero), frequency_mse_loss(offset, zero, norm="backward")
        (tensor(0.2500), tensor(4.))
    """
    _check_frequency_options(input_range, norm)
    pred, target = check_image_pair(pred, detached(target), ndims=(4,), finite=False)
    low, high = input_range
    dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32  # no half-precision FFT
    magnitudes = [fft2c((x.to(dtype) - low) / (high - low)).abs() for x in (pred, target)]
    scale = float(pred.shape[-2] * pred.shape[-1]) if norm == "backward" else 1.0
    values = (magnitudes[0] - magnitudes[1]).square().flatten(1).mean(dim=1) * scale
    return reduce_values(values, reduction)


def ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: DataRange | None = None,
    convention: Convention = "gaussian",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """``1 - SSIM`` per image (:func:`taskloss.metrics.ssim`; same arguments, data_range required).

    Examples:
        >>> target = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> ssim_loss(target, target, data_range=1.0)
        tensor(0.)
        >>> ssim_loss(0.5 * target, target, data_range=1.0, reduction="none").round(decimals=4)  # 1 - SSIM
        tensor([0.3586, 0.3585])
    """
    return reduce_values(1.0 - ssim(pred, detached(target), data_range=data_range, convention=convention), reduction)


def ms_ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: DataRange | None = None,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    convention: Convention = "gaussian",
    style: Style = "pytorch_msssim",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """``1 - MS-SSIM`` per image (:func:`taskloss.metrics.ms_ssim`; same arguments, data_range required).

    Examples:
        >>> target = torch.rand(2, 1, 161, 161)
        >>> ms_ssim_loss(target, target, data_range=1.0)
        tensor(0.)
    """
    values = ms_ssim(pred, detached(target), data_range=data_range, weights=weights, convention=convention,
                     style=style)
    return reduce_values(1.0 - values, reduction)


def cross_entropy_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    class_weights: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Cross-entropy of class logits against integer labels (segmentation).

    Args:
        logits: unnormalised scores (B, K, H, W) or (B, K, D, H, W), K >= 2 classes.
        labels: class indices in [0, K), int64, shape (B, H, W) or (B, 1, H, W) (volumes alike).
        class_weights: optional weight per class, shape (K,), each >= 0, not all 0.
        reduction: "mean": as ``torch.nn.CrossEntropyLoss``, the weighted mean over every pixel of
            the batch (sum of w[label] * loss / sum of w[label]); "none": that weighted mean per
            image, shape (B,).

    Returns:
        Scalar or (B,); ``log K`` for all-zero logits without class weights.

    Examples:
        >>> labels = torch.tensor([[[0, 1], [2, 1]]])  # (1, 2, 2), 3 classes
        >>> round(cross_entropy_loss(torch.zeros(1, 3, 2, 2), labels).item(), 4)  # log 3 for uniform logits
        1.0986
        >>> logits = 10 * torch.nn.functional.one_hot(labels, 3).movedim(-1, 1).float()
        >>> round(cross_entropy_loss(logits, labels).item(), 4)  # confident and right: log(1 + 2 e^-10)
        0.0001
    """
    check_reduction(reduction)
    logits = check_float_tensor(logits, "logits")
    classes = logits.shape[1]
    labels = _check_labels(labels, logits)
    if class_weights is not None:
        class_weights = _check_class_weights(class_weights, classes, logits)
    if reduction == "mean":
        return F.cross_entropy(logits, labels, weight=class_weights)
    losses = F.cross_entropy(logits, labels, weight=class_weights, reduction="none").flatten(1)
    if class_weights is None:
        return reduce_values(losses.mean(dim=1), reduction)
    return reduce_values(losses.sum(dim=1) / class_weights[labels.flatten(1)].sum(dim=1), reduction)


def _check_labels(labels: object, logits: torch.Tensor) -> torch.Tensor:
    classes = logits.shape[1]
    if classes < 2:
        raise InputError(f"logits have {classes} channel; cross-entropy needs one channel per class "
                         "(K >= 2): output 2 channels for a binary task, or use "
                         "torch.nn.BCEWithLogitsLoss for a single logit")
    labels = check_class_indices(labels)
    if labels.ndim == logits.ndim and labels.shape[1] == 1:
        labels = labels[:, 0]
    spatial = (logits.shape[0], *logits.shape[2:])
    if tuple(labels.shape) != spatial:
        raise InputError(f"labels have shape {tuple(labels.shape)} but logits {tuple(logits.shape)} "
                         f"need labels of shape {spatial} (or with a channel axis of 1)")
    low, high = (int(v) for v in torch.aminmax(labels))
    if low < 0 or high >= classes:
        raise InputError(f"labels hold values in [{low}, {high}] but logits have {classes} "
                         f"classes; labels must lie in [0, {classes - 1}]")
    return labels


def _check_class_weights(weights: object, classes: int, logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(weights, torch.Tensor) or weights.shape != (classes,):
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise InputError(f"class_weights must be a tensor of shape ({classes},), one weight per "
                         f"class, got {shape}")
    if not _valid_weight_values(weights):
        raise InputError(f"class_weights must be >= 0, finite and not all 0, got {weights.tolist()}")
    return weights.to(dtype=logits.dtype, device=logits.device)


def _valid_weight_values(weights: torch.Tensor) -> bool:
    return bool(torch.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0)


def _check_class_weights_option(weights: object) -> None:
    """The checks of class weights that need no logits (a module's constructor)."""
    if weights is None:
        return
    if not isinstance(weights, torch.Tensor) or weights.ndim != 1 or not weights.is_floating_point():
        found = f"shape {tuple(weights.shape)}, {weights.dtype}" if isinstance(weights, torch.Tensor) else \
            type(weights).__name__
        raise ConfigError(f"class_weights must be a 1-D float tensor (K,), one weight per class, got {found}; "
                          "e.g. torch.tensor([1.0, 5.0])")
    if not _valid_weight_values(weights):
        raise ConfigError(f"class_weights must be >= 0, finite and not all 0, got {weights.tolist()}")


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`.

    Examples:
        >>> L1Loss(reduction="none")(torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3))
        tensor([1., 1.])
        >>> L1Loss(reduction="sum")  # options are checked when the loss is built
        Traceback (most recent call last):
        ...
        taskloss.errors.ConfigError: reduction='sum' is unknown; use 'mean' or 'none' (per image)
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return l1_loss(pred, target, reduction=self.reduction)


class MSELoss(nn.Module):
    """Module form of :func:`mse_loss`.

    Examples:
        >>> MSELoss()(torch.full((2, 1, 3, 3), 2.0), torch.zeros(2, 1, 3, 3))
        tensor(4.)
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mse_loss(pred, target, reduction=self.reduction)


class NMSELoss(nn.Module):
    """Module form of :func:`nmse_loss`.

    Examples:
        >>> target = torch.tensor([3.0, 4.0]).reshape(1, 1, 1, 2)
        >>> NMSELoss()(0.5 * target, target), NMSELoss(squared=False)(0.5 * target, target)  # 0.25 and its root
        (tensor(0.2500), tensor(0.5000))
        >>> NMSELoss(squared="no")
        Traceback (most recent call last):
        ...
        taskloss.errors.ConfigError: squared='no' must be True (||pred - target||^2 / ||target||^2, ...
    """

    def __init__(self, squared: bool = True, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_squared(squared)
        check_reduction(reduction)
        self.squared = squared
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nmse_loss(pred, target, squared=self.squared, reduction=self.reduction)


class FrequencyMSELoss(nn.Module):
    """Module form of :func:`frequency_mse_loss`.

    Examples:
        >>> loss = FrequencyMSELoss(input_range=(-1.0, 1.0), norm="backward")  # DAGAN's g_fft
        >>> loss(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), -1.0))  # 0.5 after the scaling to [0, 1]: 16 * 0.25
        tensor(4.)
        >>> FrequencyMSELoss(norm="forward")
        Traceback (most recent call last):
        ...
        taskloss.errors.ConfigError: norm='forward' is unknown; use 'ortho' or 'backward' (unnormalised)
    """

    def __init__(self, input_range: tuple[float, float] = (0.0, 1.0), norm: FFTNorm = "ortho",
                 reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_frequency_options(input_range, norm)
        check_reduction(reduction)
        self.input_range = input_range
        self.norm = norm
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return frequency_mse_loss(pred, target, input_range=self.input_range, norm=self.norm,
                                  reduction=self.reduction)


class SSIMLoss(nn.Module):
    """Module form of :func:`ssim_loss`; ``data_range`` is required (no default range).

    Examples:
        >>> loss = SSIMLoss(data_range=1.0)
        >>> target = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> loss(target, target)
        tensor(0.)
        >>> SSIMLoss(data_range=0.0)
        Traceback (most recent call last):
        ...
        taskloss.errors.InputError: data_range must be finite and > 0 for every image, got 0.0; pass data_range=1.0 ...
    """

    def __init__(self, data_range: DataRange, convention: Convention = "gaussian",
                 reduction: Reduction = "mean") -> None:
        super().__init__()
        check_data_range(data_range)
        window(convention, torch.zeros(1, 1, 1, 1))  # the metric's own check of the convention
        check_reduction(reduction)
        self.data_range = data_range
        self.convention = convention
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim_loss(pred, target, data_range=self.data_range, convention=self.convention,
                         reduction=self.reduction)


class MSSSIMLoss(nn.Module):
    """Module form of :func:`ms_ssim_loss`: ``1 - MS-SSIM``; ``data_range`` is required.

    Every option is checked here, so a wrong one fails when the loss is built, not at the first
    batch. A common reconstruction baseline combines it with L1 (Zhao et al. 2017:
    ``0.84 * MSSSIMLoss + 0.16 * L1Loss``, e.g. in :class:`taskloss.losses.CompositeLoss`).

    Args:
        data_range: as :func:`taskloss.metrics.ms_ssim` (a number, a tensor (B,) or a policy).
        weights: one exponent per scale, finest first (default Wang et al.'s five).
        convention: the SSIM window, "gaussian" or "fastmri".
        style: "pytorch_msssim" or "torchmetrics" (see :mod:`taskloss.metrics.ms_ssim`).
        reduction: "mean" or "none".

    Raises:
        InputError: for an invalid data_range, weights, convention or style.
        ConfigError: for an unknown reduction.

    Examples:
        >>> loss = MSSSIMLoss(data_range=1.0)
        >>> pred = torch.rand(1, 1, 161, 170, requires_grad=True)
        >>> value = loss(pred, torch.rand(1, 1, 161, 170))
        >>> value.backward()
        >>> pred.grad.shape
        torch.Size([1, 1, 161, 170])
        >>> MSSSIMLoss(data_range=1.0, style="skimage")
        Traceback (most recent call last):
        ...
        taskloss.errors.InputError: style='skimage' is unknown; use 'pytorch_msssim' ...
    """

    def __init__(self, data_range: DataRange, weights: Sequence[float] = MS_SSIM_WEIGHTS,
                 convention: Convention = "gaussian", style: Style = "pytorch_msssim",
                 reduction: Reduction = "mean") -> None:
        super().__init__()
        check_data_range(data_range)
        check_ms_ssim_options(weights, convention, style)
        check_reduction(reduction)
        self.data_range = data_range
        self.weights = tuple(weights)
        self.convention = convention
        self.style = style
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ms_ssim_loss(pred, target, data_range=self.data_range, weights=self.weights,
                            convention=self.convention, style=self.style, reduction=self.reduction)


class CrossEntropyLoss(nn.Module):
    """Module form of :func:`cross_entropy_loss`; ``class_weights`` is a buffer.

    Examples:
        >>> loss = CrossEntropyLoss(class_weights=torch.tensor([1.0, 3.0]))
        >>> logits, labels = torch.zeros(1, 2, 2, 2), torch.tensor([[[0, 1], [1, 1]]])
        >>> round(loss(logits, labels).item(), 4)  # the weighted mean of log 2
        0.6931
        >>> CrossEntropyLoss(class_weights=torch.tensor([0.0, 0.0]))
        Traceback (most recent call last):
        ...
        taskloss.errors.ConfigError: class_weights must be >= 0, finite and not all 0, got [0.0, 0.0]
    """

    def __init__(self, class_weights: torch.Tensor | None = None, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_class_weights_option(class_weights)
        check_reduction(reduction)
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy_loss(logits, labels, class_weights=self.class_weights,
                                  reduction=self.reduction)
