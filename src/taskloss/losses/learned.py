"""LPIPS and DISTS as training losses (the measures of :mod:`taskloss.features.perceptual_distances`).

Both wrap the measure of the same name with the conventions of :class:`taskloss.losses.PerceptualLoss`: images
in ``input_range`` (default [0, 1]; grayscale repeated to RGB), a frozen network in eval mode that is not a
submodule (its weights are in neither ``parameters()`` nor ``state_dict()``; ``.to()`` and ``.double()`` move it
along), the target branch under ``torch.no_grad()``, and ``reduction`` "mean" (a scalar) or "none" (B,).
"""

import os
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.features.perceptual_distances import (
    DISTS,
    LPIPS,
    Backbone,
    LearnedDistance,
    Weights,
    as_input_range,
    check_distance_images,
)

Reduction = Literal["mean", "none"]


class _LearnedDistanceLoss(nn.Module):
    """A learned distance as a loss (see the module docstring)."""

    def __init__(self, measure: LearnedDistance, input_range: tuple[float, float], reduction: Reduction) -> None:
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ConfigError(f"reduction={reduction!r} is unknown; use 'mean' or 'none' (per image)")
        try:
            self.input_range = as_input_range(tuple(input_range))
        except (InputError, TypeError) as error:  # a bad range (or not a pair), reported as the option it is
            raise ConfigError(f"input_range={input_range!r} must be (low, high) with low < high, e.g. (0.0, 1.0) "
                              "or (-1.0, 1.0)") from error
        self.reduction = reduction
        # Not a submodule (see the module docstring); _apply below moves it with the loss.
        object.__setattr__(self, "_measure", measure)

    @property
    def measure(self) -> LearnedDistance:
        """The frozen measure (network and learned weights)."""
        return self._measure

    @property
    def description(self) -> str:
        """One line for reports: the measure, its network and where the weights came from."""
        return f"{self._measure.description} as a loss"

    def extra_repr(self) -> str:
        return self.description

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> "_LearnedDistanceLoss":
        self._measure._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``pred`` against ``target``.

        Args:
            pred: images (B, 1 or 3, H, W) in ``input_range``; gradients flow to them.
            target: references, same shape, dtype and device (no gradient is computed for them).

        Returns:
            Scalar (reduction "mean") or shape (B,) (reduction "none"); 0 for identical inputs.
        """
        if isinstance(target, torch.Tensor):  # no gradient is computed for the target (nor by the range check)
            target = target.detach()
        pred, target = check_distance_images(pred, target, self.input_range, argument="input_range")
        measure = self._measure
        pred_features = measure.features(pred.to(measure.dtype), self.input_range)
        with torch.no_grad():
            target_features = measure.features(target.to(measure.dtype), self.input_range)
        value = measure.distance(pred_features, target_features).to(pred.dtype)
        return value.mean() if self.reduction == "mean" else value


class LPIPSLoss(_LearnedDistanceLoss):
    """LPIPS v0.1 (Zhang et al. 2018) as a loss; the arguments of :class:`taskloss.features.LPIPS` plus:

    Args:
        backbone: "alex" or "vgg".
        weights: "imagenet" (torchvision's backbone checkpoint) or "random" (seeded).
        input_range: (low, high), the intensities that map to 0 and 1.
        weights_path: the backbone's checkpoint for "imagenet".
        heads_path: the linear heads file (default: environment variable, then the installed lpips/torchmetrics).
        seed: seed of the random backbone.
        reduction: "mean" or "none".

    Examples:
        >>> import torch
        >>> loss = LPIPSLoss("alex", weights="random")
        >>> pred = torch.rand(2, 1, 32, 32, requires_grad=True)
        >>> value = loss(pred, torch.rand(2, 1, 32, 32))
        >>> value.backward()
        >>> value.ndim, pred.grad.shape, len(list(loss.parameters()))
        (0, torch.Size([2, 1, 32, 32]), 0)
    """

    def __init__(self, backbone: Backbone = "alex", weights: Weights = "imagenet",
                 input_range: tuple[float, float] = (0.0, 1.0), *,
                 weights_path: str | os.PathLike[str] | None = None,
                 heads_path: str | os.PathLike[str] | None = None, seed: int = 0,
                 reduction: Reduction = "mean") -> None:
        super().__init__(LPIPS(backbone, weights, weights_path=weights_path, heads_path=heads_path, seed=seed),
                         input_range, reduction)


class DISTSLoss(_LearnedDistanceLoss):
    """DISTS (Ding et al. 2020) as a loss; the arguments of :class:`taskloss.features.DISTS` plus:

    Args:
        weights: "imagenet" (torchvision's VGG-16 checkpoint) or "random" (seeded).
        input_range: (low, high), the intensities that map to 0 and 1.
        weights_path: the VGG-16 checkpoint for "imagenet".
        alpha_beta_path: DISTS's weights.pt (default: environment variable, then torchmetrics/DISTS_pytorch).
        seed: seed of the random backbone.
        reduction: "mean" or "none".

    Examples:
        >>> import torch
        >>> loss = DISTSLoss(weights="random", reduction="none")
        >>> x = torch.rand(2, 3, 24, 24)
        >>> loss(x, x)
        tensor([0., 0.])
    """

    def __init__(self, weights: Weights = "imagenet", input_range: tuple[float, float] = (0.0, 1.0), *,
                 weights_path: str | os.PathLike[str] | None = None,
                 alpha_beta_path: str | os.PathLike[str] | None = None, seed: int = 0,
                 reduction: Reduction = "mean") -> None:
        super().__init__(DISTS(weights, weights_path=weights_path, alpha_beta_path=alpha_beta_path, seed=seed),
                         input_range, reduction)
