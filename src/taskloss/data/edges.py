"""High-frequency edge content of images: Laplacian-of-Gaussian (LoG) energy.

Used to check the simulator's realism: a radiograph's sharpest features (skull outline, sinus walls,
orbits, teeth) are thin, high-contrast edges, so a simulated X-ray should carry at least the
high-frequency energy of the MR projection it is paired with. The energy of an image is the mean of
its squared LoG response, ``mean((G_sigma * Laplacian f)^2)``, computed by
:func:`scipy.ndimage.gaussian_laplace` with reflected borders, on the image as given (normalise the
images the same way, e.g. min-max to [0, 1], before comparing them).
"""

import numpy as np
import torch
from scipy import ndimage

from taskloss.errors import InputError


def log_energy(images: torch.Tensor, sigma_px: float = 1.0) -> torch.Tensor:
    """Mean squared Laplacian-of-Gaussian response of every image.

    Args:
        images: (N, 1, H, W) or (N, H, W) real images.
        sigma_px: Gaussian scale in pixels (> 0); 1 px keeps the finest edges of the image.

    Returns:
        (N,) float64 energies (intensity^2 / px^4), >= 0.
    """
    if sigma_px <= 0:
        raise InputError(f"sigma_px must be > 0, got {sigma_px}; give the LoG scale in pixels")
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise InputError(f"images must be (N, 1, H, W) or (N, H, W), got shape {tuple(images.shape)}")
    arrays = images.detach().cpu().double().numpy()
    energies = [np.mean(ndimage.gaussian_laplace(a, sigma_px, mode="reflect") ** 2) for a in arrays]
    return torch.tensor(energies, dtype=torch.float64)


def log_energy_ratio(images: torch.Tensor, references: torch.Tensor, sigma_px: float = 1.0) -> float:
    """Mean LoG energy of ``images`` over the mean LoG energy of ``references`` (same shapes).

    E.g. simulated X-rays over their paired MR projections: >= 1 when the X-rays carry at least the
    high-frequency content of the MR projections.
    """
    if images.shape != references.shape:
        raise InputError(f"images {tuple(images.shape)} and references {tuple(references.shape)} must "
                         "have one shape; pair every image with its reference")
    reference = float(log_energy(references, sigma_px).mean())
    if reference == 0:
        raise InputError("the references have no LoG energy (constant images); compare against images "
                         "with structure")
    return float(log_energy(images, sigma_px).mean()) / reference
