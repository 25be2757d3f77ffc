"""Distribution measures on feature vectors: Fréchet distance (FID) and kernel inception distance (KID).

Both compare two *sets* of images through feature vectors, one row per image, of shape (N, F):
the features of an Inception network in the papers, of any taskloss perception network here
(:func:`taskloss.features.distribution.image_features` pools a layer of any
:class:`~taskloss.features.FeatureNetwork` into such rows). Everything is computed in float64.

- :func:`frechet_distance` (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to
  the two sets, ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with the sample
  covariances (divisor N - 1). The trace of the matrix square root is computed as torchmetrics'
  ``FrechetInceptionDistance`` does: the sum of the square roots of the eigenvalues of
  ``S_a S_b`` (that product is similar to the positive semi-definite ``S_a^(1/2) S_b S_a^(1/2)``,
  so its eigenvalues are real and >= 0 up to rounding). pytorch-fid and the original TensorFlow
  code instead take ``scipy.linalg.sqrtm(S_a S_b)`` (a Schur-based square root), add 1e-6 to the
  diagonals when it is not finite, and raise when its diagonal has an imaginary part beyond 1e-3.
  The eigenvalue route needs no offset; the guard is kept: rounding gives eigenvalues slightly
  below zero (or complex pairs) whose square roots have tiny imaginary parts, which are dropped,
  and an imaginary part beyond :data:`IMAGINARY_TOLERANCE` of the trace raises (the features are
  then not usable, e.g. overflowing). docs/metrics.md records the difference between the two
  routes measured on real features.
- :func:`kernel_inception_distance` (Bińkowski et al. 2018): the unbiased squared maximum mean
  discrepancy with the polynomial kernel ``k(x, y) = (gamma x.y + coef0)^degree`` (gamma = 1/F by
  default), averaged over random subsets of ``subset_size`` rows of each set, as torchmetrics'
  ``KernelInceptionDistance`` (same subset draws for the same seed of the same generator).
"""

from typing import NamedTuple

import numpy as np
import torch

from taskloss.errors import InputError

KID_SUBSETS = 100
"""Number of subsets KID averages over (torchmetrics' and Bińkowski et al.'s default)."""
KID_SUBSET_SIZE = 1000
"""Rows drawn from each set per subset (torchmetrics' and Bińkowski et al.'s default)."""
IMAGINARY_TOLERANCE = 1e-3
"""Largest imaginary part of the square-root trace that is taken for rounding (pytorch-fid's 1e-3)."""


class KIDResult(NamedTuple):
    """KID over subsets: the mean and the (population) standard deviation, as torchmetrics reports them.

    Examples:
        >>> kid = kernel_inception_distance(torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [2.0]]), subsets=1,
        ...                                 subset_size=2, degree=1, gamma=1.0, coef0=0.0)
        >>> mean, std = kid  # a named tuple: unpacks as (mean, std)
        >>> isinstance(kid, KIDResult), float(mean), float(std)
        (True, -1.0, 0.0)
    """

    mean: torch.Tensor
    std: torch.Tensor


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Fréchet distance between Gaussians fitted to two feature sets (FID on Inception features).

    Args:
        features_a: feature vectors (N_a, F) of the first set, N_a >= 2, real and finite.
        features_b: feature vectors (N_b, F) of the second set, N_b >= 2, same F.

    Returns:
        0-d float64 tensor, >= 0 up to rounding; 0 for two identical sets.

    Raises:
        InputError: for input that is not 2-D, holds fewer than 2 rows, differs in F, or is not finite;
            or when the square-root trace has an imaginary part beyond the tolerance.

    Examples:
        >>> a = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
        >>> round(float(frechet_distance(a, a + torch.tensor([3.0, 4.0]))), 6)  # |mu_a - mu_b|^2 only
        25.0
    """
    a, b = _feature_pair(features_a, features_b, minimum=2, what="the Fréchet distance")
    mean_a, mean_b = a.mean(dim=0), b.mean(dim=0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    roots = torch.linalg.eigvals(cov_a @ cov_b).sqrt()
    trace_root = roots.real.sum()
    imaginary = float(roots.imag.abs().sum())
    if imaginary > IMAGINARY_TOLERANCE * max(1.0, abs(float(trace_root))):
        raise InputError(f"the Fréchet distance's square-root trace has an imaginary part of {imaginary:.3g} "
                         f"(real part {float(trace_root):.4g}), beyond rounding; the features are not usable "
                         "as they are: check them for huge values and rescale them")
    return (mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2.0 * trace_root


def kernel_inception_distance(
    features_a: torch.Tensor | np.ndarray,
    features_b: torch.Tensor | np.ndarray,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    generator: torch.Generator | None = None,
) -> KIDResult:
    """Kernel inception distance: the unbiased polynomial-kernel MMD^2, averaged over random subsets.

    Each of the ``subsets`` rounds draws ``torch.randperm(N_a)`` then ``torch.randperm(N_b)`` from
    ``generator`` (torch's global generator when None) and takes the first ``subset_size`` rows of
    each set, as torchmetrics does; with ``subset_size`` equal to both set sizes the result does not
    depend on the draws (the MMD is invariant to the order of rows).

    Args:
        features_a: feature vectors (N_a, F), real and finite.
        features_b: feature vectors (N_b, F), same F.
        subsets: number of subsets, >= 1.
        subset_size: rows per subset and set, 2 <= subset_size <= min(N_a, N_b).
        degree: degree of the polynomial kernel, >= 1.
        gamma: scale of the inner product; None for 1 / F.
        coef0: constant added to the scaled inner product.
        generator: the random generator of the subset draws (CPU).

    Returns:
        :class:`KIDResult` of 0-d float64 tensors: mean and population standard deviation over subsets.

    Raises:
        InputError: for bad features (as :func:`frechet_distance`) or options out of range.

    Examples:
        With k(x, y) = x y: (2 * 1 * 3 + 2 * 0 * 2) / (2 * 1) - 2 * (1 + 3) * (0 + 2) / 2^2 = -1 (unbiased, so
        it can fall below 0):

        >>> a, b = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [2.0]])
        >>> kid = kernel_inception_distance(a, b, subsets=1, subset_size=2, degree=1, gamma=1.0, coef0=0.0)
        >>> float(kid.mean), float(kid.std)
        (-1.0, 0.0)
    """
    a, b = _feature_pair(features_a, features_b, minimum=2, what="the kernel inception distance")
    if subsets < 1 or degree < 1:
        raise InputError(f"subsets={subsets} and degree={degree} must both be >= 1")
    smallest = min(a.shape[0], b.shape[0])
    if not 2 <= subset_size <= smallest:
        raise InputError(f"subset_size={subset_size} must be between 2 and the smaller set's {smallest} rows; "
                         f"pass subset_size={smallest} or more features")
    scale = 1.0 / a.shape[1] if gamma is None else float(gamma)
    scores = []
    for _ in range(subsets):
        rows_a = a[torch.randperm(a.shape[0], generator=generator)[:subset_size]]
        rows_b = b[torch.randperm(b.shape[0], generator=generator)[:subset_size]]
        scores.append(_polynomial_mmd(rows_a, rows_b, degree, scale, float(coef0)))
    stacked = torch.stack(scores)
    return KIDResult(stacked.mean(), stacked.std(unbiased=False))


def _polynomial_mmd(a: torch.Tensor, b: torch.Tensor, degree: int, gamma: float, coef0: float) -> torch.Tensor:
    """Unbiased MMD^2 of two equal-size sets: the kernel means without the diagonals of k_aa, k_bb."""
    m = a.shape[0]
    k_aa = (gamma * (a @ a.T) + coef0) ** degree
    k_bb = (gamma * (b @ b.T) + coef0) ** degree
    k_ab = (gamma * (a @ b.T) + coef0) ** degree
    within = (k_aa.sum() - k_aa.diagonal().sum() + k_bb.sum() - k_bb.diagonal().sum()) / (m * (m - 1))
    return within - 2.0 * k_ab.sum() / m**2


def _feature_pair(
    features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray, *, minimum: int, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both feature sets as float64 CPU tensors (N, F), checked."""
    checked = []
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        tensor = torch.as_tensor(features).detach().to(device="cpu", dtype=torch.float64)
        if tensor.ndim != 2:
            raise InputError(f"{name} has shape {tuple(tensor.shape)}; {what} needs feature vectors (N, F), one row "
                             "per image (pool feature maps first, e.g. with taskloss.features.distribution."
                             "image_features)")
        if tensor.shape[0] < minimum:
            raise InputError(f"{name} has {tensor.shape[0]} rows; {what} needs at least {minimum} images per set")
        if not bool(torch.isfinite(tensor).all()):
            raise InputError(f"{name} holds NaN or infinite values; fix the images or the network producing them")
        checked.append(tensor)
    a, b = checked
    if a.shape[1] != b.shape[1]:
        raise InputError(f"features_a has {a.shape[1]} features per row but features_b has {b.shape[1]}; take both "
                         "from the same layer of the same network")
    return a, b
