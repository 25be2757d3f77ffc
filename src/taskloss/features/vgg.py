"""VGG-19's convolutional part in torchvision's state-dict layout, with named layers.

The layers are those of ``torchvision.models.vgg19().features`` (configuration "E": 16 3x3
convolutions with ReLU, 5 pooling layers), numbered as there, so torchvision's checkpoint
``vgg19-dcbb9e9d.pth`` loads unchanged (its ``classifier.*`` keys are ignored). It is defined here
because torchvision cannot be installed beside this project's torch build.

Layer names: ``convB_N`` is the activation after the N-th convolution of block B *and its ReLU*
(``reluB_N`` is an alias), as in Chen & Koltun's perceptual loss; ``poolB`` is the output of
block B's pooling layer. The input is RGB in [0, 1] normalised by the ImageNet mean and std
(:data:`taskloss.features.base.IMAGENET_INPUT`).
"""

import os
from typing import Literal

import torch
from torch import nn

from taskloss.errors import InputError
from taskloss.features.base import IMAGENET_INPUT, SequentialFeatureExtractor
from taskloss.features.weights import (
    VGG19_FILE_NAME,
    load_features_state_dict,
    resolve_vgg19_weights,
)

Weights = Literal["imagenet", "random"]
Pooling = Literal["max", "avg"]

# Output channels of each block's convolutions (configuration "E" of Simonyan & Zisserman).
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def build_vgg_layers(pooling: Pooling, blocks: tuple[tuple[int, ...], ...] = _BLOCKS,
                     ) -> tuple[nn.Sequential, dict[str, int], dict[str, str]]:
    """Layers in torchvision's order, taps name -> index, and the ``relu`` aliases (VGG-19, or ``blocks``)."""
    if pooling not in ("max", "avg"):
        raise InputError(f"pooling={pooling!r} is unknown; use 'max' (torchvision's VGG-19) or "
                         "'avg' (Chen & Koltun's choice)")
    layers: list[nn.Module] = []
    taps: dict[str, int] = {}
    aliases: dict[str, str] = {}
    in_channels = 3
    for block, widths in enumerate(blocks, start=1):
        for number, width in enumerate(widths, start=1):
            # Left uninitialised: the weights are loaded or drawn below (the global RNG stays untouched).
            conv = nn.utils.skip_init(nn.Conv2d, in_channels, width, kernel_size=3, padding=1)
            # In place, as torchvision: the convolution's output is not needed for backward, so
            # overwriting it saves one activation map per layer.
            layers += [conv, nn.ReLU(inplace=True)]
            taps[f"conv{block}_{number}"] = len(layers) - 1
            aliases[f"relu{block}_{number}"] = f"conv{block}_{number}"
            in_channels = width
        layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        taps[f"pool{block}"] = len(layers) - 1
    return nn.Sequential(*layers), taps, aliases


VGG19_LAYERS: tuple[str, ...] = tuple(build_vgg_layers("max")[1])
"""Every addressable layer, shallow to deep: conv1_1, conv1_2, pool1, ..., conv5_4, pool5."""
CRN_LAYERS: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
"""Chen & Koltun's layers (activations after the ReLU of these convolutions)."""


class VGG19Features(SequentialFeatureExtractor):
    """VGG-19 feature extractor (torchvision layout, ImageNet input convention).

    Args:
        weights: "imagenet" (torchvision's checkpoint, found as described in
            :mod:`taskloss.features.weights`) or "random" (Kaiming-normal convolutions as
            torchvision initialises them, zero biases, drawn from a generator seeded by ``seed``).
        weights_path: explicit checkpoint file for "imagenet".
        pooling: "max" (torchvision) or "avg" (Chen & Koltun replace max by average pooling; the
            ImageNet weights are used unchanged).
        seed: seed of the random weights.

    Raises:
        MissingWeightsError: for "imagenet" when the file is not found and cannot be downloaded.
        DataError: when the file is corrupt or not VGG-19.
    """

    def __init__(
        self,
        weights: Weights = "imagenet",
        *,
        weights_path: str | os.PathLike[str] | None = None,
        pooling: Pooling = "max",
        seed: int = 0,
    ) -> None:
        features, taps, aliases = build_vgg_layers(pooling)
        if weights == "imagenet":
            path = resolve_vgg19_weights(weights_path)
            expected = {f"features.{key}": value.shape for key, value in features.state_dict().items()}
            state = load_features_state_dict(path, expected)
            features.load_state_dict({key.removeprefix("features."): value
                                      for key, value in state.items()})
            source = f"ImageNet weights ({VGG19_FILE_NAME} at {path})"
        elif weights == "random":
            if weights_path is not None:
                raise InputError("weights_path is given but weights='random'; use "
                                 "weights='imagenet' to load the file, or drop weights_path")
            init_vgg_random(features, seed)
            source = f"random weights (seed {seed})"
        else:
            raise InputError(f"weights={weights!r} is unknown; use 'imagenet' or 'random'")
        super().__init__(features, taps, input_spec=IMAGENET_INPUT, aliases=aliases,
                         description=f"VGG-19 ({pooling} pooling), {source}")


def init_vgg_random(features: nn.Sequential, seed: int) -> None:
    """torchvision's VGG initialisation, drawn from a private generator (global RNG untouched)."""
    generator = torch.Generator().manual_seed(seed)
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu",
                                    generator=generator)
            nn.init.zeros_(layer.bias)
