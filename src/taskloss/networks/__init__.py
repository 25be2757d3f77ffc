"""Networks of the two studies, by class or by name through :func:`create_network`.

MR -> X-ray generators (1 channel in and out): :class:`CRN`, :class:`UNet`,
:class:`ResNetGenerator`. CS-MRI: :class:`RecNet` (stage 1), :class:`VisualRefinement` with its
:class:`RefinementUNet` and the :class:`PatchDiscriminator` (stage 2), :class:`DAGANGenerator` and
:class:`DAGANDiscriminator` (baseline), :class:`SegmentationUNet` (SIS score) and
:class:`SegmentationResNet` (the independent scorers). Every network
declares its ``total_stride`` and the input sizes it accepts, and rejects others with an
:class:`~taskloss.errors.InputError` naming the nearest valid sizes. Parameter counts and FLOPs:
``python -m taskloss.networks.summary`` (also in ``docs/networks.md``).
"""

from taskloss.networks.base import Network
from taskloss.networks.cascade import RecNet
from taskloss.networks.crn import CRN, CRN_PRESETS, area_pyramid
from taskloss.networks.dagan import DAGANGenerator
from taskloss.networks.discriminators import DAGANDiscriminator, PatchDiscriminator
from taskloss.networks.factory import NETWORKS, NetworkEntry, create_network, list_networks, network_entry
from taskloss.networks.refine import RefinementOutput, VisualRefinement
from taskloss.networks.resnet import ResNetGenerator, SegmentationResNet
from taskloss.networks.unet import RefinementUNet, SegmentationUNet, UNet

__all__ = [
    "CRN",
    "CRN_PRESETS",
    "NETWORKS",
    "DAGANDiscriminator",
    "DAGANGenerator",
    "Network",
    "NetworkEntry",
    "PatchDiscriminator",
    "RecNet",
    "RefinementOutput",
    "RefinementUNet",
    "ResNetGenerator",
    "SegmentationResNet",
    "SegmentationUNet",
    "UNet",
    "VisualRefinement",
    "area_pyramid",
    "create_network",
    "list_networks",
    "network_entry",
]
