"""LPIPS v0.1 (Zhang et al. 2018): the formula on features, the measure with the shipped heads on seeded backbones.

References: the formula re-computed here in numpy from the paper and the lpips package's code (scaling layer,
unit normalisation with eps 1e-10 added to the norm, 1x1 heads, spatial mean, sum over layers), and torchmetrics'
``_LPIPS`` (a copy of the lpips package) run offline on the same backbone, handed to it in torchvision's layout.
"""

import dataclasses
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from taskloss.errors import DataError, InputError, MissingWeightsError
from taskloss.features import LPIPS, AlexNetFeatures, VGG16Features, hub_cache_path
from taskloss.features.perceptual_distances import LPIPS_SCALE, LPIPS_SHIFT
from taskloss.features.weights import ALEXNET_WEIGHTS, LPIPS_HEADS_WEIGHTS, VGG16_WEIGHTS, packaged_path
from taskloss.metrics import LPIPS_EPS, lpips_distance

torchmetrics_lpips = pytest.importorskip("torchmetrics.functional.image.lpips")

# The lpips package's slices of torchvision's features: the index after each tapped ReLU.
SLICE_ENDS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}
BACKBONES = {"alex": AlexNetFeatures, "vgg": VGG16Features}


def _images(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=generator, dtype=torch.float64)
    y = (x + 0.3 * torch.rand(shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    return x.to(dtype), y.to(dtype)


def _numpy_lpips(pred: list[np.ndarray], target: list[np.ndarray], heads: list[np.ndarray]) -> np.ndarray:
    """The formula, written out: unit-normalise each position's channel vector, square the difference, weigh the
    channels with the head, average the positions, sum the layers."""
    total = np.zeros(pred[0].shape[0])
    for a, b, w in zip(pred, target, heads, strict=True):
        ua = a / (np.sqrt((a**2).sum(axis=1, keepdims=True)) + 1e-10)
        ub = b / (np.sqrt((b**2).sum(axis=1, keepdims=True)) + 1e-10)
        total += ((ua - ub) ** 2 * w[None, :, None, None]).sum(axis=1).mean(axis=(1, 2))
    return total


def test_lpips_distance_is_the_published_formula_on_given_features() -> None:
    generator = torch.Generator().manual_seed(1)
    shapes = [(3, 4, 7, 5), (3, 6, 3, 2), (3, 2, 1, 1)]
    pred = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    target = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    heads = [torch.rand(shape[1], generator=generator, dtype=torch.float64) for shape in shapes]
    value = lpips_distance(pred, target, heads)
    expected = _numpy_lpips([p.numpy() for p in pred], [t.numpy() for t in target], [h.numpy() for h in heads])
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-13)
    assert torch.equal(lpips_distance(pred, pred, heads), torch.zeros(3, dtype=torch.float64))
    assert LPIPS_EPS == 1e-10


def test_lpips_distance_by_hand_with_a_zero_vector() -> None:
    # Position 1 of pred is all zero: its unit vector is 0, so it adds |u_target|^2 weighted = 1 * 1 + 0.5 * 0.
    pred = torch.tensor([[[[3.0, 0.0]], [[4.0, 0.0]]]])
    target = torch.tensor([[[[4.0, 2.0]], [[3.0, 0.0]]]])
    value = lpips_distance([pred], [target], [torch.tensor([1.0, 0.5])])
    expected = ((0.6 - 0.8) ** 2 * 1 + (0.8 - 0.6) ** 2 * 0.5 + 1.0) / 2
    torch.testing.assert_close(value, torch.tensor([expected]), rtol=1e-6, atol=0)


def test_lpips_distance_gradients() -> None:
    generator = torch.Generator().manual_seed(2)
    pred = [torch.randn(2, 3, 4, 3, generator=generator, dtype=torch.float64, requires_grad=True)]
    target = [torch.randn(2, 3, 4, 3, generator=generator, dtype=torch.float64)]
    heads = [torch.rand(3, generator=generator, dtype=torch.float64)]
    assert torch.autograd.gradcheck(lambda p: lpips_distance([p], target, heads), pred)
    # A ReLU all zero at a position: the gradient stays finite (lpips's sqrt(sum y^2) gives NaN there).
    raw = torch.randn(1, 3, 2, 2, dtype=torch.float64, generator=generator)
    raw[:, :, 0, 0] = -1.0
    raw.requires_grad_(True)
    other = [torch.rand(1, 3, 2, 2, dtype=torch.float64, generator=generator)]
    (gradient,) = torch.autograd.grad(lpips_distance([raw.relu()], other, heads)[0], raw)
    assert torch.isfinite(gradient).all() and torch.equal(gradient[:, :, 0, 0], torch.zeros(1, 3, dtype=torch.float64))


def test_lpips_distance_bad_input_messages() -> None:
    a = torch.zeros(1, 2, 3, 3)
    with pytest.raises(InputError) as caught:
        lpips_distance([a, a], [a], [torch.ones(2)])
    assert str(caught.value) == ("lpips_distance needs one target activation and one head per pred activation, got "
                                 "2 pred, 1 target activations and 1 heads")
    with pytest.raises(InputError) as caught:
        lpips_distance([a], [a], [torch.ones(3)])
    assert str(caught.value) == ("layer 0: pred activation (1, 2, 3, 3), target (1, 2, 3, 3) and head (3,) must be "
                                 "(N, C, H, W), (N, C, H, W) and (C,)")


@pytest.mark.parametrize("backbone", ["alex", "vgg"])
def test_lpips_equals_the_formula_recomputed_on_the_backbone(backbone: str) -> None:
    measure = LPIPS(backbone, weights="random", seed=4).double()
    x, y = _images((2, 3, 37, 45), dtype=torch.float64)
    features = BACKBONES[backbone]("random", seed=4).double().features
    # The lpips package's ScalingLayer, written out (the measure applies the equal ImageNet normalisation).
    assert LPIPS_SHIFT == (-0.030, -0.088, -0.188) and LPIPS_SCALE == (0.458, 0.448, 0.450)
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).reshape(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).reshape(1, 3, 1, 1)

    def taps(images: torch.Tensor) -> list[np.ndarray]:
        h, start, out = (2 * images - 1 - shift) / scale, 0, []  # lpips: normalize=True, then ScalingLayer
        with torch.no_grad():
            for end in SLICE_ENDS[backbone]:
                h = features[start:end](h)
                out.append(h.numpy().copy())
                start = end
        return out

    heads = torch.load(packaged_path(LPIPS_HEADS_WEIGHTS[backbone]), map_location="cpu", weights_only=True)
    expected = _numpy_lpips(taps(x), taps(y), [heads[f"lin{k}.model.1.weight"].double().flatten().numpy()
                                               for k in range(5)])
    value = measure(x, y, data_range=1.0)
    assert value.dtype == torch.float64 and value.shape == (2,)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-10)
    assert expected.min() > 1e-3  # not a trivial agreement


def _torchmetrics_lpips(backbone: str, seed: int) -> torch.nn.Module:
    """torchmetrics' LPIPS with the shipped heads and our seeded backbone in torchvision's layout (no torchvision)."""
    features = BACKBONES[backbone]("random", seed=seed).features
    original = torchmetrics_lpips._get_tv_model_features
    torchmetrics_lpips._get_tv_model_features = lambda net, pretrained=False: features
    try:
        return torchmetrics_lpips._LPIPS(pretrained=True, net=backbone, pnet_rand=True)
    finally:
        torchmetrics_lpips._get_tv_model_features = original


@pytest.mark.parametrize("backbone", ["alex", "vgg"])
def test_lpips_equals_torchmetrics_on_real_images(backbone: str, real_images: dict[str, np.ndarray]) -> None:
    reference = _torchmetrics_lpips(backbone, seed=5)
    measure = LPIPS(backbone, weights="random", seed=5)
    ct = torch.from_numpy(real_images["ct"][:67, 5:100]).float()
    noisy = (ct + 0.05 * torch.randn(ct.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    pred = torch.stack([noisy, ct.flip(0)])[:, None].expand(-1, 3, -1, -1)  # grayscale as RGB, as we take it
    target = torch.stack([ct, ct])[:, None].expand(-1, 3, -1, -1)
    with torch.no_grad():
        expected = reference(pred, target, normalize=True).flatten()
    torch.testing.assert_close(measure(pred[:, :1], target[:, :1], data_range=1.0), expected, rtol=1e-5, atol=0)
    with torch.no_grad():
        expected64 = reference.double()(pred.double(), target.double(), normalize=True).flatten()
    value64 = measure.double()(pred.double(), target.double(), data_range=1.0)
    # float64 differs by torchmetrics' float32 scaling constants and its eps under the square root (~1e-8).
    torch.testing.assert_close(value64, expected64, rtol=1e-6, atol=0)


def test_identical_images_grayscale_and_data_range() -> None:
    measure = LPIPS("alex", weights="random", seed=0)
    x, y = _images((2, 1, 33, 40))
    assert torch.equal(measure(x, x, data_range=1.0), torch.zeros(2))
    value = measure(x, y, data_range=1.0)
    torch.testing.assert_close(measure(x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1), data_range=1.0), value)
    torch.testing.assert_close(measure(255 * x, 255 * y, data_range=255.0), value, rtol=1e-5, atol=0)
    torch.testing.assert_close(measure(2 * x - 1, 2 * y - 1, data_range=(-1.0, 1.0)), value, rtol=1e-5, atol=0)
    assert measure.network.training is False and not any(p.requires_grad for p in measure.parameters())


@pytest.mark.parametrize(("backbone", "size"), [("alex", 31), ("vgg", 16)])
def test_minimum_size_runs_and_one_pixel_less_fails(backbone: str, size: int) -> None:
    measure = LPIPS(backbone, weights="random")
    assert measure.min_input_size() == size
    x, y = _images((1, 3, size, size + 3))
    assert measure(x, y, data_range=1.0).shape == (1,)
    with pytest.raises(InputError) as caught:
        measure(x[:, :, 1:], y[:, :, 1:], data_range=1.0)
    deepest = "conv5" if backbone == "alex" else "conv5_3"
    assert str(caught.value) == (f"input of size ({size - 1}, {size + 3}) is too small for layer {deepest!r} of "
                                 f"{measure.network.description}, which needs at least {size} x {size} pixels; use "
                                 "larger images or shallower layers")


def test_gradcheck_through_the_measure() -> None:
    measure = LPIPS("alex", weights="random", seed=1).double()
    x, y = _images((1, 1, 31, 31), seed=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: measure(p, y, data_range=1.0), (x.requires_grad_(True),),
                                    fast_mode=True)


def test_bad_images_and_ranges_are_named() -> None:
    measure = LPIPS("vgg", weights="random")
    x = torch.rand(1, 2, 16, 16)
    with pytest.raises(InputError) as caught:
        measure(x, x, data_range=1.0)
    assert str(caught.value) == ("LPIPS and DISTS take grayscale (1 channel) or RGB (3 channels) images, got 2 "
                                 "channels; score each channel as its own grayscale image")
    x = torch.zeros(1, 1, 16, 16)
    with pytest.raises(InputError) as caught:
        measure(x, x + 200.0, data_range=1.0)
    assert str(caught.value) == ("target has values in [200, 200] but data_range=(0.0, 1.0); pass the range your "
                                 "images are scaled to, e.g. data_range=(200, 200) for a fixed intensity scale")
    with pytest.raises(InputError, match=r"data_range=\(1.0, 1.0\) must have low < high"):
        measure(x, x, data_range=(1.0, 1.0))
    with pytest.raises(InputError, match=r"backbone='squeeze' is unknown; use 'alex' \(AlexNet\) or 'vgg'"):
        LPIPS("squeeze", weights="random")  # type: ignore[arg-type]


def _heads(backbone: str, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    widths = (64, 192, 384, 256, 256) if backbone == "alex" else (64, 128, 256, 512, 512)
    return {f"lin{k}.model.1.weight": torch.rand(1, width, 1, 1, generator=generator)
            for k, width in enumerate(widths)}


def test_heads_load_from_path_environment_and_the_installed_package(monkeypatch, tmp_path) -> None:
    source = LPIPS_HEADS_WEIGHTS["vgg"]
    monkeypatch.delenv(source.env, raising=False)
    shipped = torch.load(packaged_path(source), map_location="cpu", weights_only=True)  # lpips or torchmetrics
    default = LPIPS("vgg", weights="random")
    assert all(torch.equal(default.heads[k], shipped[f"lin{k}.model.1.weight"].flatten()) for k in range(5))
    heads = _heads("vgg", 1)
    path = tmp_path / "vgg.pth"
    torch.save(heads, path)
    explicit = LPIPS("vgg", weights="random", heads_path=path)
    assert all(torch.equal(explicit.heads[k], heads[f"lin{k}.model.1.weight"].flatten()) for k in range(5))
    monkeypatch.setenv(source.env, str(path))
    assert torch.equal(LPIPS("vgg", weights="random").heads[4], heads["lin4.model.1.weight"].flatten())
    assert "heads" not in "".join(LPIPS("vgg", weights="random").state_dict())  # buffers outside the state dict


def test_wrong_or_missing_heads_give_the_exact_error(monkeypatch, tmp_path) -> None:
    heads = _heads("alex", 0)
    del heads["lin3.model.1.weight"]
    path = tmp_path / "alex.pth"
    torch.save(heads, path)
    with pytest.raises(DataError) as caught:
        LPIPS("alex", weights="random", heads_path=path)
    assert str(caught.value) == (f"weights file {path} lacks 1 of the 5 LPIPS-Alex tensors (first: "
                                 "'lin3.model.1.weight'); pass the published alex.pth, whose keys are "
                                 "lin0.model.1.weight ... lin4.model.1.weight")
    torch.save(_heads("vgg", 0), path)  # VGG's heads given to LPIPS-Alex
    with pytest.raises(DataError) as caught:
        LPIPS("alex", weights="random", heads_path=path)
    assert str(caught.value) == (f"weights file {path}: lin1.model.1.weight has shape (1, 128, 1, 1), LPIPS-Alex "
                                 "needs (1, 192, 1, 1); pass the published alex.pth")
    source = LPIPS_HEADS_WEIGHTS["alex"]
    monkeypatch.delenv(source.env, raising=False)
    monkeypatch.setitem(LPIPS_HEADS_WEIGHTS, "alex", dataclasses.replace(source, packaged=(("no_such_pkg", "x"),)))
    with pytest.raises(MissingWeightsError) as caught:
        LPIPS("alex", weights="random")
    assert str(caught.value) == (
        "LPIPS-Alex linear heads (LPIPS v0.1) alex.pth were not found; provide alex.pth (pip install lpips or "
        "torchmetrics, whose wheels ship it) in one of these ways: pass heads_path='/path/to/alex.pth', set the "
        "environment variable TASKLOSS_LPIPS_ALEX_HEADS=/path/to/alex.pth, or install a package that ships it "
        "(no_such_pkg)")


def test_backbone_from_a_torchvision_file_and_offline_error(monkeypatch, tmp_path) -> None:
    for source in (ALEXNET_WEIGHTS, VGG16_WEIGHTS):
        monkeypatch.delenv(source.env, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(MissingWeightsError) as caught:
        LPIPS("alex")
    assert str(caught.value).startswith(
        "AlexNet ImageNet weights alexnet-owt-7be5be79.pth were not found and could not be downloaded (<urlopen "
        "error [Errno -2] Name or service not known>); provide torchvision's alexnet-owt-7be5be79.pth")
    assert str(caught.value).endswith(f"or copy it to {hub_cache_path(ALEXNET_WEIGHTS.file_name)}; or use "
                                      "weights='random' for an ablation without ImageNet weights")
    state = {f"features.{key}": value for key, value in AlexNetFeatures("random", seed=9).features.state_dict().items()}
    path = Path(tmp_path / ALEXNET_WEIGHTS.file_name)
    torch.save(state, path)
    measure = LPIPS("alex", weights_path=path)
    assert torch.equal(measure.network.features[10].weight, state["features.10.weight"])
    assert measure.description.startswith(f"LPIPS v0.1 (alex) on AlexNet, ImageNet weights ({path.name} at {path})")
