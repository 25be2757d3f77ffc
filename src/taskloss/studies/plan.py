"""``taskloss study plan``: every run of a study's graph, its size, and a time estimate from measured costs.

One planner for every study file (a user's networks x losses, the mr2xray and csmri studies): the
graph (:mod:`taskloss.studies.graph`) is walked in dependency order in a scratch folder. Each run's
task is built as for training, a few real training steps, validation batches and one checkpoint
write are timed, and that checkpoint (of a network trained for those few steps) stands in for the
trained run, so that the runs which need it (a refinement its RecNet, a task-loss run its
segmentation network) are built and timed with a network of the same cost. Nothing is written to
the study folder.
"""

import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader

from taskloss.studies.common import write_run_config
from taskloss.studies.graph import Prepared, RunNode, graph_order
from taskloss.studies.layout import CHECKPOINT_DIR
from taskloss.training import TrainingConfig, make_fabric
from taskloss.training.checkpoint import atomic_write, read_checkpoint
from taskloss.training.engine import CHECKPOINT_VERSION
from taskloss.training.task import TrainingTask

CHECKPOINTS_PER_EPOCH = 2
"""Checkpoint writes per epoch in the plan's estimate: ``last.ckpt`` every epoch and ``best.ckpt``
when the monitored metric improves (every epoch at most, so an upper bound)."""
VALIDATION_BATCHES = 2
"""Validation batches timed per run by :func:`measure_steps`."""


@dataclass(frozen=True)
class RunTimes:
    """Measured costs of one run, in seconds.

    Attributes:
        step: one training step (the median of a few real steps, after a warm-up step).
        val_batch: one validation batch (the median of up to :data:`VALIDATION_BATCHES`).
        checkpoint: writing one checkpoint of the run's state (models, optimisers), measured once.
    """

    step: float
    val_batch: float
    checkpoint: float


@dataclass(frozen=True)
class PlannedRun:
    """A run of a study before training, and its time estimate.

    Attributes:
        name: the run's folder, relative to the study folder.
        parameters: trainable parameters of its networks (generator and discriminator).
        steps: optimiser steps it will take (``ceil(train images / batch) * epochs``).
        val_batches: validation batches over the run (``ceil(val images / batch) * epochs``).
        checkpoints: checkpoint writes over the run (:data:`CHECKPOINTS_PER_EPOCH` per epoch, plus
            one every ``checkpoint_every_steps`` steps when set).
        times: the measured costs on this machine.
        finished: whether its folder holds a finished run (it will be skipped).
        needs: the names of the planned runs it needs (they train first).
    """

    name: str
    parameters: int
    steps: int
    val_batches: int
    checkpoints: int
    times: RunTimes
    finished: bool
    needs: tuple[str, ...] = ()

    @property
    def seconds_per_step(self) -> float:
        """Measured seconds of one training step."""
        return self.times.step

    @property
    def training_seconds(self) -> float:
        """``steps * times.step``."""
        return self.steps * self.times.step

    @property
    def validation_seconds(self) -> float:
        """``val_batches * times.val_batch``."""
        return self.val_batches * self.times.val_batch

    @property
    def checkpoint_seconds(self) -> float:
        """``checkpoints * times.checkpoint``."""
        return self.checkpoints * self.times.checkpoint

    @property
    def seconds(self) -> float:
        """The estimate: training steps + validation passes + checkpoint writes."""
        return self.training_seconds + self.validation_seconds + self.checkpoint_seconds


Measure = Callable[[TrainingTask, Fabric, Prepared, TrainingConfig, int], tuple[float, float]]
"""``measure(task, fabric, prepared, config, steps) -> (seconds per step, seconds per validation batch)``
of a task already set up (:func:`measure_steps`; tests inject fixed times)."""


def measure_steps(task: TrainingTask, fabric: Fabric, prepared: Prepared, config: TrainingConfig, steps: int
                  ) -> tuple[float, float]:
    """Seconds of one training step (median of ``steps`` real steps after one warm-up step) and of one
    validation batch (median of up to :data:`VALIDATION_BATCHES`, after the steps, without gradients)."""
    task.set_training(True)
    loader = DataLoader(prepared.train, batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0), drop_last=False)
    batches = [fabric.to_device(batch) for _, batch in zip(range(steps + 1), _cycle(loader), strict=False)]
    step = _median_seconds(lambda batch: task.training_step(batch, fabric), batches, warm_up=1)
    val_loader = DataLoader(prepared.val, batch_size=config.batch_size, shuffle=False)
    val = [fabric.to_device(batch) for _, batch in zip(range(VALIDATION_BATCHES), val_loader, strict=False)]
    task.set_training(False)
    with torch.no_grad():
        val_batch = _median_seconds(task.validation_step, val, warm_up=0)
    return step, val_batch


def _median_seconds(action: Callable[[Any], Any], batches: Sequence[Any], warm_up: int) -> float:
    """Median seconds of ``action(batch)`` over ``batches[warm_up:]`` (the first ``warm_up`` untimed)."""
    times = []
    for batch in batches:
        start = time.perf_counter()
        action(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times[warm_up:]))


def _cycle(loader: DataLoader) -> Iterator[Any]:
    while True:
        yield from loader


def trainable_parameters(task: TrainingTask) -> int:
    """Trainable parameters of the networks of a task that is set up (frozen networks, such as the
    refinement's RecNet or a perceptual loss's features, are not counted)."""
    modules = [state for state in task.checkpoint_state().values() if isinstance(state, nn.Module)]
    return sum(p.numel() for module in modules for p in module.parameters() if p.requires_grad)


def write_stand_in(task: TrainingTask, run: Any, run_dir: Path) -> float:
    """Write the run's configuration and its task's state as ``best.ckpt`` into ``run_dir`` (a scratch
    folder), where the runs that need it find it; returns the seconds of the checkpoint write."""
    write_run_config(run_dir, run)
    payload = {"version": CHECKPOINT_VERSION,
               "task": {name: state.state_dict() for name, state in task.checkpoint_state().items()}}
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    atomic_write(run_dir / CHECKPOINT_DIR / "best.ckpt", lambda tmp: torch.save(payload, tmp))
    return time.perf_counter() - start


def plan_run(name: str, training: TrainingConfig, train_images: int, val_images: int, times: RunTimes,
             parameters: int, finished: bool, needs: tuple[str, ...] = ()) -> PlannedRun:
    """A run's counts of steps, validation batches and checkpoint writes, with its measured costs."""
    steps = math.ceil(train_images / training.batch_size) * training.epochs
    checkpoints = CHECKPOINTS_PER_EPOCH * training.epochs
    if training.checkpoint_every_steps:
        checkpoints += steps // training.checkpoint_every_steps
    return PlannedRun(name, parameters, steps, math.ceil(val_images / training.batch_size) * training.epochs,
                      checkpoints, times, finished, needs)


def plan_graph(nodes: Sequence[RunNode], folders: Sequence[tuple[str, Path]], steps: int = 3,
               accelerator: str = "auto", measure: Measure = measure_steps) -> list[PlannedRun]:
    """Every node of a study's graph, timed once, listed once per study folder of ``folders``.

    Args:
        nodes: the graph of one replicate of the study.
        folders: ``(prefix, study folder)`` pairs: ``[("", OUT/<study>)]``, or with training seeds one
            pair per replicate (``("seeds/<seed>/", OUT/<study>/seeds/<seed>)``): a seed changes the
            initialisation and the data order, not the cost of a step. Runs finished in a folder are
            marked.
        steps: real training steps timed per run (after one warm-up step).
        accelerator: where to time them.
        measure: what times the steps (:func:`measure_steps`).
    """
    measured: dict[str, tuple[RunTimes, int, int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="taskloss-plan-") as scratch:
        for node in graph_order(nodes):
            run_dir = Path(scratch) / node.name
            prepared = node.kind.prepare(node.run, run_dir)
            config = node.run.training.model_copy(update={"accelerator": accelerator, "devices": 1,
                                                          "progress": False})
            fabric = make_fabric(config)
            fabric.seed_everything(config.seed, verbose=False)
            prepared.task.setup(fabric, config)
            step, val_batch = measure(prepared.task, fabric, prepared, config, steps)
            checkpoint = write_stand_in(prepared.task, node.run, run_dir)
            measured[node.name] = (RunTimes(step, val_batch, checkpoint), trainable_parameters(prepared.task),
                                   len(prepared.train), len(prepared.val))  # type: ignore[arg-type]
    return [plan_run(prefix + node.name, node.run.training, train, val, times, parameters,
                     finished(folder / node.name, node.run.training.epochs), tuple(prefix + n for n in node.needs))
            for prefix, folder in folders for node in nodes
            for times, parameters, train, val in [measured[node.name]]]


def finished(run_dir: Path, epochs: int) -> bool:
    """Whether ``run_dir`` holds a run trained for ``epochs`` epochs (its ``last.ckpt``)."""
    path = run_dir / CHECKPOINT_DIR / "last.ckpt"
    return path.is_file() and read_checkpoint(path)["loop"]["epoch"] >= epochs


def duration(seconds: float) -> str:
    """Seconds as text: ``"42.0 s"`` below a minute, else ``"3.5 min"``.

    >>> duration(42), duration(210)
    ('42.0 s', '3.5 min')
    """
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def longest_chain(planned: Sequence[PlannedRun]) -> float:
    """Seconds of the longest chain of runs that need each other (finished runs cost nothing): no number
    of jobs trains the plan faster.

    >>> times = RunTimes(step=1.0, val_batch=0.0, checkpoint=0.0)
    >>> a, b = PlannedRun("a", 1, 10, 0, 0, times, False), PlannedRun("b", 1, 5, 0, 0, times, False, ("a",))
    >>> longest_chain([a, b, PlannedRun("c", 1, 12, 0, 0, times, False)])
    15.0
    """
    by_name = {run.name: run for run in planned}
    ends: dict[str, float] = {}

    def end(run: PlannedRun) -> float:
        if run.name not in ends:
            start = max((end(by_name[n]) for n in run.needs if n in by_name), default=0.0)
            ends[run.name] = start + (0.0 if run.finished else run.seconds)
        return ends[run.name]

    return max((end(run) for run in planned), default=0.0)


def plan_table(planned: Sequence[PlannedRun], jobs: int = 1) -> str:
    """The plan as a Markdown table, with the total estimate and what it includes."""
    lines = ["| run | trainable parameters | steps | s / step (measured) | training | validation | checkpoints "
             "| estimate |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run in planned:
        estimate = "done (skipped)" if run.finished else duration(run.seconds)
        lines.append(f"| {run.name} | {run.parameters:,} | {run.steps} | {run.seconds_per_step:.3f} | "
                     f"{duration(run.training_seconds)} | {duration(run.validation_seconds)} | "
                     f"{duration(run.checkpoint_seconds)} | {estimate} |")
    total = sum(run.seconds for run in planned if not run.finished)
    chain = longest_chain(planned)
    parallel = "" if jobs == 1 else (
        f"; with --jobs {jobs} at best {duration(max(total / jobs, chain))} (the total over {jobs}, or the longest "
        f"chain of runs that need each other, {duration(chain)}, whichever is longer)")
    lines += ["", f"Estimate: {duration(total)} one run at a time{parallel}. Included, from costs measured on "
              "this machine: the training steps; a validation pass per epoch (validation batches timed, times the "
              f"batches of the val split); {CHECKPOINTS_PER_EPOCH} checkpoint writes per epoch (last and best; "
              "best is written only when it improves, so this is an upper bound), one write timed. Not included: "
              "reading the data, evaluation, the report, and other load on the machine."]
    return "\n".join(lines)
