"""MedicalNet 3-D ResNets: the published key layout, loading a released-style file, 3-D perceptual loss."""

from pathlib import Path

import pytest
import torch

from taskloss.errors import ConfigError, DataError, InputError, MissingWeightsError
from taskloss.features import FeatureNetwork, MedicalNetResNet10, MedicalNetResNet50, prepare_input
from taskloss.losses import PerceptualLoss

# Tencent/MedicalNet models/resnet.py, resnet10 (BasicBlock, [1, 1, 1, 1], shortcut "B"), written out by
# hand: the keys of every convolution and its shape.
RESNET10_CONVS = {
    "conv1.weight": (64, 1, 7, 7, 7),
    "layer1.0.conv1.weight": (64, 64, 3, 3, 3), "layer1.0.conv2.weight": (64, 64, 3, 3, 3),
    "layer2.0.conv1.weight": (128, 64, 3, 3, 3), "layer2.0.conv2.weight": (128, 128, 3, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1, 1),
    "layer3.0.conv1.weight": (256, 128, 3, 3, 3), "layer3.0.conv2.weight": (256, 256, 3, 3, 3),
    "layer3.0.downsample.0.weight": (256, 128, 1, 1, 1),
    "layer4.0.conv1.weight": (512, 256, 3, 3, 3), "layer4.0.conv2.weight": (512, 512, 3, 3, 3),
    "layer4.0.downsample.0.weight": (512, 256, 1, 1, 1),
}
# MONAI 1.x (pip install --no-deps --target /tmp/monai monai), run once:
#   ref = monai.networks.nets.resnet10(spatial_dims=3, n_input_channels=1, shortcut_type="B",
#         bias_downsample=False, feed_forward=False, conv1_t_stride=2)  (resnet50 alike)
# has the same 72 (ResNet-10) and 318 (ResNet-50) state-dict keys with the same shapes, 14,355,520 and
# 46,155,072 parameters; with MedicalNetResNet10("random", seed=0) loaded into it, in float64, on
# torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(1)), its
# layer2(layer1(maxpool(act(bn1(conv1(x)))))) has sum |.| = 131.5273216995265 and [0, :3, 0, 0, 0] =
# (0.22634456128332436, 0.07478036803717084, 0.010459268062279856), max |ours - MONAI's| = 0.0.
# (MONAI's layer3 and layer4 have stride 2; MedicalNet's, as here, stride 1 with dilation 2 and 4.)
MONAI_LAYER2_ABS_SUM = 131.5273216995265
MONAI_LAYER2_FIRST = (0.22634456128332436, 0.07478036803717084, 0.010459268062279856)


@pytest.fixture(scope="module")
def resnet10() -> MedicalNetResNet10:
    return MedicalNetResNet10("random", seed=0)


@pytest.fixture(scope="module")
def released_file(tmp_path_factory: pytest.TempPathFactory, resnet10: MedicalNetResNet10) -> Path:
    """A file as MedicalNet releases them: {"state_dict": ...}, DataParallel's "module." prefix, their
    segmentation head, and no num_batches_tracked (saved before PyTorch 0.4.1)."""
    generator = torch.Generator().manual_seed(2)
    state = {f"module.{key}": 0.05 * torch.randn(value.shape, generator=generator) if value.is_floating_point()
             else value for key, value in resnet10.state_dict().items() if not key.endswith("num_batches_tracked")}
    for key in state:
        if key.endswith("running_var"):
            state[key] = state[key].abs() + 0.5
    state["module.conv_seg.0.weight"] = torch.zeros(512, 32, 2, 2, 2)
    path = tmp_path_factory.mktemp("medicalnet") / "resnet_10.pth"
    torch.save({"state_dict": state, "epoch": 0}, path)
    return path


def test_key_layout_is_medicalnets(resnet10: MedicalNetResNet10) -> None:
    state = resnet10.state_dict()
    convs = {key: tuple(value.shape) for key, value in state.items() if value.ndim == 5}
    assert convs == RESNET10_CONVS
    assert len(state) == 72 and sum(p.numel() for p in resnet10.parameters()) == 14_355_520
    resnet50 = MedicalNetResNet50("random")
    assert len(resnet50.state_dict()) == 318 and sum(p.numel() for p in resnet50.parameters()) == 46_155_072
    assert tuple(resnet50.state_dict()["layer4.2.conv3.weight"].shape) == (2048, 512, 1, 1, 1)
    assert isinstance(resnet10, FeatureNetwork) and resnet10.spatial_dims == 3


def test_features_equal_monais_up_to_layer2(resnet10: MedicalNetResNet10) -> None:
    network = MedicalNetResNet10("random", seed=0).double()
    x = torch.randn(1, 1, 16, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        features = network(x, ["conv1", "layer2", "layer4"])
    layer2 = features["layer2"]
    assert float(layer2.abs().sum()) == pytest.approx(MONAI_LAYER2_ABS_SUM, rel=1e-12)
    torch.testing.assert_close(layer2[0, :3, 0, 0, 0], torch.tensor(MONAI_LAYER2_FIRST, dtype=torch.float64))
    assert [tuple(f.shape) for f in features.values()] == [(1, 64, 8, 8, 8), (1, 128, 2, 2, 2), (1, 512, 2, 2, 2)]


def test_a_released_style_file_loads(released_file: Path) -> None:
    network = MedicalNetResNet10(weights_path=released_file)
    saved = torch.load(released_file, weights_only=True)["state_dict"]
    torch.testing.assert_close(network.layer3[0].downsample[1].running_var,
                               saved["module.layer3.0.downsample.1.running_var"])
    assert network.description == "MedicalNet ResNet-10, MedicalNet weights (resnet_10.pth)"
    assert not network.training


def test_missing_and_wrong_files_name_the_fix(released_file: Path) -> None:
    with pytest.raises(MissingWeightsError) as error:
        MedicalNetResNet10()
    assert str(error.value) == (
        "MedicalNet ResNet-10 needs MedicalNet's weights and no weights_path was given; taskloss ships and downloads "
        "none: get resnet_10.pth / resnet_50.pth (or the _23dataset files) from https://github.com/Tencent/MedicalNet "
        "on a connected machine and pass weights_path='/path/to/file.pth', or use weights='random'")
    with pytest.raises(MissingWeightsError, match=r"weights_path='/no/resnet_10\.pth' is not a file"):
        MedicalNetResNet10(weights_path="/no/resnet_10.pth")
    with pytest.raises(DataError, match=r"MedicalNet ResNet-50 weights file .*resnet_10.pth lacks 205 of the 318 "
                                        r"tensors the network needs \(first: 'layer1.0.conv3.weight'\); pass a "
                                        r"MedicalNet checkpoint of the same depth"):
        MedicalNetResNet50(weights_path=released_file)


def test_an_image_to_the_3d_network_names_the_fix(resnet10: MedicalNetResNet10) -> None:
    with pytest.raises(InputError) as error:
        resnet10(torch.rand(2, 1, 16, 16), ["layer1"])
    assert str(error.value) == (
        "MedicalNet ResNet-10 is a 3-D network and takes volumes (N, 1, D, H, W), got an image batch of shape "
        "(2, 1, 16, 16); pass volumes with spatial_dims=3, or use a 2-D network (e.g. "
        "network='efficientnet_lite0') for images")
    with pytest.raises(InputError, match=r"volume of size \(4, 16, 16\) is too small for layer 'layer2'"):
        resnet10(torch.rand(1, 1, 4, 16, 16), ["layer2"])


def test_perceptual_loss_scores_volumes_whole(resnet10: MedicalNetResNet10, released_file: Path) -> None:
    loss = PerceptualLoss(network=resnet10, layers=["conv1", "layer1"], spatial_dims=3, reduction="none")
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(2, 1, 9, 10, 11, generator=generator)
    pred = (target + 0.1 * torch.randn(target.shape, generator=generator)).requires_grad_()
    value = loss(pred, target)
    with torch.no_grad():  # by hand: (x - 0.5) / 0.25, the whole volume through the network
        fp = resnet10((pred - 0.5) / 0.25, ["conv1", "layer1"])
        ft = resnet10((target - 0.5) / 0.25, ["conv1", "layer1"])
    expected = sum((fp[k] - ft[k]).abs().flatten(1).mean(dim=1) for k in fp)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(prepare_input(target, (0.0, 1.0), resnet10.input_spec), (target - 0.5) / 0.25)
    value.sum().backward()
    assert pred.grad is not None and pred.grad.shape == pred.shape
    by_name = PerceptualLoss(network="medicalnet_resnet10", weights="medicalnet", weights_path=released_file,
                             spatial_dims=3)
    assert by_name.layers == ("conv1", "layer1", "layer2", "layer3", "layer4")


def test_dimension_mismatches_name_the_fix(resnet10: MedicalNetResNet10) -> None:
    loss = PerceptualLoss(network=resnet10, layers=["conv1"], spatial_dims=3)
    with pytest.raises(InputError) as error:
        loss(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))
    assert str(error.value) == (
        "PerceptualLoss(spatial_dims=3) passes volumes (B, C, D, H, W) whole to the 3-D network MedicalNet "
        "ResNet-10, random weights (seed 0), got shape (2, 1, 16, 16); pass volumes, or for 2-D images use "
        "spatial_dims=2 with a 2-D network")
    with pytest.raises(ConfigError, match=r"MedicalNet ResNet-10, random weights \(seed 0\) is a 3-D network, which "
                                          r"takes volumes whole; pass spatial_dims=3"):
        PerceptualLoss(network=resnet10, layers=["conv1"])
    with pytest.raises(ConfigError) as error:
        PerceptualLoss(network="domain", spatial_dims=3)
    assert str(error.value).startswith("spatial_dims=3 passes volumes whole, but taskloss domain network")
    assert str(error.value).endswith("is a 2-D network; use a 3-D network (medicalnet_resnet10, medicalnet_resnet50, "
                                     "or a module with spatial_dims = 3), or spatial_dims=2 to score volumes slice "
                                     "by slice")
