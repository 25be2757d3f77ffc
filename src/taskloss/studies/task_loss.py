"""Pieces the studies share to train with a task loss and to score a task honestly.

- :class:`WeightedSum`: a :class:`~taskloss.losses.CompositeLoss` of terms on ``(pred, target)`` as
  a criterion (the image loss plus the task term, balanced over the first batches);
- :func:`dice_ratio`: the SIS idea, a segmenter's mean Dice on a method's images divided by its mean
  Dice on the real images, with a seeded percentile-bootstrap CI over the images (resampled jointly).
"""


import numpy as np
import torch
from torch import nn

from taskloss.losses import CompositeLoss, TaskLoss
from taskloss.metrics import Summary
from taskloss.metrics.stats import BOOTSTRAP_RESAMPLES


class WeightedSum(nn.Module):
    """A :class:`CompositeLoss` whose terms are modules called on ``(pred, target)``, returning its total.

    Args:
        composite: the weights (and normalisation) of the terms, with every term's module in
            ``composite.losses``.
    """

    def __init__(self, composite: CompositeLoss) -> None:
        super().__init__()
        self.composite = composite

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.composite(self.composite.pair_terms(pred, target)).total


def with_task_term(image_loss: nn.Module, name: str, task: TaskLoss, weight: float, balance_batches: int
                   ) -> WeightedSum:
    """``image_loss / R_image + weight * task / R_task``, R the terms' means over the first batches.

    Args:
        image_loss: the pixel loss, ``image_loss(pred, target)``.
        name: the image term's name in logs and checkpoints (e.g. "mse", "l1").
        task: the task loss.
        weight: the task term's weight once both terms are balanced (the image term weighs 1).
        balance_batches: the number of first training batches whose mean balances each term.
    """
    composite = CompositeLoss({name: 1.0, "task": weight}, normalize="first", normalize_batches=balance_batches,
                              losses={name: image_loss, "task": task})
    return WeightedSum(composite)


def dice_ratio(method_dice: np.ndarray, real_dice: np.ndarray, seed: int = 0) -> Summary | None:
    """Mean Dice on a method's images over mean Dice on the real images, with a 95 % bootstrap CI.

    Args:
        method_dice: a segmenter's Dice per image on the method's images (N,); NaN (no region in the
            label) are left out with their pairs.
        real_dice: the same segmenter's Dice on the real images (N,), same order.
        seed: seed of the bootstrap.

    Returns:
        A :class:`Summary` (mean: the ratio; sd and median NaN), or None when no image is scored or
        the real Dice is 0.
    """
    keep = np.isfinite(method_dice) & np.isfinite(real_dice)
    method, real = np.asarray(method_dice, float)[keep], np.asarray(real_dice, float)[keep]
    if method.size == 0 or real.mean() == 0:
        return None
    draws = np.random.default_rng(seed).integers(0, method.size, size=(BOOTSTRAP_RESAMPLES, method.size))
    denominators = real[draws].mean(axis=1)
    ratios = method[draws].mean(axis=1)[denominators > 0] / denominators[denominators > 0]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return Summary(n=int(method.size), mean=float(method.mean() / real.mean()), sd=float("nan"),
                   median=float("nan"), ci_low=float(low), ci_high=float(high))
