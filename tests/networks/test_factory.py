"""The registry, the factory, and one forward + backward pass of every registered network."""

import pytest
import torch

from taskloss.errors import ConfigError, InputError
from taskloss.networks import NETWORKS, UNet, create_network, list_networks


def test_every_registered_network_has_a_small_test_config(small_network_names: set[str]) -> None:
    assert small_network_names == set(NETWORKS)


def test_list_networks_filters_by_study_and_role() -> None:
    assert list_networks() == sorted(NETWORKS)
    assert list_networks("mr2xray") == ["crn_128", "crn_256", "crn_64", "resnet", "unet"]
    assert list_networks(role="discriminator") == ["dagan_discriminator", "patch_discriminator"]
    assert list_networks("csmri", "reconstruction") == ["recnet", "recnet_d5c5"]


def test_create_network_applies_defaults_and_overrides() -> None:
    network = create_network("unet", widths=(4, 8), out_channels=3)
    assert isinstance(network, UNet)
    assert network.head.out_channels == 3
    assert network.total_stride == 2
    d5c5 = create_network("recnet_d5c5")
    assert len(d5c5.blocks) == 5 and d5c5.residual


def test_unknown_name_lists_the_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown network 'unet3d'; choose one of crn_128, .*unet"):
        create_network("unet3d")


def test_unknown_argument_names_the_key_and_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"network 'resnet' takes no argument 'width'; it takes "
                                          r"in_channels, out_channels, base_width, num_blocks, norm"):
        create_network("resnet", width=8)


@pytest.mark.parametrize("name", list_networks())
def test_forward_backward_on_odd_valid_sizes(name: str, small_network) -> None:
    network, (height, width) = small_network(name)
    inputs = network.example_inputs(2, (height, width))
    outputs = network(*inputs)
    tensors = list(outputs) if isinstance(outputs, list | tuple) else [outputs]
    if NETWORKS[name].role == "discriminator":
        assert tensors[-1].shape[:2] == (2, 1)  # logits last
    else:
        assert tensors[0].shape[0] == 2 and tensors[0].shape[-2:] == (height, width)
    assert all(bool(torch.isfinite(t).all()) for t in tensors)
    sum(t.square().mean() for t in tensors).backward()
    trainable = [(n, p) for n, p in network.named_parameters() if p.requires_grad]
    assert trainable
    missing = [n for n, p in trainable if p.grad is None or not bool(torch.isfinite(p.grad).all())]
    assert not missing


@pytest.mark.parametrize("name", list_networks())
def test_sizes_off_the_stride_are_rejected_with_the_rule(name: str, small_network) -> None:
    network, (height, width) = small_network(name)
    one_row_too_many = network.example_inputs(1, (height + 1, width))
    if network.size_multiple == 1:
        network(*one_row_too_many)  # any size above the minimum works
    else:
        with pytest.raises(InputError, match=rf"height and width must be multiples of "
                                             rf"{network.size_multiple} \(the network's total stride\)"):
            network(*one_row_too_many)
