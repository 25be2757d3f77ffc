"""VGG-19 in torchvision's layout: state-dict keys, weight sources, offline error, layers."""

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from taskloss.errors import DataError, InputError, MissingWeightsError
from taskloss.features import (
    VGG19_FILE_NAME,
    VGG19_LAYERS,
    WEIGHTS_ENV,
    FeatureNetwork,
    VGG19Features,
    hub_cache_path,
    resolve_vgg19_weights,
)

# torchvision's vgg19().features: the conv layers sit at these indices of the Sequential, with
# these (out, in) channels; written out by hand from torchvision's configuration "E".
TORCHVISION_CONVS = {
    0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256),
    14: (256, 256), 16: (256, 256), 19: (512, 256), 21: (512, 512), 23: (512, 512),
    25: (512, 512), 28: (512, 512), 30: (512, 512), 32: (512, 512), 34: (512, 512),
}


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random checkpoint in torchvision's layout, with classifier keys, saved to disk."""
    generator = torch.Generator().manual_seed(11)
    state: dict[str, torch.Tensor] = {}
    for index, (out_ch, in_ch) in TORCHVISION_CONVS.items():
        state[f"features.{index}.weight"] = 0.1 * torch.randn(out_ch, in_ch, 3, 3, generator=generator)
        state[f"features.{index}.bias"] = 0.1 * torch.randn(out_ch, generator=generator)
    state["classifier.0.weight"] = torch.randn(4, 5, generator=generator)
    state["classifier.0.bias"] = torch.randn(4, generator=generator)
    path = tmp_path_factory.mktemp("weights") / VGG19_FILE_NAME
    torch.save(state, path)
    return path, state


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """No env variable, an empty hub cache, and a download that fails as it does offline."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    attempts: list[str] = []

    def no_network(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        attempts.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return attempts


def test_state_dict_has_torchvision_keys_and_shapes() -> None:
    state = VGG19Features("random").state_dict()
    expected = {}
    for index, (out_ch, in_ch) in TORCHVISION_CONVS.items():
        expected[f"features.{index}.weight"] = (out_ch, in_ch, 3, 3)
        expected[f"features.{index}.bias"] = (out_ch,)
    assert {key: tuple(value.shape) for key, value in state.items()} == expected


def test_torchvision_file_loads_unchanged_from_weights_path(torchvision_file, offline) -> None:
    path, state = torchvision_file
    network = VGG19Features("imagenet", weights_path=path)
    for key, value in network.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    assert str(path) in network.description and "ImageNet" in network.description
    assert offline == []  # no download attempted


def test_weights_are_found_through_the_environment_variable(torchvision_file, offline, monkeypatch) -> None:
    path, _ = torchvision_file
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    assert resolve_vgg19_weights() == path


def test_weights_are_found_in_the_hub_cache(torchvision_file, offline) -> None:
    path, state = torchvision_file
    cached = hub_cache_path()
    cached.parent.mkdir(parents=True)
    cached.symlink_to(path)
    assert resolve_vgg19_weights() == cached
    network = VGG19Features()
    torch.testing.assert_close(network.features[34].bias, state["features.34.bias"], rtol=0, atol=0)
    assert offline == []


def test_explicit_path_wins_over_environment(torchvision_file, offline, monkeypatch, tmp_path) -> None:
    path, _ = torchvision_file
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "elsewhere.pth"))
    assert resolve_vgg19_weights(path) == path


def test_download_goes_to_the_hub_cache(offline, monkeypatch) -> None:
    def fake_download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        assert url.endswith(VGG19_FILE_NAME) and hash_prefix == "dcbb9e9d"
        Path(dst).write_bytes(b"downloaded")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert resolve_vgg19_weights() == hub_cache_path()
    assert hub_cache_path().read_bytes() == b"downloaded"


def test_offline_without_weights_raises_one_clear_error(offline) -> None:
    with pytest.raises(MissingWeightsError) as caught:
        VGG19Features("imagenet")
    message = str(caught.value)
    assert offline == ["https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"]
    assert "\n" not in message
    for part in (VGG19_FILE_NAME, WEIGHTS_ENV, "weights_path=", str(hub_cache_path()),
                 "weights='random'", "Name or service not known"):
        assert part in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_missing_explicit_file_is_named(offline, tmp_path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(MissingWeightsError, match=r"weights_path='.*nope\.pth' is not a file"):
        resolve_vgg19_weights(missing)
    assert offline == []


def test_missing_environment_file_is_named(offline, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(MissingWeightsError, match=rf"{WEIGHTS_ENV}='.*gone\.pth' is not a file"):
        resolve_vgg19_weights()


def test_corrupt_file_raises_data_error(tmp_path) -> None:
    path = tmp_path / VGG19_FILE_NAME
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(DataError, match=r"cannot read weights file .* corrupt"):
        VGG19Features(weights_path=path)


def test_file_of_another_network_names_the_missing_key(tmp_path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(DataError, match=r"lacks 32 of the 32 VGG-19 tensors \(first: 'features.0.weight'\)"):
        VGG19Features(weights_path=path)


def test_wrong_shape_is_named(torchvision_file, tmp_path) -> None:
    _, state = torchvision_file
    path = tmp_path / "vgg16ish.pth"
    torch.save({**state, "features.0.weight": torch.zeros(64, 1, 3, 3)}, path)
    with pytest.raises(DataError, match=r"features\.0\.weight has shape \(64, 1, 3, 3\), VGG-19 needs "
                                        r"\(64, 3, 3, 3\)"):
        VGG19Features(weights_path=path)


def test_random_weights_are_seeded_and_leave_the_global_generator_alone() -> None:
    state = torch.random.get_rng_state()
    first, again, other = (VGG19Features("random", seed=s).features[0].weight.detach() for s in (1, 1, 2))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first, again) and not torch.equal(first, other)
    # Kaiming normal, fan_out: std = sqrt(2 / (64 * 3 * 3)).
    assert abs(float(first.std()) - (2 / 576) ** 0.5) < 0.1 * (2 / 576) ** 0.5


def test_random_weights_reject_a_weights_path(tmp_path) -> None:
    with pytest.raises(InputError, match="weights_path is given but weights='random'"):
        VGG19Features("random", weights_path=tmp_path / "x.pth")


def test_unknown_weights_and_pooling_are_errors() -> None:
    with pytest.raises(InputError, match="weights='places' is unknown"):
        VGG19Features("places")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="pooling='min' is unknown"):
        VGG19Features("random", pooling="min")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def vgg() -> VGG19Features:
    return VGG19Features("random", seed=5).eval()


def test_layer_names_and_aliases(vgg) -> None:
    assert vgg.layer_names == VGG19_LAYERS
    assert len(VGG19_LAYERS) == 21
    assert VGG19_LAYERS[:5] == ("conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2")
    assert VGG19_LAYERS[-3:] == ("conv5_3", "conv5_4", "pool5")
    assert isinstance(vgg, FeatureNetwork)
    x = torch.randn(1, 3, 32, 32)
    out = vgg(x, ["relu5_4", "conv1_2", "conv5_4"])
    assert list(out) == ["conv1_2", "conv5_4"]


def test_features_equal_a_direct_computation(vgg) -> None:
    x = torch.randn(2, 3, 19, 23)
    state = vgg.state_dict()

    def conv(h: torch.Tensor, index: int) -> torch.Tensor:
        return F.relu(F.conv2d(h, state[f"features.{index}.weight"], state[f"features.{index}.bias"],
                               padding=1))

    conv1_2 = conv(conv(x, 0), 2)
    pool1 = F.max_pool2d(conv1_2, 2)
    conv2_1 = conv(pool1, 5)
    out = vgg(x, ["conv1_2", "pool1", "relu2_1"])
    torch.testing.assert_close(out["conv1_2"], conv1_2)
    torch.testing.assert_close(out["pool1"], pool1)
    torch.testing.assert_close(out["conv2_1"], conv2_1)
    assert out["pool1"].shape == (2, 64, 9, 11)


def test_average_pooling_variant() -> None:
    network = VGG19Features("random", pooling="avg", seed=5)
    x = torch.randn(1, 3, 8, 8)
    out = network(x, ["conv1_2", "pool1"])
    torch.testing.assert_close(out["pool1"], F.avg_pool2d(out["conv1_2"], 2))
    assert "avg pooling" in network.description


def test_forward_stops_after_the_deepest_requested_layer(vgg) -> None:
    ran: list[int] = []
    handles = [layer.register_forward_hook(lambda *_, i=i: ran.append(i))
               for i, layer in enumerate(vgg.features)]
    try:
        vgg(torch.randn(1, 3, 16, 16), ["conv2_2", "conv1_1"])
    finally:
        for handle in handles:
            handle.remove()
    assert ran == list(range(9))  # conv2_2's ReLU is layer 8


def test_min_input_size_and_too_small_inputs(vgg) -> None:
    assert vgg.min_input_size(["conv1_2"]) == 1
    assert vgg.min_input_size(["pool1"]) == 2
    assert vgg.min_input_size(["conv1_1", "conv5_2"]) == 16
    assert vgg.min_input_size(["pool5"]) == 32
    with pytest.raises(InputError, match=r"input of size \(12, 40\) is too small for layer 'conv5_2'.*"
                                         r"at least 16 x 16"):
        vgg(torch.randn(1, 3, 12, 40), ["conv5_2"])


def test_unknown_layer_lists_the_valid_names(vgg) -> None:
    with pytest.raises(InputError, match=r"layer 'conv6_1' is not a layer of VGG-19.*conv1_1, conv1_2"):
        vgg(torch.randn(1, 3, 8, 8), ["conv6_1"])
    with pytest.raises(InputError, match="non-empty list of names"):
        vgg(torch.randn(1, 3, 8, 8), "conv1_1")  # type: ignore[arg-type]
