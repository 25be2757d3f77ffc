"""The feature-network registry: names, defaults, argument checks, and PerceptualLoss by name."""

import pytest
import torch

from taskloss.errors import ConfigError
from taskloss.features import (
    FEATURE_NETWORKS,
    FeatureNetwork,
    feature_network_entry,
    list_feature_networks,
    load_feature_network,
)
from taskloss.features.base import resolve_layers
from taskloss.losses import PerceptualLoss

# Arguments that build each registered network offline without any file.
OFFLINE = {
    "domain": {},
    "vgg19": {"weights": "random"},
    "vgg16": {"weights": "random"},
    "alexnet": {"weights": "random"},
    "efficientnet_lite0": {"weights": "random"},
    "medicalnet_resnet10": {"weights": "random"},
    "medicalnet_resnet50": {"weights": "random"},
}


def test_every_entry_is_listed_and_has_an_offline_build() -> None:
    assert list_feature_networks() == sorted(OFFLINE) == sorted(FEATURE_NETWORKS)
    assert list_feature_networks(spatial_dims=2) == ["alexnet", "domain", "efficientnet_lite0", "vgg16", "vgg19"]
    assert list_feature_networks(spatial_dims=3) == ["medicalnet_resnet10", "medicalnet_resnet50"]


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_each_network_satisfies_the_protocol_and_knows_its_default_layers(name: str) -> None:
    entry = feature_network_entry(name)
    network = load_feature_network(name, **OFFLINE[name])
    assert isinstance(network, FeatureNetwork)
    assert resolve_layers(network, entry.default_layers)  # every default layer exists
    assert getattr(network, "spatial_dims", 2) == entry.spatial_dims


def test_unknown_names_and_arguments_name_the_choices() -> None:
    with pytest.raises(ConfigError) as error:
        load_feature_network("squeezenet")
    assert str(error.value) == ("network='squeezenet' is unknown; use one of alexnet, domain, efficientnet_lite0, "
                                "medicalnet_resnet10, medicalnet_resnet50, vgg16, vgg19 or pass a module that "
                                "satisfies taskloss.features.FeatureNetwork")
    with pytest.raises(ConfigError) as error:
        load_feature_network("domain", pooling="avg")
    assert str(error.value) == ("network 'domain' takes no argument 'pooling'; it takes weights_path, random, "
                                "seed")


def test_perceptual_loss_passes_the_options_it_was_given() -> None:
    loss = PerceptualLoss(network="vgg19", weights="random", seed=4, layers=["conv1_2"])
    reference = load_feature_network("vgg19", weights="random", seed=4)
    torch.testing.assert_close(loss.network.features[0].weight, reference.features[0].weight)
    with pytest.raises(ConfigError, match="network 'efficientnet_lite0' takes no argument 'pooling'"):
        PerceptualLoss(network="efficientnet_lite0", pooling="avg")
    domain = PerceptualLoss(network="domain")
    assert domain.layers == feature_network_entry("domain").default_layers
