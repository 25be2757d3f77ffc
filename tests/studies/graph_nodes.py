"""A run kind for the scheduler's tests: each run sleeps, then records when it started and ended.

Its functions are top-level in an importable module, as :class:`taskloss.studies.graph.RunKind`
requires: spawned worker processes import them by name.
"""

import json
import os
import sys
import time
from pathlib import Path

import torch

from taskloss.config import StrictModel
from taskloss.studies.graph import Prepared, RunKind
from taskloss.training import FitResult, TrainingConfig


class SleepRun(StrictModel):
    """A run that takes ``seconds`` and fails when ``fail`` is set."""

    seconds: float = 0.2
    fail: bool = False
    training: TrainingConfig = TrainingConfig()


def train(run: SleepRun, run_dir: Path, fabric: object) -> FitResult:
    start = time.time()
    time.sleep(run.seconds)
    if run.fail:
        raise ValueError(f"run in {run_dir} failed")
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"start": start, "end": time.time(), "pid": os.getpid(), "threads": torch.get_num_threads(),
              "terminal": sys.stderr.isatty(), "stderr": type(sys.stderr).__name__,
              "progress": run.training.progress, "fabric": fabric is not None}
    (run_dir / "record.json").write_text(json.dumps(record))
    return FitResult(run_dir, 1, 1, None, 1, [], run.seconds)


def prepare(run: SleepRun, run_dir: Path) -> Prepared:
    raise NotImplementedError("not timed")


SLEEP = RunKind(train=train, prepare=prepare)
