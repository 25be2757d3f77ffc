"""The run graph of a study: its runs, the runs each one needs, and one scheduler that trains them.

Every study (a study file's networks x losses, the mr2xray and csmri studies) is a list of
:class:`RunNode` s. A node is one run folder, relative to the study folder (``runs/recnet``,
``task_networks/bone``, ``task_network``), its configuration, and the nodes whose trained networks
it uses: the refinement needs its RecNet, a task-loss run the segmentation network inside its
loss. How a node trains and how it is timed before training is its :class:`RunKind`, a pair of
top-level functions, so a node can be sent to a worker process.

:func:`train_graph` trains the nodes in dependency order: one after the other in this process
(``jobs=1``, sharing the caller's Fabric, e.g. a DDP launch), or ``jobs`` at a time in spawned
worker processes, each run started as soon as every run it needs has finished.
"""

import concurrent.futures
import multiprocessing
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from lightning.fabric import Fabric
from torch.utils.data import Dataset

from taskloss.errors import ConfigError
from taskloss.training import FitResult
from taskloss.training.task import TrainingTask


class Prepared(NamedTuple):
    """What one run trains: its task (not set up) and the datasets the trainer fits it on."""

    task: TrainingTask
    train: Dataset[Any]
    val: Dataset[Any]


@dataclass(frozen=True)
class RunKind:
    """How one kind of run trains and what it trains, as top-level functions (picklable by name).

    Attributes:
        train: ``train(run, run_dir, fabric) -> FitResult``: train (resume, or return at once when
            finished) in ``run_dir``; ``fabric`` None makes one from ``run.training``.
        prepare: ``prepare(run, run_dir) -> Prepared``: the task and datasets without training, for
            timing (``taskloss study plan``); the runs it needs are read from their folders next to
            ``run_dir`` as in training.
    """

    train: Callable[[Any, Path, Fabric | None], FitResult]
    prepare: Callable[[Any, Path], Prepared]


@dataclass(frozen=True)
class RunNode:
    """One run of a study's graph.

    Attributes:
        name: its folder relative to the study folder (``runs/<run>``, ``task_networks/bone``).
        run: its configuration (a pydantic model with a ``training`` section).
        kind: how it trains and is timed.
        needs: names of the nodes whose trained networks it uses; they train first.
    """

    name: str
    run: Any
    kind: RunKind
    needs: tuple[str, ...] = ()


def graph_order(nodes: Sequence[RunNode]) -> list[RunNode]:
    """The nodes in an order where every node follows the nodes it needs; nodes free to move keep
    their given order (so a list already in order is returned as it is).

    Raises:
        ConfigError: for a duplicate name, a need that is no node of the graph, or a cycle (named as a path).
    """
    by_name: dict[str, RunNode] = {}
    for node in nodes:
        if node.name in by_name:
            raise ConfigError(f"run {node.name!r} appears twice in the study's run graph; give each run its own name")
        by_name[node.name] = node
    for node in nodes:
        missing = [need for need in node.needs if need not in by_name]
        if missing:
            raise ConfigError(f"run {node.name!r} needs run {missing[0]!r}, which the study does not have; add it or "
                              f"remove the reference (runs: {', '.join(by_name)})")
    ordered: list[RunNode] = []
    state: dict[str, str] = {}  # "visiting" or "done"

    def visit(node: RunNode, path: tuple[str, ...]) -> None:
        if state.get(node.name) == "done":
            return
        if state.get(node.name) == "visiting":
            cycle = " -> ".join((*path[path.index(node.name):], node.name))
            raise ConfigError(f"the study's runs need each other in a circle ({cycle}); break the circle")
        state[node.name] = "visiting"
        for need in node.needs:
            visit(by_name[need], (*path, node.name))
        state[node.name] = "done"
        ordered.append(node)

    for node in nodes:
        visit(node, ())
    return ordered


def train_graph(nodes: Sequence[RunNode], study_dir: Path, jobs: int = 1, accelerator: str = "auto",
                fabric: Fabric | None = None) -> dict[str, float]:
    """Train every node in ``study_dir/<node name>``, each after the nodes it needs.

    With ``jobs == 1`` in this process, in :func:`graph_order`, with ``fabric`` (None: each run makes
    its own). With ``jobs > 1`` in spawned worker processes (a fresh interpreter, as CUDA and OpenMP
    need) with ``cores // jobs`` CPU threads each, so the processes do not oversubscribe the cores;
    on a machine with GPUs worker k sees only GPU ``k mod count``. A run starts as soon as every run
    it needs has finished; a worker prints one line per epoch instead of a progress bar.

    Returns:
        Seconds per training step of every node by name (NaN for runs that had finished).

    Raises:
        ConfigError: for a bad graph (:func:`graph_order`), or ``jobs > 1`` with runs of several devices
            (DDP is launched per run by a cluster launcher, not by this pool).
    """
    ordered = graph_order(nodes)
    if jobs == 1:
        return {node.name: node.kind.train(node.run, study_dir / node.name, fabric).seconds_per_step
                for node in ordered}
    ddp = next((node for node in ordered if node.run.training.devices > 1), None)
    if ddp is not None:
        raise ConfigError(f"--jobs {jobs} trains runs in local processes, and run {ddp.name!r} asks for "
                          f"{ddp.run.training.devices} devices (DDP); use --jobs 1 (DDP in this process), or "
                          "--launcher slurm for a study file")
    return _train_in_pool(ordered, study_dir, jobs, accelerator)


def _train_in_pool(ordered: list[RunNode], study_dir: Path, jobs: int, accelerator: str) -> dict[str, float]:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    gpus = torch.cuda.device_count() if accelerator != "cpu" else 0
    queue = context.Queue()
    for worker in range(jobs):
        queue.put(worker % gpus if gpus else None)
    seconds: dict[str, float] = {}
    pending = list(ordered)
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_pin_device,
                                                initargs=(queue,)) as pool:
        running: dict[concurrent.futures.Future[float], RunNode] = {}
        while pending or running:
            for node in [n for n in pending if all(need in seconds for need in n.needs)]:
                pending.remove(node)
                running[pool.submit(train_node, node, str(study_dir / node.name), threads)] = node
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                seconds[running.pop(future).name] = future.result()  # a failed run raises here
    return {node.name: seconds[node.name] for node in ordered}


def _pin_device(devices: Any) -> None:
    """Pool worker start: take one GPU index from the queue and see only that GPU (None: CPU)."""
    index = devices.get()
    if index is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)


def train_node(node: RunNode, run_dir: str, threads: int | None = None) -> float:
    """Train one node in a worker process (a pool's, a cluster job's) with ``threads`` CPU threads (None:
    torch's default); returns its seconds per step. Its progress is one line per epoch, never a bar:
    bars redrawn by several processes on one terminal would garble each other."""
    if threads is not None:
        torch.set_num_threads(threads)
    sys.stderr = _NoTerminal(sys.stderr)  # the trainer draws a bar only on a terminal
    return node.kind.train(node.run, Path(run_dir), None).seconds_per_step


class _NoTerminal:
    """A stream that writes where ``stream`` writes and says it is no terminal (``isatty()`` False)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def nodes_of(runs: Mapping[str, Any], kind: RunKind, folder: str, needs: Callable[[Any], Sequence[str]] = lambda _: ()
             ) -> list[RunNode]:
    """Nodes ``<folder>/<name>`` of the runs ``runs`` of one kind; ``needs(run)`` names the nodes each needs."""
    return [RunNode(f"{folder}/{name}", run, kind, tuple(needs(run))) for name, run in runs.items()]
