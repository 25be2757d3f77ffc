"""Adversarial criteria against hand formulas, output forms, and the gradient penalty."""

import numpy as np
import pytest
import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.losses import (
    AdversarialLoss,
    discriminator_logits,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _bce(logits: np.ndarray, label: float) -> float:
    # -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))) = y softplus(-x) + (1 - y) softplus(x)
    return float(np.mean(label * _softplus(-logits) + (1 - label) * _softplus(logits)))


REFERENCES = {
    "bce": (lambda f: _bce(f, 1.0), lambda r, f, y: _bce(r, y) + _bce(f, 0.0)),
    "lsgan": (lambda f: np.mean((f - 1) ** 2), lambda r, f, y: np.mean((r - y) ** 2) + np.mean(f**2)),
    "hinge": (lambda f: -np.mean(f),
              lambda r, f, y: np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f))),
    "wgan-gp": (lambda f: -np.mean(f), lambda r, f, y: np.mean(f) - np.mean(r)),
}


@pytest.mark.parametrize("criterion", list(REFERENCES))
def test_criteria_match_hand_formulas(criterion) -> None:
    real = torch.randn(2, 1, 5, 6, dtype=torch.float64) * 3
    fake = torch.randn(2, 1, 5, 6, dtype=torch.float64) * 3
    generator_ref, discriminator_ref = REFERENCES[criterion]
    label = 0.9 if criterion in ("bce", "lsgan") else 1.0
    np.testing.assert_allclose(float(generator_loss(fake, criterion)), generator_ref(fake.numpy()))
    np.testing.assert_allclose(float(discriminator_loss(real, fake, criterion, real_label=label)),
                               discriminator_ref(real.numpy(), fake.numpy(), label))


def test_bce_generator_loss_is_non_saturating() -> None:
    # A confident discriminator (logit -10 for a fake): -log D(G(z)) still gives a gradient of
    # about -1 per logit (mean over 4), where log(1 - D(G(z))) would give about -sigmoid(-10).
    fake = torch.full((1, 1, 2, 2), -10.0, requires_grad=True)
    generator_loss(fake, "bce").backward()
    torch.testing.assert_close(fake.grad, torch.full_like(fake, -torch.sigmoid(torch.tensor(10.0)) / 4))


def test_output_forms_and_multi_scale_average() -> None:
    logits_a, logits_b = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2)
    feature = torch.randn(2, 8, 8, 8)
    single = generator_loss(logits_a)
    assert torch.equal(generator_loss([feature, logits_a]), single)
    both = generator_loss([[feature, logits_a], [logits_b]], "lsgan")
    expected = (generator_loss(logits_a, "lsgan") + generator_loss(logits_b, "lsgan")) / 2
    torch.testing.assert_close(both, expected)
    assert discriminator_logits([[feature, logits_a], [logits_b]]) == [logits_a, logits_b]


def test_bad_output_forms_are_named() -> None:
    with pytest.raises(InputError, match="fake_output must be a tensor of logits, a list of tensors"):
        generator_loss({"logits": torch.zeros(1)})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="fake_output must be"):
        generator_loss([])
    with pytest.raises(InputError, match="real_output has 2 scales but fake_output has 1"):
        discriminator_loss([[torch.zeros(1)], [torch.zeros(1)]], torch.zeros(1))


def test_bad_criteria_and_labels_are_named() -> None:
    with pytest.raises(ConfigError, match="criterion='wgan' is unknown; use one of bce, lsgan, hinge, wgan"):
        AdversarialLoss("wgan")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"real_label=1.5 must be in \(0, 1\]"):
        AdversarialLoss("bce", real_label=1.5)
    with pytest.raises(ConfigError, match="applies to 'bce' and 'lsgan' only"):
        AdversarialLoss("hinge", real_label=0.9)


def test_module_sides() -> None:
    loss = AdversarialLoss("bce", real_label=0.9)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    assert torch.equal(loss(fake), generator_loss(fake, "bce"))
    assert torch.equal(loss.discriminator(real, fake), discriminator_loss(real, fake, "bce", real_label=0.9))


class _Linear(nn.Module):
    """D(x) = sum(w * x) per image, so grad_x D = w for every x."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = x * 2
        return [features, (x * self.weight).flatten(1).sum(1, keepdim=True)]


def test_gradient_penalty_of_a_linear_discriminator() -> None:
    weight = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    discriminator = _Linear(weight.clone())
    real, fake = torch.randn(4, 2, 3, 3, dtype=torch.float64), torch.randn(4, 2, 3, 3, dtype=torch.float64)
    penalty = gradient_penalty(discriminator, real, fake, generator=torch.Generator().manual_seed(0))
    norm = weight.norm()
    torch.testing.assert_close(penalty, (norm - 1) ** 2)
    penalty.backward()  # the graph is kept, so the penalty trains D: d/dw (|w| - 1)^2
    torch.testing.assert_close(discriminator.weight.grad, 2 * (norm - 1) * weight / norm)


def test_gradient_penalty_shape_mismatch() -> None:
    with pytest.raises(InputError, match=r"real has shape \(1, 1, 2, 2\) but fake has \(1, 1, 2, 3\)"):
        gradient_penalty(lambda x: x, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
