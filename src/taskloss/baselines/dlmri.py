"""DLMRI (Ravishankar and Bresler 2011): MR reconstruction with a patch dictionary learned from the
undersampled image itself.

Starting from the zero-filled image, each outer iteration

1. takes every overlapping ``p x p`` patch of the current image, removes each patch's mean, learns
   a dictionary by K-SVD on a random subset of them (fixed sparsity), codes *all* patches by OMP
   to an error target (with an atom cap), and averages the overlapping patch approximations (means
   added back) into an image ``x``;
2. updates k-space: with ``k = fft2c(x)``, sampled entries become ``(k + nu k0) / (1 + nu)``
   (``nu=None``: the measurements ``k0`` exactly), unsampled entries keep ``k``.

Everything runs on the whole batch at once: all patches of all images in one tensor, one
dictionary per image, batched OMP and batched K-SVD atom updates (:mod:`.sparse_coding`), on CPU
or CUDA. Random draws (the training patches) come from a generator seeded by ``seed`` and are the
same for every image of a batch, so each image's result does not depend on its batch neighbours.

Conventions of :mod:`taskloss.data.kspace`: centred orthonormal FFTs, complex (B, 1, H, W)
k-space, 0/1 masks broadcastable to (B, 1, H, W), 2-channel (real, imaginary) images.
"""

from collections.abc import Callable
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, StrictBool, model_validator

from taskloss.baselines.sparse_coding import ksvd, omp
from taskloss.baselines.zero_filled import check_measurements, zero_filled
from taskloss.config import StrictModel
from taskloss.data.kspace import data_consistency, magnitude
from taskloss.errors import ConfigError, InputError

Count = Annotated[int, Field(strict=True, ge=1)]
"""A positive integer (strict: 2.5, "3" and true are errors, not rounded or converted)."""
Number = Annotated[float, Field(strict=True)]
"""A number (strict: a string such as "0.02" is an error)."""


class DlmriConfig(StrictModel):
    """Settings of :func:`dlmri`. The defaults are a demo that reconstructs a 64-128 px image in
    seconds on a CPU; :meth:`paper` gives the published settings. Frozen; from a mapping (a YAML
    section) through :func:`taskloss.config.validate_config`, which names a bad key.

    Complex images are handled as their real and imaginary parts: every patch position yields
    one real patch from each part, and both go through the same real dictionary. Real arithmetic
    is cheaper than complex (a complex product is four real ones) and makes OMP and K-SVD the
    standard real algorithms, testable against scikit-learn. The model stays comparable to complex
    patches on a complex dictionary: a complex coefficient is two real ones, and the real and
    imaginary parts of an MR image share the anatomy's edges and textures (they are the magnitude
    times the cosine and sine of a slowly varying phase). For a real-valued object, as in the CS-MRI
    study, the imaginary part is pure aliasing, which the error-constrained coding suppresses.

    Attributes:
        patch_size: side p of the square patches (p x p), >= 2.
        n_atoms: atoms K of each image's dictionary.
        sparsity: atoms per patch when learning the dictionary (K-SVD's fixed sparsity T0).
        error_threshold: per-pixel RMS error target of the final coding of all patches, relative to
            the zero-filled image's peak magnitude: a patch stops gaining atoms once its residual
            norm is at most ``patch_size * error_threshold`` (DLMRI's ``sqrt(n) * th``), or at
            ``2 * sparsity`` atoms (capped at ``n_atoms``). With ``initial_error_threshold`` this is
            the target of the last outer iteration.
        initial_error_threshold: None for a constant ``error_threshold``, or the target of the first
            outer iteration, from which the target falls geometrically to ``error_threshold`` at the
            last one (a coarse-to-fine schedule: early iterations, when the estimate is dominated by
            aliasing, code only its strong structures; later ones keep finer detail).
        outer_iterations: alternations of dictionary learning and k-space update.
        ksvd_iterations: K-SVD iterations per outer iteration.
        training_patches: mean-removed patches drawn at random (without replacement) per image
            and outer iteration to learn the dictionary (all patches when fewer exist).
        stride: step between patch positions along each axis, 1..patch_size; the last row and
            column of positions are always included, so every pixel is covered.
        nu: weight of the measurements in the k-space update, > 0, or None for exact replacement
            (noise-free data). It plays the role of the paper's nu / beta, beta = (p / stride)^2
            patches per pixel.
        warm_start: start each outer iteration's K-SVD from the previous dictionary; False
            re-initialises it every time, as the authors' code does.
    """

    model_config = ConfigDict(frozen=True)

    patch_size: Annotated[int, Field(strict=True, ge=2)] = 6
    n_atoms: Count = 36
    sparsity: Count = 7
    error_threshold: Number = Field(0.023, ge=0)
    initial_error_threshold: Number | None = Field(None, ge=0)
    outer_iterations: Count = 20
    ksvd_iterations: Count = 3
    training_patches: Count = 7200
    stride: Count = 1
    nu: Number | None = Field(None, gt=0, description="None: exact replacement (noise-free data)")
    warm_start: StrictBool = True

    @model_validator(mode="after")
    def _consistent(self) -> "DlmriConfig":
        if self.sparsity > self.n_atoms:
            raise ValueError(f"sparsity ({self.sparsity}) exceeds n_atoms ({self.n_atoms}); lower sparsity or "
                             "raise n_atoms")
        if self.stride > self.patch_size:
            raise ValueError(f"stride ({self.stride}) exceeds patch_size ({self.patch_size}), which would leave "
                             "pixels uncovered; lower stride")
        return self

    @classmethod
    def paper(cls) -> "DlmriConfig":
        """Ravishankar and Bresler's settings: 6x6 patches, 36 atoms, 200 training patches per
        atom, sparsity 7, 20 K-SVD iterations per outer iteration, stride 1, a fresh dictionary
        each time, and 20 outer iterations (the paper used 20 to 100; raise it with
        ``DlmriConfig(**{**DlmriConfig.paper().model_dump(), "outer_iterations": 50})``)."""
        return cls(outer_iterations=20, ksvd_iterations=20, training_patches=200 * 36,
                   warm_start=False)

    def threshold(self, iteration: int) -> float:
        """The error target of outer iteration ``iteration`` (1-based): constant, or the geometric
        schedule from ``initial_error_threshold`` to ``error_threshold``."""
        final, initial = float(self.error_threshold), self.initial_error_threshold
        if initial is None or self.outer_iterations == 1 or initial == final:
            return final
        if final == 0 or initial == 0:
            fraction = (iteration - 1) / (self.outer_iterations - 1)
            return float(initial) + (final - float(initial)) * fraction
        ratio = final / float(initial)
        return float(initial) * ratio ** ((iteration - 1) / (self.outer_iterations - 1))

    @property
    def max_atoms(self) -> int:
        """Atom cap of the error-constrained coding of all patches: 2 * sparsity, at most K."""
        return min(2 * self.sparsity, self.n_atoms)


IterationCallback = Callable[[int, torch.Tensor], None]
"""Called after each outer iteration with its number (1-based) and the estimate (B, 2, H, W)."""


def dlmri(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    config: DlmriConfig | None = None,
    *,
    seed: int = 0,
    on_iteration: IterationCallback | None = None,
) -> torch.Tensor:
    """Reconstruct undersampled MR images by DLMRI (see the module docstring).

    The k-space is divided by the zero-filled image's peak magnitude (per image) during the
    iterations, so ``config.error_threshold`` is relative to the image's intensity scale, and the
    result is scaled back.

    Args:
        kspace: measured k-space, complex (B, 1, H, W), centred; entries where ``mask`` is 0 are
            ignored. H and W must be at least ``config.patch_size``.
        mask: 0/1 sampling mask broadcastable to (B, 1, H, W).
        config: the settings; default :class:`DlmriConfig` ``()``, the demo settings.
        seed: seeds the choice of training patches (and of extra atoms when n_atoms exceeds the
            patch size p^2).
        on_iteration: optional callback after each outer iteration (progress, convergence plots).

    Returns:
        The reconstruction, 2 channels (B, 2, H, W) (real, imaginary), in the scale of ``kspace``;
        float32 for complex64 k-space (float64 for complex128), on the device of ``kspace``.

    Raises:
        InputError: for a bad k-space or mask, images smaller than a patch, or an image whose
            sampled k-space is all zero.
        ConfigError: when ``config`` is not a :class:`DlmriConfig`.
    """
    config = DlmriConfig() if config is None else config
    if not isinstance(config, DlmriConfig):
        raise ConfigError(f"config must be a DlmriConfig, got {type(config).__name__}; build one "
                          "from a mapping with taskloss.config.validate_config(DlmriConfig, mapping, source)")
    kspace, mask = check_measurements(kspace, mask)
    height, width = kspace.shape[-2:]
    if min(height, width) < config.patch_size:
        raise InputError(f"images of {height}x{width} pixels are smaller than the "
                         f"{config.patch_size}x{config.patch_size} DLMRI patches; lower "
                         "config.patch_size or pass larger images")
    image = zero_filled(kspace, mask)
    peak = _peak_magnitude(image)
    measured = kspace * mask / peak
    image = image / peak
    patches = _PatchGrid(height, width, config.patch_size, config.stride, image.device)
    generator = torch.Generator().manual_seed(seed)
    dictionary: torch.Tensor | None = None
    for iteration in range(1, config.outer_iterations + 1):
        image, dictionary = _patch_step(image, patches, dictionary, config, generator,
                                        config.threshold(iteration))
        image = data_consistency(image, measured, mask, config.nu)
        if on_iteration is not None:
            on_iteration(iteration, image * peak)
    return image * peak


def _peak_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Per-image peak magnitude (B, 1, 1, 1) of a 2-channel image; raises if one is zero."""
    peak = magnitude(image).amax(dim=(1, 2, 3), keepdim=True)
    empty = (peak.flatten() == 0).nonzero().flatten().tolist()
    if empty:
        raise InputError(f"the sampled k-space (kspace * mask) of image(s) {empty} is all zero, so "
                         "there is nothing to reconstruct; check the mask and the measurements")
    return peak


def _patch_step(
    image: torch.Tensor,
    patches: "_PatchGrid",
    dictionary: torch.Tensor | None,
    config: DlmriConfig,
    generator: torch.Generator,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Learn a dictionary from the image's patches, code all patches, average them into an image.

    Args:
        image: current estimate (B, 2, H, W), peak magnitude about 1.
        patches: the patch grid of this image size.
        dictionary: the previous dictionary (B, p^2, K) to warm-start from, or None.
        config: the settings.
        generator: CPU generator for the random draws.
        threshold: this iteration's per-pixel RMS error target of the coding.

    Returns:
        ``(image, dictionary)``: the patch-averaged image (B, 2, H, W) and the learned dictionary.
    """
    blocks = patches.extract(image)
    means = blocks.mean(dim=-1, keepdim=True)
    centred = blocks - means
    count = min(config.training_patches, centred.shape[1])
    chosen = torch.randperm(centred.shape[1], generator=generator)[:count].to(image.device)
    training = centred.index_select(1, chosen)
    if dictionary is None or not config.warm_start:
        dictionary = initial_dictionary(training, config.n_atoms, generator)
    dictionary, _ = ksvd(training, dictionary, iterations=config.ksvd_iterations,
                         sparsity=config.sparsity)
    tol = blocks.shape[-1] * threshold ** 2
    codes = omp(dictionary, centred, n_nonzero=config.max_atoms, tol=tol)
    return patches.average(codes @ dictionary.mT + means), dictionary


def initial_dictionary(
    training: torch.Tensor, n_atoms: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DLMRI's initial dictionary: the principal directions of the training patches, by decreasing
    variance, then (when K exceeds the patch length n) randomly drawn normalised training patches.

    Args:
        training: mean-removed training patches (B, N, n), one per row.
        n_atoms: the number of atoms K.
        generator: CPU generator for the draw of extra atoms (only used when K > n).

    Returns:
        The dictionary (B, n, K) with unit-norm columns.
    """
    _, eigenvectors = torch.linalg.eigh(training.mT @ training)
    principal = eigenvectors.flip(-1)[..., :n_atoms]
    extra = n_atoms - principal.shape[-1]
    if extra <= 0:
        return principal
    if extra > training.shape[1]:
        raise InputError(f"{n_atoms} atoms need at least {extra} training patches beyond the patch "
                         f"length {training.shape[-1]}, got {training.shape[1]}; use fewer atoms "
                         "or larger images")
    # Random draws among the non-zero patches first (flat patches give no direction).
    energy = training.square().sum(-1)
    ranks = torch.rand(energy.shape[-1], generator=generator).to(energy.device) + (energy > 0)
    picked = training.gather(1, ranks.topk(extra, dim=-1).indices.unsqueeze(-1).expand(
        -1, -1, training.shape[-1]))
    norms = picked.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(picked.dtype).tiny)
    return torch.cat([principal, (picked / norms).mT], dim=-1)


def _offsets(size: int, patch: int, stride: int) -> torch.Tensor:
    """Top-left offsets along one axis: 0, stride, ..., and always size - patch."""
    offsets = list(range(0, size - patch + 1, stride))
    if offsets[-1] != size - patch:
        offsets.append(size - patch)
    return torch.tensor(offsets)


class _PatchGrid:
    """Overlapping p x p patches of (B, C, H, W) images at a stride, and their averaging."""

    def __init__(self, height: int, width: int, size: int, stride: int, device: torch.device):
        self.shape = (height, width)
        self.size = size
        rows, cols = _offsets(height, size, stride), _offsets(width, size, stride)
        dense_width = width - size + 1
        # Positions as indices into the stride-1 grid of torch's unfold; None when all are used.
        index = (rows[:, None] * dense_width + cols[None, :]).flatten().to(device)
        self.index = None if stride == 1 else index
        self.count = index.numel()
        ones = torch.ones(1, size * size, self.count, device=device)
        self.weight = self._fold(ones)

    def extract(self, image: torch.Tensor) -> torch.Tensor:
        """Patches (B, C * P, p^2) of ``image`` (B, C, H, W), channel-major, rows flattened."""
        batch, channels = image.shape[:2]
        columns = F.unfold(image, self.size)
        if self.index is not None:
            columns = columns.index_select(-1, self.index)
        columns = columns.reshape(batch, channels, self.size ** 2, self.count)
        return columns.transpose(-1, -2).reshape(batch, channels * self.count, self.size ** 2)

    def average(self, blocks: torch.Tensor) -> torch.Tensor:
        """Average overlapping patches (B, C * P, p^2) (as :meth:`extract` orders them) into images
        (B, C, H, W)."""
        batch = blocks.shape[0]
        columns = blocks.reshape(batch, -1, self.count, self.size ** 2).transpose(-1, -2)
        summed = self._fold(columns.reshape(batch, -1, self.count))
        return summed / self.weight.to(summed.dtype)

    def _fold(self, columns: torch.Tensor) -> torch.Tensor:
        if self.index is not None:
            dense_count = (self.shape[0] - self.size + 1) * (self.shape[1] - self.size + 1)
            dense = columns.new_zeros(*columns.shape[:-1], dense_count)
            columns = dense.index_copy(-1, self.index, columns)
        return F.fold(columns, self.shape, self.size)
