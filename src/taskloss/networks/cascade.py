"""RecNet: a deep cascade of CNNs with data consistency for Cartesian CS-MRI (Schlemper et al. 2018).

Each block maps the current 2-channel estimate (real, imaginary) through a small CNN and then
enforces consistency with the measured k-space (:func:`taskloss.data.kspace.data_consistency`):
noiseless, the sampled k-space entries are replaced by the measurements; noisy (``noise_lambda``),
they become ``(k + lambda k0) / (1 + lambda)``. Two configurations:

- Seitzer et al. 2018 (default): 3 blocks of conv 2->32, LeakyReLU(0.01), conv 32->32, LeakyReLU,
  conv 32->2, 3 x 3 kernels, no residual inside a block: 31,302 parameters.
- Schlemper et al.'s D5-C5: ``num_blocks=5, num_convs=5, width=64, negative_slope=0, residual=True``
  (5 convolutions of 64 filters with ReLU, x + cnn(x) before data consistency).
"""

import torch
from torch import Tensor, nn

from taskloss.data.kspace import complex_to_channels, data_consistency, undersample
from taskloss.errors import ConfigError, InputError
from taskloss.networks.base import Network, holds_everywhere
from taskloss.networks.layers import PaddedConv2d, activation, check_positive


def _block(num_convs: int, width: int, kernel_size: int, negative_slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 2
    for _ in range(num_convs - 1):
        layers += [PaddedConv2d(channels, width, kernel_size), activation(negative_slope)]
        channels = width
    layers.append(PaddedConv2d(channels, 2, kernel_size))
    return nn.Sequential(*layers)


class RecNet(Network):
    """Deep cascade of CNNs with data consistency on complex images as 2 channels.

    Args:
        num_blocks: number of CNN + data-consistency blocks.
        num_convs: convolutions per block (>= 2): 2 -> width, (num_convs - 2) x width -> width,
            width -> 2, an activation after each but the last.
        width: filters of the hidden convolutions.
        negative_slope: 0 for ReLU, else the LeakyReLU slope.
        residual: add the block's input to the CNN output before data consistency.
        noise_lambda: None for noiseless data consistency, else lambda > 0 (larger trusts the
            measurements more).
        kernel_size: kernel size of every convolution.

    Works on any image size (total stride 1). FFTs are centred and orthonormal
    (:mod:`taskloss.data.kspace`).
    """

    def __init__(
        self,
        num_blocks: int = 3,
        num_convs: int = 3,
        width: int = 32,
        negative_slope: float = 0.01,
        residual: bool = False,
        noise_lambda: float | None = None,
        kernel_size: int = 3,
    ) -> None:
        check_positive(num_blocks, "num_blocks")
        check_positive(num_convs, "num_convs", minimum=2)
        check_positive(width, "width")
        if noise_lambda is not None and not noise_lambda > 0:
            raise ConfigError(f"noise_lambda must be > 0 (or None for noiseless data consistency), "
                              f"got {noise_lambda}")
        super().__init__(in_channels=2, total_stride=1)
        self.blocks = nn.ModuleList(
            _block(num_convs, width, kernel_size, negative_slope) for _ in range(num_blocks))
        self.residual = residual
        self.noise_lambda = noise_lambda

    def forward(self, zero_filled: Tensor, kspace: Tensor, mask: Tensor) -> Tensor:
        """Reconstruct from the zero-filled image and the measurements.

        Args:
            zero_filled: ``ifft2c(kspace)`` as 2 channels (B, 2, H, W) (real, imaginary), float.
            kspace: measured, already masked k-space, complex (B, 1, H, W), DC at the centre.
            mask: 0/1 sampling mask, real, (B, 1, H, W) or broadcastable to it (e.g. (B, 1, H, 1)
                for phase-encoding rows).

        Returns:
            The reconstruction (B, 2, H, W), dtype of ``zero_filled``.
        """
        self.check_measurements(zero_filled, kspace, mask)
        x = zero_filled
        for block in self.blocks:
            update = block(x)
            x = data_consistency(x + update if self.residual else update, kspace, mask,
                                 self.noise_lambda)
        return x

    def check_measurements(self, zero_filled: object, kspace: object, mask: object) -> None:
        """Check the three inputs of :meth:`forward`; raise one :class:`InputError` naming the fault."""
        image = self.check_image(zero_filled, "zero_filled")
        expected = (image.shape[0], 1, *image.shape[-2:])
        if not isinstance(kspace, Tensor) or not kspace.is_complex() or tuple(kspace.shape) != expected:
            described = (f"{kspace.dtype} {tuple(kspace.shape)}" if isinstance(kspace, Tensor)
                         else type(kspace).__name__)
            raise InputError(f"kspace must be a complex tensor of shape {expected} (the masked "
                             f"k-space of zero_filled), got {described}; build it with "
                             "taskloss.data.kspace.undersample")
        if not isinstance(mask, Tensor) or not mask.is_floating_point() or mask.ndim != 4:
            described = (f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor)
                         else type(mask).__name__)
            raise InputError(f"mask must be a real floating tensor (B, 1, H, W) or broadcastable to "
                             f"{expected}, got {described}; convert with mask.float()")
        try:
            broadcast = torch.broadcast_shapes(mask.shape, expected)
        except RuntimeError:
            broadcast = None
        if broadcast != expected:
            raise InputError(f"mask of shape {tuple(mask.shape)} does not broadcast to the k-space "
                             f"shape {expected}; pass (B, 1, H, W), (B, 1, H, 1) or (B, 1, 1, W)")
        if not holds_everywhere((mask == 0) | (mask == 1)):
            raise InputError("mask must hold only 0 (not sampled) and 1 (sampled); binarise it, "
                             "e.g. (mask > 0).float()")

    def example_inputs(
        self,
        batch: int = 1,
        size: tuple[int, int] | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, ...]:
        """Random ``(zero_filled, kspace, mask)``: a N(0, 1) complex image, a third of the rows sampled.

        Args:
            batch: batch size.
            size: (H, W); defaults to 8 x 8.
            dtype: float dtype of ``zero_filled`` and the mask (k-space is the matching complex type).
            device: device of the inputs.
        """
        height, width = size or (8, 8)
        parts = torch.randn(2, batch, 1, height, width, dtype=dtype, device=device)
        mask = (torch.rand(batch, 1, height, 1, dtype=dtype, device=device) < 1 / 3).to(dtype)
        zero_filled, kspace = undersample(torch.complex(parts[0], parts[1]), mask)
        return complex_to_channels(zero_filled), kspace, mask.expand(batch, 1, height, width)
