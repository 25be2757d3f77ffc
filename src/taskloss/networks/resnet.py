"""ResNet generator of Johnson et al. (2016) for image-to-image synthesis, in the pix2pix/CycleGAN form.

7 x 7 reflection-padded stem, two 3 x 3 stride-2 downsamplings (doubling the channels), residual
blocks at a quarter of the resolution (3 x 3 reflection-padded conv, norm, ReLU, conv, norm, plus
the identity, no activation after the sum), two 3 x 3 stride-2 transposed convolutions back up,
and a 7 x 7 reflection-padded output convolution. The output is linear rather than Johnson et
al.'s scaled tanh, like the other generators of the MR -> X-ray study, so the loss comparison
does not depend on an output range.
"""

from torch import Tensor, nn

from taskloss.networks.base import Network
from taskloss.networks.layers import (
    Norm,
    PaddedConv2d,
    check_positive,
    conv_norm_act,
    norm_layer,
)


class ResidualBlock(nn.Module):
    """x + [conv 3x3, norm, ReLU, conv 3x3, norm](x), reflection padded; (B, C, H, W) -> same."""

    def __init__(self, channels: int, norm: Norm) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_norm_act(channels, channels, 3, norm=norm, padding_mode="reflect"),
            PaddedConv2d(channels, channels, 3, bias=norm == "none", padding_mode="reflect"),
            norm_layer(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Add the residual to ``x``."""
        return x + self.body(x)


class ResNetGenerator(Network):
    """Johnson et al.'s generator: 2 downsamplings, ``num_blocks`` residual blocks, 2 upsamplings.

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image (linear).
        base_width: channels of the stem; 2x and 4x after the downsamplings.
        num_blocks: residual blocks (9 for 256 px images in pix2pix/CycleGAN).
        norm: ``"instance"`` (pix2pix/CycleGAN, without affine parameters) or ``"batch"``
            (Johnson et al.'s original).

    Input (B, in_channels, H, W), H and W multiples of 4 and at least 8 (the residual blocks'
    reflection padding needs maps of 2 px); output (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_width: int = 64,
        num_blocks: int = 9,
        norm: Norm = "instance",
    ) -> None:
        check_positive(base_width, "base_width")
        check_positive(num_blocks, "num_blocks", minimum=0)
        super().__init__(in_channels, total_stride=4, min_size=8)
        bias = norm == "none"
        width = base_width
        layers: list[nn.Module] = [
            conv_norm_act(in_channels, width, 7, norm=norm, padding_mode="reflect")]
        for _ in range(2):
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=bias),
                       norm_layer(norm, 2 * width), nn.ReLU(inplace=True)]
            width *= 2
        layers += [ResidualBlock(width, norm) for _ in range(num_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       norm_layer(norm, width // 2), nn.ReLU(inplace=True)]
            width //= 2
        layers.append(PaddedConv2d(width, out_channels, 7, padding_mode="reflect"))
        self.layers = nn.Sequential(*layers)

    def forward(self, image: Tensor) -> Tensor:
        """Map ``image`` (B, in_channels, H, W) to (B, out_channels, H, W)."""
        self.check_image(image)
        return self.layers(image)


class SegmentationResNet(ResNetGenerator):
    """Johnson et al.'s ResNet as a segmentation network: ``num_classes`` logits per pixel.

    Another architecture family than the UNets (no skip connections across scales; residual blocks
    at a quarter of the resolution), for the studies' independent scorers: a scorer of the UNet
    family, like the segmentation UNet inside a task loss, would share that network's inductive
    biases, so a loss that fools one UNet could fool its sibling (issue 20). Batch norm, as Johnson
    et al.'s original, since segmentation logits should not be normalised per image.

    Args:
        in_channels: channels of the input image.
        num_classes: classes (output channels, logits).
        base_width: channels of the stem; 2x and 4x after the downsamplings.
        num_blocks: residual blocks.

    Input (B, in_channels, H, W), H and W multiples of 4 and at least 8; output (B, num_classes, H, W).

    Examples:
        >>> import torch
        >>> SegmentationResNet(num_classes=3, base_width=4, num_blocks=1)(torch.zeros(2, 1, 16, 12)).shape
        torch.Size([2, 3, 16, 12])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_width: int = 16, num_blocks: int = 4) -> None:
        super().__init__(in_channels, num_classes, base_width, num_blocks, norm="batch")
