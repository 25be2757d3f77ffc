"""Cascaded refinement network (Chen & Koltun 2017) with an image in place of the semantic layout.

A cascade of refinement modules, each at twice the resolution of the one before. The first works
at the coarsest scale on the input downsampled by area averaging; every later one takes the
previous module's features, upsampled bilinearly, concatenated with the input downsampled to its
own scale. A module is 2 x [3x3 convolution, layer norm over (C, H, W) of each sample with a
per-channel scale and shift, LeakyReLU(0.2)]; a linear 1x1 convolution maps the last module's
features to the output. As in the authors' TensorFlow code the convolutions before a layer norm
have no bias and the bilinear upsampling aligns corners.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskloss.networks.base import Network
from taskloss.networks.layers import check_widths, conv_norm_act

CRN_PRESETS: dict[int, tuple[int, ...]] = {
    64: (128, 128, 128, 64, 32),
    128: (256, 256, 256, 128, 64, 32),
    256: (512, 512, 512, 512, 256, 128, 64),
}
"""Channel schedules (coarsest module first) for square images of 64, 128 and 256 px.

Each starts at 4 x 4 px, as Chen & Koltun's 4 x 8 for 256 x 512 photographs, so the total stride is
size / 4. Their schedule (1024 channels at low resolution, 512 from 128 px up, 128 and 32 at the
top of the 1024 px model) is scaled down for single-channel medical images: the top module has 32
(64 for 256 px) channels, doubling towards coarser scales up to a cap of 128, 256 and 512.
Our choice, not the paper's: the MR -> X-ray study's network sizes are not published.
"""


def area_pyramid(image: Tensor, levels: int) -> list[Tensor]:
    """The image and its area-downsampled versions, finest first.

    Level k is the mean of every 2^k x 2^k block (TensorFlow's ``resize_area`` for integer
    factors). Computed by repeated 2 x 2 average pooling, which gives the same block means because
    the blocks are nested and of equal size, at a quarter of the cost of pooling from the full
    image at every level.

    Args:
        image: (B, C, H, W) with H and W multiples of 2^(levels - 1).
        levels: number of scales, >= 1.

    Returns:
        ``levels`` tensors, level k of shape (B, C, H / 2^k, W / 2^k).
    """
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2))
    return pyramid


class CRN(Network):
    """Cascaded refinement network for image-to-image synthesis (1 channel in and out by default).

    Args:
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        channels: feature channels of each refinement module, coarsest first; n modules give a
            total stride of 2^(n - 1). See :data:`CRN_PRESETS` (the default is the 256 px one).
        negative_slope: slope of the LeakyReLU.

    Input (B, in_channels, H, W), H and W multiples of the total stride; output
    (B, out_channels, H, W), linear (no output activation).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = CRN_PRESETS[256],
        negative_slope: float = 0.2,
    ) -> None:
        schedule = check_widths(channels, "channels")
        super().__init__(in_channels, total_stride=2 ** (len(schedule) - 1))
        self.refinement_modules = nn.ModuleList()
        previous = 0
        for width in schedule:
            self.refinement_modules.append(nn.Sequential(
                conv_norm_act(previous + in_channels, width, 3, norm="layer",
                              negative_slope=negative_slope),
                conv_norm_act(width, width, 3, norm="layer", negative_slope=negative_slope),
            ))
            previous = width
        self.head = nn.Conv2d(previous, out_channels, kernel_size=1)

    def forward(self, image: Tensor) -> Tensor:
        """Map ``image`` (B, in_channels, H, W) to (B, out_channels, H, W)."""
        self.check_image(image)
        coarse_to_fine = area_pyramid(image, len(self.refinement_modules))[::-1]
        features = self.refinement_modules[0](coarse_to_fine[0])
        for module, scaled_input in zip(self.refinement_modules[1:], coarse_to_fine[1:], strict=True):
            upsampled = F.interpolate(features, scale_factor=2, mode="bilinear", align_corners=True)
            features = module(torch.cat([upsampled, scaled_input], dim=1))
        return self.head(features)
