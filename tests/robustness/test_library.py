"""The library's answers to misuse: detached targets, any float dtype, meta tensors, data_range, offline."""

import warnings

import pytest
import torch

from taskloss.errors import DataRangeWarning, InputError, MissingWeightsError
from taskloss.losses import FrequencyMSELoss, L1Loss, MSELoss, NMSELoss, PerceptualLoss, SSIMLoss
from taskloss.metrics import mae, psnr, ssim

PIXEL_LOSSES = [L1Loss(), MSELoss(), NMSELoss(), FrequencyMSELoss(), SSIMLoss(data_range=1.0)]


@pytest.mark.parametrize("loss", PIXEL_LOSSES, ids=lambda loss: type(loss).__name__)
def test_pixel_losses_send_no_gradient_to_the_target(loss):
    pred = torch.rand(2, 1, 16, 16, requires_grad=True)
    target = torch.rand(2, 1, 16, 16, requires_grad=True)
    loss(pred, target).backward()
    assert target.grad is None
    assert pred.grad is not None and bool(pred.grad.abs().sum() > 0)


def test_perceptual_loss_takes_float64_without_converting_a_shared_network():
    first = PerceptualLoss(layers=["conv1_2"], weights="random", seed=1)
    second = PerceptualLoss(layers=["conv1_2"], network=first.network)
    pred = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    value = second(pred, target)
    value.backward()
    assert value.dtype == torch.float64 and pred.grad.dtype == torch.float64
    assert next(first.network.parameters()).dtype == torch.float32
    expected = first(pred.detach().float(), target.float())
    assert float(value.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_meta_tensors_are_an_input_error():
    meta = torch.empty(1, 1, 8, 8, device="meta")
    for function in (mae, lambda p, t: ssim(p, t, data_range=1.0)):
        with pytest.raises(InputError, match="pred is on the meta device"):
            function(meta, meta)


def test_a_data_range_far_below_the_targets_spread_warns_and_a_fitting_one_does_not():
    hu = torch.linspace(-1000, 1000, 256).reshape(1, 1, 16, 16)
    with pytest.warns(DataRangeWarning, match=r"data_range=1 but target image 0 spans 2000"):
        ssim(hu, hu, data_range=1.0)
    with pytest.warns(DataRangeWarning):
        psnr(hu + 1, hu, data_range=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ssim(hu, hu, data_range=2000.0)
        ssim(hu, hu, data_range="target_range")
        unit = torch.rand(1, 1, 16, 16)
        ssim(unit, unit, data_range=1.0)


def test_domain_network_is_accepted_and_the_offline_error_names_both_ways_out(monkeypatch, tmp_path):
    loss = PerceptualLoss(network="domain")
    assert "domain" in loss.description.lower()
    image = torch.rand(1, 1, 32, 32)
    assert float(loss(image, image)) == 0.0
    monkeypatch.setenv("TASKLOSS_VGG19_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(MissingWeightsError) as error:
        PerceptualLoss()
    assert "TASKLOSS_VGG19_WEIGHTS" in str(error.value) and "network='domain'" in str(error.value)
