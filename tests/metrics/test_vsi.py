"""VSI against piq 0.8.0's own values on real images that packages ship, properties and errors."""

import json
import sys
from pathlib import Path

import pytest
import torch

from taskloss.errors import ConfigError, InputError
from taskloss.losses import VSILoss, vsi_loss
from taskloss.metrics import vsi
from taskloss.metrics.colour import rgb_to_lab
from taskloss.metrics.data_range import _HOW_TO_CHOOSE
from taskloss.metrics.vsi import sdsp

REFERENCE = Path(__file__).parent / "reference"
sys.path.insert(0, str(REFERENCE))
from piq_cases import CASES, Case, pair  # noqa: E402

VALUES = json.loads((REFERENCE / "piq_reference.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_equals_piq(case):
    pred, target = pair(case)
    expected = VALUES["values"][case.name]["vsi"]
    # float64: 1.9e-12 at most measured over these cases (the sharp colour prior of the RGB images)
    assert vsi(pred, target, data_range=case.scale).item() == pytest.approx(expected, abs=1e-10, rel=0)
    single = vsi(pred.float(), target.float(), data_range=case.scale)
    assert single.dtype == torch.float32 and single.item() == pytest.approx(expected, abs=1e-5, rel=0)


def test_batch_with_one_range_per_image_equals_each_image_alone():
    unit, twelve_bit = Case("mni_axial", "noise", 1.0), Case("mni_axial", "noise", 4095.0)
    pairs = [pair(unit), pair(twelve_bit)]
    pred, target = torch.cat([p for p, _ in pairs]), torch.cat([t for _, t in pairs])
    got = vsi(pred, target, data_range=torch.tensor([1.0, 4095.0]))
    expected = torch.tensor([VALUES["values"][unit.name]["vsi"], VALUES["values"][twelve_bit.name]["vsi"]],
                            dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (1, 3, 33, 17), (2, 1, 3, 5)])
def test_identical_is_one_bounds_and_symmetry(shape):
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=generator, dtype=torch.float64)
    pred = (target + 0.2 * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    same = vsi(target, target, data_range=1.0)
    torch.testing.assert_close(same, torch.ones(shape[0], dtype=torch.float64), rtol=0, atol=1e-12)
    value = vsi(pred, target, data_range=1.0)
    assert value.shape == (shape[0],) and bool(((value > 0) & (value < 1)).all())
    assert torch.equal(value, vsi(target, pred, data_range=1.0))


def test_worse_degradation_scores_lower():
    _, target = pair(Case("mni_sagittal", "blur", 1.0))
    noisy = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1),
                                        dtype=torch.float64)).clamp(0, 1)
    mild = vsi(0.9 * target + 0.1 * noisy, target, data_range=1.0)
    strong = vsi(noisy, target, data_range=1.0)
    assert 1 > mild.item() > strong.item() > 0


def test_grayscale_is_rgb_with_equal_channels():
    pred, target = pair(Case("ct", "shift", 1.0))
    torch.testing.assert_close(vsi(pred, target, data_range=1.0),
                               vsi(pred.repeat(1, 3, 1, 1), target.repeat(1, 3, 1, 1), data_range=1.0),
                               rtol=0, atol=1e-14)


def test_saliency_is_normalised_per_image_and_lab_matches_cie_by_hand():
    _, target = pair(Case("astronaut_odd", "noise", 1.0))
    maps = sdsp(torch.cat([target, target.flip(-1)]))
    assert maps.shape == (2, 1, 201, 158)
    assert maps.flatten(1).amin(dim=1).tolist() == [0.0, 0.0] and bool((maps.flatten(1).amax(dim=1) > 1 - 1e-12).all())
    # mid grey 0.5: sRGB decoding ((0.5 + 0.055) / 1.055) ** 2.4 = 0.21404; Y = that times the matrix's
    # middle row sum (1.0000001), then L* = 116 Y^(1/3) - 16 (above CIE's epsilon)
    grey = rgb_to_lab(torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)).flatten()
    luminance = ((0.5 + 0.055) / 1.055) ** 2.4 * (0.2126729 + 0.7151522 + 0.0721750)
    assert grey[0].item() == pytest.approx(116 * luminance ** (1 / 3) - 16, abs=1e-12)


def test_loss_gradcheck_float64():
    # fast_mode: Jacobian-vector products in random directions (every VSI call filters a 256 x 256 image)
    generator = torch.Generator().manual_seed(2)
    target = torch.rand(2, 1, 9, 11, generator=generator, dtype=torch.float64)
    pred = torch.rand(2, 1, 9, 11, generator=generator, dtype=torch.float64, requires_grad=True)
    loss = VSILoss(data_range=1.0, reduction="none")
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (pred,), fast_mode=True)
    colour = torch.rand(1, 3, 8, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    colour_target = torch.rand(1, 3, 8, 8, generator=generator, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: vsi_loss(p, colour_target, data_range=1.0), (colour,), fast_mode=True)
    small = torch.rand(1, 1, 3, 4, generator=generator, dtype=torch.float64, requires_grad=True)  # full Jacobian
    assert torch.autograd.gradcheck(lambda p: vsi_loss(p, target[:1, :, :3, :4], data_range=1.0), (small,))


def test_loss_is_one_minus_metric_trains_pred_only_and_is_finite_on_black_and_flat_regions():
    pred, target = pair(Case("mr", "noise", 1.0))  # the MR slice has an exactly black background
    pred = pred.clone().requires_grad_()
    target = target.clone().requires_grad_()
    value = VSILoss(data_range=1.0)(pred, target)
    assert value.item() == pytest.approx(1.0 - VALUES["values"]["mr-noise-1"]["vsi"], abs=1e-10)
    value.backward()
    assert bool(pred.grad.isfinite().all()) and pred.grad.abs().sum() > 0 and target.grad is None
    flat = torch.zeros(1, 1, 24, 24, dtype=torch.float64, requires_grad=True)  # zero gradient map, black RGB
    vsi_loss(flat, torch.rand(1, 1, 24, 24, dtype=torch.float64), data_range=1.0).backward()
    assert bool(flat.grad.isfinite().all())


def test_out_of_range_values_stay_finite():
    target = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    value = vsi(target - 0.3, target, data_range=1.0)  # below 0: piq's Lab gives NaN below -0.055
    assert bool(value.isfinite().all()) and value.item() < 1


def test_errors_name_the_problem_and_the_fix():
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(InputError) as small:
        vsi(torch.rand(1, 1, 2, 40), torch.rand(1, 1, 2, 40), data_range=1.0)
    assert str(small.value) == ("VSI needs height and width >= 3 (the 3 x 3 Scharr filters), got 2 x 40; "
                                "use larger images")
    with pytest.raises(InputError) as channels:
        vsi(torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32), data_range=1.0)
    assert str(channels.value).startswith("VSI takes grayscale (1 channel) or RGB (3 channels) images, got 4 channels")
    with pytest.raises(InputError) as volume:
        vsi(torch.rand(1, 1, 4, 32, 32), torch.rand(1, 1, 4, 32, 32), data_range=1.0)
    assert str(volume.value).startswith("VSI is defined for 2-D images but pred is a volume of shape (1, 1, 4, 32, 32)")
    for bad in (0.0, -2.5):
        with pytest.raises(InputError) as negative:
            vsi(image, image, data_range=bad)
        expected = f"data_range must be finite and > 0 for every image, got {bad!r}; {_HOW_TO_CHOOSE}"
        assert str(negative.value) == expected
        with pytest.raises(InputError):
            VSILoss(data_range=bad)
    with pytest.raises(InputError) as mismatch:
        vsi(image, image.double(), data_range=1.0)
    assert str(mismatch.value) == ("pred is torch.float32 but target is torch.float64; cast both to the same "
                                   "floating dtype")
    with pytest.raises(ConfigError):
        VSILoss(data_range=1.0, reduction="sum")
