"""Which perception network a study's perceptual loss uses, and how it is described in reports.

``"auto"`` takes ImageNet VGG-19 when its weights can be found (or downloaded; see
:func:`taskloss.features.resolve_vgg19_weights`) and otherwise the domain network shipped with
taskloss (:mod:`taskloss.features.domain`), trained on the simulator's tissue labels. Every report
says which one was used.
"""

import warnings
from typing import Literal

from taskloss.errors import MissingWeightsError
from taskloss.features import VGG19Features
from taskloss.features.base import FeatureNetwork
from taskloss.features.domain import DOMAIN_LAYERS, load_domain_network
from taskloss.losses.perceptual import CRN_LAYERS

PerceptionChoice = Literal["auto", "vgg19", "domain"]


def perception_network(choice: PerceptionChoice, weights_path: str | None = None
                       ) -> tuple[FeatureNetwork, tuple[str, ...]]:
    """The network and its default layer set (CRN's conv1_2 ... conv5_2 for VGG-19).

    Args:
        choice: "vgg19" (ImageNet weights required), "domain", or "auto" (VGG-19 if its weights
            are available, else the domain network, with a warning).
        weights_path: explicit VGG-19 checkpoint file.

    Raises:
        MissingWeightsError: for "vgg19" without reachable weights.
    """
    if choice == "domain":
        return load_domain_network(), DOMAIN_LAYERS
    try:
        return VGG19Features(weights="imagenet", weights_path=weights_path), CRN_LAYERS
    except MissingWeightsError:
        if choice == "vgg19":
            raise
        warnings.warn("ImageNet VGG-19 weights are not available; the perceptual loss uses taskloss's "
                      "domain perception network instead (reports say so)", stacklevel=2)
        return load_domain_network(), DOMAIN_LAYERS
