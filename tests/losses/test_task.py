"""TaskLoss: the task network as the loss, against hand formulas (numpy), gradcheck, freezing, hooks."""

import doctest
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import taskloss.losses.task as task_module
from taskloss.errors import ConfigError, InputError
from taskloss.losses import TaskLoss, load_task_network


def segmenter(classes: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """A tiny segmentation network: conv -> tanh -> conv (1x1) to ``classes`` logits."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, classes, 1)).to(dtype)


class Classifier(nn.Module):
    """A tiny classifier: conv -> global mean -> linear, logits (N, K)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))


class Fails(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("fails on purpose")


def softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def logits_np(network: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return network(x).double().numpy()


def images(shape=(2, 1, 15, 17), seed=3):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator), torch.rand(shape, generator=generator)


def test_kl_matches_the_hand_formula_on_odd_sizes():
    network = segmenter()
    pred, target = images()
    value = TaskLoss(network, output="kl", reduction="none")(pred, target)
    p_t, p_p = softmax_np(logits_np(network, target)), softmax_np(logits_np(network, pred))
    expected = (p_t * (np.log(p_t) - np.log(p_p))).sum(axis=1).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
    assert float(TaskLoss(network)(target, target)) == pytest.approx(0.0, abs=1e-7)


def test_ce_matches_torch_cross_entropy_and_the_hand_formula():
    network = segmenter()
    pred, target = images()
    labels = torch.randint(0, 3, (2, 15, 17), generator=torch.Generator().manual_seed(0))
    value = TaskLoss(network, output="ce")(pred, target, labels=labels)
    with torch.no_grad():
        reference = F.cross_entropy(network(pred), labels)
    p = softmax_np(logits_np(network, pred))
    picked = np.take_along_axis(p, labels.numpy()[:, None], axis=1)
    assert float(value) == pytest.approx(float(reference), rel=1e-6)
    assert float(value) == pytest.approx(float(-np.log(picked).mean()), rel=1e-5)
    # (B, 1, H, W) labels are accepted too
    assert float(TaskLoss(network, output="ce")(pred, target, labels=labels[:, None])) == pytest.approx(float(value))


def test_soft_dice_matches_the_hand_formula_background_left_out():
    network = segmenter()
    pred, target = images()
    labels = torch.randint(0, 3, (2, 15, 17), generator=torch.Generator().manual_seed(1))
    value = TaskLoss(network, output="dice", reduction="none")(pred, target, labels=labels)
    p = softmax_np(logits_np(network, pred))
    eps = 1e-5
    expected = []
    for b in range(2):
        ratios = []
        for k in (1, 2):
            y = (labels[b].numpy() == k).astype(float)
            ratios.append((2 * (p[b, k] * y).sum() + eps) / (p[b, k].sum() + y.sum() + eps))
        expected.append(1 - np.mean(ratios))
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
    only_class_2 = TaskLoss(network, output="dice", dice_classes=[2], reduction="none")(pred, target, labels=labels)
    y2 = labels.numpy() == 2
    expected_2 = [1 - (2 * (p[b, 2] * y2[b]).sum() + eps) / (p[b, 2].sum() + y2[b].sum() + eps) for b in range(2)]
    np.testing.assert_allclose(only_class_2.numpy(), expected_2, rtol=1e-5)


def test_feature_terms_are_mean_absolute_differences_of_the_hooked_modules():
    network = segmenter()
    pred, target = images()
    loss = TaskLoss(network, layers=["0", "1"], output="kl", layer_weights=[2.0, 3.0, 0.5], reduction="none")
    with torch.no_grad():
        conv_p, conv_t = network[0](pred), network[0](target)
        act_p, act_t = torch.tanh(conv_p), torch.tanh(conv_t)
    d0 = (conv_p - conv_t).abs().flatten(1).mean(dim=1).numpy()
    d1 = (act_p - act_t).abs().flatten(1).mean(dim=1).numpy()
    kl = TaskLoss(network, output="kl", reduction="none")(pred, target).numpy()
    np.testing.assert_allclose(loss(pred, target).detach().numpy(), 2 * d0 + 3 * d1 + 0.5 * kl, rtol=1e-5)
    assert loss.terms == ("0", "1", "kl")
    mapped = TaskLoss(network, layers=["1"], output=None, layer_weights={"1": 4.0}, reduction="none")
    np.testing.assert_allclose(mapped(pred, target).detach().numpy(), 4 * d1, rtol=1e-5)
    logged = loss.term_values(pred, target)
    assert float(logged["1"]) == pytest.approx(float(d1.mean()), rel=1e-5)


def test_classification_network_kl_and_ce():
    network = Classifier()
    pred, target = images((3, 1, 9, 9))
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        z_p, z_t = network(pred), network(target)
    kl = F.kl_div(F.log_softmax(z_p, 1), F.log_softmax(z_t, 1), log_target=True, reduction="batchmean")
    assert float(TaskLoss(network, output="kl")(pred, target)) == pytest.approx(float(kl), rel=1e-5)
    ce = F.cross_entropy(z_p, labels)
    assert float(TaskLoss(network, output="ce")(pred, target, labels=labels)) == pytest.approx(float(ce), rel=1e-5)
    with pytest.raises(InputError, match=r"^output='dice' needs segmentation logits \(N, K, H, W\), but Classifier "
                       r"gives class scores \(N, K\); use output='ce'$"):
        TaskLoss(network, output="dice")(pred, target, labels=labels)


@pytest.mark.parametrize("output", ["kl", "ce", "dice"])
def test_gradcheck_float64(output):
    network = segmenter(classes=2, dtype=torch.float64)
    generator = torch.Generator().manual_seed(5)
    pred = torch.rand(2, 1, 5, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.rand(2, 1, 5, 6, dtype=torch.float64, generator=generator)
    labels = torch.randint(0, 2, (2, 5, 6), generator=generator)
    loss = TaskLoss(network, layers=["1"], output=output)
    kwargs = {} if output == "kl" else {"labels": labels}
    assert torch.autograd.gradcheck(lambda p: loss(p, target, **kwargs), (pred,))


def test_network_frozen_not_a_submodule_and_moved_by_to():
    network = segmenter()
    loss = TaskLoss(network, layers=["1"], layer_weights="balance")
    assert list(loss.parameters()) == []
    assert not any(key.startswith(("_network", "0.", "2.")) for key in loss.state_dict())
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    loss.train()
    assert not network.training
    loss.to(torch.float64)
    assert network[0].weight.dtype == torch.float64
    pred, target = images()
    assert loss(pred.double(), target.double()).dtype == torch.float64


def test_no_gradient_reaches_the_target_or_the_network():
    network = segmenter()
    pred, target = images()
    pred.requires_grad_(True)
    target.requires_grad_(True)
    TaskLoss(network, layers=["0"])(pred, target).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
    assert target.grad is None
    assert all(p.grad is None for p in network.parameters())


def test_hooks_are_removed_after_each_call_even_on_error():
    network = segmenter()
    loss = TaskLoss(network, layers=["0", "1"])
    pred, target = images()
    loss(pred, target)
    assert all(not m._forward_hooks for m in network.modules())
    failing = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Fails())
    with pytest.raises(RuntimeError, match="fails on purpose"):
        TaskLoss(failing, layers=["0"])(pred, target)
    assert all(not m._forward_hooks for m in failing.modules())
    network_bad = nn.Sequential(nn.Conv2d(1, 2, 3))  # shrinks the image: logits of the wrong size
    with pytest.raises(InputError, match=r"returned shape \(2, 2, 13, 15\) for images of size \(15, 17\)"):
        TaskLoss(network_bad, layers=["0"])(pred, target)
    assert all(not m._forward_hooks for m in network_bad.modules())


def test_balance_divides_each_term_by_its_first_batches_mean():
    network = segmenter()
    pred, target = images()
    loss = TaskLoss(network, layers=["1"], layer_weights="balance", balance_batches=1)
    raw = loss.term_values(pred, target)
    loss.train()
    assert float(loss(pred, target)) == pytest.approx(2.0, rel=1e-5)  # each term / itself
    other, _ = images(seed=9)
    divisors = torch.stack([raw["1"], raw["kl"]])
    expected = sum(v / d for v, d in zip(loss.term_values(other, target).values(), divisors, strict=True))
    assert float(loss(other, target)) == pytest.approx(float(expected), rel=1e-5)
    assert "balanced over the first 1 batches" in loss.description


def test_volumes_are_the_mean_over_axes_of_the_slice_means():
    network = segmenter()
    generator = torch.Generator().manual_seed(2)
    pred, target = torch.rand(2, 1, 5, 6, 7, generator=generator), torch.rand(2, 1, 5, 6, 7, generator=generator)
    labels = torch.randint(0, 3, (2, 5, 6, 7), generator=generator)
    loss = TaskLoss(network, output="ce", slice_axes=(2, 4), reduction="none")
    image_loss = TaskLoss(network, output="ce", reduction="none")
    per_axis = []
    for axis in (2, 4):
        slices = [image_loss(pred.select(axis, i), target.select(axis, i), labels=labels.select(axis - 1, i))
                  for i in range(pred.shape[axis])]
        per_axis.append(torch.stack(slices).mean(dim=0))
    expected = torch.stack(per_axis).mean(dim=0)
    torch.testing.assert_close(loss(pred, target, labels=labels), expected)


def test_network_files_torchscript_and_state_dict_with_factory(tmp_path):
    network = segmenter()
    pred, target = images()
    expected = float(TaskLoss(network)(pred, target))
    scripted = tmp_path / "net.pt"
    torch.jit.save(torch.jit.script(network), scripted)
    from_script = TaskLoss(scripted)
    assert float(from_script(pred, target)) == pytest.approx(expected, rel=1e-6)
    assert "TorchScript net.pt" in from_script.description
    with pytest.raises(ConfigError, match=r"^layers \['1'\] need forward hooks, which TorchScript networks do not run"):
        TaskLoss(scripted, layers=["1"])
    weights = tmp_path / "weights.pt"
    torch.save(network.state_dict(), weights)
    from_weights = TaskLoss(weights, layers=["1"], factory=lambda: segmenter(seed=7))
    assert float(TaskLoss(load_task_network(weights, lambda: segmenter(seed=7)))(pred, target)) == pytest.approx(
        expected, rel=1e-6)
    assert from_weights.description == "task loss (1, kl; weights 1=1, kl=1) on Sequential (weights weights.pt)"
    with pytest.raises(ConfigError, match=r"weights.pt holds a state dict, not a network; pass factory"):
        TaskLoss(weights)
    with pytest.raises(ConfigError, match=r"does not fit Sequential built by factory: missing keys \[\], "
                       r"unexpected keys \['2.bias', '2.weight'\]"):
        TaskLoss(weights, factory=lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1)))
    with pytest.raises(ConfigError, match=r"nowhere.pt does not exist"):
        TaskLoss(tmp_path / "nowhere.pt")


def test_preprocess_feeds_the_network_magnitudes():
    network = segmenter()
    complex_pred, complex_target = images((2, 2, 8, 9))

    def magnitude(x):
        return x.square().sum(dim=1, keepdim=True).sqrt()

    loss = TaskLoss(network, preprocess=magnitude, input_range=(0.0, math.sqrt(2)))
    reference = TaskLoss(network, input_range=(0.0, math.sqrt(2)))
    assert float(loss(complex_pred, complex_target)) == pytest.approx(
        float(reference(magnitude(complex_pred), magnitude(complex_target))))


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conv(x), x


class UsesTupleModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = TwoOutputs()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pair(x)[0]


def test_error_messages():
    network = segmenter()
    pred, target = images()
    labels = torch.zeros(2, 15, 17, dtype=torch.long)
    with pytest.raises(InputError) as error:
        TaskLoss(network, layers=["conv9"])
    assert str(error.value) == "layer 'conv9' is not a module of the task network Sequential; choose from 0, 1, 2"
    with pytest.raises(ConfigError) as config_error:
        TaskLoss(network, output="mse")  # type: ignore[arg-type]
    assert str(config_error.value) == ("output='mse' is unknown; use 'kl' (consistency with the target's prediction), "
                                       "'ce' or 'dice' (against labels), or None (feature terms only)")
    with pytest.raises(ConfigError, match=r"^output=None and no layers leave the task loss without terms"):
        TaskLoss(network, output=None)
    with pytest.raises(ConfigError, match=r"^layers must be a list of module names, got the string '1'"):
        TaskLoss(network, layers="1")
    with pytest.raises(InputError) as missing:
        TaskLoss(network, output="ce")(pred, target)
    assert str(missing.value) == ("output='ce' needs labels: call loss(pred, target, labels=labels) with int64 class "
                                  "indices, or use output='kl' (no labels)")
    with pytest.raises(InputError, match=r"^labels were given but output='kl' does not use them"):
        TaskLoss(network)(pred, target, labels=labels)
    with pytest.raises(InputError, match=r"^labels must be an int64 tensor of class indices, got torch.float32"):
        TaskLoss(network, output="dice")(pred, target, labels=labels.float())
    with pytest.raises(InputError, match=r"^labels have shape \(2, 15\) but pred \(2, 1, 15, 17\)"):
        TaskLoss(network, output="ce")(pred, target, labels=labels[:, :, 0])
    too_large = labels.clone()
    too_large[0, 0, 0] = 3
    with pytest.raises(InputError, match=r"^labels hold values in \[0, 3\] but the network gives 3 classes"):
        TaskLoss(network, output="dice")(pred, target, labels=too_large)
    with pytest.raises(InputError) as out_of_range:
        TaskLoss(network)(pred, target * 4)
    assert str(out_of_range.value).startswith("target has values in [")
    assert "but input_range=(0.0, 1.0); pass the range the task network was trained on" in str(out_of_range.value)
    with pytest.raises(ConfigError, match=r"^class_weights apply to output='ce' only, not output='kl'$"):
        TaskLoss(network, class_weights=[1.0, 2.0, 3.0])
    with pytest.raises(InputError) as tuple_output:
        TaskLoss(UsesTupleModule(), layers=["pair"])(pred, target)
    assert str(tuple_output.value) == ("layer 'pair' of UsesTupleModule gave no tensor output in the forward pass "
                                       "(not called, or a tuple output); choose another layer")
    with pytest.raises(ConfigError, match=r"^layer_weights names 'conv9', which is not a term of this loss"):
        TaskLoss(network, layers=["1"], layer_weights={"conv9": 2.0})


def test_docstring_example_runs():
    torch.manual_seed(0)
    assert doctest.testmod(task_module).failed == 0


def test_the_docs_example_runs():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "losses.md").read_text()
    section = text.split("Using your own segmentation network as the loss (runnable):")[1]
    code = section.split("```python\n")[1].split("```")[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/losses.md", "exec"), namespace)
    task = namespace["task"]
    assert isinstance(task, TaskLoss) and list(task.parameters()) == []
    assert namespace["segmenter"][0].weight.grad is None  # type: ignore[index]
