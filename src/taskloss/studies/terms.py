"""A study file's loss (a :class:`~taskloss.studies.spec.LossSpec`) as a :class:`CompositeLoss`.

Each term is a :class:`Term` held in the composite's ``losses`` (so the perceptual loss's layer
balance and every term's own balancing divisor are in the composite's state dict and a resumed run
keeps them); the composite sums ``weight * term``. A term with ``balance: K`` (or "first", K = 1)
is divided by its mean over the first K training batches (:class:`~taskloss.losses.balance.
TermNormalizer`), then frozen, so it starts at its weight; the perceptual term's ``balance``
balances its layers instead (Chen & Koltun's rule inside :class:`~taskloss.losses.PerceptualLoss`).

Terms and what they compare (``pred`` the network output, images in the study's intensity scale):

- ``l1``, ``mse``, ``nmse``, ``ssim``, ``frequency``, ``perceptual``: ``pred`` against the target;
- ``penalty``: ``mean |pred - input|`` (the change the network makes, Seitzer et al.'s penalty);
- ``adversarial``: the generator loss on the discriminator's output for ``pred``;
- ``feature_matching``: discriminator features of ``pred`` against those of the target;
- ``task``: a frozen task network's features and outputs on ``pred`` against the target's
  (:class:`~taskloss.losses.TaskLoss`; "ce" and "dice" outputs against the batch's labels).
"""

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from taskloss.errors import ConfigError
from taskloss.losses import (
    CompositeLoss,
    FrequencyMSELoss,
    L1Loss,
    MSELoss,
    NMSELoss,
    PerceptualLoss,
    SSIMLoss,
    TaskLoss,
    feature_matching_loss,
    generator_loss,
    output_penalty,
)
from taskloss.losses.balance import TermNormalizer
from taskloss.metrics import DataRange
from taskloss.studies.perception import perception_network
from taskloss.studies.spec import (
    AdversarialTerm,
    FeatureMatchingTerm,
    FrequencyTerm,
    LossSpec,
    NMSETerm,
    PerceptualTerm,
    SSIMTerm,
    TaskTerm,
    TermSpec,
)
from taskloss.training.task import Batch

Compute = Callable[[torch.Tensor, Batch, Any, Any], torch.Tensor]
"""``compute(pred, batch, d_fake, d_real) -> scalar``; the discriminator outputs are None without
an adversarial term."""


class Term(nn.Module):
    """One term of a study's loss: its raw value, divided by its balancing divisor when balanced.

    Args:
        name: the term's name (for messages and the divisor's state).
        compute: computes the raw value (see :data:`Compute`).
        module: the loss module ``compute`` uses (held so it moves and checkpoints with the loss).
        balance: K of the balancing rule, or None for a raw (fixed-weight) term.
    """

    def __init__(self, name: str, compute: Compute, module: nn.Module | None = None,
                 balance: int | None = None) -> None:
        super().__init__()
        self.compute = compute
        self.module = module
        self.normalizer = TermNormalizer((name,), balance) if balance is not None else None

    def forward(self, pred: torch.Tensor, batch: Batch, d_fake: Any = None, d_real: Any = None) -> torch.Tensor:
        """The term's value for a batch, a scalar."""
        value = self.compute(pred, batch, d_fake, d_real)
        if self.normalizer is None:
            return value
        divisor = self.normalizer.divisors(value.detach().reshape(1), record=self.training)
        return value / divisor[0]


def _pair(module: nn.Module) -> Compute:
    return lambda pred, batch, d_fake, d_real: module(pred, batch["target"])


def _pair_module(name: str, spec: TermSpec, data_range: DataRange) -> nn.Module:
    """The loss module of a term that compares ``pred`` with the target."""
    if name == "l1":
        return L1Loss()
    if name == "mse":
        return MSELoss()
    if isinstance(spec, NMSETerm):
        return NMSELoss(squared=spec.squared)
    if isinstance(spec, SSIMTerm):
        return SSIMLoss(data_range, convention=spec.convention)
    if isinstance(spec, FrequencyTerm):
        return FrequencyMSELoss(norm=spec.norm)
    if isinstance(spec, PerceptualTerm):
        network, default_layers = perception_network(spec.network, spec.weights_path)
        return PerceptualLoss(layers=spec.layers or default_layers,
                              layer_weights="balance" if spec.balance is not None else None,
                              distance=spec.distance, include_pixel=spec.include_pixel, network=network,
                              balance_batches=spec.balance_batches() or 1)
    raise AssertionError(f"{name} is not a pair term")  # unreachable: the spec lists every term


def _task_term(spec: TaskTerm, network: nn.Module | None) -> Term:
    if network is None:
        raise ConfigError("the task term needs its task network; build the loss with task_network (the engine "
                          "trains or loads it)")
    module = TaskLoss(network, layers=spec.layers, output=spec.output)
    needs_labels = spec.output in ("ce", "dice")

    def compute(pred: torch.Tensor, batch: Batch, d_fake: Any, d_real: Any) -> torch.Tensor:
        return module(pred, batch["target"], batch["label"] if needs_labels else None)

    return Term("task", compute, module, spec.balance_batches())


def build_term(name: str, spec: TermSpec, data_range: DataRange, task_network: nn.Module | None = None) -> Term:
    """The :class:`Term` of one entry of a loss (``task_network``: the task term's network)."""
    if isinstance(spec, TaskTerm):
        return _task_term(spec, task_network)
    if name == "penalty":
        return Term(name, lambda pred, batch, d_fake, d_real: output_penalty(pred - batch["input"]),
                    balance=spec.balance_batches())
    if isinstance(spec, AdversarialTerm):
        criterion = spec.criterion
        return Term(name, lambda pred, batch, d_fake, d_real: generator_loss(d_fake, criterion),
                    balance=spec.balance_batches())
    if isinstance(spec, FeatureMatchingTerm):
        distance = spec.distance
        return Term(name, lambda pred, batch, d_fake, d_real: feature_matching_loss(d_fake, d_real,
                                                                                    distance=distance),
                    balance=spec.balance_batches())
    module = _pair_module(name, spec, data_range)
    # The perceptual loss balances its layers itself; its term is not divided again.
    balance = None if isinstance(spec, PerceptualTerm) else spec.balance_batches()
    return Term(name, _pair(module), module, balance)


def build_loss(spec: LossSpec, data_range: DataRange, task_network: nn.Module | None = None) -> CompositeLoss:
    """The composite of a loss's terms with their weights (see the module docstring).

    Args:
        spec: the loss.
        data_range: the SSIM term's data_range (the study's metric data_range).
        task_network: the task term's frozen network (see :class:`taskloss.losses.TaskLoss`).
    """
    terms = spec.terms()
    return CompositeLoss({name: term.weight for name, term in terms.items()},
                         losses={name: build_term(name, term, data_range, task_network)
                                 for name, term in terms.items()})


def term_values(loss: CompositeLoss, pred: torch.Tensor, batch: Batch, d_fake: Any = None,
                d_real: Any = None) -> dict[str, torch.Tensor]:
    """Each term's (balanced) value for a batch, to pass to ``loss``."""
    return {name: term(pred, batch, d_fake, d_real) for name, term in loss.losses.items()}


def describe_loss(spec: LossSpec) -> str:
    """One line for reports, e.g. ``0.84 ssim + 0.16 l1``; balanced terms say so."""
    parts = []
    for name, term in spec.terms().items():
        text = f"{term.weight:g} {name}"
        if term.balance is not None:
            text += f" (balanced over {term.balance_batches()} batch{'es' if term.balance_batches() != 1 else ''})"
        if isinstance(term, PerceptualTerm):
            text += f" [{term.network}, {term.distance}, {', '.join(term.layers or ['default layers'])}]"
        parts.append(text)
    return " + ".join(parts)
