"""taskloss.losses.ObserverLoss: the formula by hand in NumPy, gradients, where it is zero, bad input, and an
optimisation that raises the d' of blurred outputs as taskloss.observers.detectability measures it."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from taskloss.data.signals import Signal
from taskloss.errors import ConfigError, InputError
from taskloss.losses import ObserverLoss
from taskloss.observers import detectability, laguerre_gauss_channels

SIDE = 9
WIDTH = 1.5 * math.sqrt(2 * math.pi)  # the first LG channel is the Gaussian signal of sd 1.5


def _sets(n: int, seed: int, contrast: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    signal = Signal("gaussian", 1.5, contrast).roi((SIDE, SIDE))
    present = rng.normal(size=(n, 1, SIDE, SIDE)) + signal
    return torch.from_numpy(present), torch.from_numpy(rng.normal(size=(n, 1, SIDE, SIDE)))


def _numpy_cho_dprime(present: np.ndarray, absent: np.ndarray, ridge: float, n_channels: int = 5) -> float:
    u = laguerre_gauss_channels((SIDE, SIDE), n_channels, WIDTH).reshape(n_channels, -1).T
    v_p, v_a = present.reshape(len(present), -1) @ u, absent.reshape(len(absent), -1) @ u
    dv = v_p.mean(0) - v_a.mean(0)
    k = (np.cov(v_p, rowvar=False) + np.cov(v_a, rowvar=False)) / 2
    k += ridge * np.trace(k) / n_channels * np.eye(n_channels)
    return float(np.sqrt(dv @ np.linalg.inv(k) @ dv))


def _numpy_npw_dprime(present, absent, template) -> float:
    t_p, t_a = present.reshape(len(present), -1) @ template, absent.reshape(len(absent), -1) @ template
    return float((t_p.mean() - t_a.mean()) / np.sqrt((t_p.var(ddof=1) + t_a.var(ddof=1)) / 2))


def test_cho_value_equals_the_formula_in_numpy():
    target_p, target_a = _sets(12, 0)
    pred_p, pred_a = _sets(12, 1, contrast=0.5)
    loss = ObserverLoss(channel_width=WIDTH, ridge=0.05)
    d_pred, d_target = loss.dprimes(pred_p, pred_a, target_p, target_a)
    assert float(d_pred) == pytest.approx(_numpy_cho_dprime(pred_p.numpy(), pred_a.numpy(), 0.05), rel=1e-10)
    assert float(d_target) == pytest.approx(_numpy_cho_dprime(target_p.numpy(), target_a.numpy(), 0.05), rel=1e-10)
    assert float(loss(pred_p, pred_a, target_p, target_a)) == pytest.approx(1 - float(d_pred) / float(d_target))


@pytest.mark.parametrize("known", [False, True])
def test_npw_value_equals_the_formula_in_numpy(known):
    target_p, target_a = _sets(10, 2)
    pred_p, pred_a = _sets(10, 3, contrast=0.3)
    signal = Signal("gaussian", 1.5, 1.0).roi((SIDE, SIDE))
    template = signal.ravel() if known else (target_p.numpy().mean(0) - target_a.numpy().mean(0)).ravel()
    d_pred, d_target = ObserverLoss("npw").dprimes(pred_p, pred_a, target_p, target_a,
                                                   torch.from_numpy(signal) if known else None)
    assert float(d_pred) == pytest.approx(_numpy_npw_dprime(pred_p.numpy(), pred_a.numpy(), template), rel=1e-10)
    assert float(d_target) == pytest.approx(_numpy_npw_dprime(target_p.numpy(), target_a.numpy(), template),
                                            rel=1e-10)


@pytest.mark.parametrize("observer", ["cho", "npw"])
def test_gradcheck_float64(observer):
    target_p, target_a = _sets(6, 4)
    pred_p, pred_a = _sets(6, 5, contrast=0.4)
    loss = ObserverLoss(observer, channel_width=WIDTH, n_channels=3 if observer == "cho" else None)
    assert float(loss(pred_p, pred_a, target_p, target_a)) > 0.05  # away from the relu's kink
    assert torch.autograd.gradcheck(lambda p, a: loss(p, a, target_p, target_a),
                                    (pred_p.requires_grad_(), pred_a.requires_grad_()))


@pytest.mark.parametrize("observer", ["cho", "npw"])
def test_zero_for_the_targets_themselves_and_for_affine_copies_and_stronger_signals(observer):
    target_p, target_a = _sets(64, 6)
    loss = ObserverLoss(observer, channel_width=WIDTH)
    assert float(loss(target_p, target_a, target_p, target_a)) == 0.0
    d_target = float(loss.dprimes(target_p, target_a, target_p, target_a)[1])
    d_affine = float(loss.dprimes(3 * target_p + 7, 3 * target_a + 7, target_p, target_a)[0])
    assert d_affine == pytest.approx(d_target, rel=1e-9)  # d' is scale- and shift-invariant
    stronger_p, stronger_a = _sets(64, 7, contrast=3.0)
    assert float(loss(stronger_p, stronger_a, target_p, target_a)) == 0.0
    signal = torch.from_numpy(Signal("gaussian", 1.5, 1.0).roi((SIDE, SIDE)))
    known = {"signal": signal} if observer == "npw" else {}  # NPW's default template fits the targets' noise
    assert float(loss(target_p - signal, target_a, target_p, target_a, **known)) > 0.7  # signal gone: d' ~0.4 left


def test_targets_are_detached_and_the_prediction_gets_the_gradient():
    target_p, target_a = _sets(8, 8)
    target_p.requires_grad_()
    pred_p, pred_a = _sets(8, 9, contrast=0.2)
    pred_p.requires_grad_()
    ObserverLoss(channel_width=WIDTH)(pred_p, pred_a, target_p, target_a).backward()
    assert target_p.grad is None and pred_p.grad.abs().sum() > 0


def test_optimising_a_blur_kernel_raises_the_measured_dprime():
    """Clean targets (correlated background + signal), inputs = targets + white noise, outputs = kernel * input.

    A wide blur merges the small signal into the background; 40 Adam steps on fresh batches of the
    observer loss alone sharpen the kernel, and the CHO of taskloss.observers (2-fold CV, 1,000 fresh
    images per class) sees the signal better: d' 1.72 -> 2.59 when this test was written (the noisy
    input's own d' is 2.68).
    """
    signal = torch.from_numpy(Signal("gaussian", 1.0, 1.0).roi((15, 15)))
    width = math.sqrt(2 * math.pi)

    def batch(n: int, seed: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng(seed)
        clean = [torch.from_numpy(ndimage.gaussian_filter(rng.normal(size=(n, 23, 23)), (0, 1.5, 1.5))[:, 4:-4, 4:-4])
                 [:, None] for _ in range(2)]
        clean[0] = clean[0] + signal
        return (*clean, *(c + 0.5 * torch.from_numpy(rng.normal(size=c.shape)) for c in clean))

    y, x = torch.meshgrid(torch.arange(7.0) - 3, torch.arange(7.0) - 3, indexing="ij")
    kernel = torch.exp(-(x**2 + y**2) / (2 * 2.5**2)).double()
    kernel = (kernel / kernel.sum())[None, None].requires_grad_()

    def measured(k: torch.Tensor) -> float:
        _, _, noisy_p, noisy_a = batch(1000, 2)
        with torch.no_grad():
            outputs = [torch.nn.functional.conv2d(v, k, padding=3)[:, 0] for v in (noisy_p, noisy_a)]
        return detectability(*outputs, "cho", channels="laguerre-gauss", channel_width=width).snr

    before = measured(kernel.detach())
    loss = ObserverLoss(channel_width=width)
    optimiser = torch.optim.Adam([kernel], lr=0.01)
    for step in range(40):
        target_p, target_a, input_p, input_a = batch(32, 100 + step)
        optimiser.zero_grad()
        loss(torch.nn.functional.conv2d(input_p, kernel, padding=3),
             torch.nn.functional.conv2d(input_a, kernel, padding=3), target_p, target_a).backward()
        optimiser.step()
    after = measured(kernel.detach())
    assert before < 1.9 and after > before + 0.5


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"observer": "hotelling"}, "observer='hotelling' is unknown for ObserverLoss; use 'cho' or 'npw'"),
    ({"channels": "zernike"}, "channels='zernike' is unknown; use one of laguerre-gauss, gabor, dog"),
    ({}, "ObserverLoss with laguerre-gauss channels needs channel_width (pixels); about s * sqrt(2 pi) for a "
         "Gaussian signal of standard deviation s"),
    ({"channel_width": 3.0, "ridge": 0.0}, "ridge must be a finite number > 0, got 0.0; the default is 0.01"),
])
def test_bad_settings_are_refused_with_their_message(kwargs, message):
    with pytest.raises(ConfigError) as error:
        ObserverLoss(**kwargs)
    assert str(error.value) == message


def test_bad_inputs_are_refused_with_their_message():
    target_p, target_a = _sets(6, 10)
    loss = ObserverLoss(channel_width=WIDTH)
    cases = [
        ((target_p[:, 0], target_a, target_p[:, 0], target_a),
         "pred_present has shape (6, 9, 9); expected (B, C, H, W) (add the missing batch/channel axes with "
         "x[None, None])"),
        ((target_p.repeat(1, 2, 1, 1), target_a, target_p.repeat(1, 2, 1, 1), target_a),
         "pred_present has shape (6, 2, 9, 9); ObserverLoss takes one-channel ROIs (N, 1, h, w) (magnitudes for "
         "complex images)"),
        ((target_p[:1], target_a, target_p[:1], target_a),
         "pred_present holds 1 ROI; the observer needs at least 2 per class for a covariance"),
        ((target_p[:5], target_a, target_p, target_a),
         "pred_present has shape (5, 1, 9, 9) but target_present has shape (6, 1, 9, 9); pass the outputs of the "
         "same ROIs"),
        ((target_p, target_a[..., :8], target_p, target_a[..., :8]),
         "signal-present ROIs are 9 x 9 but signal-absent ROIs are 9 x 8; cut both with the same roi_size"),
        ((target_p * np.nan, target_a, target_p, target_a),
         "pred_present holds NaN or infinite values; fix the network's outputs or the targets"),
    ]
    for args, message in cases:
        with pytest.raises(InputError) as error:
            loss(*args)
        assert str(error.value) == message
    with pytest.raises(InputError, match=r"^the targets' cho d' is 0: the observer does not see the signal in "):
        loss(target_a, target_a, target_a, target_a)
    constant = torch.zeros_like(target_p)
    with pytest.raises(InputError) as error:
        loss(constant, constant + 1.0, target_p, target_a)
    assert str(error.value) == (
        "pred_present and pred_absent have no variance in the CHO's channels (every ROI of a class is the same "
        "image), so the channel covariance cannot be inverted; pass ROIs of different images (a batch of noisy "
        "inputs), or use ObserverLoss('npw')")
    with pytest.raises(InputError, match=r"^signal= is the NPW's template; the CHO estimates its template"):
        loss(target_p, target_a, target_p, target_a, signal=torch.zeros(SIDE, SIDE))
    with pytest.raises(InputError, match=r"^signal has shape \(9, 8\) but the ROIs are 9 x 9; pass the expected"):
        ObserverLoss("npw")(target_p, target_a, target_p, target_a, signal=torch.zeros(SIDE, 8))
