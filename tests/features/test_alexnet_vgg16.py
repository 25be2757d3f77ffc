"""AlexNet and VGG-16 in torchvision's layout (the LPIPS/DISTS backbones): keys, loading, errors, minimum sizes."""

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from taskloss.errors import DataError, InputError, MissingWeightsError
from taskloss.features import (
    ALEXNET_LAYERS,
    VGG16_LAYERS,
    AlexNetFeatures,
    FeatureNetwork,
    L2Pooling,
    VGG16Features,
    hub_cache_path,
    load_feature_network,
)
from taskloss.features.weights import ALEXNET_WEIGHTS, VGG16_WEIGHTS

# torchvision's alexnet().features and vgg16().features: conv index -> weight shape, written out by hand
# from torchvision/models/alexnet.py and configuration "D" of torchvision/models/vgg.py.
ALEXNET_CONVS = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3),
                 10: (256, 256, 3, 3)}
VGG16_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
               14: (256, 256), 17: (512, 256), 19: (512, 512), 21: (512, 512), 24: (512, 512),
               26: (512, 512), 28: (512, 512)}


def _alexnet_state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, shape in ALEXNET_CONVS.items():
        state[f"features.{index}.weight"] = 0.05 * torch.randn(shape, generator=generator)
        state[f"features.{index}.bias"] = 0.05 * torch.randn(shape[0], generator=generator)
    state["classifier.1.weight"] = torch.randn(3, 4, generator=generator)
    return state


def _vgg16_state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, (out_ch, in_ch) in VGG16_CONVS.items():
        state[f"features.{index}.weight"] = 0.05 * torch.randn(out_ch, in_ch, 3, 3, generator=generator)
        state[f"features.{index}.bias"] = 0.05 * torch.randn(out_ch, generator=generator)
    state["classifier.0.weight"] = torch.randn(3, 4, generator=generator)
    return state


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """No environment variables, an empty hub cache, and downloads that fail as they do offline."""
    for source in (ALEXNET_WEIGHTS, VGG16_WEIGHTS):
        monkeypatch.delenv(source.env, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    attempts: list[str] = []

    def no_network(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        attempts.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return attempts


def test_state_dicts_have_torchvision_keys_and_shapes() -> None:
    alex = {key: tuple(value.shape) for key, value in AlexNetFeatures("random").state_dict().items()}
    assert alex == {key: tuple(value.shape) for key, value in _alexnet_state(0).items() if key.startswith("features")}
    for pooling in ("max", "avg", "l2"):  # L2 pooling's filter is not in the state dict
        vgg = {key: tuple(value.shape) for key, value in VGG16Features("random", pooling=pooling).state_dict().items()}
        assert vgg == {key: tuple(value.shape) for key, value in _vgg16_state(0).items()
                       if key.startswith("features")}


def test_layer_names_follow_torchvision_and_lpips() -> None:
    assert ALEXNET_LAYERS == ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")
    assert VGG16_LAYERS[:3] == ("conv1_1", "conv1_2", "pool1") and VGG16_LAYERS[-4:] == (
        "conv5_1", "conv5_2", "conv5_3", "pool5") and len(VGG16_LAYERS) == 18
    alex = AlexNetFeatures("random")
    assert isinstance(alex, FeatureNetwork) and alex.layer_aliases["relu3"] == "conv3"
    assert [alex._taps[name] for name in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 4, 7, 9, 11]
    vgg = VGG16Features("random")
    assert [vgg._taps[name] for name in ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")] == [3, 8, 15, 22, 29]


@pytest.mark.parametrize(("network", "make_state", "source"), [
    (AlexNetFeatures, _alexnet_state, ALEXNET_WEIGHTS), (VGG16Features, _vgg16_state, VGG16_WEIGHTS)])
def test_torchvision_files_load_from_path_environment_and_hub_cache(
        network, make_state, source, offline, monkeypatch, tmp_path) -> None:
    state = make_state(3)
    path = tmp_path / source.file_name
    torch.save(state, path)
    loaded = network("imagenet", weights_path=path)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key])
    assert f"ImageNet weights ({source.file_name} at {path})" in loaded.description
    monkeypatch.setenv(source.env, str(path))
    assert torch.equal(network().features[0].weight, state["features.0.weight"])
    monkeypatch.delenv(source.env)
    cached = hub_cache_path(source.file_name)
    cached.parent.mkdir(parents=True)
    cached.symlink_to(path)
    assert str(cached) in network().description
    assert offline == []


def test_wrong_key_and_wrong_shape_give_the_exact_error(tmp_path) -> None:
    state = _alexnet_state(0)
    del state["features.10.weight"]
    path = tmp_path / "alex.pth"
    torch.save(state, path)
    with pytest.raises(DataError) as caught:
        AlexNetFeatures(weights_path=path)
    assert str(caught.value) == (f"weights file {path} lacks 1 of the 10 AlexNet tensors (first: "
                                 "'features.10.weight'); pass torchvision's alexnet-owt-7be5be79.pth, whose keys "
                                 "are features.N.weight and features.N.bias")
    vgg19_like = _vgg16_state(0)
    vgg19_like["features.2.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(vgg19_like, path)
    with pytest.raises(DataError) as caught:
        VGG16Features(weights_path=path)
    assert str(caught.value) == (f"weights file {path}: features.2.weight has shape (64, 64, 5, 5), VGG-16 needs "
                                 "(64, 64, 3, 3); pass torchvision's vgg16-397923af.pth")


def test_offline_without_weights_raises_one_clear_error(offline) -> None:
    with pytest.raises(MissingWeightsError) as caught:
        load_feature_network("alexnet")
    cached = hub_cache_path("alexnet-owt-7be5be79.pth")
    assert str(caught.value) == (
        "AlexNet ImageNet weights alexnet-owt-7be5be79.pth were not found and could not be downloaded (<urlopen "
        "error [Errno -2] Name or service not known>); provide torchvision's alexnet-owt-7be5be79.pth (download it "
        "on a connected machine from https://download.pytorch.org/models/alexnet-owt-7be5be79.pth) in one of these "
        "ways: pass weights_path='/path/to/alexnet-owt-7be5be79.pth', set the environment variable "
        "TASKLOSS_ALEXNET_WEIGHTS=/path/to/alexnet-owt-7be5be79.pth, or copy it to "
        f"{cached}; or use weights='random' for an ablation without ImageNet weights")
    with pytest.raises(MissingWeightsError, match=r"VGG-16 ImageNet weights vgg16-397923af\.pth were not found"):
        VGG16Features()
    assert offline == ["https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                       "https://download.pytorch.org/models/vgg16-397923af.pth"]


def test_bad_options_are_named(tmp_path) -> None:
    with pytest.raises(InputError, match="weights_path is given but weights='random'"):
        AlexNetFeatures("random", weights_path=tmp_path / "x.pth")
    with pytest.raises(InputError, match=r"weights='ssl' is unknown; use 'imagenet' or 'random'"):
        VGG16Features("ssl")  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"pooling='min' is unknown; use 'max' \(torchvision's VGG-16\), 'avg'"):
        VGG16Features("random", pooling="min")  # type: ignore[arg-type]


def test_random_weights_are_seeded_and_leave_the_global_generator_alone() -> None:
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a, b = AlexNetFeatures("random", seed=1), AlexNetFeatures("random", seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a.features[0].weight, b.features[0].weight)
    assert not torch.equal(a.features[0].weight, AlexNetFeatures("random", seed=2).features[0].weight)
    # nn.Conv2d's default init: weights and biases uniform in +-1/sqrt(fan_in) (fan_in = 3 * 11 * 11).
    bound = 1 / np.sqrt(3 * 11 * 11)
    largest = float(a.features[0].weight.detach().abs().max())
    assert 0.9 * bound < largest <= bound


# Claimed minimum sizes, worked by hand from PyTorch's output-size formula floor((n + 2p - k) / s) + 1:
# AlexNet conv1 (k11 s4 p2): n >= 7; each 3x3 stride-2 pool needs 3 pixels, i.e. 2 m + 1 of the layer before.
ALEXNET_MIN = {"conv1": 7, "pool1": 15, "conv2": 15, "pool2": 31, "conv3": 31, "conv4": 31, "conv5": 31, "pool5": 63}


@pytest.mark.parametrize(("layer", "size"), ALEXNET_MIN.items())
def test_alexnet_minimum_size_runs_and_one_pixel_less_fails(layer: str, size: int) -> None:
    network = AlexNetFeatures("random")
    assert network.min_input_size([layer]) == size
    out = network(torch.zeros(1, 3, size, size + 2), [layer])[layer]
    assert out.shape[-2] == 1
    with pytest.raises(InputError) as caught:
        network(torch.zeros(1, 3, size - 1, size + 2), [layer])
    assert str(caught.value) == (f"input of size ({size - 1}, {size + 2}) is too small for layer {layer!r} of "
                                 f"{network.description}, which needs at least {size} x {size} pixels; use larger "
                                 "images or shallower layers")
    with pytest.raises(RuntimeError):  # the check is not stricter than the network itself
        network.features[:network._taps[layer] + 1](torch.zeros(1, 3, size - 1, size - 1))


def test_vgg16_minimum_sizes_max_and_l2_pooling() -> None:
    vgg = VGG16Features("random")
    assert [vgg.min_input_size([name]) for name in ("conv1_2", "pool1", "conv3_3", "conv5_3", "pool5")] == [
        1, 2, 4, 16, 32]
    vgg(torch.zeros(1, 3, 16, 17), ["conv5_3"])
    with pytest.raises(InputError, match=r"needs at least 16 x 16 pixels"):
        vgg(torch.zeros(1, 3, 15, 17), ["conv5_3"])
    # L2 pooling (3x3, stride 2, padding 1) maps n pixels to ceil(n / 2): any size reaches pool5.
    l2 = VGG16Features("random", pooling="l2")
    assert l2.min_input_size(["pool5"]) == 1
    assert l2(torch.zeros(1, 3, 1, 1), ["pool5"])["pool5"].shape == (1, 512, 1, 1)
    assert l2(torch.zeros(1, 3, 33, 20), ["conv5_3"])["conv5_3"].shape == (1, 512, 3, 2)


def test_l2_pooling_is_dists_hanning_filter() -> None:
    # np.hanning(5)[1:-1] = (0.5, 1, 0.5); the outer product divided by its sum 4.
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
    x = torch.randn(2, 4, 9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pool = L2Pooling(4).double()
    expected = torch.empty(2, 4, 5, 3, dtype=torch.float64)
    padded = F.pad(x.square(), (1, 1, 1, 1))
    for i in range(5):
        for j in range(3):
            window = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            expected[:, :, i, j] = ((window * kernel.double()).sum(dim=(2, 3)) + 1e-12).sqrt()
    torch.testing.assert_close(pool(x), expected, rtol=1e-12, atol=1e-12)
    assert "filter" not in pool.state_dict()
    zeros = torch.zeros(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(pool(zeros).sum(), zeros)  # the 1e-12 keeps sqrt's gradient finite at 0
    assert torch.equal(gradient, torch.zeros_like(zeros))
