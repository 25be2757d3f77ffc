"""High-frequency error norm (HFEN, Ravishankar & Bresler 2011), one value per image.

HFEN = ||LoG(pred) - LoG(target)||_2 / ||LoG(target)||_2, with LoG the Laplacian-of-Gaussian
filter, sigma 1.5 pixels. It measures how well edges and fine texture are reproduced; lower is
better, 0 for a perfect prediction. The LoG here equals ``scipy.ndimage.gaussian_laplace(x,
sigma=1.5)`` (kernel radius 4 sigma, ``mode="reflect"`` borders), applied per channel; volumes
(B, C, D, H, W) use the 3-D LoG. The original MATLAB code uses a 15 x 15 ``fspecial('log')``
kernel; the values differ slightly, the ranking of methods does not.
"""

import torch

from taskloss.filters import gaussian_kernel1d, separable_filter
from taskloss.validation import check_image_pair, explain_nonfinite

HFEN_SIGMA = 1.5
HFEN_TRUNCATE = 4.0  # scipy's default truncation: radius int(4 * 1.5 + 0.5) = 6


def laplacian_of_gaussian(x: torch.Tensor, sigma: float = HFEN_SIGMA) -> torch.Tensor:
    """LoG filter of every channel: sum over axes of the second Gaussian derivative.

    Args:
        x: images (B, C, H, W) or volumes (B, C, D, H, W).
        sigma: Gaussian standard deviation in pixels.

    Returns:
        Filtered tensor of the same shape (symmetric borders, as scipy's ``mode="reflect"``).

    Examples:
        >>> from scipy.ndimage import gaussian_laplace
        >>> x = torch.rand(1, 1, 12, 13, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> reference = torch.from_numpy(gaussian_laplace(x[0, 0].numpy(), sigma=1.5))
        >>> bool(torch.allclose(laplacian_of_gaussian(x)[0, 0], reference))
        True
    """
    radius = int(HFEN_TRUNCATE * sigma + 0.5)
    smooth = gaussian_kernel1d(sigma, radius, 0, dtype=x.dtype, device=x.device)
    second = gaussian_kernel1d(sigma, radius, 2, dtype=x.dtype, device=x.device)
    n_spatial = x.ndim - 2
    terms = [
        separable_filter(x, [second if axis == d else smooth for axis in range(n_spatial)],
                         padding="symmetric")
        for d in range(n_spatial)
    ]
    return torch.stack(terms).sum(dim=0)


def hfen(pred: torch.Tensor, target: torch.Tensor, *, sigma: float = HFEN_SIGMA) -> torch.Tensor:
    """HFEN per image: ||LoG(pred - target)|| / ||LoG(target)||, shape (B,).

    The LoG is linear, so LoG(pred) - LoG(target) is computed as LoG(pred - target). A target
    without any structure (constant image) gives +inf or NaN.

    Examples:
        >>> target = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> hfen(target, target), hfen(torch.zeros_like(target), target)  # 0; ||LoG(-t)|| / ||LoG(t)|| = 1
        (tensor([0.]), tensor([1.]))
    """
    pred, target = check_image_pair(pred, target, finite=False)
    channels = pred.shape[1]
    filtered = laplacian_of_gaussian(torch.cat([pred - target, target], dim=1), sigma)
    error, reference = filtered.split(channels, dim=1)
    result = error.flatten(1).norm(dim=1) / reference.flatten(1).norm(dim=1)
    explain_nonfinite(result, pred=pred, target=target)
    return result
