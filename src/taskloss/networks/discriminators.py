"""Discriminators of the CS-MRI study: Seitzer et al.'s PatchGAN and DAGAN's.

Both take magnitude images (B, 1, H, W) and return the list of their intermediate features with
the logits last, the form feature-matching losses need (as MONAI's ``PatchDiscriminator``).
Both use the DCGAN initialisation of their authors' code: weights ~ N(0, 0.02^2), batch-norm
scales ~ N(1, 0.02^2).
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from taskloss.errors import ConfigError, InputError
from taskloss.networks.base import Network
from taskloss.networks.layers import (
    PaddedConv2d,
    PaddingMode,
    activation,
    check_positive,
    check_widths,
    conv_norm_act,
    init_normal_,
)


def _smallest_input(convs: Sequence[PaddedConv2d]) -> int:
    """Smallest height or width that passes through all ``convs`` in turn (sizes shrink monotonically)."""
    size = 1
    while True:
        current: int | None = size
        for conv in convs:
            current = conv.output_size(current)
            if current is None:
                break
        if current is not None:
            return size
        size += 1


class PatchDiscriminator(Network):
    """Seitzer et al.'s PatchGAN discriminator on magnitude images.

    Six 4 x 4 convolutions with filters [64, 128, 256, 512, 1024, 1024] and strides
    [2, 2, 2, 2, 2, 1], batch norm on all but the first, LeakyReLU(0.2), channel dropout
    (``nn.Dropout2d``, as their code) of 0.5 after layers 4-6, then a 4 x 4 convolution to one
    logit per patch. Every convolution is "same" padded, so an H x W input gives an
    (H // 32) x (W // 32) logit map.

    Smallest input: with zero padding (default), 32 x 32 px: each stride-2 convolution halves the
    size and needs at least 2 px, so five of them need 2^5 px (the logit map is then 1 x 1). With
    ``padding_mode="reflect"`` (Seitzer et al.'s released configuration), 96 x 96 px: the stride-1
    4 x 4 convolutions pad 2 px on one side and reflection padding needs a map of at least 3 px
    after the five halvings. Their released configuration also leaves the final convolution
    unpadded (a 13 x 13 map at 512 px); it is padded here so the network works at 64-96 px.

    Args:
        in_channels: channels of the input (1: magnitude).
        widths: filters of the six (or more) convolutions.
        strides: their strides, 1 or 2, one per width.
        kernel_size: kernel size of every convolution.
        negative_slope: LeakyReLU slope.
        dropout: probability of dropping a feature map in the dropout layers.
        dropout_layers: 0-based indices of the convolutions followed by dropout.
        padding_mode: ``"zeros"`` or ``"reflect"``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (64, 128, 256, 512, 1024, 1024),
        strides: Sequence[int] = (2, 2, 2, 2, 2, 1),
        *,
        kernel_size: int = 4,
        negative_slope: float = 0.2,
        dropout: float = 0.5,
        dropout_layers: Sequence[int] = (3, 4, 5),
        padding_mode: PaddingMode = "zeros",
    ) -> None:
        filters = check_widths(widths, "widths")
        if len(tuple(strides)) != len(filters):
            raise ConfigError(f"strides needs one entry per width ({len(filters)}), got {strides!r}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        if not set(dropout_layers) <= set(range(len(filters))):
            raise ConfigError(f"dropout_layers must be 0-based layer indices below {len(filters)}, "
                              f"got {dropout_layers!r}")
        super().__init__(in_channels, total_stride=math.prod(strides), size_multiple=1)
        self.layers = nn.ModuleList()
        self.dropouts = nn.ModuleList()
        for index, (cin, cout, stride) in enumerate(
                zip((in_channels, *filters[:-1]), filters, strides, strict=True)):
            self.layers.append(conv_norm_act(cin, cout, kernel_size, stride=stride,
                                             norm="none" if index == 0 else "batch",
                                             negative_slope=negative_slope, padding_mode=padding_mode))
            self.dropouts.append(nn.Dropout2d(dropout) if index in dropout_layers else nn.Identity())
        self.logits = PaddedConv2d(filters[-1], 1, kernel_size, padding_mode=padding_mode)
        self.min_size = _smallest_input([layer[0] for layer in self.layers] + [self.logits])
        init_normal_(self, 0.02)

    def forward(self, image: Tensor) -> list[Tensor]:
        """Features of ``image`` (B, in_channels, H, W), H and W >= :attr:`min_size`.

        Returns:
            The output of each LeakyReLU (before dropout), then the logits (B, 1, H // 32, W // 32)
            (for the default strides); apply a sigmoid for probabilities.
        """
        self.check_image(image)
        features = []
        x = image
        for layer, dropout in zip(self.layers, self.dropouts, strict=True):
            x = layer(x)
            features.append(x)
            x = dropout(x)
        features.append(self.logits(x))
        return features


class DAGANDiscriminator(Network):
    """DAGAN's discriminator (Yang et al. 2018) on magnitude images in [-1, 1].

    Six 4 x 4 stride-2 convolutions of b, 2b, ..., 32b filters (b = ``base_width``; batch norm on
    all but the first; LeakyReLU(0.2)); 1 x 1 convolutions to 16b (BN, LReLU) and 8b (BN); a
    residual branch of 1 x 1 to 2b, 3 x 3 to 2b and 3 x 3 to 8b (BN after each, LReLU between)
    added to it and followed by LReLU; a dense layer to one logit per image. The dense layer fixes
    the input size: build the network with the ``image_size`` it will see.

    Args:
        in_channels: channels of the input (1: magnitude).
        base_width: b, filters of the first convolution (64 in DAGAN).
        image_size: H and W of the inputs, an int for square images or (H, W); multiples of 64.
    """

    def __init__(
        self,
        in_channels: int = 1,
        base_width: int = 64,
        image_size: int | tuple[int, int] = 256,
    ) -> None:
        check_positive(base_width, "base_width")
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        if height <= 0 or width <= 0 or height % 64 or width % 64:
            raise ConfigError(f"image_size must be positive multiples of 64 (six stride-2 "
                              f"convolutions), got {image_size!r}")
        super().__init__(in_channels, total_stride=64)
        self.image_size = (height, width)
        b = base_width
        widths = [b * 2**level for level in range(6)]
        self.downsampling = nn.ModuleList(
            conv_norm_act(cin, cout, 4, stride=2, norm="none" if level == 0 else "batch",
                          negative_slope=0.2)
            for level, (cin, cout) in enumerate(zip([in_channels, *widths[:-1]], widths, strict=True)))
        self.squeeze = conv_norm_act(32 * b, 16 * b, 1, negative_slope=0.2)
        self.project = nn.Sequential(PaddedConv2d(16 * b, 8 * b, 1, bias=False), nn.BatchNorm2d(8 * b))
        self.residual = nn.Sequential(
            conv_norm_act(8 * b, 2 * b, 1, negative_slope=0.2),
            conv_norm_act(2 * b, 2 * b, 3, negative_slope=0.2),
            PaddedConv2d(2 * b, 8 * b, 3, bias=False),
            nn.BatchNorm2d(8 * b),
        )
        self.merge = activation(0.2)
        self.classifier = nn.Linear(8 * b * (height // 64) * (width // 64), 1)
        init_normal_(self, 0.02)

    def forward(self, image: Tensor) -> list[Tensor]:
        """Features of ``image`` (B, in_channels, H, W), (H, W) = :attr:`image_size`.

        Returns:
            The six downsampling activations, the 16b activation, the merged residual output,
            then the logits (B, 1); apply a sigmoid for probabilities.
        """
        self.check_image(image)
        if tuple(image.shape[-2:]) != self.image_size:
            raise InputError(f"DAGANDiscriminator was built for {self.image_size[0]} x "
                             f"{self.image_size[1]} images (its dense layer has a fixed size), got "
                             f"{image.shape[-2]} x {image.shape[-1]}; resize the images or build it "
                             f"with image_size={tuple(image.shape[-2:])}")
        features = []
        x = image
        for layer in self.downsampling:
            x = layer(x)
            features.append(x)
        x = self.squeeze(x)
        features.append(x)
        x = self.project(x)
        x = self.merge(x + self.residual(x))
        features.append(x)
        features.append(self.classifier(x.flatten(1)))
        return features

    def example_inputs(
        self,
        batch: int = 1,
        size: tuple[int, int] | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, ...]:
        """Random input of :attr:`image_size` by default (see :meth:`Network.example_inputs`)."""
        return super().example_inputs(batch, size or self.image_size, dtype=dtype, device=device)
