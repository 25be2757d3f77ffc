"""Discriminators: feature lists with the logits last, sizes, smallest inputs, dropout, inits."""

import re

import pytest
import torch

from taskloss.errors import InputError
from taskloss.networks import DAGANDiscriminator, PatchDiscriminator


@pytest.mark.parametrize(("size", "coarse"), [(64, 2), (96, 3)])
def test_patch_discriminator_features_at_demo_sizes(size: int, coarse: int) -> None:
    network = PatchDiscriminator()
    features = network(torch.randn(2, 1, size, size))
    shapes = [tuple(f.shape) for f in features]
    assert shapes == [(2, 64, size // 2, size // 2), (2, 128, size // 4, size // 4),
                      (2, 256, size // 8, size // 8), (2, 512, size // 16, size // 16),
                      (2, 1024, coarse, coarse), (2, 1024, coarse, coarse), (2, 1, coarse, coarse)]


def test_patch_discriminator_features_are_the_layer_outputs_before_dropout() -> None:
    network = PatchDiscriminator(widths=(4, 8, 8), strides=(2, 2, 1), dropout_layers=(1,)).eval()
    with torch.no_grad():
        image = torch.randn(2, 1, 16, 24)
        features = network(image)
        x = image
        for layer, feature in zip(network.layers, features[:-1], strict=True):
            x = layer(x)
            torch.testing.assert_close(feature, x)
        torch.testing.assert_close(features[-1], network.logits(x))
        assert bool((features[1] < 0).any())  # LeakyReLU outputs, not ReLU: negatives kept


def test_patch_discriminator_smallest_inputs_and_why() -> None:
    assert PatchDiscriminator().min_size == 32  # five halvings need 2^5 px with zero padding
    reflect = PatchDiscriminator(widths=(2, 2, 2, 2, 2, 2), padding_mode="reflect")
    assert reflect.min_size == 96  # 3 px after five halvings for the (1, 2) reflection pad
    assert reflect(torch.randn(2, 1, 96, 97))[-1].shape == (2, 1, 3, 3)
    with pytest.raises(InputError, match=re.escape("PatchDiscriminator cannot take image of 64 x 100 "
                                                   "px: height and width must be at least 96 px; pad "
                                                   "to 96 x 100")):
        reflect(torch.randn(1, 1, 64, 100))


def test_patch_discriminator_has_batch_norm_except_first_and_dropout_on_layers_4_to_6() -> None:
    network = PatchDiscriminator()
    norms = [type(layer[1]).__name__ for layer in network.layers]
    assert norms == ["Identity"] + ["BatchNorm2d"] * 5
    dropouts = [type(d).__name__ for d in network.dropouts]
    assert dropouts == ["Identity"] * 3 + ["Dropout2d"] * 3
    kernels = [layer[0].kernel_size for layer in network.layers] + [network.logits.kernel_size]
    assert kernels == [(4, 4)] * 7
    assert [layer[0].stride[0] for layer in network.layers] == [2, 2, 2, 2, 2, 1]


def test_patch_discriminator_is_deterministic_in_eval_mode_only() -> None:
    network = PatchDiscriminator(widths=(4, 8, 8, 8), strides=(2, 2, 2, 1), dropout_layers=(1, 2, 3))
    image = torch.randn(2, 1, 40, 48)
    network.train()
    assert not torch.equal(network(image)[-1], network(image)[-1])
    network.eval()
    torch.testing.assert_close(network(image)[-1], network(image)[-1], rtol=0, atol=0)


def test_dcgan_initialisation() -> None:
    network = PatchDiscriminator(widths=(64, 128, 256), strides=(2, 2, 1), dropout_layers=())
    weights = torch.cat([layer[0].weight.detach().flatten() for layer in network.layers])
    assert abs(float(weights.std()) - 0.02) < 0.001 and abs(float(weights.mean())) < 0.001
    scales = network.layers[1][1].weight.detach()
    assert abs(float(scales.mean()) - 1.0) < 0.01


def test_dagan_discriminator_features_and_logit() -> None:
    network = DAGANDiscriminator(base_width=4, image_size=(64, 128))
    features = network(torch.rand(3, 1, 64, 128) * 2 - 1)
    shapes = [tuple(f.shape) for f in features]
    assert shapes == [(3, 4, 32, 64), (3, 8, 16, 32), (3, 16, 8, 16), (3, 32, 4, 8), (3, 64, 2, 4),
                      (3, 128, 1, 2), (3, 64, 1, 2), (3, 32, 1, 2), (3, 1)]
    assert network.classifier.in_features == 32 * 1 * 2
