"""PerceptualLoss: values against a direct computation, gradients, 2.5-D volumes, balancing."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.features import InputSpec, SequentialFeatureExtractor, VGG19Features
from taskloss.losses import CRN_LAYERS, PerceptualLoss

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)

# torchvision's VGG-19 features, written out by hand: (name, kind, index of the layer whose
# weights a conv uses); each conv is followed by a ReLU, so it advances the index by 2.
_VGG_PLAN = []
_index = 0
for _block, _convs in enumerate((2, 2, 4, 4, 4), start=1):
    for _n in range(1, _convs + 1):
        _VGG_PLAN.append((f"conv{_block}_{_n}", "conv", _index))
        _index += 2
    _VGG_PLAN.append((f"pool{_block}", "pool", _index))
    _index += 1


def reference_features(state: dict[str, torch.Tensor], rgb01: torch.Tensor) -> dict[str, torch.Tensor]:
    """VGG-19 activations computed with torch.nn.functional from a torchvision-layout state dict."""
    h = (rgb01 - IMAGENET_MEAN.to(rgb01)) / IMAGENET_STD.to(rgb01)
    out = {}
    for name, kind, index in _VGG_PLAN:
        if kind == "conv":
            h = F.relu(F.conv2d(h, state[f"features.{index}.weight"].to(h),
                                state[f"features.{index}.bias"].to(h), padding=1))
        else:
            h = F.max_pool2d(h, 2)
        out[name] = h
        if min(h.shape[-2:]) < 2:
            break
    return out


def reference_loss(state, pred, target, layers, weights, distance="l1", pixel_weight=None, low=0.0, high=1.0):
    """sum_l lambda_l mean |Phi_l(pred) - Phi_l(target)| per image, for grayscale images."""
    def rgb(x: torch.Tensor) -> torch.Tensor:
        return ((x - low) / (high - low)).repeat(1, 3, 1, 1)

    fp, ft = reference_features(state, rgb(pred)), reference_features(state, rgb(target))

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = (a - b).abs() if distance == "l1" else (a - b) ** 2
        return d.flatten(1).mean(1)

    total = sum(w * dist(fp[name], ft[name]) for name, w in zip(layers, weights, strict=True))
    if pixel_weight is not None:
        total = total + pixel_weight * dist((pred - low) / (high - low), (target - low) / (high - low))
    return total


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    """One random VGG-19 shared by the tests (building one costs a fifth of a second)."""
    return VGG19Features("random", seed=3)


@pytest.fixture(scope="module")
def loss(vgg: VGG19Features) -> PerceptualLoss:
    return PerceptualLoss(network=vgg, reduction="none")


@pytest.fixture(scope="module")
def state(vgg: VGG19Features) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in vgg.state_dict().items()}


def test_value_equals_a_direct_computation(loss, state) -> None:
    pred, target = torch.rand(2, 1, 37, 41), torch.rand(2, 1, 37, 41)
    expected = reference_loss(state, pred, target, CRN_LAYERS, [1.0] * 5)
    torch.testing.assert_close(loss(pred, target), expected, rtol=1e-5, atol=1e-6)


def test_l2_weights_pixel_term_and_range_match_the_direct_computation(state, vgg) -> None:
    layer_weights = {"pixel": 2.0, "relu1_2": 0.5, "conv3_2": 3.0}
    loss = PerceptualLoss(layers=["conv3_2", "conv1_2"], layer_weights=layer_weights, distance="l2",
                          include_pixel=True, network=vgg, input_range=(-1.0, 1.0))
    pred, target = torch.rand(3, 1, 20, 18) * 2 - 1, torch.rand(3, 1, 20, 18) * 2 - 1
    expected = reference_loss(state, pred, target, ["conv1_2", "conv3_2"], [0.5, 3.0], "l2",
                              pixel_weight=2.0, low=-1.0, high=1.0).mean()
    torch.testing.assert_close(loss(pred, target), expected, rtol=1e-5, atol=1e-6)


def test_sequence_weights_follow_pixel_then_shallow_to_deep(state, vgg) -> None:
    loss = PerceptualLoss(layers=["conv2_2", "conv1_2"], layer_weights=[0.5, 2.0, 3.0],
                          include_pixel=True, network=vgg)
    pred, target = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    expected = reference_loss(state, pred, target, ["conv1_2", "conv2_2"], [2.0, 3.0], pixel_weight=0.5)
    torch.testing.assert_close(loss(pred, target), expected.mean(), rtol=1e-5, atol=1e-6)


def test_identical_inputs_give_zero_and_the_loss_is_symmetric(loss) -> None:
    x, y = torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)
    assert torch.equal(loss(x, x), torch.zeros(2))
    torch.testing.assert_close(loss(x, y), loss(y, x))


def test_gradcheck_float64() -> None:
    loss = PerceptualLoss(layers=["conv1_2", "pool1", "conv2_2"], distance="l2", include_pixel=True,
                          weights="random", seed=1).double()
    pred = torch.rand(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,))
    l1 = PerceptualLoss(layers=["conv1_2"], network=loss.network)
    assert torch.autograd.gradcheck(lambda p: l1(p, target), (pred,))


def test_network_is_frozen_hidden_and_gets_no_gradient(loss) -> None:
    pred = torch.rand(1, 1, 16, 16, requires_grad=True)
    loss(pred, torch.rand(1, 1, 16, 16)).sum().backward()
    assert pred.grad is not None and bool(pred.grad.abs().sum() > 0)
    assert all(not p.requires_grad and p.grad is None for p in loss.network.parameters())
    assert list(loss.parameters()) == [] and list(loss.state_dict()) == []
    assert not loss.network.training
    loss.train()
    assert not loss.network.training


def test_callers_tensors_are_unchanged_and_target_gets_no_gradient(loss) -> None:
    pred = torch.rand(2, 1, 16, 16, requires_grad=True)
    target = torch.rand(2, 1, 16, 16, requires_grad=True)
    saved = pred.detach().clone(), target.detach().clone()
    pixel = PerceptualLoss(layers=["conv1_2"], include_pixel=True, network=loss.network)
    (loss(pred, target).sum() + pixel(pred, target)).backward()
    assert torch.equal(pred.detach(), saved[0]) and torch.equal(target.detach(), saved[1])
    assert target.grad is None


def test_grayscale_equals_repeated_rgb_and_other_channels_are_averaged(loss) -> None:
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(loss(pred, target), loss(pred.repeat(1, 3, 1, 1), target.repeat(1, 3, 1, 1)))
    two = torch.rand(2, 2, 16, 16), torch.rand(2, 2, 16, 16)
    per_channel = [loss(two[0][:, c : c + 1], two[1][:, c : c + 1]) for c in range(2)]
    torch.testing.assert_close(loss(*two), (per_channel[0] + per_channel[1]) / 2)


def test_input_range_is_mapped_before_the_network(loss, vgg) -> None:
    pred, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    scaled = PerceptualLoss(network=vgg, reduction="none", input_range=(0.0, 255.0))
    torch.testing.assert_close(scaled(pred * 255, target * 255), loss(pred, target))


def test_target_outside_the_declared_range_is_an_error(loss) -> None:
    target = torch.rand(1, 1, 16, 16) * 255
    with pytest.raises(InputError, match=r"target has values in \[.*\] but input_range=\(0.0, 1.0\)"):
        loss(torch.rand(1, 1, 16, 16), target)


def test_odd_sizes_and_reductions(vgg) -> None:
    loss = PerceptualLoss(layers=["conv1_2", "conv2_2", "conv3_2"], network=vgg)
    pred, target = torch.rand(3, 1, 13, 9), torch.rand(3, 1, 13, 9)
    value = loss(pred, target)
    assert value.shape == ()
    loss.reduction = "none"
    assert loss(pred, target).shape == (3,)
    torch.testing.assert_close(loss(pred, target).mean(), value)


def test_volumes_are_the_mean_over_axes_of_the_mean_over_slices(vgg) -> None:
    layers = ["conv1_2", "conv2_2"]
    volume_loss = PerceptualLoss(layers=layers, network=vgg, reduction="none")
    image_loss = PerceptualLoss(layers=layers, network=vgg, reduction="none")
    pred, target = torch.rand(2, 1, 5, 6, 7), torch.rand(2, 1, 5, 6, 7)
    expected = torch.zeros(2)
    for axis in (2, 3, 4):
        slices = [image_loss(p, t) for p, t in zip(pred.unbind(axis), target.unbind(axis), strict=True)]
        expected += torch.stack(slices).mean(0) / 3
    torch.testing.assert_close(volume_loss(pred, target), expected)
    only_depth = PerceptualLoss(layers=layers, network=vgg, slice_axes=(2,), reduction="none")
    depth_slices = [image_loss(pred[:, :, d], target[:, :, d]) for d in range(5)]
    torch.testing.assert_close(only_depth(pred, target), torch.stack(depth_slices).mean(0))


def test_thin_volumes_name_the_axis_to_leave_out(vgg) -> None:
    loss = PerceptualLoss(layers=["conv3_2"], network=vgg)
    pred, target = torch.rand(1, 1, 3, 16, 16), torch.rand(1, 1, 3, 16, 16)
    with pytest.raises(InputError, match=r"slices along axis 3 of the volume are 3 x 16 pixels, smaller "
                                         r"than the 4 x 4 .* slice_axes=\(2, 4\)"):
        loss(pred, target)
    thin = PerceptualLoss(layers=["conv3_2"], network=vgg, slice_axes=(2,))
    assert thin(pred, target) > 0


def test_slice_fraction_draws_slices_in_training_only(vgg) -> None:
    layers = ["conv1_2"]
    loss = PerceptualLoss(layers=layers, network=vgg, slice_axes=(2,), slice_fraction=0.5)
    image_loss = PerceptualLoss(layers=layers, network=vgg, reduction="none")
    pred, target = torch.rand(1, 1, 4, 8, 8), torch.rand(1, 1, 4, 8, 8)
    per_slice = [float(image_loss(pred[:, :, d], target[:, :, d])) for d in range(4)]
    pair_means = [(a + b) / 2 for a, b in itertools.combinations(per_slice, 2)]
    seen = set()
    for _ in range(12):
        value = float(loss(pred, target))
        assert min(abs(value - m) for m in pair_means) < 1e-6
        seen.add(round(value, 6))
    assert len(seen) > 1
    loss.eval()
    assert abs(float(loss(pred, target)) - sum(per_slice) / 4) < 1e-6


def test_balance_divides_by_the_mean_of_the_first_batches_then_freezes(vgg) -> None:
    loss = PerceptualLoss(layers=["conv1_2", "conv2_2"], layer_weights="balance", balance_batches=3,
                          include_pixel=True, network=vgg)
    batches = [(torch.rand(2, 1, 12, 12), torch.rand(2, 1, 12, 12)) for _ in range(5)]
    raw = [torch.stack(list(loss.term_values(p, t).values())) for p, t in batches]
    first = loss(*batches[0])
    torch.testing.assert_close(first, torch.tensor(3.0))  # each of the 3 terms divided by itself
    loss.eval()
    loss(*batches[1])  # evaluation does not record
    loss.train()
    loss(*batches[1])
    loss(*batches[2])
    divisors = (raw[0] + raw[1] + raw[2]) / 3
    assert loss.normalizer is not None and loss.normalizer.frozen
    torch.testing.assert_close(loss.normalizer.total / loss.normalizer.count, divisors)
    loss(*batches[3])
    torch.testing.assert_close(loss.normalizer.total / loss.normalizer.count, divisors)
    torch.testing.assert_close(loss(*batches[4]), (raw[4] / divisors).sum())

    resumed = PerceptualLoss(layers=["conv1_2", "conv2_2"], layer_weights="balance", balance_batches=3,
                             include_pixel=True, network=vgg)
    resumed.load_state_dict(loss.state_dict())
    assert resumed.normalizer is not None and resumed.normalizer.frozen
    torch.testing.assert_close(resumed(*batches[4]), loss(*batches[4]))
    other = PerceptualLoss(layers=["conv1_2"], layer_weights="balance", network=vgg)
    with pytest.raises(ConfigError, match=r"normalises the terms \['pixel', 'conv1_2', 'conv2_2'\]"):
        other.load_state_dict(loss.state_dict())


def test_a_grayscale_domain_network_is_accepted() -> None:
    body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    network = SequentialFeatureExtractor(body, {"block1": 1, "block2": 4},
                                         input_spec=InputSpec(1, (0.5,), (0.25,)),
                                         description="domain net (test weights)")
    loss = PerceptualLoss(layers=["block1", "block2"], network=network, input_range=(0.0, 2.0))
    pred, target = torch.rand(2, 1, 10, 10) * 2, torch.rand(2, 1, 10, 10) * 2
    value = loss(pred, target)
    # By hand: [0, 2] mapped to [0, 1], then the network's own mean 0.5 and std 0.25, one channel.
    with torch.no_grad():
        fp, ft = body[:2]((pred / 2 - 0.5) / 0.25), body[:2]((target / 2 - 0.5) / 0.25)
        gp, gt = body[2:](fp), body[2:](ft)
    expected = (fp - ft).abs().mean() + (gp - gt).abs().mean()
    torch.testing.assert_close(value, expected)
    assert "domain net (test weights)" in loss.description
    assert not any(p.requires_grad for p in network.parameters())


def test_a_module_without_the_protocol_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"network Conv2d is not a perception network.*missing: "
                                          r"layer_names, layer_aliases, input_spec"):
        PerceptualLoss(network=nn.Conv2d(1, 1, 3))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="network='squeezenet' is unknown"):
        PerceptualLoss(network="squeezenet")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="weights, pooling apply to network='vgg19' only"):
        PerceptualLoss(network=VGG19Features("random"), weights="random", pooling="avg")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distance": "cosine"}, "distance='cosine' is unknown"),
        ({"input_range": (1.0, 0.0)}, r"input_range=\(1.0, 0.0\) must be \(low, high\) with low < high"),
        ({"slice_axes": (1, 2)}, "slice_axes=.* must be distinct axes among 2"),
        ({"slice_fraction": 0.0}, r"slice_fraction=0.0 must be in \(0, 1\]"),
        ({"reduction": "sum"}, "reduction='sum' is unknown"),
        ({"layers": ["conv9_9"]}, "layer 'conv9_9' is not a layer of VGG-19"),
        ({"layer_weights": [1.0, 2.0]}, "layer_weights has 2 values but the loss has 5 terms"),
        ({"layer_weights": {"conv4_4": 1.0}}, "layer_weights names 'conv4_4', which is not a term"),
        ({"layer_weights": "auto"}, "layer_weights='auto' is unknown"),
        ({"balance_batches": 0, "layer_weights": "balance"}, "balancing batches must be >= 1"),
    ],
)
def test_bad_options_name_the_problem(kwargs, message, vgg) -> None:
    with pytest.raises((ConfigError, InputError), match=message):
        PerceptualLoss(network=vgg, **kwargs)


def test_bad_inputs_name_the_problem(loss) -> None:
    with pytest.raises(InputError, match=r"pred has shape \(1, 1, 16, 16\) but target has shape"):
        loss(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 17))
    pred = torch.rand(1, 1, 16, 16)
    pred[0, 0, 3, 3] = float("nan")
    with pytest.raises(InputError, match="pred holds 1 NaN"):
        loss(pred, torch.rand(1, 1, 16, 16))
    with pytest.raises(InputError, match=r"input of size \(8, 8\) is too small for layer 'conv5_2'"):
        loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_description_names_network_weights_and_layers(loss) -> None:
    assert loss.description == ("perceptual loss (l1, conv1_2, conv2_2, conv3_2, conv4_2, conv5_2; fixed "
                                "weights) on VGG-19 (max pooling), random weights (seed 3)")
