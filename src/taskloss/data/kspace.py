"""k-space operations: centred orthonormal FFTs, complex <-> 2-channel images, data consistency.

Conventions (as fastMRI): the image origin is at the centre of the array and k-space has its DC
component at the centre (``fftshift``); transforms are orthonormal (``norm="ortho"``), so
``ifft2c(fft2c(x)) == x`` and Parseval's identity holds. Complex images are ``complex64`` tensors
in k-space code and 2 channels (real, imaginary) in network space. Masks are real tensors of 0/1
(1 = sampled) that broadcast against k-space, e.g. (B, 1, 1, W) for Cartesian lines along the
last axis or (B, 1, H, W) for 2-D patterns.
"""

import torch

from taskloss.errors import InputError


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two axes of a complex tensor (..., H, W)."""
    shifted = torch.fft.ifftshift(image, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.fft2(shifted, norm="ortho"), dim=(-2, -1))


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two axes of a complex tensor (..., H, W)."""
    shifted = torch.fft.ifftshift(kspace, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.ifft2(shifted, norm="ortho"), dim=(-2, -1))


def complex_to_channels(image: torch.Tensor) -> torch.Tensor:
    """Complex (B, 1, H, W) -> real (B, 2, H, W) with channels (real, imaginary)."""
    if not image.is_complex() or image.ndim != 4 or image.shape[1] != 1:
        raise InputError(f"expected a complex tensor of shape (B, 1, H, W), got {image.dtype} "
                         f"{tuple(image.shape)}")
    return torch.cat([image.real, image.imag], dim=1)


def channels_to_complex(image: torch.Tensor) -> torch.Tensor:
    """Real (B, 2, H, W) with channels (real, imaginary) -> complex (B, 1, H, W)."""
    if image.is_complex() or image.ndim != 4 or image.shape[1] != 2:
        raise InputError(f"expected a real tensor of shape (B, 2, H, W) (real, imaginary), got "
                         f"{image.dtype} {tuple(image.shape)}")
    if image.dtype not in (torch.float32, torch.float64):  # half precision has no complex FFT
        image = image.float()
    return torch.complex(image[:, :1], image[:, 1:])


def magnitude(image: torch.Tensor) -> torch.Tensor:
    """|x| of a 2-channel (B, 2, H, W) image, shape (B, 1, H, W)."""
    return image.square().sum(dim=1, keepdim=True).sqrt()


def undersample(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate Cartesian undersampling of a complex image.

    Args:
        image: complex ground truth (B, 1, H, W).
        mask: 0/1 sampling mask broadcastable to (B, 1, H, W).

    Returns:
        ``(zero_filled, kspace)``: the zero-filled complex image ``ifft2c(mask * fft2c(image))``
        (B, 1, H, W) and the masked k-space ``mask * fft2c(image)`` (B, 1, H, W).
    """
    kspace = fft2c(image) * mask
    return ifft2c(kspace), kspace


def data_consistency(
    image: torch.Tensor,
    kspace0: torch.Tensor,
    mask: torch.Tensor,
    noise_lambda: float | None = None,
) -> torch.Tensor:
    """Data-consistency step of a deep cascade (Schlemper et al. 2018).

    With ``k = fft2c(x)``: noiseless (``noise_lambda=None``) the sampled entries are replaced by the
    measurements, ``k' = (1 - m) k + k0``; noisy, they become the weighted mean
    ``k' = (1 - m) k + m (k + lambda k0) / (1 + lambda)``. Returns ``ifft2c(k')``.

    Args:
        image: current estimate, 2 channels (B, 2, H, W) (real, imaginary).
        kspace0: measured, already masked k-space, complex (B, 1, H, W).
        mask: 0/1 sampling mask broadcastable to (B, 1, H, W).
        noise_lambda: None for exact replacement, else lambda > 0.

    Returns:
        The corrected estimate, 2 channels (B, 2, H, W), dtype of ``image``.
    """
    kspace = fft2c(channels_to_complex(image))
    if noise_lambda is None:
        updated = (1 - mask) * kspace + kspace0
    else:
        if noise_lambda <= 0:
            raise InputError(f"noise_lambda must be > 0 (or None for noiseless data consistency), "
                             f"got {noise_lambda}")
        updated = (1 - mask) * kspace + mask * (kspace + noise_lambda * kspace0) / (
            1 + noise_lambda)
    return complex_to_channels(ifft2c(updated)).to(image.dtype)


def center_crop(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """The central (h, w) region of the last two axes (fastMRI's placement: start ``(n - h) // 2``)."""
    height, width = x.shape[-2:]
    h, w = shape
    if not (0 < h <= height and 0 < w <= width):
        raise InputError(f"cannot crop {(height, width)} to {shape}; the crop must fit inside")
    top, left = (height - h) // 2, (width - w) // 2
    return x[..., top:top + h, left:left + w]
