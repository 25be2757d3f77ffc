"""HaarPSI against piq 0.8.0's own values on real images that packages ship, properties and errors."""

import json
import sys
from pathlib import Path

import pytest
import torch

from taskloss.errors import ConfigError, InputError
from taskloss.losses import HaarPSILoss, haarpsi_loss
from taskloss.metrics import haarpsi
from taskloss.metrics.data_range import _HOW_TO_CHOOSE

REFERENCE = Path(__file__).parent / "reference"
sys.path.insert(0, str(REFERENCE))
from piq_cases import CASES, Case, pair  # noqa: E402

VALUES = json.loads((REFERENCE / "piq_reference.json").read_text())


def test_reference_is_piq_080_in_float64():
    assert VALUES["piq"] == "0.8.0" and VALUES["dtype"] == "float64"
    assert set(VALUES["values"]) == {case.name for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_equals_piq(case):
    pred, target = pair(case)
    expected = VALUES["values"][case.name]
    assert list(target.shape) == expected["shape"]
    got = haarpsi(pred, target, data_range=case.scale)
    full = haarpsi(pred, target, data_range=case.scale, subsample=False)
    # float64: 5.4e-15 at most measured over these cases; the brief's bound is 1e-5
    assert got.item() == pytest.approx(expected["haarpsi"], abs=1e-10, rel=0)
    assert full.item() == pytest.approx(expected["haarpsi_no_subsample"], abs=1e-10, rel=0)
    single = haarpsi(pred.float(), target.float(), data_range=case.scale)
    assert single.dtype == torch.float32 and single.item() == pytest.approx(expected["haarpsi"], abs=1e-5, rel=0)


def test_batch_with_one_range_per_image_equals_each_image_alone():
    unit, twelve_bit = Case("mni_axial", "noise", 1.0), Case("mni_axial", "noise", 4095.0)
    pairs = [pair(unit), pair(twelve_bit)]
    pred, target = torch.cat([p for p, _ in pairs]), torch.cat([t for _, t in pairs])
    got = haarpsi(pred, target, data_range=torch.tensor([1.0, 4095.0]))
    expected = torch.tensor([VALUES["values"][unit.name]["haarpsi"], VALUES["values"][twelve_bit.name]["haarpsi"]],
                            dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    by_max = haarpsi(pred, target, data_range="target_max")
    torch.testing.assert_close(by_max, haarpsi(pred, target, data_range=target.flatten(1).amax(dim=1)),
                               rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (1, 3, 33, 17), (3, 1, 8, 9)])
def test_identical_is_one_bounds_and_symmetry(shape):
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=generator, dtype=torch.float64)
    pred = (target + 0.2 * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    subsample = shape[-1] >= 16
    same = haarpsi(target, target, data_range=1.0, subsample=subsample)
    torch.testing.assert_close(same, torch.ones(shape[0], dtype=torch.float64), rtol=0, atol=1e-12)
    value = haarpsi(pred, target, data_range=1.0, subsample=subsample)
    assert value.shape == (shape[0],) and bool(((value > 0) & (value < 1)).all())
    assert torch.equal(value, haarpsi(target, pred, data_range=1.0, subsample=subsample))


def test_worse_degradation_scores_lower():
    _, target = pair(Case("ct", "shift", 1.0))
    noisy = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1),
                                        dtype=torch.float64)).clamp(0, 1)
    mild = haarpsi(0.9 * target + 0.1 * noisy, target, data_range=1.0)
    strong = haarpsi(noisy, target, data_range=1.0)
    assert 1 > mild.item() > strong.item() > 0


def test_loss_gradcheck_float64():
    generator = torch.Generator().manual_seed(2)
    small = torch.rand(2, 1, 8, 9, generator=generator, dtype=torch.float64, requires_grad=True)  # full Jacobian
    small_target = torch.rand(2, 1, 8, 9, generator=generator, dtype=torch.float64)
    loss = HaarPSILoss(data_range=1.0, subsample=False, reduction="none")
    assert torch.autograd.gradcheck(lambda p: loss(p, small_target), (small,))
    # with the 2 x 2 average (>= 16 px) and in colour: Jacobian-vector products in random directions
    target = torch.rand(2, 1, 16, 17, generator=generator, dtype=torch.float64)
    pred = torch.rand(2, 1, 16, 17, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: haarpsi_loss(p, target, data_range=1.0, reduction="none"), (pred,),
                                    fast_mode=True)
    colour = torch.rand(1, 3, 16, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    colour_target = torch.rand(1, 3, 16, 16, generator=generator, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: haarpsi_loss(p, colour_target, data_range=1.0), (colour,),
                                    fast_mode=True)


def test_loss_is_one_minus_metric_trains_pred_only_and_is_finite_on_black_background():
    pred, target = pair(Case("mr", "noise", 1.0))  # the MR slice has an exactly black background
    pred = pred.clone().requires_grad_()
    target = target.clone().requires_grad_()
    value = HaarPSILoss(data_range=1.0)(pred, target)
    assert value.item() == pytest.approx(1.0 - VALUES["values"]["mr-noise-1"]["haarpsi"], abs=1e-10)
    value.backward()
    assert bool(pred.grad.isfinite().all()) and pred.grad.abs().sum() > 0 and target.grad is None
    per_image = haarpsi_loss(pred.detach(), target.detach(), data_range=1.0, reduction="none")
    assert per_image.shape == (1,)


def test_errors_name_the_problem_and_the_fix():
    image = torch.rand(1, 1, 32, 32)
    with pytest.raises(InputError) as small:
        haarpsi(torch.rand(1, 1, 15, 40), torch.rand(1, 1, 15, 40), data_range=1.0)
    assert str(small.value) == ("HaarPSI needs height and width >= 16 (the 8-tap Haar filter after the 2 x 2 "
                                "average), got 15 x 40; use larger images")
    with pytest.raises(InputError) as small_full:
        haarpsi(torch.rand(1, 1, 7, 8), torch.rand(1, 1, 7, 8), data_range=1.0, subsample=False)
    assert str(small_full.value) == ("HaarPSI needs height and width >= 8 (the 8-tap Haar filter), got 7 x 8; "
                                     "use larger images")
    with pytest.raises(InputError) as channels:
        haarpsi(torch.rand(1, 2, 32, 32), torch.rand(1, 2, 32, 32), data_range=1.0)
    assert str(channels.value) == ("HaarPSI takes grayscale (1 channel) or RGB (3 channels) images, got 2 "
                                   "channels (shape (1, 2, 32, 32)); score other channels one at a time as "
                                   "grayscale (x[:, i:i + 1]), and complex images (2 channels) as magnitudes")
    with pytest.raises(InputError) as volume:
        haarpsi(torch.rand(1, 1, 4, 32, 32), torch.rand(1, 1, 4, 32, 32), data_range=1.0)
    assert str(volume.value) == ("HaarPSI is defined for 2-D images but pred is a volume of shape (1, 1, 4, 32, "
                                 "32); score its slices as a batch of images, e.g. x.movedim(2, 1).flatten(0, 1) "
                                 "for (B * D, C, H, W) slices along D")
    for bad in (0.0, -1.0):
        with pytest.raises(InputError) as negative:
            haarpsi(image, image, data_range=bad)
        expected = f"data_range must be finite and > 0 for every image, got {bad!r}; {_HOW_TO_CHOOSE}"
        assert str(negative.value) == expected
        with pytest.raises(InputError):
            HaarPSILoss(data_range=bad)
    with pytest.raises(InputError) as missing:
        haarpsi(image, image)
    assert str(missing.value) == f"data_range is required: {_HOW_TO_CHOOSE}"
    with pytest.raises(ConfigError) as reduction:
        HaarPSILoss(data_range=1.0, reduction="sum")
    assert str(reduction.value) == "reduction='sum' is unknown; use 'mean' or 'none' (per image)"


def test_slices_of_a_volume_scored_as_the_message_says():
    volume = torch.rand(2, 1, 3, 20, 24, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    slices = volume.movedim(2, 1).flatten(0, 1)
    got = haarpsi(slices, slices.flip(-1), data_range=1.0)
    expected = torch.cat([haarpsi(volume[b, :, d][None], volume[b, :, d][None].flip(-1), data_range=1.0)
                          for b in range(2) for d in range(3)])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
