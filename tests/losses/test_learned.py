"""LPIPSLoss and DISTSLoss: the measures as losses (values, reduction, gradients, frozen network, options)."""

import pytest
import torch

from taskloss.errors import ConfigError, InputError
from taskloss.features import DISTS, LPIPS
from taskloss.losses import DISTSLoss, LPIPSLoss


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator), torch.rand(shape, generator=generator)


@pytest.mark.parametrize(("loss_class", "measure", "options"), [
    (LPIPSLoss, lambda: LPIPS("vgg", weights="random", seed=2), {"backbone": "vgg"}),
    (DISTSLoss, lambda: DISTS(weights="random", seed=2), {})])
def test_loss_is_the_measure_on_input_range(loss_class, measure, options) -> None:
    pred, target = _pair((3, 1, 24, 19))
    expected = measure()(pred, target, data_range=1.0)
    per_image = loss_class(weights="random", seed=2, reduction="none", **options)
    torch.testing.assert_close(per_image(pred, target), expected)
    shifted = loss_class(weights="random", seed=2, input_range=(-1.0, 1.0), **options)
    torch.testing.assert_close(shifted(2 * pred - 1, 2 * target - 1), expected.mean(), rtol=1e-5, atol=0)
    assert torch.equal(per_image(target, target), torch.zeros(3))


@pytest.mark.parametrize("loss_class", [LPIPSLoss, DISTSLoss])
def test_gradients_reach_pred_only_and_the_network_stays_out_of_parameters(loss_class) -> None:
    loss = loss_class(weights="random")
    pred, target = _pair((2, 3, 32, 32), seed=1)
    pred.requires_grad_(True)
    target.requires_grad_(True)
    value = loss(pred, target)
    value.backward()
    assert value.ndim == 0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert target.grad is None  # the target branch runs under no_grad
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    assert loss.measure.network.training is False
    assert loss.double().measure.dtype == torch.float64
    assert loss(pred.double(), target.double()).dtype == torch.float64
    assert "as a loss" in loss.description and "random weights (seed 0)" in loss.description


def test_float64_gradcheck() -> None:
    loss = LPIPSLoss("alex", weights="random", seed=3).double()
    pred, target = (t.double() for t in _pair((1, 1, 31, 33), seed=5))
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred.requires_grad_(True),), fast_mode=True)


def test_bad_options_and_inputs_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        DISTSLoss(weights="random", reduction="sum")  # type: ignore[arg-type]
    assert str(caught.value) == "reduction='sum' is unknown; use 'mean' or 'none' (per image)"
    with pytest.raises(ConfigError) as caught:
        LPIPSLoss(weights="random", input_range=(1.0, 0.0))
    assert str(caught.value) == ("input_range=(1.0, 0.0) must be (low, high) with low < high, e.g. (0.0, 1.0) or "
                                 "(-1.0, 1.0)")
    with pytest.raises(ConfigError, match=r"^input_range=1.0 must be \(low, high\)"):
        LPIPSLoss(weights="random", input_range=1.0)  # type: ignore[arg-type]
    loss = LPIPSLoss("vgg", weights="random")
    pred = torch.zeros(1, 1, 16, 16)
    with pytest.raises(InputError) as caught:
        loss(pred, pred + 255.0)
    assert str(caught.value) == ("target has values in [255, 255] but input_range=(0.0, 1.0); pass the range your "
                                 "images are scaled to, e.g. input_range=(255, 255) for a fixed intensity scale")
