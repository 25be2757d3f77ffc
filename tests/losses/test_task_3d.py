"""A 3-D segmentation network as the task loss (TaskLoss spatial_dims=3): values by hand, gradients, errors."""

import pytest
import torch
import torch.nn.functional as F

from taskloss.errors import ConfigError, InputError
from taskloss.losses import TaskLoss
from taskloss.networks import SegmentationUNet, create_network


def _segmenter(widths: tuple[int, ...], seed: int) -> SegmentationUNet:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return create_network("segmentation_unet", widths=widths, spatial_dims=3)


@pytest.fixture(scope="module")
def segmenter() -> SegmentationUNet:
    return _segmenter((4, 8), seed=0)


@pytest.fixture(scope="module")
def volumes() -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth target volume (2, 1, 8, 8, 8) in [0, 1] and a noise field of the same shape."""
    generator = torch.Generator().manual_seed(1)
    target = F.avg_pool3d(torch.rand(2, 1, 12, 12, 12, generator=generator), 5, stride=1)
    target = (target - target.amin()) / (target.amax() - target.amin())
    return target, torch.randn(target.shape, generator=generator)


def test_value_equals_kl_and_features_computed_by_hand(segmenter, volumes) -> None:
    target, noise = volumes
    pred = (target + 0.2 * noise).requires_grad_()
    loss = TaskLoss(segmenter, layers=("encoder.1",), output="kl", spatial_dims=3, reduction="none")
    value = loss(pred, target)
    with torch.no_grad():
        zp, zt = segmenter(pred), segmenter(target)
        fp, ft = segmenter.encoder[1](F.max_pool3d(segmenter.encoder[0](pred), 2)), \
            segmenter.encoder[1](F.max_pool3d(segmenter.encoder[0](target), 2))
    log_t, log_p = F.log_softmax(zt, dim=1), F.log_softmax(zp, dim=1)
    kl = (log_t.exp() * (log_t - log_p)).sum(dim=1).flatten(1).mean(dim=1)
    features = (fp - ft).abs().flatten(1).mean(dim=1)
    torch.testing.assert_close(value, kl + features)
    value.sum().backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
    assert not any(p.requires_grad for p in segmenter.parameters())


@pytest.mark.parametrize("output", ["kl", "ce", "dice"])
def test_a_prediction_nearer_the_target_has_a_smaller_loss(volumes, output: str) -> None:
    target, noise = volumes
    segmenter = _segmenter((4, 8), seed=0).eval()
    with torch.no_grad():  # scale and shift the random head: logit differences of std 4, median 0 on the target
        logits = segmenter(target)
        difference = logits[:, 1] - logits[:, 0]
        scale = 4.0 / difference.std()
        segmenter.head.weight *= scale
        segmenter.head.bias *= scale
        segmenter.head.bias[1] -= scale * difference.median()
        labels = segmenter(target).argmax(dim=1) if output != "kl" else None
    if labels is not None:
        assert 0.2 < float(labels.float().mean()) < 0.8
    loss = TaskLoss(segmenter, output=output, spatial_dims=3, reduction="none")
    values = [loss(target + scale * noise, target, labels) for scale in (0.0, 0.1, 0.4)]
    assert bool((values[0] < values[1]).all()) and bool((values[1] < values[2]).all())
    if output == "kl":
        assert float(values[0].abs().max()) == 0.0


def test_gradcheck_float64_on_a_tiny_volume() -> None:
    loss = TaskLoss(_segmenter((2, 4), seed=3), layers=("encoder.0",), output="kl", spatial_dims=3).double()
    generator = torch.Generator().manual_seed(4)
    target = torch.rand(1, 1, 2, 2, 4, generator=generator, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn(target.shape, generator=generator, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,), eps=1e-6, atol=1e-5)


def test_volumes_are_not_sliced_with_spatial_dims_3(segmenter, volumes) -> None:
    target, noise = volumes
    pred = target + 0.2 * noise
    whole = TaskLoss(segmenter, output="kl", spatial_dims=3, reduction="none")(pred, target)
    with torch.no_grad():
        log_t, log_p = F.log_softmax(segmenter(target), dim=1), F.log_softmax(segmenter(pred), dim=1)
    torch.testing.assert_close(whole, (log_t.exp() * (log_t - log_p)).sum(dim=1).flatten(1).mean(dim=1))


def test_two_d_inputs_and_mismatched_dims_name_the_fix(segmenter) -> None:
    loss = TaskLoss(segmenter, output="kl", spatial_dims=3, description="3-D segmenter")
    with pytest.raises(InputError) as error:
        loss(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    assert str(error.value) == (
        "TaskLoss(spatial_dims=3) passes volumes (B, C, D, H, W) whole to the 3-D network 3-D segmenter, got shape "
        "(2, 1, 8, 8); pass volumes, or for 2-D images use spatial_dims=2 with a 2-D network")
    with pytest.raises(ConfigError) as error:
        TaskLoss(segmenter, output="kl")
    assert str(error.value) == ("SegmentationUNet is a 3-D network, which takes volumes whole; pass "
                                "spatial_dims=3")
    with pytest.raises(ConfigError) as error:
        TaskLoss(create_network("segmentation_unet", widths=(2, 4)), output="kl", spatial_dims=3)
    assert str(error.value) == (  # a task network to build, not the perception networks
        "spatial_dims=3 passes volumes whole, but SegmentationUNet is a 2-D network; use a 3-D network (e.g. "
        "create_network('segmentation_unet', spatial_dims=3), or a module with spatial_dims = 3), or spatial_dims=2 "
        "to score volumes slice by slice")
