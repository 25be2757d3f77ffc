"""The DISTS distance (Ding, Ma, Wang & Simoncelli, TPAMI 2020) on given feature maps.

For stages k = 0..5 with activations ``x_k``, ``y_k`` (N, C_k, H_k, W_k) of the two images (stage 0 is the
image itself), per channel j the means, variances and covariance over positions give

    texture   l_kj = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1),
    structure s_kj = (2 sigma_xy + c2) / (sigma_x^2 + sigma_y^2 + c2),

    DISTS = 1 - sum_kj (alpha_kj l_kj + beta_kj s_kj) / (sum alpha + sum beta),

with the learned non-negative ``alpha`` and ``beta`` and c1 = c2 = 1e-6 (:data:`DISTS_C1`, :data:`DISTS_C2`), as
in Ding et al.'s ``DISTS_pytorch`` and torchmetrics. Variances and the covariance are population moments (divisor
H_k W_k). The sum is taken as ``sum_kj (alpha_kj (1 - l_kj) + beta_kj (1 - s_kj)) / (sum alpha + sum beta)``, equal
to the line above; for identical images each ``1 - l`` and ``1 - s`` is exactly 0, so DISTS is exactly 0 rather
than the float32 rounding residue of ``1 - sum``. The covariance is the mean of the product of the centred
maps, which equals DISTS_pytorch's ``mean(x y) - mu_x mu_y`` in exact arithmetic with less cancellation in
float32. The distance is computed in at least float32 (half-precision activations of CUDA autocast are
promoted; c1 and c2 are below float16's smallest normal number) with elementwise operations only, which autocast
leaves in that precision. The network and its weights live in :mod:`taskloss.features.perceptual_distances`;
this module is the formula alone.
"""

from collections.abc import Sequence

import torch

from taskloss.errors import InputError

DISTS_C1 = 1e-6
"""Stabilising constant of the texture (mean) term (Ding et al. 2020, ``c1`` in DISTS_pytorch)."""
DISTS_C2 = 1e-6
"""Stabilising constant of the structure (covariance) term (``c2`` in DISTS_pytorch)."""


def dists_distance(
    pred_features: Sequence[torch.Tensor],
    target_features: Sequence[torch.Tensor],
    alpha: Sequence[torch.Tensor],
    beta: Sequence[torch.Tensor],
) -> torch.Tensor:
    """DISTS from the activations of its stages.

    Args:
        pred_features: one activation (N, C_k, H_k, W_k) per stage (DISTS: the image in [0, 1], then
            VGG-16's conv1_2, conv2_2, conv3_3, conv4_3, conv5_3 with L2 pooling).
        target_features: the same stages for the references, same shapes.
        alpha: texture weights, one (C_k,) vector per stage (not yet divided by the total).
        beta: structure weights, one (C_k,) vector per stage.

    Returns:
        Tensor (N,) in at least float32: 1 minus the weighted mean similarity; 0 for identical features.

    Raises:
        InputError: when the sequences differ in length or a stage's shapes do not match.

    Examples:
        >>> import torch
        >>> x = torch.tensor([[[[1.0, 3.0]]]])
        >>> one = [torch.ones(1)]
        >>> dists_distance([x], [x], one, one)
        tensor([0.])
        >>> dists_distance([x], [x.flip(-1)], one, one)  # texture 1, structure (2 * -1 + c2) / (1 + 1 + c2)
        tensor([1.0000])
    """
    if not len(pred_features) == len(target_features) == len(alpha) == len(beta) or not alpha:
        raise InputError(f"dists_distance needs one target activation, one alpha and one beta per pred activation, "
                         f"got {len(pred_features)}, {len(target_features)}, {len(alpha)} and {len(beta)}")
    total_weight = sum(a.sum() for a in alpha) + sum(b.sum() for b in beta)
    dissimilarity = None
    for stage, (x, y, a, b) in enumerate(zip(pred_features, target_features, alpha, beta, strict=True)):
        if x.shape != y.shape or x.ndim != 4 or a.shape != (x.shape[1],) or b.shape != (x.shape[1],):
            raise InputError(f"stage {stage}: pred activation {tuple(x.shape)}, target {tuple(y.shape)}, alpha "
                             f"{tuple(a.shape)} and beta {tuple(b.shape)} must be (N, C, H, W) twice and (C,)")
        dtype = torch.promote_types(x.dtype, torch.float32)
        x, y = x.to(dtype), y.to(dtype)
        mu_x, mu_y = x.mean(dim=(2, 3), keepdim=True), y.mean(dim=(2, 3), keepdim=True)
        dx, dy = x - mu_x, y - mu_y
        var_x, var_y = dx.square().mean(dim=(2, 3)), dy.square().mean(dim=(2, 3))
        cov = (dx * dy).mean(dim=(2, 3))
        mu_x, mu_y = mu_x.flatten(1), mu_y.flatten(1)
        texture = (2 * mu_x * mu_y + DISTS_C1) / (mu_x.square() + mu_y.square() + DISTS_C1)
        structure = (2 * cov + DISTS_C2) / (var_x + var_y + DISTS_C2)
        value = ((1 - texture) * a.to(dtype)).sum(dim=1) + ((1 - structure) * b.to(dtype)).sum(dim=1)
        dissimilarity = value if dissimilarity is None else dissimilarity + value
    return dissimilarity / total_weight.to(dissimilarity.dtype)
