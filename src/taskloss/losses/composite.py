"""A weighted sum of named loss terms, with fixed weights or Seitzer et al.'s first-batch rule.

The caller computes each term's raw value (a scalar); :class:`CompositeLoss` weights, optionally
normalises, and sums them, and returns every raw and weighted value for logging:

- ``normalize="fixed"``: ``total = sum_t w_t * L_t``.
- ``normalize="first"``: ``total = sum_t w_t * L_t / R_t``, with R_t the term's value on the first
  training batch (its mean over the first ``normalize_batches`` batches), then frozen. Each term
  then starts at its weight: with Seitzer et al.'s weights (:data:`SEITZER_FIRST_WEIGHTS`, 0.5 /
  0.5 / 1 / 0.1) this is their ``1/2 (L_adv/M + L_feat/N) + L_VGG/O + alpha L_pen`` with M, N, O
  the first values and alpha chosen so that ``alpha L_pen = 0.1`` at the first batch.

The normalisers R_t are buffers (``state_dict()`` carries them, so a resumed run keeps them; the
term names are checked on load); only training-mode calls set them. Terms that are modules (e.g.
a :class:`~taskloss.losses.PerceptualLoss` with layer balancing) can be held by the composite, so
their state travels with it too.

Two uses (see ``docs/losses.md``)::

    # (a) supervised synthesis: terms on (pred, target)
    loss = CompositeLoss({"perceptual": 1.0, "l1": 10.0},
                         losses={"perceptual": PerceptualLoss(), "l1": L1Loss()})
    out = loss(loss.pair_terms(pred, target))
    out.total.backward(); log(out.scalars())

    # (b) Seitzer et al.'s stage 2, generator step
    loss = CompositeLoss.seitzer("first")
    out = loss({"adversarial": adversarial(d_fake), "feature_matching": feature_matching(d_fake, d_real),
                "vgg": vgg(magnitude(v), magnitude(target)), "penalty": output_penalty(u)})
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.losses.balance import TermNormalizer
from taskloss.losses.precision import full_precision

Normalize = Literal["fixed", "first"]

SEITZER_FIRST_WEIGHTS: dict[str, float] = {
    "adversarial": 0.5, "feature_matching": 0.5, "vgg": 1.0, "penalty": 0.1}
"""The paper's rule (with ``normalize="first"``): 1/2 (L_adv/M + L_feat/N) + L_VGG/O + alpha L_pen."""

SEITZER_FIXED_WEIGHTS: dict[str, float] = {
    "adversarial": 0.5, "feature_matching": 1.0, "vgg": 10.0, "penalty": 2.0}
"""The released configuration's constants (with ``normalize="fixed"``)."""


@dataclass(frozen=True)
class CompositeOutput:
    """Result of :class:`CompositeLoss`.

    Attributes:
        total: the loss to backpropagate, a scalar.
        raw: each term's value as passed in, detached.
        weighted: each term's contribution to ``total`` (after weight and normaliser), detached.

    Examples:
        >>> out = CompositeLoss({"l1": 2.0, "ssim": 1.0})({"l1": torch.tensor(0.25), "ssim": torch.tensor(0.5)})
        >>> out.scalars()
        {'total': 1.0, 'l1': 0.5, 'l1_raw': 0.25, 'ssim': 0.5, 'ssim_raw': 0.5}
    """

    total: torch.Tensor
    raw: dict[str, torch.Tensor]
    weighted: dict[str, torch.Tensor]

    def scalars(self) -> dict[str, float]:
        """``{"total": ..., "<term>": weighted, "<term>_raw": raw}`` as floats (synchronises)."""
        values = {"total": float(self.total.detach())}
        for name in self.raw:
            values[name] = float(self.weighted[name])
            values[f"{name}_raw"] = float(self.raw[name])
        return values


class CompositeLoss(nn.Module):
    """Weighted, optionally first-batch-normalised sum of named scalar loss terms.

    Args:
        weights: term name -> weight w_t (with "first": the value the term starts at).
        normalize: "fixed" or "first" (see the module docstring).
        normalize_batches: with "first", the number of training batches averaged for R_t.
        losses: optional term name -> module called as ``module(pred, target)`` by
            :meth:`pair_terms`; held as submodules (their buffers join the state dict).

    Examples:
        Fixed weights: total = 2 * 0.25 + 1 * 0.5.

        >>> loss = CompositeLoss({"l1": 2.0, "ssim": 1.0})
        >>> loss({"l1": torch.tensor(0.25), "ssim": torch.tensor(0.5)}).total
        tensor(1.)

        Seitzer et al.'s rule: each term is divided by its value on the first training batch, so every
        term starts at its weight, and later batches are measured against that first one.

        >>> loss = CompositeLoss({"a": 0.5, "b": 1.0}, normalize="first").train()
        >>> loss({"a": torch.tensor(4.0), "b": torch.tensor(0.1)}).weighted
        {'a': tensor(0.5000), 'b': tensor(1.)}
        >>> loss({"a": torch.tensor(2.0), "b": torch.tensor(0.1)}).total  # 0.5 * 2 / 4 + 1 * 0.1 / 0.1
        tensor(1.2500)
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        *,
        normalize: Normalize = "fixed",
        normalize_batches: int = 1,
        losses: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if not weights:
            raise ConfigError("weights is empty; give at least one term, e.g. {'l1': 1.0}")
        if normalize not in ("fixed", "first"):
            raise ConfigError(f"normalize={normalize!r} is unknown; use 'fixed' (constant weights) or "
                              "'first' (each term divided by its first-batch value)")
        self.term_names = tuple(weights)
        self.normalize: Normalize = normalize
        self.register_buffer("weights", torch.tensor([float(w) for w in weights.values()]),
                             persistent=False)
        self.normalizer = TermNormalizer(self.term_names, normalize_batches) if normalize == "first" else None
        unknown = sorted(set(losses or {}) - set(self.term_names))
        if unknown:
            raise ConfigError(f"losses names {unknown}, which are not terms of this loss "
                              f"({', '.join(self.term_names)}); add them to weights")
        self.losses = nn.ModuleDict(dict(losses or {}))

    @classmethod
    def seitzer(cls, normalize: Normalize = "first") -> "CompositeLoss":
        """Seitzer et al.'s stage-2 generator loss over the terms "adversarial", "feature_matching",
        "vgg" and "penalty": the paper's first-batch rule or the released fixed constants."""
        weights = SEITZER_FIRST_WEIGHTS if normalize == "first" else SEITZER_FIXED_WEIGHTS
        return cls(weights, normalize=normalize)

    def pair_terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw values of the terms held in ``losses``, each called as ``module(pred, target)``."""
        if not self.losses:
            raise ConfigError("pair_terms needs the term modules: build the loss with losses={name: "
                              "module}, or compute the raw terms yourself and call the loss on them")
        return {name: module(pred, target) for name, module in self.losses.items()}

    def multipliers(self, raw: torch.Tensor | None = None) -> torch.Tensor:
        """Factor applied to each raw term, shape (T,): w_t, or w_t / R_t with "first".

        Args:
            raw: this batch's raw values (T,); with "first" and ``self.training`` they are
                recorded while the normalisers are not yet frozen.
        """
        if self.normalizer is None:
            return self.weights
        values = raw if raw is not None else torch.zeros_like(self.weights)
        return self.weights / self.normalizer.divisors(values, record=self.training and raw is not None)

    def forward(self, raw: Mapping[str, torch.Tensor]) -> CompositeOutput:
        """Combine the terms.

        Args:
            raw: term name -> scalar tensor (its raw value, with its graph), every term exactly once.

        Returns:
            A :class:`CompositeOutput`.
        """
        values = self._stack(raw)
        weighted = values * self.multipliers(values).to(values.dtype)
        raw_detached = values.detach()
        weighted_detached = weighted.detach()
        return CompositeOutput(
            total=weighted.sum(),
            raw=dict(zip(self.term_names, raw_detached, strict=True)),
            weighted=dict(zip(self.term_names, weighted_detached, strict=True)),
        )

    def _stack(self, raw: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [name for name in self.term_names if name not in raw]
        unknown = [name for name in raw if name not in self.term_names]
        if missing or unknown:
            raise InputError(f"the terms passed ({', '.join(raw)}) do not match the loss's terms "
                             f"({', '.join(self.term_names)}): missing {missing}, unknown {unknown}")
        for name in self.term_names:
            value = raw[name]
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise InputError(f"term {name!r} must be a scalar tensor, got {shape}; reduce it "
                                 "(e.g. .mean()) before passing it")
        return torch.stack([full_precision(raw[name].reshape(())) for name in self.term_names])

    def extra_repr(self) -> str:
        weights = ", ".join(f"{n}={float(w):g}" for n, w in zip(self.term_names, self.weights, strict=True))
        return f"normalize={self.normalize!r}, weights=({weights})"
