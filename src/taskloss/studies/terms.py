"""The loss terms of study files: one registry (:data:`TERMS`), their settings, :class:`LossSpec` (a
study file's loss) and its :class:`CompositeLoss`.

Adding a term is one entry of :data:`TERMS`: its settings (a :class:`TermSpec`, or a subclass with
the term's keys) and a builder ``(name, settings, context) -> Term``. :class:`LossSpec` has one key
per entry, in the registry's order (the order of the unknown-key message and of the reports).

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError
from torch import nn

from taskloss.config import StrictModel
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
from taskloss.networks.factory import NetworkName
from taskloss.studies.perception import PerceptionChoice, perception_network
from taskloss.training.config import OptimizerConfig
from taskloss.training.task import Batch

Balance = int | Literal["first"] | None


class TermSpec(StrictModel):
    """A loss term: its weight and, optionally, balancing.

    Attributes:
        weight: the term's factor (with ``balance``: the value the term starts at).
        balance: None (fixed weight), "first" (the term divided by its value on the first training
            batch, Seitzer et al.'s rule) or K (by its mean over the first K batches, Chen &
            Koltun's); the divisor is then frozen and saved with the run.
    """

    weight: float = Field(1.0, gt=0)
    balance: Balance = None

    @field_validator("balance")
    @classmethod
    def _positive(cls, balance: Balance) -> Balance:
        if isinstance(balance, int) and balance < 1:
            raise PydanticCustomError("balance", "balance must be 'first' or a number of batches >= 1")
        return balance

    def balance_batches(self) -> int | None:
        """K of the balancing rule ("first" is 1), or None for a fixed weight."""
        return 1 if self.balance == "first" else self.balance


class NMSETerm(TermSpec):
    """NMSE ``||pred - target||^2 / ||target||^2``; ``squared: false`` takes its square root (DAGAN)."""

    squared: bool = True


class SSIMTerm(TermSpec):
    """``1 - SSIM`` with the study's data_range; window "gaussian" (11, 1.5) or "fastmri" (7, uniform)."""

    convention: Literal["gaussian", "fastmri"] = "gaussian"


class FrequencyTerm(TermSpec):
    """MSE of Fourier magnitudes (DAGAN's frequency loss)."""

    norm: Literal["ortho", "backward"] = "ortho"


class PerceptualTerm(TermSpec):
    """Perceptual loss (Chen & Koltun) on a frozen perception network.

    ``balance: K`` balances its layers: each layer's distance divided by its mean over the first K
    batches (Chen & Koltun's rule; the term then starts at about ``weight`` times its number of
    layers).

    Attributes:
        network: "auto" (ImageNet VGG-19 when its weights are found, else the domain network),
            "vgg19", "domain" or "efficientnet_lite0" (ImageNet weights from ``taskloss[imagenet]``).
        layers: layer names; default the network's CRN-style set.
        distance: "l1" or "l2".
        include_pixel: add the pixel term (layer 0).
        weights_path: an explicit VGG-19 or EfficientNet-Lite0 checkpoint file.
    """

    network: PerceptionChoice = "auto"
    layers: list[str] | None = None
    distance: Literal["l1", "l2"] = "l1"
    include_pixel: bool = False
    weights_path: str | None = None


class DiscriminatorSpec(StrictModel):
    """The discriminator an adversarial term brings, and its optimiser."""

    name: NetworkName = "patch_discriminator"
    options: dict[str, Any] = Field(default_factory=dict)
    optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999))


class AdversarialTerm(TermSpec):
    """Adversarial generator loss against its own discriminator (one D step per G step).

    Attributes:
        criterion: "bce" (non-saturating), "lsgan" or "hinge".
        real_label: the discriminator's target for real images (< 1: one-sided label smoothing).
        pool_size: past fakes shown to the discriminator (0: none).
        discriminator: the network and its optimiser.
    """

    criterion: Literal["bce", "lsgan", "hinge"] = "bce"
    real_label: float = Field(1.0, gt=0, le=1)
    pool_size: int = Field(0, ge=0)
    discriminator: DiscriminatorSpec = DiscriminatorSpec()


class FeatureMatchingTerm(TermSpec):
    """L1 (or l2) between the discriminator's features of outputs and targets; needs ``adversarial``."""

    distance: Literal["l1", "l2"] = "l1"


class TaskTerm(TermSpec):
    """The task loss (:class:`taskloss.losses.TaskLoss`): a frozen task network compares output and target.

    Attributes:
        network: "segmentation": a segmentation network the engine trains on the targets for the
            loss (``OUT/<name>/task_network/``: ``segmentation.network``, seed ``training.seed + 1``,
            the first half of the training subjects; the scorer of SIS is another family trained on
            the other half); or the path of a TorchScript file of a task network.
        layers: module names of the network whose outputs give L1 feature terms.
        output: "kl" (task consistency, no labels), "ce" or "dice" (against ``labels/``), or None.
    """

    network: str = "segmentation"
    layers: list[str] = Field(default_factory=list)
    output: Literal["kl", "ce", "dice"] | None = "kl"


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


@dataclass(frozen=True)
class TermContext:
    """What a builder may need besides the term's settings.

    Attributes:
        data_range: the study's data_range (the SSIM term's).
        task_network: the task term's frozen network (the engine trains or loads it), or None.
    """

    data_range: DataRange
    task_network: nn.Module | None = None


Builder = Callable[[str, Any, TermContext], Term]
"""``build(name, settings, context) -> Term``."""


@dataclass(frozen=True)
class TermEntry:
    """One loss term of :data:`TERMS`: its settings model and its builder."""

    spec: type[TermSpec]
    build: Builder


def _pair_term(module: Callable[[Any, TermContext], nn.Module]) -> Builder:
    """A term comparing ``pred`` with the target through ``module(settings, context)``, balanced as set."""
    def build(name: str, spec: TermSpec, context: TermContext) -> Term:
        loss = module(spec, context)
        return Term(name, lambda pred, batch, d_fake, d_real: loss(pred, batch["target"]), loss,
                    spec.balance_batches())

    return build


def _perceptual_term(name: str, spec: PerceptualTerm, context: TermContext) -> Term:
    network, default_layers = perception_network(spec.network, spec.weights_path)
    module = PerceptualLoss(layers=spec.layers or default_layers,
                            layer_weights="balance" if spec.balance is not None else None,
                            distance=spec.distance, include_pixel=spec.include_pixel, network=network,
                            balance_batches=spec.balance_batches() or 1)
    # The perceptual loss balances its layers itself; its term is not divided again.
    return Term(name, lambda pred, batch, d_fake, d_real: module(pred, batch["target"]), module, None)


def _penalty_term(name: str, spec: TermSpec, context: TermContext) -> Term:
    return Term(name, lambda pred, batch, d_fake, d_real: output_penalty(pred - batch["input"]),
                balance=spec.balance_batches())


def _adversarial_term(name: str, spec: AdversarialTerm, context: TermContext) -> Term:
    criterion = spec.criterion
    return Term(name, lambda pred, batch, d_fake, d_real: generator_loss(d_fake, criterion),
                balance=spec.balance_batches())


def _feature_matching_term(name: str, spec: FeatureMatchingTerm, context: TermContext) -> Term:
    distance = spec.distance
    return Term(name, lambda pred, batch, d_fake, d_real: feature_matching_loss(d_fake, d_real, distance=distance),
                balance=spec.balance_batches())


def _task_term(name: str, spec: TaskTerm, context: TermContext) -> Term:
    if context.task_network is None:
        raise ConfigError("the task term needs its task network; build the loss with task_network (the engine "
                          "trains or loads it)")
    module = TaskLoss(context.task_network, layers=spec.layers, output=spec.output)
    needs_labels = spec.output in ("ce", "dice")

    def compute(pred: torch.Tensor, batch: Batch, d_fake: Any, d_real: Any) -> torch.Tensor:
        return module(pred, batch["target"], batch["label"] if needs_labels else None)

    return Term(name, compute, module, spec.balance_batches())


TERMS: Mapping[str, TermEntry] = MappingProxyType({
    "l1": TermEntry(TermSpec, _pair_term(lambda spec, context: L1Loss())),
    "mse": TermEntry(TermSpec, _pair_term(lambda spec, context: MSELoss())),
    "nmse": TermEntry(NMSETerm, _pair_term(lambda spec, context: NMSELoss(squared=spec.squared))),
    "ssim": TermEntry(SSIMTerm, _pair_term(lambda spec, context: SSIMLoss(context.data_range,
                                                                          convention=spec.convention))),
    "frequency": TermEntry(FrequencyTerm, _pair_term(lambda spec, context: FrequencyMSELoss(norm=spec.norm))),
    "perceptual": TermEntry(PerceptualTerm, _perceptual_term),
    "adversarial": TermEntry(AdversarialTerm, _adversarial_term),
    "feature_matching": TermEntry(FeatureMatchingTerm, _feature_matching_term),
    "penalty": TermEntry(TermSpec, _penalty_term),
    "task": TermEntry(TaskTerm, _task_term),
})
"""Every loss term a study file may name: its settings and how it is computed (the module docstring)."""


class _LossRules(StrictModel):
    """A loss: a weighted sum of library terms. A term's value is its weight, or its settings.

    ``penalty`` is ``mean |output - input|`` (Seitzer et al.'s output penalty on the change the
    network makes; input and target must have the same channels).
    """

    if TYPE_CHECKING:  # the terms the engine treats apart; every term is a field (:data:`TERMS`)
        adversarial: AdversarialTerm | None
        feature_matching: FeatureMatchingTerm | None
        task: TaskTerm | None

    @field_validator("*", mode="before")
    @classmethod
    def _weight_alone(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"weight": value}
        if value is not None and not isinstance(value, dict | TermSpec):
            raise PydanticCustomError("term", "{value} is not a weight; give a number ({name}: 1.0) or the term's "
                                      "settings ({name}: {settings})",
                                      {"value": repr(value), "name": str(info.field_name), "settings": "{weight: 1.0}"})
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "LossSpec":
        if not self.terms():
            raise PydanticCustomError("empty_loss", "a loss needs at least one term; choose from {choices}",
                                      {"choices": ", ".join(TERMS)})
        if self.feature_matching is not None and self.adversarial is None:
            raise PydanticCustomError("feature_matching", "feature_matching needs an adversarial term (its "
                                      "discriminator) in the same loss")
        return self

    def terms(self) -> dict[str, TermSpec]:
        """The terms this loss uses, in the order of :data:`TERMS`."""
        return {name: getattr(self, name) for name in TERMS if getattr(self, name) is not None}

    @property
    def trains_task_network(self) -> bool:
        """Whether the loss needs the task network the engine trains (``task.network: segmentation``)."""
        return self.task is not None and self.task.network == "segmentation"

    @model_serializer(mode="wrap")
    def _used_terms(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {name: value for name, value in handler(self).items() if value is not None}


class LossSpec(create_model("LossTerms", __base__=_LossRules, __module__=__name__,  # type: ignore[misc]
                            **{name: (entry.spec | None, None) for name, entry in TERMS.items()})):
    """A loss: a weighted sum of the terms of :data:`TERMS` (each an optional key; a term's value is
    its weight, or its settings).

    ``penalty`` is ``mean |output - input|`` (Seitzer et al.'s output penalty on the change the
    network makes; input and target must have the same channels).
    """


def build_loss(spec: LossSpec, data_range: DataRange, task_network: nn.Module | None = None) -> CompositeLoss:
    """The composite of a loss's terms with their weights (see the module docstring).

    Args:
        spec: the loss.
        data_range: the SSIM term's data_range (the study's metric data_range).
        task_network: the task term's frozen network (see :class:`taskloss.losses.TaskLoss`).
    """
    terms, context = spec.terms(), TermContext(data_range, task_network)
    return CompositeLoss({name: term.weight for name, term in terms.items()},
                         losses={name: TERMS[name].build(name, term, context) for name, term in terms.items()})


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
