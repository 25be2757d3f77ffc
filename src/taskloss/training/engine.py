"""The training engine on Lightning Fabric: one loop for CPU, one GPU, and DDP over GPUs or nodes.

What it guarantees:

- **Seeded.** Weights, data order (:class:`~taskloss.training.sampling.ResumableSampler`),
  dataset randomness (``dataset.set_epoch``) and dropout follow ``config.seed``.
- **Exact resume.** ``checkpoints/last.ckpt`` holds models, optimisers, schedules, task state
  (e.g. loss balancing constants), the loop position (epoch, batch within the epoch, step),
  the best value so far and every random generator's state. A run started again in the same
  folder continues from it and ends with the same weights and metrics as an uninterrupted run.
  A finished run returns at once.
- **Atomic files.** Checkpoints are written to a temporary file and renamed; a killed process
  leaves the previous checkpoint intact.
- **Validation each epoch** with per-image metrics gathered over processes; ``best.ckpt`` keeps
  the epoch with the best ``config.monitor``.
- **Logs**: ``train_log.csv``, ``val_log.csv``, TensorBoard events, progress bars (rank 0).
- **Devices**: ``devices > 1`` or ``num_nodes > 1`` trains with DDP; under torchrun or a cluster
  scheduler the processes are created externally and Fabric joins them. Mixed precision on CUDA
  by default (``precision="auto"``).
"""

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric import Fabric
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from taskloss.errors import ConfigError, TrainingError
from taskloss.training.checkpoint import (
    atomic_write,
    read_checkpoint,
    remove_stale_temporaries,
    rng_state,
    set_rng_state,
)
from taskloss.training.config import TrainingConfig
from taskloss.training.logs import RunLogger
from taskloss.training.sampling import IndexedDataset, ResumableSampler
from taskloss.training.task import TrainingTask

CHECKPOINT_VERSION = 1


@dataclass
class LoopState:
    """Where the loop stands; saved in every checkpoint."""

    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class FitResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes:
        run_dir: the run folder.
        epochs: epochs trained in total.
        steps: optimiser steps in total.
        best_value: best validation value of the monitored metric.
        best_epoch: epoch (1-based) that reached it.
        history: validation means of every epoch.
        seconds_per_step: mean wall time per training step in this call (NaN if none ran).
    """

    run_dir: Path
    epochs: int
    steps: int
    best_value: float | None
    best_epoch: int | None
    history: list[dict[str, float]]
    seconds_per_step: float


def resolve_precision(config: TrainingConfig) -> str:
    """The Lightning precision string for ``config.precision == "auto"``."""
    if config.precision != "auto":
        return config.precision
    if _accelerator(config) == "cuda":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def _accelerator(config: TrainingConfig) -> str:
    if config.accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if config.accelerator == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.accelerator is 'cuda' but no CUDA device is available; use "
                          "accelerator=cpu or auto")
    return config.accelerator


def make_fabric(config: TrainingConfig) -> Fabric:
    """Create and launch the Fabric of a run (DDP when several devices or nodes are asked for)."""
    distributed = config.devices > 1 or config.num_nodes > 1
    fabric = Fabric(
        accelerator=_accelerator(config),
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy="ddp" if distributed else "auto",
        precision=resolve_precision(config),  # type: ignore[arg-type]
    )
    fabric.launch()
    if fabric.device.type == "cpu" and config.devices > 1:
        # Several processes on one CPU: split the cores, or their OpenMP threads oversubscribe
        # the machine and spin-wait on each other (steps then take many times longer).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.devices))
    return fabric


class Trainer:
    """Trains one :class:`TrainingTask` in one run folder.

    Args:
        task: what to train.
        config: training settings.
        run_dir: the run folder (checkpoints, logs); created if needed.
        fabric: an existing Fabric (e.g. shared by the runs of a study); made from ``config``
            when None.
    """

    def __init__(self, task: TrainingTask, config: TrainingConfig, run_dir: Path,
                 fabric: Fabric | None = None) -> None:
        self.task = task
        self.config = config
        self.run_dir = Path(run_dir)
        self.fabric = fabric if fabric is not None else make_fabric(config)
        self.last_path = self.run_dir / "checkpoints" / "last.ckpt"
        self.best_path = self.run_dir / "checkpoints" / "best.ckpt"
        self._set_up = False

    def fit(self, train_set: Dataset[Any], val_set: Dataset[Any]) -> FitResult:
        """Train for ``config.epochs`` epochs (resuming from ``last.ckpt`` if present)."""
        state = self._start()
        train_loader, sampler = self._loader(train_set, shuffle=True)
        val_loader, _ = self._loader(val_set, shuffle=False)
        if state.epoch < self.config.epochs:
            self._check_monitor(val_loader)
        logger = RunLogger(self.run_dir, self.fabric.is_global_zero,
                           resume_step=state.global_step if state.global_step else None)
        steps_run, seconds = 0, 0.0
        try:
            for epoch in range(state.epoch, self.config.epochs):
                sampler.seek(epoch, start=state.batch_in_epoch * self.config.batch_size)
                if hasattr(train_set, "set_epoch"):
                    train_set.set_epoch(epoch)
                start, first_step = time.perf_counter(), state.global_step
                self._train_epoch(train_loader, state, logger)
                seconds += time.perf_counter() - start
                steps_run += state.global_step - first_step
                state.epoch, state.batch_in_epoch = epoch + 1, 0
                self.task.end_epoch()
                means = self.validate(val_loader)
                self._print_epoch(epoch + 1, means)
                state.history.append({"epoch": float(epoch + 1), **means})
                logger.log_val(state.global_step, epoch + 1, means)
                if self._improved(means, state):
                    self._save(self.best_path, state)
                self._save(self.last_path, state)
        finally:
            logger.close()
        return FitResult(self.run_dir, state.epoch, state.global_step, state.best_value, state.best_epoch,
                         state.history, seconds / steps_run if steps_run else math.nan)

    def _train_epoch(self, loader: DataLoader[Any], state: LoopState, logger: RunLogger) -> None:
        config = self.config
        self.task.set_training(True)
        bar = tqdm(loader, desc=f"{self.run_dir.name} epoch {state.epoch + 1}/{config.epochs}",
                   disable=not (self._progress() and _is_terminal(sys.stderr)), leave=False,
                   dynamic_ncols=True)
        for batch in bar:
            logs = self.task.training_step(batch, self.fabric)
            state.global_step += 1
            state.batch_in_epoch += 1
            if state.global_step % config.log_every_steps == 0:
                values = {name: float(value) for name, value in logs.items()}
                _check_finite_losses(values, state.global_step)
                logger.log_train(state.global_step, values)
                bar.set_postfix(loss=f"{values.get('loss', math.nan):.4g}")
            if config.checkpoint_every_steps and state.global_step % config.checkpoint_every_steps == 0:
                self._save(self.last_path, state)

    def _progress(self) -> bool:
        return self.config.progress and self.fabric.is_global_zero

    def _print_epoch(self, epoch: int, means: dict[str, float]) -> None:
        """One line per epoch in place of the bar when the bar's stream is a file or a pipe.

        A bar redrawn with carriage returns would fill a log file with every frame.
        """
        if self._progress() and not _is_terminal(sys.stderr):
            values = ", ".join(f"{name} {value:.4g}" for name, value in means.items())
            print(f"{self.run_dir.name} epoch {epoch}/{self.config.epochs}: validation {values}", flush=True)

    def validate(self, loader: DataLoader[Any]) -> dict[str, float]:
        """Means over the dataset of the task's per-image validation values."""
        return {name: float(np.mean(values)) for name, values in self.per_image(loader).items()
                if name != "index"}

    def per_image(self, loader: DataLoader[Any]) -> dict[str, np.ndarray]:
        """Per-image validation values over a whole dataset, gathered from every process.

        Returns:
            ``{"index": dataset indices (N,), name: values (N,)}`` sorted by index, each image once.
        """
        self.task.set_training(False)
        collected: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad():
            for batch in loader:
                values = self.task.validation_step(batch)
                values = {"index": batch["index"], **{k: v.detach().float() for k, v in values.items()}}
                if self.fabric.world_size > 1:
                    values = {k: v.reshape(-1) for k, v in self.fabric.all_gather(values).items()}
                for name, value in values.items():
                    collected.setdefault(name, []).append(value.cpu())
        merged = {name: torch.cat(parts).numpy() for name, parts in collected.items()}
        _, first = np.unique(merged["index"], return_index=True)  # drop the padding duplicates
        order = first[np.argsort(merged["index"][first])]
        return {name: values[order] for name, values in merged.items()}

    def eval_loader(self, dataset: Dataset[Any]) -> DataLoader[Any]:
        """A loader over ``dataset`` in order, split over processes, items carrying "index"."""
        return self._loader(dataset, shuffle=False)[0]

    def load_weights(self, which: str = "best") -> dict[str, Any]:
        """Set up the task (if needed) and load ``best.ckpt`` or ``last.ckpt`` into it.

        Returns:
            The checkpoint's loop state as a dict.
        """
        self._setup_task()
        path = self.best_path if which == "best" else self.last_path
        payload = read_checkpoint(path)
        self._restore(payload)
        return payload["loop"]

    def _setup_task(self) -> None:
        if not self._set_up:
            self.fabric.seed_everything(self.config.seed, verbose=False)
            self.task.setup(self.fabric, self.config)
            self._set_up = True

    def _check_monitor(self, val_loader: DataLoader[Any]) -> None:
        """Fail before training (and before any log is written) when ``monitor`` is not a metric.

        The names of the validation values come from one validation batch; the random state is
        restored afterwards so that a resumed run stays exact.
        """
        monitor = self.config.monitor
        batch = next(iter(val_loader), None) if monitor is not None else None
        if batch is None:
            return
        saved = rng_state()
        self.task.set_training(False)
        with torch.no_grad():
            names = set(self.task.validation_step(batch))
        set_rng_state(saved)
        if monitor not in names:
            raise ConfigError(f"training.monitor={monitor!r} is not a validation metric of this run, in "
                              f"{self.run_dir}; choose one of {sorted(names)}, or null for the last epoch")

    def _start(self) -> LoopState:
        if self.fabric.is_global_zero:
            remove_stale_temporaries(self.run_dir / "checkpoints")
            remove_stale_temporaries(self.run_dir)
        self._setup_task()
        if not self.last_path.is_file():
            return LoopState()
        payload = read_checkpoint(self.last_path)
        self._restore(payload)
        set_rng_state(payload["rng"])
        return LoopState(**payload["loop"])

    def _restore(self, payload: dict[str, Any]) -> None:
        if payload.get("version") != CHECKPOINT_VERSION:
            raise ConfigError(f"checkpoint in {self.run_dir} has format version {payload.get('version')}, "
                              f"this taskloss writes {CHECKPOINT_VERSION}; start a new run folder")
        for name, target in self.task.checkpoint_state().items():
            if name not in payload["task"]:
                raise ConfigError(f"checkpoint in {self.run_dir} lacks '{name}': it was written by a "
                                  "different task; use a new run folder")
            target.load_state_dict(payload["task"][name])
        if payload.get("precision"):
            self.fabric.strategy.precision.load_state_dict(payload["precision"])

    def _save(self, path: Path, state: LoopState) -> None:
        # Every process holds the same (DDP-synchronised) state; rank 0 writes it.
        payload = {
            "version": CHECKPOINT_VERSION,
            "task": {name: obj.state_dict() for name, obj in self.task.checkpoint_state().items()},
            "loop": asdict(state),
            "rng": rng_state(),
            "precision": self.fabric.strategy.precision.state_dict(),
            "config": self.config.model_dump(mode="json"),
        }
        if self.fabric.is_global_zero:
            atomic_write(path, lambda tmp: torch.save(payload, tmp))
        self.fabric.barrier()

    def _improved(self, means: dict[str, float], state: LoopState) -> bool:
        monitor = self.config.monitor
        if monitor is None:
            state.best_epoch = state.epoch
            return True
        value = means[monitor]  # a known metric: checked by _check_monitor
        better = (state.best_value is None or (value < state.best_value if self.config.monitor_mode == "min"
                                               else value > state.best_value))
        if better:
            state.best_value, state.best_epoch = value, state.epoch
        return better

    def _loader(self, dataset: Dataset[Any], shuffle: bool) -> tuple[DataLoader[Any], ResumableSampler]:
        fabric = self.fabric
        sampler = ResumableSampler(len(dataset), self.config.seed, shuffle,  # type: ignore[arg-type]
                                   rank=fabric.global_rank, world_size=fabric.world_size)
        loader = DataLoader(
            IndexedDataset(dataset), batch_size=self.config.batch_size, sampler=sampler,
            num_workers=self.config.num_workers, persistent_workers=False,
            pin_memory=fabric.device.type == "cuda",
            # The loader's own generator keeps worker seeding off the global RNG (exact resume).
            generator=torch.Generator().manual_seed(self.config.seed),
        )
        return fabric.setup_dataloaders(loader, use_distributed_sampler=False), sampler


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


def _check_finite_losses(values: dict[str, float], step: int) -> None:
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise TrainingError(f"non-finite training loss at step {step}: {', '.join(bad)}; lower "
                                 "the learning rate or check the data for NaN")
