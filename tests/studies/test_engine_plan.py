"""``taskloss study plan``: the estimate's arithmetic with injected costs (no timed assertion), and
one real measurement that yields every cost."""

import math

import numpy as np
import pytest

from taskloss.studies.engine import (
    CHECKPOINTS_PER_EPOCH,
    RunTimes,
    duration,
    measure_run,
    plan_run,
    plan_study,
    plan_table,
)
from taskloss.studies.spec import build_runs, parse_study

TIMES = RunTimes(step=0.5, val_batch=0.25, checkpoint=2.0)


def make_pairs(folder, count=10, size=16):
    """``count`` NPY pairs named ``s<k>_0`` (split by file: one subject per pair)."""
    rng = np.random.default_rng(0)
    for name in ("input", "target"):
        (folder / name).mkdir(parents=True)
    for k in range(count):
        target = rng.random((size, size)).astype(np.float32)
        np.save(folder / "target" / f"s{k}.npy", target)
        np.save(folder / "input" / f"s{k}.npy", target + 0.1 * rng.random((size, size)).astype(np.float32))


def study(folder, **training):
    return parse_study({"name": "plan", "data": {"path": str(folder), "size": 16, "split": {"by": "file"}},
                        "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}}},
                        "losses": {"l1": {"l1": 1.0}, "mse": {"mse": 1.0}},
                        "training": {"epochs": 3, "batch_size": 4, **training}}, "plan.yaml")


def test_estimate_adds_steps_validation_and_checkpoints(tmp_path):
    run = build_runs(study(tmp_path))["unet-l1"]
    planned = plan_run("unet-l1", run, train_images=10, val_images=5, times=TIMES, parameters=7, finished=False)
    # ceil(10 / 4) = 3 steps and ceil(5 / 4) = 2 validation batches per epoch, 3 epochs, 2 writes per epoch.
    assert (planned.steps, planned.val_batches, planned.checkpoints) == (9, 6, 6) and CHECKPOINTS_PER_EPOCH == 2
    assert (planned.training_seconds, planned.validation_seconds, planned.checkpoint_seconds) == (4.5, 1.5, 12.0)
    assert planned.seconds == 18.0
    every = run.model_copy(update={"training": run.training.model_copy(update={"checkpoint_every_steps": 4})})
    assert plan_run("x", every, 10, 5, TIMES, 7, False).checkpoints == 6 + 9 // 4  # mid-epoch writes too


def test_plan_study_counts_the_splits_and_uses_the_measured_costs(tmp_path):
    make_pairs(tmp_path / "pairs")
    spec = study(tmp_path / "pairs")
    calls = []

    def measure(run, steps, accelerator, task_network):
        calls.append((run.network.name, sorted(run.loss.terms()), steps, accelerator, task_network))
        return TIMES

    planned = plan_study(spec, tmp_path / "out", steps=5, accelerator="cpu", measure=measure)
    assert calls == [("unet", ["l1"], 5, "cpu", None), ("unet", ["mse"], 5, "cpu", None)]
    # 10 files split by file: round(10 * 0.2) = 2 val, 2 test, 6 train.
    assert [(p.steps, p.val_batches, p.checkpoints) for p in planned] == [(6, 3, 6)] * 2
    assert [p.seconds for p in planned] == [6 * 0.5 + 3 * 0.25 + 6 * 2.0] * 2  # 15.75 s each
    table = plan_table(planned, jobs=2)
    assert "| unet-l1 | " in table and "| 0.500 | 3.0 s | 0.8 s | 12.0 s | 15.8 s |" in table
    footer = table.splitlines()[-1]
    assert footer.startswith("Estimate: 31.5 s one run at a time; with --jobs 2 at best 15.8 s. Included")
    assert "a validation pass per epoch" in footer and "2 checkpoint writes per epoch" in footer


def test_finished_runs_are_left_out_of_the_total(tmp_path):
    run = build_runs(study(tmp_path))["unet-l1"]
    done = plan_run("unet-l1", run, 10, 5, TIMES, 7, finished=True)
    todo = plan_run("unet-mse", run, 10, 5, TIMES, 7, finished=False)
    table = plan_table([done, todo])
    assert "| unet-l1 | 7 | 9 | 0.500 | 4.5 s | 1.5 s | 12.0 s | done (skipped) |" in table
    assert table.splitlines()[-1].startswith("Estimate: 18.0 s one run at a time. Included")
    assert duration(59.94) == "59.9 s" and duration(90) == "1.5 min" and duration(3600) == "60.0 min"


def test_measure_run_times_a_step_a_validation_batch_and_a_checkpoint(tmp_path):
    make_pairs(tmp_path / "pairs")
    run = build_runs(study(tmp_path / "pairs"))["unet-l1"]
    times = measure_run(run, steps=1, accelerator="cpu", task_network=None)
    assert all(math.isfinite(value) and value > 0 for value in (times.step, times.val_batch, times.checkpoint))


@pytest.mark.parametrize("val_images", [1, 4, 5])
def test_validation_batches_round_up(tmp_path, val_images):
    run = build_runs(study(tmp_path))["unet-l1"]
    assert plan_run("r", run, 4, val_images, TIMES, 1, False).val_batches == math.ceil(val_images / 4) * 3
