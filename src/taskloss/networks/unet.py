"""U-Nets: the MR -> X-ray generator, Seitzer et al.'s refinement network and the SIS segmenter.

One configurable :class:`UNet` (Ronneberger et al. 2015 with "same" padding): an encoder of
``len(widths)`` scales, each ``convs_per_scale`` x [conv, norm, (leaky) ReLU], separated by 2 x 2
max pooling; a decoder that upsamples, concatenates the encoder features of the same scale (skip
first) and applies ``convs_per_scale`` convolutions again; a 1 x 1 linear head. The decoder width at
each scale equals the encoder width there. :class:`RefinementUNet` and :class:`SegmentationUNet`
are the same network with the settings of their use. With ``spatial_dims=3`` :class:`UNet` and
:class:`SegmentationUNet` are the 3-D U-Net of Çiçek et al. (2016): the same layout on volumes
(B, C, D, H, W) with 3 x 3 x 3 convolutions, 2 x 2 x 2 max pooling and transposed convolutions.
"""

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskloss.networks.base import Network
from taskloss.networks.layers import (
    Norm,
    PaddingMode,
    check_choice,
    check_positive,
    check_widths,
    conv_norm_act,
)

Upsampling = Literal["transposed", "nearest"]


class UNet(Network):
    """U-Net with ``len(widths) - 1`` downsamplings (default: 4, Ronneberger et al.'s five scales).

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output (linear; no output activation).
        widths: encoder channels at each scale, finest first; the total stride is
            2^(len(widths) - 1).
        convs_per_scale: convolutions per scale in the encoder and the decoder.
        kernel_size: kernel size of those convolutions ("same" padded; even sizes allowed).
        norm: normalisation after each convolution (see :func:`~taskloss.networks.layers.norm_layer`).
        negative_slope: 0 for ReLU, else the LeakyReLU slope.
        padding_mode: ``"zeros"`` or ``"reflect"``.
        upsampling: ``"transposed"`` (2 x 2 transposed convolution of stride 2, Ronneberger et al.)
            or ``"nearest"`` (nearest-neighbour 2x, then conv, norm, activation: resize-convolution,
            free of checkerboard artefacts, as Seitzer et al.).
        spatial_dims: 2 (images) or 3 (volumes; odd kernel sizes only).

    Input (B, in_channels, H, W), H and W multiples of the total stride (and, with reflection
    padding, large enough that the coarsest maps exceed the padding); output (B, out_channels, H, W).
    With ``spatial_dims=3``: (B, in_channels, D, H, W) -> (B, out_channels, D, H, W), D, H and W alike.

    Examples:
        >>> import torch
        >>> net = UNet(1, 2, widths=(4, 8), spatial_dims=3)
        >>> net(torch.zeros(1, 1, 4, 6, 8)).shape
        torch.Size([1, 2, 4, 6, 8])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        widths: Sequence[int] = (64, 128, 256, 512, 1024),
        *,
        convs_per_scale: int = 2,
        kernel_size: int = 3,
        norm: Norm = "batch",
        negative_slope: float = 0.0,
        padding_mode: PaddingMode = "zeros",
        upsampling: Upsampling = "transposed",
        spatial_dims: int = 2,
    ) -> None:
        scales = check_widths(widths, "widths", min_length=2)
        check_positive(convs_per_scale, "convs_per_scale")
        check_positive(kernel_size, "kernel_size")
        check_choice(upsampling, "upsampling", ("transposed", "nearest"))
        check_choice(spatial_dims, "spatial_dims", (2, 3))
        stride = 2 ** (len(scales) - 1)
        # Reflection padding needs maps larger than the pad: (k - 1) - (k - 1) // 2 on the far side.
        coarsest = (kernel_size - 1) - (kernel_size - 1) // 2 + 1 if padding_mode == "reflect" else 1
        super().__init__(in_channels, total_stride=stride, min_size=stride * coarsest, spatial_dims=spatial_dims)
        transposed = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(*(
                conv_norm_act(cin if i == 0 else cout, cout, kernel_size, norm=norm,
                              negative_slope=negative_slope, padding_mode=padding_mode, spatial_dims=spatial_dims)
                for i in range(convs_per_scale)))

        self.encoder = nn.ModuleList(
            stage(cin, cout) for cin, cout in zip((in_channels, *scales[:-1]), scales, strict=True))
        self.upsamplers = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for coarse, fine in zip(scales[:0:-1], scales[-2::-1], strict=True):
            if upsampling == "transposed":
                self.upsamplers.append(transposed(coarse, fine, kernel_size=2, stride=2))
            else:
                self.upsamplers.append(nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    conv_norm_act(coarse, fine, kernel_size, norm=norm, negative_slope=negative_slope,
                                  padding_mode=padding_mode, spatial_dims=spatial_dims)))
            self.decoder.append(stage(2 * fine, fine))
        self.head = (nn.Conv2d if spatial_dims == 2 else nn.Conv3d)(scales[0], out_channels, kernel_size=1)

    def forward(self, image: Tensor) -> Tensor:
        """Map ``image`` (B, in_channels, H, W) to (B, out_channels, H, W) (volumes alike in 3-D)."""
        self.check_image(image)
        pool = F.max_pool2d if self.spatial_dims == 2 else F.max_pool3d
        skips = []
        x = image
        for level, stage in enumerate(self.encoder):
            x = stage(x if level == 0 else pool(x, 2))
            skips.append(x)
        skips.pop()  # the coarsest features feed the decoder directly
        for upsample, stage in zip(self.upsamplers, self.decoder, strict=True):
            x = stage(torch.cat([skips.pop(), upsample(x)], dim=1))
        return self.head(x)


class RefinementUNet(UNet):
    """Seitzer et al.'s refinement network: u = UNet(R(x)) from the 2-channel RecNet output.

    Encoder [32, 64, 128], 2 convolutions per scale, BatchNorm, LeakyReLU(0.1), max pooling; decoder
    [64, 32] with nearest-neighbour resize-convolutions; 1 x 1 head to one channel (the update of the
    real part). As their released configuration: 4 x 4 kernels with reflection padding and
    orthogonal initialisation of the convolutions (gain of ReLU). Total stride 4; with 4 x 4
    reflection-padded kernels the coarsest maps need 3 px, so the smallest input is 12 x 12.

    Args:
        in_channels: channels of the input (2: real, imaginary).
        out_channels: channels of u.
        widths: encoder channels per scale, finest first.
        kernel_size: convolution kernel size.
        negative_slope: LeakyReLU slope.
        padding_mode: ``"reflect"`` (theirs) or ``"zeros"``.
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 1,
        widths: Sequence[int] = (32, 64, 128),
        *,
        kernel_size: int = 4,
        negative_slope: float = 0.1,
        padding_mode: PaddingMode = "reflect",
    ) -> None:
        super().__init__(in_channels, out_channels, widths, convs_per_scale=2, kernel_size=kernel_size,
                         norm="batch", negative_slope=negative_slope, padding_mode=padding_mode,
                         upsampling="nearest")
        gain = nn.init.calculate_gain("relu")
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.orthogonal_(layer.weight, gain=gain)


class SegmentationUNet(UNet):
    """Small U-Net that segments a lesion for the semantic interpretability score (SIS).

    Returns per-pixel logits of (background, lesion) by default; train it with cross-entropy on
    ground-truth magnitude images. Three downsamplings of 8 to 64 channels (121 k parameters): 200
    Adam steps of 16 images take about 25 s of one CPU core at 64 px and 55 s at 96 px, enough for a
    lesion Dice above 0.98 on a synthetic ring-and-lesion task (measured by hand).

    With ``spatial_dims=3`` it is the same network in 3-D (Çiçek et al. 2016), a volume segmenter
    for :class:`taskloss.losses.TaskLoss` with ``spatial_dims=3``.

    Args:
        in_channels: channels of the input (1: magnitude image).
        num_classes: output channels (class logits).
        widths: encoder channels per scale, finest first.
        spatial_dims: 2 (images) or 3 (volumes).

    Examples:
        >>> import torch
        >>> segmenter = SegmentationUNet(widths=(4, 8), spatial_dims=3)
        >>> segmenter(torch.zeros(2, 1, 6, 4, 8)).shape
        torch.Size([2, 2, 6, 4, 8])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: Sequence[int] = (8, 16, 32, 64),
        *,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__(in_channels, num_classes, widths, spatial_dims=spatial_dims)
