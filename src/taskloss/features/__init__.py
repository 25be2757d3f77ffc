"""Perception networks for feature-space losses.

:class:`FeatureNetwork` is the contract a network satisfies to be used by
:class:`taskloss.losses.PerceptualLoss`; :class:`SequentialFeatureExtractor` implements it for
VGG-style networks; :class:`VGG19Features` is VGG-19 in torchvision's layout, with ImageNet weights
found offline first (:func:`resolve_vgg19_weights`) or seeded random weights.
"""

from taskloss.features.base import (
    IMAGENET_INPUT,
    FeatureNetwork,
    InputSpec,
    SequentialFeatureExtractor,
    prepare_input,
)
from taskloss.features.vgg import VGG19_LAYERS, VGG19Features
from taskloss.features.weights import (
    VGG19_FILE_NAME,
    VGG19_URL,
    WEIGHTS_ENV,
    hub_cache_path,
    resolve_vgg19_weights,
)

__all__ = [
    "IMAGENET_INPUT",
    "VGG19_FILE_NAME",
    "VGG19_LAYERS",
    "VGG19_URL",
    "WEIGHTS_ENV",
    "FeatureNetwork",
    "InputSpec",
    "SequentialFeatureExtractor",
    "VGG19Features",
    "hub_cache_path",
    "prepare_input",
    "resolve_vgg19_weights",
]
