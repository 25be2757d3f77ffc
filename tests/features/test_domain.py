import hashlib
import warnings

import pytest
import torch

from taskloss.errors import DataError, MissingWeightsError
from taskloss.features import FeatureNetwork
from taskloss.features.domain import DOMAIN_LAYERS, DomainFeatures, load_domain_network, shipped_weights_path
from taskloss.losses import PerceptualLoss
from taskloss.studies.perception import perception_network
from taskloss.training.perception import PerceptionTrainingConfig, train_domain_network


def test_shipped_weights_load_and_satisfy_the_protocol():
    network = load_domain_network()
    assert isinstance(network, FeatureNetwork)
    assert shipped_weights_path().stat().st_size < 5_000_000
    assert "trained on simulated head tissue labels" in network.description
    assert network.min_input_size(DOMAIN_LAYERS) == 8
    features = network(torch.rand(2, 1, 24, 40), DOMAIN_LAYERS)
    assert [tuple(f.shape[1:]) for f in features.values()] == [(16, 24, 40), (32, 12, 20), (64, 6, 10), (64, 3, 5)]
    assert network(torch.rand(1, 1, 16, 16), ["relu2_2"])["conv2_2"].shape == (1, 32, 8, 8)


def test_trained_features_differ_from_random_ones():
    image = torch.rand(1, 1, 32, 32)
    trained = load_domain_network()(image, ["conv1_2"])["conv1_2"]
    random = DomainFeatures(random=True, seed=0)(image, ["conv1_2"])["conv1_2"]
    assert not torch.allclose(trained, random)


def test_missing_and_corrupt_weights_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"none.pt are missing; run `taskloss train-perception"):
        DomainFeatures(tmp_path / "none.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt"):
        DomainFeatures(corrupt)
    other = tmp_path / "other.pt"
    torch.save({"features.0.weight": torch.zeros(1)}, other)
    with pytest.raises(DataError, match="is not a domain perception weights file"):
        DomainFeatures(other)


def test_auto_falls_back_to_the_domain_network_offline_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKLOSS_VGG19_WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.raises(MissingWeightsError):
        perception_network("vgg19")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network, layers = perception_network("auto")
    assert isinstance(network, DomainFeatures) and layers == DOMAIN_LAYERS
    assert "domain perception network instead" in str(caught[0].message)
    loss = PerceptualLoss(layers=layers, network=network)
    assert "taskloss domain network" in loss.description


def test_train_perception_writes_loadable_weights_and_scores(tmp_path):
    out = tmp_path / "weights.pt"
    config = PerceptionTrainingConfig(subjects=1, size=32, slices_per_subject=2, angles=2, steps=3, batch_size=2)
    result = train_domain_network(out, config)
    assert 0 <= result.slice_accuracy <= 1 and 0 <= result.projection_error <= 1
    assert result.final_loss > 0
    digest = hashlib.sha256(out.read_bytes()).hexdigest()[:8]
    assert load_domain_network(out).description.endswith(f"weights {out.name} sha256 {digest})")


def test_training_head_predicts_tissues_and_the_restored_image():
    from taskloss.data.physics import N_TISSUES
    from taskloss.training.perception import _corrupt, _TrainingHead

    head = _TrainingHead(DomainFeatures(random=True, seed=0))
    assert head(torch.rand(2, 1, 16, 16)).shape == (2, N_TISSUES + 1, 16, 16)
    images = torch.rand(4, 1, 16, 16)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(_corrupt(images, 0.0, generator), images)  # no restoration task: inputs as given
    flat = torch.full((4, 1, 16, 16), 0.5)
    noisy = _corrupt(flat, 0.1, generator)  # a blur leaves a flat image flat: only the noise is left
    assert 0 < float((noisy - flat).std()) < 0.1
