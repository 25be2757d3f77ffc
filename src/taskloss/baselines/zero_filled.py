"""The zero-filled baseline: the inverse FFT of the undersampled k-space, unsampled entries zero.

Conventions of :mod:`taskloss.data.kspace`: centred orthonormal FFTs; measured k-space is complex
(B, 1, H, W) with the DC component at the centre; masks are real 0/1 (1 = sampled), broadcastable
to (B, 1, H, W). Reconstructions are 2-channel real images (B, 2, H, W) (real, imaginary), the
network-space convention, so every method of the CS-MRI study returns the same kind of tensor.
"""

import torch

from taskloss.data.kspace import complex_to_channels, ifft2c
from taskloss.errors import InputError
from taskloss.validation import check_finite


def zero_filled(kspace: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero-filled reconstruction ``ifft2c(mask * kspace)``.

    Args:
        kspace: measured k-space, complex (B, 1, H, W), centred (DC in the middle). Entries where
            ``mask`` is 0 are ignored, so fully sampled k-space may be passed as well.
        mask: 0/1 sampling mask broadcastable to (B, 1, H, W), e.g. (B, 1, H, 1) for lines.

    Returns:
        The zero-filled image, 2 channels (B, 2, H, W) (real, imaginary), float32 for complex64
        k-space (float64 for complex128).
    """
    kspace, mask = check_measurements(kspace, mask)
    return complex_to_channels(ifft2c(kspace * mask))


def check_measurements(kspace: object, mask: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a k-space/mask pair of an undersampled acquisition.

    Args:
        kspace: should be a finite complex tensor (B, 1, H, W).
        mask: should be a real or boolean tensor of 0/1 values, broadcastable to ``kspace``, on the
            same device.

    Returns:
        ``(kspace, mask)``, the mask cast to the real dtype of ``kspace``.

    Raises:
        InputError: naming the argument, what is wrong and how to fix it.
    """
    if not isinstance(kspace, torch.Tensor) or not kspace.is_complex():
        kind = kspace.dtype if isinstance(kspace, torch.Tensor) else type(kspace).__name__
        raise InputError(f"kspace must be a complex torch.Tensor (B, 1, H, W), got {kind}; build it "
                         "with taskloss.data.kspace.fft2c, or channels_to_complex for a 2-channel "
                         "(real, imaginary) tensor")
    if kspace.ndim != 4 or kspace.shape[1] != 1 or kspace.numel() == 0:
        raise InputError(f"kspace has shape {tuple(kspace.shape)}; expected (B, 1, H, W) with one "
                         "coil and non-empty axes (add missing axes with kspace[None, None])")
    check_finite(kspace, "kspace")
    if not isinstance(mask, torch.Tensor) or mask.is_complex():
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InputError(f"mask must be a real or boolean torch.Tensor of 0/1 values, got {kind}")
    try:
        fits = torch.broadcast_shapes(mask.shape, kspace.shape) == kspace.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise InputError(f"mask of shape {tuple(mask.shape)} does not broadcast to the k-space shape "
                         f"{tuple(kspace.shape)}; use (B, 1, H, W), (B, 1, H, 1) for lines, or "
                         "(1, 1, H, W) for one mask shared by the batch")
    if mask.device != kspace.device:
        raise InputError(f"mask is on {mask.device} but kspace is on {kspace.device}; move both to "
                         "the same device")
    mask = mask.to(kspace.real.dtype)
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise InputError("mask holds values other than 0 and 1 (or NaN); pass a binary sampling "
                         "mask (1 = sampled), e.g. (mask > 0).float()")
    return kspace, mask
