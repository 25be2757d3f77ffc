"""Dice overlap and the semantic interpretability score (SIS) of Seitzer et al. 2018.

SIS asks whether a reconstruction keeps what a downstream task needs: a segmentation network
trained on ground-truth images segments the region of interest (ROI, e.g. a lesion) on each
method's reconstructions, and

    SIS(method) = mean Dice on the method's reconstructions / mean Dice on the ground truth,

both means over the slices whose ground-truth label contains the ROI (other slices are skipped).
1 means the segmentation works as well as on the ground truth; Seitzer et al. report 0.80 to 0.94.
"""

import numpy as np
import torch

from taskloss.errors import InputError


def dice(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice overlap 2|P ∩ T| / (|P| + |T|) per image of binary masks.

    Args:
        pred: predicted masks (B, ...), bool or 0/1 values.
        target: reference masks of the same shape.

    Returns:
        Shape (B,), float32 in [0, 1]; NaN where both masks are empty (no ROI to score).

    Examples:
        >>> pred = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]])
        >>> target = torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]])
        >>> dice(pred, target)  # 2 * 1 / (2 + 1); both masks empty: NaN
        tensor([0.6667,    nan])
    """
    if pred.shape != target.shape or pred.ndim < 2:
        raise InputError(f"pred has shape {tuple(pred.shape)} and target {tuple(target.shape)}; pass "
                         "masks of equal shape (B, ...)")
    p = pred.reshape(pred.shape[0], -1).bool()
    t = target.reshape(target.shape[0], -1).bool()
    overlap = (p & t).sum(dim=1).float()
    size = p.sum(dim=1).float() + t.sum(dim=1).float()
    return torch.where(size > 0, 2 * overlap / size.clamp(min=1), torch.full_like(size, float("nan")))


def semantic_interpretability(method_dice: object, ground_truth_dice: object, has_roi: object) -> float:
    """SIS of a method from per-slice Dice values (see the module docstring).

    Args:
        method_dice: Dice of the segmentation on the method's reconstructions, per slice (N,).
        ground_truth_dice: Dice on the ground-truth images, per slice (N,).
        has_roi: whether each slice's ground truth contains the ROI (N,) bool.

    Returns:
        The SIS; NaN when no slice has the ROI or the ground-truth Dice is 0.

    Examples:
        >>> round(semantic_interpretability([0.6, 0.9, 0.0], [0.8, 1.0, 0.0], [True, True, False]), 4)  # 0.75 / 0.9
        0.8333
    """
    method = np.asarray(method_dice, dtype=np.float64)
    truth = np.asarray(ground_truth_dice, dtype=np.float64)
    roi = np.asarray(has_roi, dtype=bool)
    if not method.shape == truth.shape == roi.shape:
        raise InputError(f"method_dice {method.shape}, ground_truth_dice {truth.shape} and has_roi "
                         f"{roi.shape} must have one value per slice each")
    if not roi.any() or truth[roi].mean() == 0:
        return float("nan")
    return float(method[roi].mean() / truth[roi].mean())
