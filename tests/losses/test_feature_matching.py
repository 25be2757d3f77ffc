"""Feature matching on discriminator features, and the output penalty."""

import numpy as np
import pytest
import torch

from taskloss.errors import ConfigError, InputError
from taskloss.losses import FeatureMatchingLoss, OutputPenalty, feature_matching_loss, output_penalty


def _outputs(requires_grad: bool) -> list[torch.Tensor]:
    shapes = [(2, 4, 8, 8), (2, 8, 4, 4), (2, 1, 3, 3)]  # two feature maps, logits last
    return [torch.randn(s, dtype=torch.float64, requires_grad=requires_grad) for s in shapes]


def test_mean_over_layers_and_logits_of_l1_distances() -> None:
    fake, real = _outputs(False), _outputs(False)
    per_layer = [np.abs(f.numpy() - r.numpy()).mean() for f, r in zip(fake, real, strict=True)]
    np.testing.assert_allclose(float(feature_matching_loss(fake, real)), np.mean(per_layer))
    np.testing.assert_allclose(float(feature_matching_loss(fake, real, include_logits=False)),
                               np.mean(per_layer[:2]))
    squared = [((f - r) ** 2).mean().item() for f, r in zip(fake, real, strict=True)]
    np.testing.assert_allclose(float(feature_matching_loss(fake, real, distance="l2")), np.mean(squared))


def test_gradient_reaches_the_fake_branch_only() -> None:
    fake, real = _outputs(True), _outputs(True)
    feature_matching_loss(fake, real).backward()
    assert all(f.grad is not None for f in fake)
    assert all(r.grad is None for r in real)


def test_identical_features_give_zero_and_scales_are_averaged() -> None:
    fake, real = _outputs(False), _outputs(False)
    assert float(feature_matching_loss(fake, fake)) == 0.0
    multi = feature_matching_loss([fake, fake], [real, fake])
    torch.testing.assert_close(multi, feature_matching_loss(fake, real) / 2)
    module = FeatureMatchingLoss(distance="l2", include_logits=False)
    expected = feature_matching_loss(fake, real, distance="l2", include_logits=False)
    assert torch.equal(module(fake, real), expected)


def test_bad_inputs_are_named() -> None:
    fake, real = _outputs(False), _outputs(False)
    with pytest.raises(InputError, match="differ in structure or shapes"):
        feature_matching_loss(fake, real[:2])
    with pytest.raises(InputError, match="holds only logits"):
        feature_matching_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), include_logits=False)
    with pytest.raises(ConfigError, match="distance='cos' is unknown"):
        feature_matching_loss(fake, real, distance="cos")  # type: ignore[arg-type]


def test_output_penalty_is_the_mean_absolute_residual() -> None:
    residual = torch.randn(2, 1, 5, 7, dtype=torch.float64, requires_grad=True)
    value = OutputPenalty()(residual)
    np.testing.assert_allclose(float(value.detach()), np.abs(residual.detach().numpy()).mean())
    value.backward()
    torch.testing.assert_close(residual.grad, residual.detach().sign() / residual.numel())
    with pytest.raises(InputError, match=r"residual has dtype torch\.int64"):
        output_penalty(torch.zeros(1, 1, 2, 2, dtype=torch.int64))


def test_the_module_checks_its_distance_when_built() -> None:
    with pytest.raises(ConfigError) as error:
        FeatureMatchingLoss(distance="cosine")  # type: ignore[arg-type]
    assert str(error.value) == "distance='cosine' is unknown; use 'l1' or 'l2'"
