"""DAGAN's generator (Yang et al. 2018): a pix2pix-style U-Net with a residual, clipped output.

The input is the magnitude of the zero-filled image scaled to [-1, 1]; the output is
``clip(input + tanh(G(input)), -1, 1)`` ("refinement" mode of their code). Encoder: 4 x 4 stride-2
convolutions (batch norm on all but the first and the last, LeakyReLU(0.2)); decoder: 4 x 4
stride-2 transposed convolutions (batch norm, ReLU), each but the first taking the previous
output concatenated with the encoder features of the same scale; a 1 x 1 convolution and tanh.
Initialisation as their code: weights ~ truncated N(0, 0.01^2), batch-norm scales ~ N(1, 0.02^2).

Deviation: their released code applies no activation after the first convolution (the first two
convolutions compose linearly); pix2pix's U-Net, which the paper follows, applies LeakyReLU there,
and so does this one.
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from taskloss.errors import ConfigError, InputError
from taskloss.networks.base import Network, holds_everywhere
from taskloss.networks.layers import check_widths, conv_norm_act, init_normal_

DAGAN_ENCODER_WIDTHS = (64, 128, 256, 512, 512, 512, 512, 512)
"""Filters of DAGAN's eight encoder convolutions, finest first (256 px -> 1 px)."""
DAGAN_DECODER_WIDTHS = (512, 1024, 1024, 1024, 256, 128, 64, 64)
"""Filters of DAGAN's eight transposed convolutions, coarsest first."""


class DAGANGenerator(Network):
    """DAGAN's U-Net generator with residual output, on magnitudes in [-1, 1].

    Args:
        in_channels: channels of the input and the output (1: magnitude).
        encoder_widths: filters of the encoder convolutions, finest first; n of them give a total
            stride of 2^n (DAGAN: 8, for 256 px images).
        decoder_widths: filters of the transposed convolutions, coarsest first, one per encoder
            convolution (the last one works at full resolution).

    Input (B, in_channels, H, W) in [-1, 1], H and W multiples of the total stride; output of the
    same shape in [-1, 1].
    """

    def __init__(
        self,
        in_channels: int = 1,
        encoder_widths: Sequence[int] = DAGAN_ENCODER_WIDTHS,
        decoder_widths: Sequence[int] = DAGAN_DECODER_WIDTHS,
    ) -> None:
        encoder = check_widths(encoder_widths, "encoder_widths")
        decoder = check_widths(decoder_widths, "decoder_widths")
        if len(decoder) != len(encoder):
            raise ConfigError(f"decoder_widths needs one entry per encoder width ({len(encoder)}), "
                              f"got {len(decoder)}")
        depth = len(encoder)
        super().__init__(in_channels, total_stride=2**depth)
        self.encoder = nn.ModuleList(
            conv_norm_act(cin, cout, 4, stride=2, norm="batch" if 0 < level < depth - 1 else "none",
                          negative_slope=0.2)
            for level, (cin, cout) in enumerate(zip((in_channels, *encoder[:-1]), encoder, strict=True)))
        skip_widths = (0, *encoder[-2::-1])  # the first transposed convolution has no skip input
        self.decoder = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(cin + skip, cout, 4, stride=2, padding=1, bias=False),
                          nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
            for cin, skip, cout in zip((encoder[-1], *decoder[:-1]), skip_widths, decoder, strict=True))
        self.head = nn.Conv2d(decoder[-1], in_channels, kernel_size=1)
        init_normal_(self, 0.01, truncated=True)

    def forward(self, image: Tensor) -> Tensor:
        """Refine ``image`` (B, in_channels, H, W) in [-1, 1]; returns the same shape in [-1, 1]."""
        self.check_image(image)
        if not holds_everywhere((image >= -1) & (image <= 1)):
            raise InputError(f"DAGANGenerator expects image in [-1, 1] (the zero-filled magnitude "
                             f"scaled as 2 * x / max - 1), got values in [{float(image.min()):.4g}, "
                             f"{float(image.max()):.4g}]")
        skips = []
        x = image
        for layer in self.encoder:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the coarsest features feed the decoder directly
        for index, layer in enumerate(self.decoder):
            x = layer(x if index == 0 else torch.cat([x, skips.pop()], dim=1))
        return torch.clamp(image + torch.tanh(self.head(x)), -1.0, 1.0)

    def example_inputs(
        self,
        batch: int = 1,
        size: tuple[int, int] | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, ...]:
        """One random image (B, in_channels, H, W), uniform in [-1, 1]; smallest valid size by default."""
        height, width = size or (self.min_size, self.min_size)
        return (torch.rand(batch, self.in_channels, height, width, dtype=dtype, device=device) * 2 - 1,)
