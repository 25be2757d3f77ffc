"""The observer loss: a differentiable detectability term, ``relu(1 - d'(outputs) / d'(targets))``.

A network trained with a pixel loss can keep PSNR while it wipes out a small low-contrast signal
(Li, Zhou, Li & Anastasio, IEEE TMI 40(9), 2021). The observer loss measures, in torch and with
gradients, how detectable a signal inserted into the training targets still is in the network's
outputs, by a linear model observer on ROIs centred on the signal (signal known exactly):

- ``"cho"``, the channelized Hotelling observer: channel outputs ``v = U^T g`` (U the P x C channels
  of :func:`taskloss.observers.make_channels`), ``dv`` the mean signal-present minus mean
  signal-absent ``v``, ``K`` the mean of the two classes' channel covariances, and
  ``d'^2 = dv^T (K + lambda I)^-1 dv`` with the ridge ``lambda = ridge * tr(K) / C``;
- ``"npw"``, the non-prewhitening matched filter with the signal as its template: ``w`` the
  expected signal ``signal=`` (known exactly, e.g. :meth:`taskloss.data.signals.Signal.roi`) or,
  by default, ``mean(target_present) - mean(target_absent)`` (which fits the batch's noise: outputs
  that copy the targets' noise then keep a d' of their own; pass ``signal``), scores ``t = w^T g``, and
  ``d' = (mean t_present - mean t_absent) / sqrt(var_pooled(t))`` (no matrix to invert, no ridge).

Each set (outputs, targets) gets its own covariance, so d' does not change when the outputs are
scaled or shifted (``a g + b``, a > 0), as for :func:`taskloss.observers.detectability`. The loss is
``relu(1 - d'_outputs / d'_targets)``: 0 once the outputs are at least as detectable as the targets,
1 when the signal is gone from them. It is a set statistic (one value per batch, no reduction).

Which variant, and why: Han, Shim & Baek ("Low-dose CT denoising via convolutional neural network
with an observer loss function", Med. Phys. 48(10), 2021) call "observer loss" a feature loss on a
CNN trained to tell lesion-present from lesion-absent CT images (learned weights; in taskloss that is
:class:`taskloss.losses.TaskLoss`'s route). Lantz, Sidky, Reiser, Pan & Ongie (arXiv 2402.10010, 2024)
add to MSE a term inspired by model observers that rewards reconstructions of planted signals. This
module takes the closed-form route the two share the aim of: the linear observer's own figure of
merit, with no learned weights, so that its value can be checked by hand (Barrett & Myers,
Foundations of Image Science, 2004, ch. 13). The ridge is ours: a batch has few images per channel,
and a singular covariance must not break training.
"""

import math
from typing import Literal

import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.observers.channels import CHANNEL_FAMILIES, make_channels
from taskloss.validation import check_float_tensor

LossObserver = Literal["cho", "npw"]
DEFAULT_RIDGE = 0.01
"""The CHO's ridge as a fraction of the mean channel variance: it keeps the channel covariance of a
batch with few images per channel invertible and is small against the channels' own variance."""


class ObserverLoss(nn.Module):
    """``relu(1 - d'(pred) / d'(target))`` of a CHO or NPW on signal-present and signal-absent ROIs.

    Args:
        observer: "cho" (default) or "npw" (see the module's docstring for both formulas).
        channels: the CHO's channel family, "laguerre-gauss" (default), "gabor" or "dog".
        channel_width: the Laguerre-Gauss width in pixels (required with those channels): about
            ``s sqrt(2 pi)`` for a Gaussian signal of standard deviation s.
        n_channels: channel count for "laguerre-gauss" (default 5) and "dog" (default 10).
        ridge: the CHO's lambda as a fraction of the set's mean channel variance, > 0 (NPW: unused).

    Shapes: ``pred_present`` and ``target_present`` (N_p, 1, h, w), ``pred_absent`` and
    ``target_absent`` (N_a, 1, h, w), N_p, N_a >= 2: ROIs centred on the signal
    (:func:`taskloss.data.signals.cut_rois` cuts them, with gradients, from a batch of outputs).
    The channels are centred on the ROI's centre ``((h - 1) / 2, (w - 1) / 2)``. Outputs that are
    identical across a class have no covariance: the CHO refuses them (InputError); real batches vary.

    Examples:
        >>> from taskloss.data.signals import Signal
        >>> g = torch.Generator().manual_seed(0)
        >>> s = torch.from_numpy(Signal("gaussian", 2.0, 1.0).roi((15, 15))).float()
        >>> target_present = torch.randn(16, 1, 15, 15, generator=g) + s
        >>> target_absent = torch.randn(16, 1, 15, 15, generator=g)
        >>> loss = ObserverLoss(channel_width=2.0 * math.sqrt(2 * math.pi))
        >>> float(loss(target_present, target_absent, target_present, target_absent))
        0.0
        >>> float(loss(target_present - s, target_absent, target_present, target_absent)) > 0.5
        True
    """

    def __init__(self, observer: LossObserver = "cho", *, channels: str = "laguerre-gauss",
                 channel_width: float | None = None, n_channels: int | None = None,
                 ridge: float = DEFAULT_RIDGE) -> None:
        super().__init__()
        if observer not in ("cho", "npw"):
            raise ConfigError(f"observer={observer!r} is unknown for ObserverLoss; use 'cho' or 'npw'")
        if observer == "cho" and channels not in CHANNEL_FAMILIES:
            raise ConfigError(f"channels={channels!r} is unknown; use one of {', '.join(CHANNEL_FAMILIES)}")
        if observer == "cho" and channels == "laguerre-gauss" and channel_width is None:
            raise ConfigError("ObserverLoss with laguerre-gauss channels needs channel_width (pixels); about "
                              "s * sqrt(2 pi) for a Gaussian signal of standard deviation s")
        if not (math.isfinite(ridge) and ridge > 0):
            raise ConfigError(f"ridge must be a finite number > 0, got {ridge}; the default is {DEFAULT_RIDGE}")
        self.observer = observer
        self.channels = channels
        self.channel_width = channel_width
        self.n_channels = n_channels
        self.ridge = ridge
        self._basis: dict[tuple, torch.Tensor] = {}

    def forward(self, pred_present: torch.Tensor, pred_absent: torch.Tensor, target_present: torch.Tensor,
                target_absent: torch.Tensor, signal: torch.Tensor | None = None) -> torch.Tensor:
        """The loss, a scalar in [0, 1]; gradients flow to ``pred_*`` only (targets are detached).

        ``signal`` (h, w), NPW only: the expected signal, the template (default: the targets' mean
        difference).
        """
        d_pred, d_target = self.dprimes(pred_present, pred_absent, target_present, target_absent, signal)
        return torch.relu(1.0 - d_pred / d_target)

    def dprimes(self, pred_present: torch.Tensor, pred_absent: torch.Tensor, target_present: torch.Tensor,
                target_absent: torch.Tensor, signal: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d'_pred, d'_target)``, 0-d tensors; d'_pred carries the gradient (for logging both).

        Raises:
            InputError: shapes that are not (N, 1, h, w), differ between pred and target or between
                the classes' ROIs, fewer than 2 ROIs per class, values that are not finite, or targets
                in which the observer does not see the signal (d'_target <= 0); a ``signal`` of another
                shape than the ROIs, or given to the CHO.
        """
        target_present, target_absent = target_present.detach(), target_absent.detach()
        size = _check(pred_present, pred_absent, target_present, target_absent)
        if signal is not None and self.observer != "npw":
            raise InputError("signal= is the NPW's template; the CHO estimates its template from the sets (leave "
                             "signal out, or use ObserverLoss('npw'))")
        if signal is not None and tuple(signal.shape) != size:
            raise InputError(f"signal has shape {tuple(signal.shape)} but the ROIs are {size[0]} x {size[1]}; pass "
                             "the expected signal (h, w) on the ROI grid (Signal.roi(roi_size))")
        if self.observer == "npw":
            template = (target_present.mean(dim=0) - target_absent.mean(dim=0)).flatten() if signal is None \
                else signal.detach().to(target_present).flatten()
            d_target = self._npw(target_present, target_absent, template)
            d_pred = self._npw(pred_present, pred_absent, template)
        else:
            basis = self._channel_matrix(size, pred_present)
            d_target = self._cho2(target_present, target_absent, basis, "target").sqrt()  # no gradient: plain sqrt
            d_pred = _sqrt(self._cho2(pred_present, pred_absent, basis, "pred"))
        if not bool(d_target > 0):
            raise InputError(f"the targets' {self.observer} d' is {float(d_target):.4g}: the observer does not see "
                             "the signal in target_present against target_absent; insert a signal into the "
                             "signal-present targets and centre the ROIs on it (taskloss.data.signals)")
        return d_pred, d_target

    def _channel_matrix(self, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        """The channels U (P, C) on this ROI, cached per size, dtype and device."""
        key = (size, like.dtype, like.device)
        if key not in self._basis:
            channels = make_channels(self.channels, size, self.n_channels,
                                     self.channel_width if self.channels == "laguerre-gauss" else None)
            self._basis[key] = torch.from_numpy(channels.reshape(channels.shape[0], -1).T.copy()).to(like)
        return self._basis[key]

    def _cho2(self, present: torch.Tensor, absent: torch.Tensor, basis: torch.Tensor, name: str) -> torch.Tensor:
        v_p, v_a = present.flatten(1) @ basis, absent.flatten(1) @ basis
        difference = v_p.mean(dim=0) - v_a.mean(dim=0)
        covariance = (torch.cov(v_p.T).reshape(basis.shape[1], -1) + torch.cov(v_a.T).reshape(basis.shape[1], -1)) / 2
        scale = torch.diagonal(covariance).mean()
        # The ridge scales with the variance, so none (up to rounding of the channel outputs' magnitude)
        # leaves K + lambda I singular.
        magnitude = (v_p.detach().square().mean() + v_a.detach().square().mean()) / 2
        if not bool(scale > torch.finfo(scale.dtype).eps * magnitude):
            raise InputError(f"{name}_present and {name}_absent have no variance in the CHO's channels (every ROI "
                             "of a class is the same image), so the channel covariance cannot be inverted; pass "
                             "ROIs of different images (a batch of noisy inputs), or use ObserverLoss('npw')")
        regularised = covariance + self.ridge * scale * torch.eye(basis.shape[1], dtype=basis.dtype,
                                                                  device=basis.device)
        return difference @ torch.linalg.solve(regularised, difference)

    def _npw(self, present: torch.Tensor, absent: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        t_p, t_a = present.flatten(1) @ template, absent.flatten(1) @ template
        pooled = (t_p.var() + t_a.var()) / 2
        return (t_p.mean() - t_a.mean()) / _sqrt(pooled)


def _sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt`` clamped to the dtype's smallest positive value: positive, so it can divide (the NPW's
    pooled standard deviation), with gradient 0 below it (a loss must not turn NaN). Unlike
    :func:`taskloss.metrics.pixel.sqrt_zero_safe`, which is exactly 0 at 0."""
    return x.clamp_min(torch.finfo(x.dtype).tiny).sqrt()


def _check(pred_present: object, pred_absent: object, target_present: torch.Tensor,
           target_absent: torch.Tensor) -> tuple[int, int]:
    """Refuse bad shapes; return the ROI size (h, w)."""
    named = {"pred_present": pred_present, "pred_absent": pred_absent, "target_present": target_present,
             "target_absent": target_absent}
    for name, x in named.items():
        check_float_tensor(x, name, ndims=(4,))
        if x.shape[1] != 1:
            raise InputError(f"{name} has shape {tuple(x.shape)}; ObserverLoss takes one-channel ROIs (N, 1, h, w) "
                             "(magnitudes for complex images)")
        if x.shape[0] < 2:
            raise InputError(f"{name} holds {x.shape[0]} ROI; the observer needs at least 2 per class for a "
                             "covariance")
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"{name} holds NaN or infinite values; fix the network's outputs or the targets")
    for pred, target in (("pred_present", "target_present"), ("pred_absent", "target_absent")):
        if named[pred].shape != named[target].shape:
            raise InputError(f"{pred} has shape {tuple(named[pred].shape)} but {target} has shape "
                             f"{tuple(named[target].shape)}; pass the outputs of the same ROIs")
    if pred_present.shape[2:] != pred_absent.shape[2:]:
        raise InputError(f"signal-present ROIs are {pred_present.shape[2]} x {pred_present.shape[3]} but "
                         f"signal-absent ROIs are {pred_absent.shape[2]} x {pred_absent.shape[3]}; cut both "
                         "with the same roi_size")
    return int(pred_present.shape[2]), int(pred_present.shape[3])
