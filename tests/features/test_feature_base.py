"""Input preparation and the sequential feature-extractor base class."""

import pytest
import torch
from torch import nn

from taskloss.errors import InputError
from taskloss.features import (
    IMAGENET_INPUT,
    FeatureNetwork,
    InputSpec,
    SequentialFeatureExtractor,
    prepare_input,
)


def test_prepare_input_repeats_grayscale_and_normalises() -> None:
    images = torch.rand(2, 1, 5, 7) * 2 - 1
    before = images.clone()
    prepared = prepare_input(images, (-1.0, 1.0), IMAGENET_INPUT)
    unit = (images + 1) / 2
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(prepared, (unit.repeat(1, 3, 1, 1) - mean) / std)
    assert torch.equal(images, before)
    assert prepared.data_ptr() != images.data_ptr() and prepared.is_contiguous()


def test_prepare_input_keeps_matching_channels_and_does_not_clip() -> None:
    rgb = torch.tensor([[-0.5, 0.0, 1.5]]).reshape(1, 3, 1, 1)
    prepared = prepare_input(rgb, (0.0, 1.0), IMAGENET_INPUT)
    expected = (rgb - torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(prepared, expected)


def test_prepare_input_gradient_is_the_affine_scale() -> None:
    images = torch.rand(1, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    prepare_input(images, (0.0, 2.0), IMAGENET_INPUT).sum().backward()
    expected = sum(1 / (2.0 * s) for s in (0.229, 0.224, 0.225))
    torch.testing.assert_close(images.grad, torch.full_like(images, expected))


def test_prepare_input_rejects_other_channel_counts() -> None:
    with pytest.raises(InputError, match="takes 1 or 3 channels, got 2"):
        prepare_input(torch.rand(1, 2, 4, 4), (0.0, 1.0), IMAGENET_INPUT)


def test_input_spec_is_validated() -> None:
    with pytest.raises(InputError, match="one mean and std per channel"):
        InputSpec(channels=3, mean=(0.5,), std=(0.2,))
    with pytest.raises(InputError, match="std must be > 0"):
        InputSpec(channels=1, mean=(0.5,), std=(0.0,))


def _tiny_network() -> SequentialFeatureExtractor:
    body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2))
    return SequentialFeatureExtractor(body, {"a": 1, "b": 3, "c": 4},
                                      input_spec=InputSpec(1, (0.5,), (0.25,)), description="tiny net",
                                      aliases={"first": "a"})


def test_sequential_extractor_satisfies_the_protocol() -> None:
    network = _tiny_network()
    assert isinstance(network, FeatureNetwork)
    assert network.layer_names == ("a", "b", "c")
    # Exact sizes, not products of strides: a 3x3 stride-2 convolution with padding 1 maps 1 pixel to
    # 1 (floor((1 + 2 - 3) / 2) + 1), and the 2x2 pool after it needs 2 of its pixels, i.e. 3 input pixels.
    assert [network.min_input_size([name]) for name in ("first", "b", "c")] == [1, 1, 3]
    assert network(torch.rand(1, 1, 3, 3), ["c"])["c"].shape == (1, 4, 1, 1)
    with pytest.raises(InputError, match=r"input of size \(2, 2\) is too small for layer 'c' of tiny net, "
                                         r"which needs at least 3 x 3 pixels"):
        network(torch.rand(1, 1, 2, 2), ["c"])
    out = network(torch.rand(2, 1, 9, 8), ["c", "first"])
    assert list(out) == ["a", "c"] and out["c"].shape == (2, 4, 2, 2)


def test_sequential_extractor_rejects_taps_outside_the_network() -> None:
    with pytest.raises(ValueError, match="taps must index into the 2 layers"):
        SequentialFeatureExtractor(nn.Sequential(nn.Identity(), nn.Identity()), {"x": 2},
                                   input_spec=IMAGENET_INPUT, description="bad")
