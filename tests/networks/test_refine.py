"""Visual refinement V = R(x) + s u: identity at initialisation, Seitzer's scaling, frozen RecNet."""

import re

import numpy as np
import pytest
import torch

from taskloss.errors import ConfigError
from taskloss.networks import RecNet, RefinementUNet, VisualRefinement


def _small() -> VisualRefinement:
    return VisualRefinement(RecNet(num_blocks=2, width=4), RefinementUNet(widths=(4, 8, 16)))


def test_v_is_exactly_the_recnet_output_at_initialisation() -> None:
    model = _small()
    inputs = model.example_inputs(2, (12, 16))
    refined, update = model(*inputs)
    with torch.no_grad():
        reconstruction = model.recnet(*inputs)
    assert model.scale.detach().item() == 0.0
    assert torch.equal(refined, reconstruction)
    assert update.shape == (2, 1, 12, 16)
    assert update.abs().sum() > 0  # u itself is not zero: only s gates it


def test_real_channel_is_refined_in_the_per_image_min_max_scaled_range() -> None:
    model = _small()
    with torch.no_grad():
        model.scale.fill_(0.7)
    reconstruction = torch.randn(3, 2, 12, 16) * torch.tensor([1.0, 5.0, 0.01]).view(3, 1, 1, 1)
    with torch.no_grad():
        refined, update = model.refine(reconstruction)
    # Seitzer et al.'s code, in numpy: scale the real part to [-1, 1], add s u, scale back.
    real = reconstruction[:, 0].numpy().astype(np.float64)
    low = real.min(axis=(1, 2), keepdims=True)
    span = real.max(axis=(1, 2), keepdims=True) - low
    scaled = (real - low) / span * 2 - 1
    expected = ((scaled + 0.7 * update[:, 0].numpy()) + 1) / 2 * span + low
    np.testing.assert_allclose(refined[:, 0].numpy(), expected, rtol=1e-5, atol=1e-6 * span.max())
    assert torch.equal(refined[:, 1], reconstruction[:, 1])


def test_only_the_refinement_trains_and_the_recnet_stays_frozen_in_eval_mode() -> None:
    model = _small().train()
    assert model.refiner.training and not model.recnet.training
    refined, update = model(*model.example_inputs(2, (12, 12)))
    (refined.square().mean() + update.abs().mean()).backward()
    assert all(p.grad is None for p in model.recnet.parameters())
    assert model.scale.grad is not None and model.scale.grad.item() != 0.0
    assert all(p.grad is not None for p in model.refiner.parameters())


def test_refine_of_a_cached_reconstruction_equals_forward() -> None:
    model = _small().eval()
    with torch.no_grad():
        model.scale.fill_(0.3)
        inputs = model.example_inputs(1, (16, 12))
        direct = model(*inputs)
        cached = model.refine(model.recnet(*inputs))
    torch.testing.assert_close(direct.image, cached.image)
    torch.testing.assert_close(direct.update, cached.update)


def test_gradcheck_float64_of_the_refinement() -> None:
    model = VisualRefinement(RecNet(num_blocks=1, width=2),
                             RefinementUNet(widths=(2, 2), kernel_size=3)).double().eval()
    with torch.no_grad():
        model.scale.fill_(0.5)
    reconstruction = torch.randn(1, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: model.refine(x).image, (reconstruction,), fast_mode=True)


def test_refiner_must_map_two_channels_to_one() -> None:
    with pytest.raises(ConfigError, match=re.escape("refiner must map 2 channels (real, imaginary) to "
                                                    "1 (the update of the real part), got 2 -> 2")):
        VisualRefinement(refiner=RefinementUNet(out_channels=2))


def test_scale_gain_multiplies_s_and_speeds_up_its_adam_steps() -> None:
    reconstruction = torch.randn(2, 2, 12, 16)
    plain, fast = _small(), _small()
    fast.scale_gain = 10.0
    fast.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.scale.fill_(0.5)
        fast.scale.fill_(0.05)  # s = 10 * 0.05
        torch.testing.assert_close(fast.refine(reconstruction).image, plain.refine(reconstruction).image)
    # One Adam step moves each raw parameter by about lr; s moves g times that with the gain.
    moves = []
    for model in (_small(), VisualRefinement(RecNet(num_blocks=2, width=4), RefinementUNet(widths=(4, 8, 16)),
                                             scale_gain=10.0)):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.refine(reconstruction).image.sum().backward()
        optimizer.step()
        moves.append(abs(model.scale_gain * model.scale.item()))
    assert moves[0] == pytest.approx(1e-3, rel=1e-3) and moves[1] == pytest.approx(1e-2, rel=1e-3)
    with pytest.raises(ConfigError, match="scale_gain must be a number > 0, got 0"):
        VisualRefinement(scale_gain=0)
