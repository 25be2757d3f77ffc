"""image_features: pooled rows of a FeatureNetwork layer, batched, without gradients."""

import pytest
import torch

from taskloss.errors import InputError
from taskloss.features.distribution import image_features
from taskloss.features.domain import DomainFeatures


@pytest.fixture(scope="module")
def network() -> DomainFeatures:
    return DomainFeatures(random=True, seed=3).eval()


def test_rows_are_the_spatial_means_of_the_layer_whatever_the_batch_size(network) -> None:
    images = torch.rand(5, 1, 20, 24, generator=torch.Generator().manual_seed(1), requires_grad=True)
    rows = image_features(network, images, "relu2_2", input_range=(0.0, 1.0), batch_size=2)
    prepared = (images.detach() - 0.5) / 0.25  # the domain network's InputSpec: mean 0.5, std 0.25
    direct = network(prepared, ["conv2_2"])["conv2_2"].mean(dim=(2, 3)).double()
    torch.testing.assert_close(rows, direct, rtol=1e-6, atol=1e-7)
    assert rows.shape == (5, 32) and not rows.requires_grad
    torch.testing.assert_close(image_features(network, images, "conv2_2", input_range=(0.0, 1.0), batch_size=5), rows,
                               rtol=1e-5, atol=1e-6)  # float32 convolutions of other batch sizes


def test_bad_input_gets_one_clear_error(network) -> None:
    images = torch.rand(2, 1, 16, 16)
    with pytest.raises(InputError, match="batch_size=0 must be >= 1"):
        image_features(network, images, "conv1_1", input_range=(0.0, 1.0), batch_size=0)
    with pytest.raises(InputError, match="layer 'conv9_9' is not a layer of taskloss domain network"):
        image_features(network, images, "conv9_9", input_range=(0.0, 1.0))
    with pytest.raises(InputError, match=r"input_range=\(1.0, 0.0\) must be \(low, high\) with low < high"):
        image_features(network, images, "conv1_1", input_range=(1.0, 0.0))
