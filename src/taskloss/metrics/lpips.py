"""The LPIPS distance (Zhang et al., CVPR 2018, v0.1) on given feature maps.

For L layers of a network with activations ``y_l`` (N, C_l, H_l, W_l) of the two images, LPIPS is

    d = sum_l mean_{h, w} sum_c w_{l, c} (u_l(pred)_{c, h, w} - u_l(target)_{c, h, w})^2,

with ``u_l = y_l / (||y_l||_2 + eps)`` the activation unit-normalised over channels at every position
(eps = :data:`LPIPS_EPS`) and ``w_l`` the learned non-negative weights of LPIPS's 1x1 linear head of layer l
(one output channel, no bias). The network and the heads live in :mod:`taskloss.features.perceptual_distances`
(this layer knows no network); this module is the formula alone.

The norm is ``torch.linalg.vector_norm``, whose gradient at a zero vector is 0, so where a ReLU layer is all
zero at a position the gradient of ``u_l`` is finite (``1 / eps``, which the ReLU's zero derivative then cancels);
the lpips package's ``sqrt(sum(y^2))`` has a NaN gradient there, which the ReLU does not cancel (NaN x 0 = NaN).
The values are the same. torchmetrics puts its eps (1e-8) under the square root instead, which changes a unit
vector by about ``1e-8 / ||y||^2`` of itself: negligible for activations of norm above 1e-3.

The distance is computed in at least float32 (half-precision activations of CUDA autocast are promoted) and with
elementwise products and sums only, which autocast leaves in the promoted precision.
"""

from collections.abc import Sequence

import torch

from taskloss.errors import InputError

LPIPS_EPS = 1e-10
"""Added to each channel-vector norm before dividing (``normalize_tensor(eps=1e-10)`` of the lpips package)."""


def unit_normalize(features: torch.Tensor) -> torch.Tensor:
    """Each position's channel vector divided by its norm plus :data:`LPIPS_EPS`: (N, C, H, W) -> same shape."""
    return features / (torch.linalg.vector_norm(features, dim=1, keepdim=True) + LPIPS_EPS)


def lpips_distance(
    pred_features: Sequence[torch.Tensor],
    target_features: Sequence[torch.Tensor],
    heads: Sequence[torch.Tensor],
) -> torch.Tensor:
    """LPIPS from the activations of the tapped layers.

    Args:
        pred_features: one activation (N, C_l, H_l, W_l) per layer, shallow to deep.
        target_features: the same layers for the references, same shapes.
        heads: one weight vector (C_l,) per layer (the 1x1 head's ``weight.flatten()``).

    Returns:
        Tensor (N,) in at least float32: the sum over layers of the spatially averaged, head-weighted squared
        difference of the unit-normalised activations; 0 for identical features.

    Raises:
        InputError: when the three sequences differ in length or a layer's shapes do not match.

    Examples:
        >>> import torch
        >>> a, b = torch.tensor([[[[3.0]], [[4.0]]]]), torch.tensor([[[[4.0]], [[3.0]]]])
        >>> lpips_distance([a], [b], [torch.tensor([1.0, 0.5])])  # (0.6 - 0.8)^2 * 1 + (0.8 - 0.6)^2 * 0.5
        tensor([0.0600])
    """
    if not len(pred_features) == len(target_features) == len(heads) or not heads:
        raise InputError(f"lpips_distance needs one target activation and one head per pred activation, got "
                         f"{len(pred_features)} pred, {len(target_features)} target activations and {len(heads)} heads")
    total = None
    for layer, (pred, target, head) in enumerate(zip(pred_features, target_features, heads, strict=True)):
        if pred.shape != target.shape or pred.ndim != 4 or head.shape != (pred.shape[1],):
            raise InputError(f"layer {layer}: pred activation {tuple(pred.shape)}, target {tuple(target.shape)} and "
                             f"head {tuple(head.shape)} must be (N, C, H, W), (N, C, H, W) and (C,)")
        dtype = torch.promote_types(pred.dtype, torch.float32)
        squared = (unit_normalize(pred.to(dtype)) - unit_normalize(target.to(dtype))).square()
        value = (squared * head.to(dtype).reshape(1, -1, 1, 1)).sum(dim=1).mean(dim=(1, 2))
        total = value if total is None else total + value
    return total
