"""What a run trains: the :class:`TrainingTask` interface and the supervised task.

The engine (:mod:`taskloss.training.engine`) owns the loop, data order, checkpoints, logs and
devices; a task owns its models, optimisers and what one step and one validation batch do. Tasks
see batches already on the device (dicts of tensors as the datasets return them).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import torch
from lightning.fabric import Fabric
from torch import nn

from taskloss.training.config import OptimizerConfig, TrainingConfig

Batch = Mapping[str, Any]
"""A collated batch: the dataset's dict items stacked, on the run's device."""


class Stateful(Protocol):
    """Anything with ``state_dict`` / ``load_state_dict``: modules, optimisers, schedulers."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


class TrainingTask(ABC):
    """The trainable part of a run.

    Lifecycle: :meth:`setup` once (after seeding, before a checkpoint is loaded), then per epoch
    :meth:`training_step` on every training batch, :meth:`end_epoch`, and :meth:`validation_step`
    on every validation batch under ``torch.no_grad``.
    """

    @abstractmethod
    def setup(self, fabric: Fabric, config: TrainingConfig) -> None:
        """Build the models and optimisers and register them with ``fabric.setup``."""

    @abstractmethod
    def training_step(self, batch: Batch, fabric: Fabric) -> dict[str, torch.Tensor]:
        """Train on one batch (forward, ``fabric.backward``, optimiser steps).

        Returns:
            Detached scalar tensors to log by name (converted to floats only when logged).
        """

    @abstractmethod
    def validation_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-image validation values, each of shape (B,), by metric name."""

    @abstractmethod
    def checkpoint_state(self) -> dict[str, Stateful]:
        """Everything a checkpoint must hold to resume exactly, by name."""

    @abstractmethod
    def set_training(self, training: bool) -> None:
        """Put the models in training (True) or evaluation (False) mode."""

    def end_epoch(self) -> None:  # noqa: B027 (optional hook, empty by default)
        """Called after each training epoch, before validation (e.g. to step lr schedules)."""


def make_adam(parameters: Any, config: OptimizerConfig) -> torch.optim.Adam:
    """Adam with the configured learning rate, betas and weight decay."""
    return torch.optim.Adam(parameters, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, config: OptimizerConfig
                  ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """StepLR (lr times ``gamma`` every ``step_epochs`` epochs), or None when not configured."""
    if config.step_epochs is None:
        return None
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_epochs, gamma=config.gamma)


def default_forward(model: nn.Module, batch: Batch) -> torch.Tensor:
    """``model(batch["input"])``."""
    return model(batch["input"])


class SupervisedTask(TrainingTask):
    """One network trained to map ``batch["input"]`` to ``batch[target_key]`` under a criterion.

    Args:
        model_factory: builds the network (called after the engine seeds, so weights are seeded).
        criterion: ``criterion(pred, target) -> scalar``; a module, so its state (e.g. a
            perceptual loss's balancing constants) is checkpointed with the run.
        metrics: ``metrics(pred, batch) -> {name: (B,) tensor}`` for validation.
        forward: ``forward(model, batch) -> pred``; default ``model(batch["input"])``.
        target_key: the batch entry the criterion compares ``pred`` with.
    """

    def __init__(
        self,
        model_factory: Callable[[], nn.Module],
        criterion: nn.Module,
        metrics: Callable[[torch.Tensor, Batch], dict[str, torch.Tensor]],
        forward: Callable[[nn.Module, Batch], torch.Tensor] = default_forward,
        target_key: str = "target",
    ) -> None:
        self.model_factory = model_factory
        self.target_key = target_key
        self.criterion = criterion
        self.metrics = metrics
        self.forward = forward
        self.model: nn.Module
        self.optimizer: torch.optim.Optimizer
        self.schedule: torch.optim.lr_scheduler.LRScheduler | None = None
        self.grad_clip: float | None = None

    def setup(self, fabric: Fabric, config: TrainingConfig) -> None:
        """Build the model, move the criterion to the device, set up Adam (and its schedule)."""
        model = self.model_factory()
        optimizer = make_adam(model.parameters(), config.optimizer)
        self.model, self.optimizer = fabric.setup(model, optimizer)
        self.criterion.to(fabric.device)
        self.schedule = make_schedule(self.optimizer, config.optimizer)
        self.grad_clip = config.grad_clip

    def training_step(self, batch: Batch, fabric: Fabric) -> dict[str, torch.Tensor]:
        """Forward, loss, backward, (clip), Adam step."""
        self.optimizer.zero_grad(set_to_none=True)
        pred = self.forward(self.model, batch)
        loss = self.criterion(pred, batch[self.target_key])
        fabric.backward(loss)
        if self.grad_clip is not None:
            fabric.clip_gradients(self.model, self.optimizer, max_norm=self.grad_clip)
        self.optimizer.step()
        return {"loss": loss.detach()}

    def validation_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The metrics of the model's predictions."""
        return dict(self.metrics(self.forward(self.model, batch).float(), batch))

    def predict(self, batch: Batch) -> torch.Tensor:
        """The model's prediction for a batch (evaluation mode is the caller's business)."""
        return self.forward(self.model, batch)

    def checkpoint_state(self) -> dict[str, Stateful]:
        """Model, optimiser, criterion (its buffers, e.g. balancing constants) and schedule."""
        state: dict[str, Stateful] = {"model": self.model, "optimizer": self.optimizer,
                                      "criterion": self.criterion}
        if self.schedule is not None:
            state["schedule"] = self.schedule
        return state

    def set_training(self, training: bool) -> None:
        """Training or evaluation mode of the model and the criterion (balancing records only in
        training mode)."""
        self.model.train(training)
        self.criterion.train(training)

    def end_epoch(self) -> None:
        """Step the learning-rate schedule."""
        if self.schedule is not None:
            self.schedule.step()
