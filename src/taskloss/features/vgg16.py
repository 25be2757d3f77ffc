"""VGG-16's convolutional part in torchvision's state-dict layout (the backbone of LPIPS-VGG and DISTS).

The layers are those of ``torchvision.models.vgg16().features`` (configuration "D" of Simonyan &
Zisserman: 13 3x3 convolutions with ReLU, 5 pooling layers), numbered as there, so torchvision's
checkpoint ``vgg16-397923af.pth`` loads unchanged (its ``classifier.*`` keys are ignored).

Layer names as for VGG-19 (:mod:`taskloss.features.vgg`): ``convB_N`` after the N-th convolution of block
B and its ReLU (alias ``reluB_N``), ``poolB`` after block B's pooling layer. Pooling: "max" (torchvision),
"avg", or "l2", the Hanning-window L2 pooling that DISTS (Ding et al. 2020) puts in place of the max pools
pool1-pool4 (:class:`L2Pooling`; DISTS stops at conv5_3, pool5 is L2 pooling here too; the ImageNet weights
are used unchanged, as DISTS does). Input: RGB in [0, 1] normalised by the ImageNet mean and std.
"""

import os
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taskloss.errors import InputError
from taskloss.features.base import IMAGENET_INPUT, SequentialFeatureExtractor
from taskloss.features.vgg import build_vgg_layers, init_vgg_random
from taskloss.features.weights import VGG16_WEIGHTS, load_torchvision_features

Weights = Literal["imagenet", "random"]
VGG16Pooling = Literal["max", "avg", "l2"]

VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
"""Output channels of each block's convolutions (configuration "D")."""

L2_POOLING_WINDOW = 5
"""DISTS's L2 pooling: ``numpy.hanning(5)[1:-1]`` = (0.5, 1, 0.5), outer product, normalised to sum 1 (3 x 3)."""
L2_POOLING_STRIDE = 2
L2_POOLING_PADDING = (L2_POOLING_WINDOW - 2) // 2
"""1, as in DISTS (``padding = (filter_size - 2) // 2``)."""
L2_POOLING_EPS = 1e-12
"""Added under DISTS's square root (``sqrt(conv(x^2) + 1e-12)``), which keeps its gradient finite at 0."""


class L2Pooling(nn.Module):
    """DISTS's L2 pooling: ``sqrt(hanning_3x3 * x^2 + 1e-12)``, depthwise, stride 2, padding 1.

    Written after DISTS_pytorch's ``L2pooling`` (Ding et al. 2020, MIT licence; torchmetrics has the same
    code), which no installable package exposes without torchvision. The filter is a non-persistent
    buffer, so the state dict keeps torchvision's keys.

    Args:
        channels: number of channels of the input (the filter is applied to each on its own).
    """

    kernel_size = 3
    stride = L2_POOLING_STRIDE
    padding = L2_POOLING_PADDING
    dilation = 1

    def __init__(self, channels: int) -> None:
        super().__init__()
        window = np.hanning(L2_POOLING_WINDOW)[1:-1]
        kernel = torch.tensor(np.outer(window, window) / np.outer(window, window).sum(), dtype=torch.float32)
        self.channels = channels
        self.register_buffer("filter", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, channels, H, W) -> (N, channels, ceil(H / 2), ceil(W / 2))."""
        pooled = F.conv2d(x.square(), self.filter, stride=self.stride, padding=self.padding, groups=self.channels)
        return (pooled + L2_POOLING_EPS).sqrt()

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def _build_vgg16(pooling: VGG16Pooling) -> tuple[nn.Sequential, dict[str, int], dict[str, str]]:
    if pooling not in ("max", "avg", "l2"):
        raise InputError(f"pooling={pooling!r} is unknown; use 'max' (torchvision's VGG-16), 'avg', or 'l2' "
                         "(DISTS's L2 pooling)")
    features, taps, aliases = build_vgg_layers("avg" if pooling == "avg" else "max", VGG16_BLOCKS)
    if pooling == "l2":
        for block, widths in enumerate(VGG16_BLOCKS, start=1):
            features[taps[f"pool{block}"]] = L2Pooling(widths[-1])
    return features, taps, aliases


VGG16_LAYERS: tuple[str, ...] = tuple(_build_vgg16("max")[1])
"""Every addressable layer, shallow to deep: conv1_1, conv1_2, pool1, ..., conv5_3, pool5."""
LPIPS_VGG_LAYERS: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
"""LPIPS-VGG's and DISTS's taps (``relu1_2`` ... ``relu5_3`` there), the last ReLU of each block."""


class VGG16Features(SequentialFeatureExtractor):
    """VGG-16 feature extractor (torchvision layout, ImageNet input convention).

    Args:
        weights: "imagenet" (torchvision's ``vgg16-397923af.pth``, found as described in
            :mod:`taskloss.features.weights`: ``weights_path``, ``TASKLOSS_VGG16_WEIGHTS``, the torch hub
            cache) or "random" (Kaiming-normal convolutions as torchvision initialises them, zero biases,
            drawn from a generator seeded by ``seed``).
        weights_path: explicit checkpoint file for "imagenet".
        pooling: "max" (torchvision; LPIPS-VGG), "avg", or "l2" (DISTS).
        seed: seed of the random weights.

    Raises:
        MissingWeightsError: for "imagenet" when the file is not found and cannot be downloaded.
        DataError: when the file is corrupt or not VGG-16's.

    Examples:
        >>> import torch
        >>> net = VGG16Features("random", pooling="l2")
        >>> tuple(net(torch.zeros(1, 3, 20, 20), ["conv5_3"])["conv5_3"].shape)
        (1, 512, 2, 2)
    """

    def __init__(self, weights: Weights = "imagenet", *, weights_path: str | os.PathLike[str] | None = None,
                 pooling: VGG16Pooling = "max", seed: int = 0) -> None:
        features, taps, aliases = _build_vgg16(pooling)
        if weights == "imagenet":
            path = load_torchvision_features(features, VGG16_WEIGHTS, weights_path)
            source = f"ImageNet weights ({VGG16_WEIGHTS.file_name} at {path})"
        elif weights == "random":
            if weights_path is not None:
                raise InputError("weights_path is given but weights='random'; use "
                                 "weights='imagenet' to load the file, or drop weights_path")
            init_vgg_random(features, seed)
            source = f"random weights (seed {seed})"
        else:
            raise InputError(f"weights={weights!r} is unknown; use 'imagenet' or 'random'")
        super().__init__(features, taps, input_spec=IMAGENET_INPUT, aliases=aliases,
                         description=f"VGG-16 ({pooling} pooling), {source}")
