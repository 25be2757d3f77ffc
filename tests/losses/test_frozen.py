"""FrozenNetworkLoss, the base of PerceptualLoss and TaskLoss: freezing, moves, 2-D/2.5-D/3-D input
handling, weights and the error of each bad option, on a tiny subclass whose terms are written by hand."""

import pytest
import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.losses import FrozenNetworkLoss, PerceptualLoss, TaskLoss


class TwoTerms(FrozenNetworkLoss):
    """Terms per item: mean |f(pred) - f(target)| and mean (f(pred) - f(target))^2 of the network f."""

    description = "two terms"

    def __init__(self, network: nn.Module, layer_weights=None, **options) -> None:
        super().__init__(network, **options)
        self._set_terms(("l1", "l2"), layer_weights, balance_batches=2)
        self.seen: list[tuple[int, ...]] = []

    def _image_terms(self, pred, target, labels=None):
        self.seen.append(tuple(pred.shape))
        difference = (self.network(pred) - self.network(target)).flatten(1)
        return torch.stack([difference.abs().mean(1), difference.square().mean(1)], dim=1)

    def forward(self, pred, target):
        return self._finish(self._weighted_sum(self._all_terms(pred, target.detach())), pred, target)


def conv(dims: int = 2, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(3)
    layer = nn.Conv2d(1, 2, 3) if dims == 2 else nn.Conv3d(1, 2, 3)
    return nn.Sequential(layer, nn.Tanh(), nn.Dropout(0.5)).to(dtype)  # dropout: only eval mode is deterministic


def by_hand(network: nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 2): the two terms of TwoTerms, computed directly."""
    with torch.no_grad():
        difference = (network(pred) - network(target)).flatten(1)
    return torch.stack([difference.abs().mean(1), difference.square().mean(1)], dim=1)


def test_the_network_is_frozen_in_eval_mode_even_after_train():
    network = conv().train()
    loss = TwoTerms(network)
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    loss.train()
    assert loss.training and not network.training and not network[2].training
    network.train()  # someone else's call: the loss's train() puts it back
    loss.train(True)
    assert not network.training
    assert list(loss.parameters()) == [] and list(loss.state_dict()) == []
    pred, target = torch.rand(2, 1, 6, 7), torch.rand(2, 1, 6, 7)
    assert torch.equal(loss(pred, target), loss(pred, target))  # dropout is off


def test_gradients_reach_the_prediction_only():
    network = conv()
    loss = TwoTerms(network)
    pred = torch.rand(2, 1, 6, 7, requires_grad=True)
    target = torch.rand(2, 1, 6, 7, requires_grad=True)
    loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None for p in network.parameters())


@pytest.mark.parametrize("shape", [(2, 1, 5, 6), (1, 1, 4, 5, 6)])
def test_gradcheck_float64_images_and_volumes(shape):
    generator = torch.Generator().manual_seed(1)
    loss = TwoTerms(conv(dtype=torch.float64), layer_weights=[0.7, 1.3], reduction="none")
    pred = torch.rand(shape, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.rand(shape, dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (pred,))


def test_images_pass_whole_with_the_weighted_sum_by_hand():
    network = conv()
    pred, target = torch.rand(3, 1, 7, 5), torch.rand(3, 1, 7, 5)
    loss = TwoTerms(network, layer_weights={"l2": 4.0}, reduction="none")
    expected = by_hand(network, pred, target) @ torch.tensor([1.0, 4.0])
    torch.testing.assert_close(loss(pred, target), expected)
    torch.testing.assert_close(TwoTerms(network)(pred, target), by_hand(network, pred, target).sum(1).mean())


def test_volumes_are_the_mean_over_axes_of_the_mean_over_slices():
    network = conv()
    pred, target = torch.rand(2, 1, 4, 5, 6), torch.rand(2, 1, 4, 5, 6)
    loss = TwoTerms(network, slice_axes=(2, 4), reduction="none")
    along_d = torch.stack([by_hand(network, pred[:, :, d], target[:, :, d]) for d in range(4)]).mean(0)
    along_w = torch.stack([by_hand(network, pred[..., w], target[..., w]) for w in range(6)]).mean(0)
    torch.testing.assert_close(loss(pred, target), ((along_d + along_w) / 2).sum(1))
    assert loss.seen == [(8, 1, 5, 6), (12, 1, 4, 5)]  # each axis's slices as one batch


def test_slice_fraction_draws_slices_in_training_only():
    loss = TwoTerms(conv(), slice_axes=(2,), slice_fraction=0.3)
    volumes = torch.rand(2, 1, 10, 5, 5)
    loss.eval()(volumes, volumes.flip(2))
    loss.train()(volumes, volumes.flip(2))
    assert loss.seen == [(20, 1, 5, 5), (6, 1, 5, 5)]  # every slice, then round(0.3 * 10) = 3 per volume
    tiny = TwoTerms(conv(), slice_axes=(3,), slice_fraction=0.01).train()
    tiny(volumes, volumes)
    assert tiny.seen == [(2, 1, 10, 5)]  # at least one slice


def test_spatial_dims_3_passes_volumes_whole_and_refuses_images():
    network = conv(dims=3)
    loss = TwoTerms(network, network_dims=3, spatial_dims=3, reduction="none")
    pred, target = torch.rand(2, 1, 4, 5, 6), torch.rand(2, 1, 4, 5, 6)
    torch.testing.assert_close(loss(pred, target), by_hand(network, pred, target).sum(1))
    assert loss.seen == [(2, 1, 4, 5, 6)]
    with pytest.raises(InputError) as error:
        loss(torch.rand(2, 1, 5, 6), torch.rand(2, 1, 5, 6))
    assert str(error.value) == (
        "TwoTerms(spatial_dims=3) passes volumes (B, C, D, H, W) whole to the 3-D network Sequential, got shape "
        "(2, 1, 5, 6); pass volumes, or for 2-D images use spatial_dims=2 with a 2-D network")


def test_dtype_and_device_moves_convert_the_network_with_the_loss():
    network = conv()
    loss = TwoTerms(network).double()
    assert network[0].weight.dtype == torch.float64 and loss.term_weights.dtype == torch.float64
    pred = torch.rand(1, 1, 5, 5, dtype=torch.float64)
    assert loss(pred, pred.flip(3)).dtype == torch.float64
    loss.to(torch.float32)
    assert network[0].weight.dtype == torch.float32


def test_balance_divides_each_term_by_its_mean_over_the_first_batches():
    network = conv()
    loss = TwoTerms(network, layer_weights="balance", reduction="none").train()
    batches = [(torch.rand(2, 1, 6, 6), torch.rand(2, 1, 6, 6)) for _ in range(3)]
    for pred, target in batches[:2]:
        loss(pred, target)
    divisors = torch.stack([by_hand(network, p, t).mean(0) for p, t in batches[:2]]).mean(0)
    pred, target = batches[2]
    torch.testing.assert_close(loss(pred, target), (by_hand(network, pred, target) / divisors).sum(1))


def test_both_losses_share_the_base():
    segmenter = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
    assert isinstance(TaskLoss(segmenter), FrozenNetworkLoss)
    assert issubclass(PerceptualLoss, FrozenNetworkLoss)
    assert TaskLoss(segmenter, description="my segmenter").network_description == "my segmenter"


@pytest.mark.parametrize(("options", "message"), [
    ({"input_range": (1.0, 0.0)},
     "input_range=(1.0, 0.0) must be (low, high) with low < high, e.g. (0.0, 1.0) or (-1.0, 1.0)"),
    ({"slice_axes": (2, 2)},
     "slice_axes=(2, 2) must be distinct axes among 2 (D), 3 (H) and 4 (W) of a (B, C, D, H, W) volume, "
     "e.g. (2, 3, 4)"),
    ({"slice_axes": (1,)},
     "slice_axes=(1,) must be distinct axes among 2 (D), 3 (H) and 4 (W) of a (B, C, D, H, W) volume, e.g. (2, 3, 4)"),
    ({"slice_fraction": 0.0}, "slice_fraction=0.0 must be in (0, 1]"),
    ({"slice_fraction": 1.5}, "slice_fraction=1.5 must be in (0, 1]"),
    ({"reduction": "sum"}, "reduction='sum' is unknown; use 'mean' or 'none' (per image)"),
    ({"spatial_dims": 1},
     "spatial_dims=1 must be 2 (images; volumes slice by slice) or 3 (volumes whole, on a 3-D network)"),
    ({"spatial_dims": 3, "network_dims": 2},
     "spatial_dims=3 passes volumes whole, but Sequential is a 2-D network; use a 3-D network (a module with "
     "spatial_dims = 3), or spatial_dims=2 to score volumes slice by slice"),
    ({"network_dims": 3, "description": "my 3-D net"},
     "my 3-D net is a 3-D network, which takes volumes whole; pass spatial_dims=3"),
    ({"layer_weights": "equal"},
     "layer_weights='equal' is unknown; use None, 'balance', a list of numbers or a mapping layer -> weight"),
    ({"layer_weights": [1.0]},
     "layer_weights has 1 values but the loss has 2 terms (l1, l2); give one weight per term"),
    ({"layer_weights": {"l3": 1.0}},
     "layer_weights names 'l3', which is not a term of this loss; its terms are l1, l2"),
])
def test_each_bad_option_is_refused_with_its_message(options, message):
    with pytest.raises(ConfigError) as error:
        TwoTerms(conv(), **options)
    assert str(error.value) == message
