"""Create networks by name: a registry over the explicit network classes (as timm's ``create_model``).

Each entry names a class and the settings that make it the published network;
``create_network(name, **kwargs)`` overrides any of them, e.g.
``create_network("unet", widths=(16, 32, 64, 128, 256))`` for a small U-Net.
"""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from taskloss.errors import ConfigError
from taskloss.networks.base import Network
from taskloss.networks.cascade import RecNet
from taskloss.networks.crn import CRN, CRN_PRESETS
from taskloss.networks.dagan import DAGANGenerator
from taskloss.networks.discriminators import DAGANDiscriminator, PatchDiscriminator
from taskloss.networks.refine import VisualRefinement
from taskloss.networks.resnet import ResNetGenerator, SegmentationResNet
from taskloss.networks.unet import RefinementUNet, SegmentationUNet, UNet

Role = Literal["generator", "reconstruction", "refinement", "discriminator", "segmentation"]


@dataclass(frozen=True)
class NetworkEntry:
    """One registered network.

    Attributes:
        cls: the network class.
        defaults: constructor arguments that make the class this network (overridable).
        role: what the network does in the studies.
        study: the study that uses it, ``"mr2xray"`` or ``"csmri"``.
        image_size: the square image size its defaults are meant for (used for the cost table).
        description: one line for listings and docs.
    """

    cls: Callable[..., Network]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    role: Role = "generator"
    study: str = "mr2xray"
    image_size: int = 256
    description: str = ""


_RECNET_D5C5 = {"num_blocks": 5, "num_convs": 5, "width": 64, "negative_slope": 0.0, "residual": True}

NETWORKS: Mapping[str, NetworkEntry] = MappingProxyType({
    "crn_64": NetworkEntry(CRN, {"channels": CRN_PRESETS[64]}, image_size=64,
                           description="Cascaded refinement network, Chen & Koltun 2017 (64 px preset)"),
    "crn_128": NetworkEntry(CRN, {"channels": CRN_PRESETS[128]}, image_size=128,
                            description="Cascaded refinement network (128 px preset)"),
    "crn_256": NetworkEntry(CRN, {"channels": CRN_PRESETS[256]},
                            description="Cascaded refinement network (256 px preset)"),
    "unet": NetworkEntry(UNet, description="U-Net, Ronneberger et al. 2015, 4 downsamplings"),
    "resnet": NetworkEntry(ResNetGenerator,
                           description="ResNet generator, Johnson et al. 2016, 9 residual blocks"),
    "recnet": NetworkEntry(RecNet, role="reconstruction", study="csmri",
                           description="Deep cascade with data consistency, Seitzer et al. 2018 "
                                       "(3 blocks x 32 filters)"),
    "recnet_d5c5": NetworkEntry(RecNet, _RECNET_D5C5, role="reconstruction", study="csmri",
                                description="Deep cascade D5-C5, Schlemper et al. 2018"),
    "refinement_unet": NetworkEntry(RefinementUNet, role="refinement", study="csmri",
                                    description="Refinement U-Net u = UNet(R(x)), Seitzer et al. 2018"),
    "visual_refinement": NetworkEntry(VisualRefinement, role="refinement", study="csmri",
                                      description="V = R(x) + s u with frozen RecNet, Seitzer et al. "
                                                  "2018"),
    "patch_discriminator": NetworkEntry(PatchDiscriminator, role="discriminator", study="csmri",
                                        description="PatchGAN discriminator, Seitzer et al. 2018"),
    "dagan_generator": NetworkEntry(DAGANGenerator, study="csmri",
                                    description="DAGAN U-Net generator with residual output, "
                                                "Yang et al. 2018"),
    "dagan_discriminator": NetworkEntry(DAGANDiscriminator, role="discriminator", study="csmri",
                                        description="DAGAN discriminator, Yang et al. 2018"),
    "segmentation_unet": NetworkEntry(SegmentationUNet, role="segmentation", study="csmri",
                                      image_size=96,
                                      description="Small lesion-segmentation U-Net for the SIS score"),
    "segmentation_resnet": NetworkEntry(SegmentationResNet, role="segmentation", study="csmri", image_size=96,
                                        description="Johnson et al.'s ResNet as a segmenter: the independent "
                                                    "scorers, of another family than the UNets"),
})
"""Every registered network by name (read-only)."""


def list_networks(study: str | None = None, role: Role | None = None) -> list[str]:
    """Names of the registered networks, sorted, optionally only those of one study and/or role."""
    return sorted(name for name, entry in NETWORKS.items()
                  if (study is None or entry.study == study) and (role is None or entry.role == role))


def network_entry(name: str) -> NetworkEntry:
    """The registry entry of ``name``; raises :class:`ConfigError` listing the names if unknown."""
    if name not in NETWORKS:
        raise ConfigError(f"unknown network {name!r}; choose one of {', '.join(list_networks())}")
    return NETWORKS[name]


def create_network(name: str, **kwargs: Any) -> Network:
    """Build the registered network ``name`` with its defaults, overridden by ``kwargs``.

    Args:
        name: a name of :func:`list_networks`.
        kwargs: constructor arguments of the network's class.

    Returns:
        The new network, in training mode, on the CPU, in float32.

    Raises:
        ConfigError: for an unknown name, an argument the class does not take (the message lists
            those it takes) or an invalid value.
    """
    entry = network_entry(name)
    parameters = inspect.signature(entry.cls).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        raise ConfigError(f"network {name!r} takes no argument {', '.join(map(repr, unknown))}; "
                          f"it takes {', '.join(parameters)}")
    return entry.cls(**{**entry.defaults, **kwargs})


def _registered(name: str) -> str:
    if name not in NETWORKS:
        raise PydanticCustomError("unknown_network", "unknown network {name}; choose one of {choices}",
                                  {"name": repr(name), "choices": ", ".join(list_networks())})
    return name


NetworkName = Annotated[str, AfterValidator(_registered)]
"""A name of :data:`NETWORKS`, as a configuration field (an unknown name lists the registered ones)."""
