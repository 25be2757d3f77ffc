"""AlexNet's convolutional part in torchvision's state-dict layout, with named layers (the LPIPS-Alex backbone).

The layers are those of ``torchvision.models.alexnet().features`` (Krizhevsky 2014, "One weird trick", the
single-tower variant torchvision trains; 5 convolutions with ReLU, 3 overlapping 3x3 stride-2 max pools),
numbered as there, so torchvision's checkpoint ``alexnet-owt-7be5be79.pth`` loads unchanged (its
``classifier.*`` keys are ignored). Defined here because torchvision cannot be installed beside this
project's torch build.

Layer names: ``convN`` is the activation after the N-th convolution *and its ReLU* (``reluN`` is an alias,
the names of LPIPS's taps); ``pool1``, ``pool2`` and ``pool5`` are the outputs of the pooling layers after
conv1, conv2 and conv5. Input: RGB in [0, 1] normalised by the ImageNet mean and std
(:data:`taskloss.features.base.IMAGENET_INPUT`).

Minimum sizes (exact, :func:`taskloss.features.base.minimum_input_sizes`): conv1 needs 7 x 7 pixels, pool1 and
conv2 15, pool2 and conv3-conv5 31, pool5 63.
"""

import math
import os
from typing import Literal

import torch
from torch import nn

from taskloss.errors import InputError
from taskloss.features.base import IMAGENET_INPUT, SequentialFeatureExtractor
from taskloss.features.weights import ALEXNET_WEIGHTS, load_torchvision_features

Weights = Literal["imagenet", "random"]

# (out channels, kernel, stride, padding) of torchvision's AlexNet convolutions, and whether a
# 3x3 stride-2 max pool follows.
_CONVS = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (256, 3, 1, 1, False),
          (256, 3, 1, 1, True))


def _build() -> tuple[nn.Sequential, dict[str, int], dict[str, str]]:
    """Layers in torchvision's order, taps name -> index, and the ``relu`` aliases."""
    layers: list[nn.Module] = []
    taps: dict[str, int] = {}
    aliases: dict[str, str] = {}
    in_channels = 3
    for number, (width, kernel, stride, padding, pooled) in enumerate(_CONVS, start=1):
        # Left uninitialised: the weights are loaded or drawn below (the global RNG stays untouched).
        layers += [nn.utils.skip_init(nn.Conv2d, in_channels, width, kernel, stride=stride, padding=padding),
                   nn.ReLU(inplace=True)]
        taps[f"conv{number}"] = len(layers) - 1
        aliases[f"relu{number}"] = f"conv{number}"
        if pooled:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            taps[f"pool{number}"] = len(layers) - 1
        in_channels = width
    return nn.Sequential(*layers), taps, aliases


ALEXNET_LAYERS: tuple[str, ...] = tuple(_build()[1])
"""Every addressable layer, shallow to deep: conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5."""
LPIPS_ALEX_LAYERS: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5")
"""LPIPS-Alex's taps (``relu1`` ... ``relu5`` in the lpips package)."""


class AlexNetFeatures(SequentialFeatureExtractor):
    """AlexNet feature extractor (torchvision layout, ImageNet input convention).

    Args:
        weights: "imagenet" (torchvision's ``alexnet-owt-7be5be79.pth``, found as described in
            :mod:`taskloss.features.weights`: ``weights_path``, ``TASKLOSS_ALEXNET_WEIGHTS``, the torch
            hub cache) or "random" (PyTorch's default convolution initialisation, which torchvision's
            AlexNet keeps, drawn from a generator seeded by ``seed``).
        weights_path: explicit checkpoint file for "imagenet".
        seed: seed of the random weights.

    Raises:
        MissingWeightsError: for "imagenet" when the file is not found and cannot be downloaded.
        DataError: when the file is corrupt or not AlexNet's.

    Examples:
        >>> import torch
        >>> net = AlexNetFeatures("random")
        >>> net.min_input_size(["conv5"]), tuple(net(torch.zeros(1, 3, 31, 31), ["conv5"])["conv5"].shape)
        (31, (1, 256, 1, 1))
    """

    def __init__(self, weights: Weights = "imagenet", *, weights_path: str | os.PathLike[str] | None = None,
                 seed: int = 0) -> None:
        features, taps, aliases = _build()
        if weights == "imagenet":
            path = load_torchvision_features(features, ALEXNET_WEIGHTS, weights_path)
            source = f"ImageNet weights ({ALEXNET_WEIGHTS.file_name} at {path})"
        elif weights == "random":
            if weights_path is not None:
                raise InputError("weights_path is given but weights='random'; use "
                                 "weights='imagenet' to load the file, or drop weights_path")
            _init_random(features, seed)
            source = f"random weights (seed {seed})"
        else:
            raise InputError(f"weights={weights!r} is unknown; use 'imagenet' or 'random'")
        super().__init__(features, taps, input_spec=IMAGENET_INPUT, aliases=aliases,
                         description=f"AlexNet, {source}")


def _init_random(features: nn.Sequential, seed: int) -> None:
    """``nn.Conv2d.reset_parameters`` (the init torchvision's AlexNet keeps), from a private generator."""
    generator = torch.Generator().manual_seed(seed)
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(layer.weight[0].numel())
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
