"""``taskloss study plan``: the estimate's arithmetic with injected costs (no timed assertion), and
one real measurement that yields every cost."""

import math

import numpy as np
import pytest

from taskloss.studies.engine import file_graph, plan_study
from taskloss.studies.plan import (
    CHECKPOINTS_PER_EPOCH,
    RunTimes,
    duration,
    measure_steps,
    plan_graph,
    plan_run,
    plan_table,
)
from taskloss.studies.spec import build_runs, parse_study
from taskloss.training import TrainingConfig

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
    planned = plan_run("unet-l1", run.training, train_images=10, val_images=5, times=TIMES, parameters=7,
                       finished=False)
    # ceil(10 / 4) = 3 steps and ceil(5 / 4) = 2 validation batches per epoch, 3 epochs, 2 writes per epoch.
    assert (planned.steps, planned.val_batches, planned.checkpoints) == (9, 6, 6) and CHECKPOINTS_PER_EPOCH == 2
    assert (planned.training_seconds, planned.validation_seconds, planned.checkpoint_seconds) == (4.5, 1.5, 12.0)
    assert planned.seconds == 18.0
    every = run.model_copy(update={"training": run.training.model_copy(update={"checkpoint_every_steps": 4})})
    assert plan_run("x", every.training, 10, 5, TIMES, 7, False).checkpoints == 6 + 9 // 4  # mid-epoch writes too


def test_plan_study_counts_the_splits_and_uses_the_measured_costs(tmp_path):
    make_pairs(tmp_path / "pairs")
    spec = study(tmp_path / "pairs")
    calls = []

    def measure(task, fabric, prepared, config, steps):
        calls.append((type(task.criterion).__name__, steps, config.accelerator, len(prepared.train)))
        return TIMES.step, TIMES.val_batch

    planned = plan_study(spec, tmp_path / "out", steps=5, accelerator="cpu", measure=measure)
    assert calls == [("CompositeLoss", 5, "cpu", 6)] * 2
    planned = [p.__class__(p.name, p.parameters, p.steps, p.val_batches, p.checkpoints, TIMES, p.finished)
               for p in planned]  # the checkpoint write is measured for real; fix it for the arithmetic
    # 10 files split by file: round(10 * 0.2) = 2 val, 2 test, 6 train.
    assert [(p.steps, p.val_batches, p.checkpoints) for p in planned] == [(6, 3, 6)] * 2
    assert [p.seconds for p in planned] == [6 * 0.5 + 3 * 0.25 + 6 * 2.0] * 2  # 15.75 s each
    table = plan_table(planned, jobs=2)
    assert "| runs/unet-l1 | " in table and "| 0.500 | 3.0 s | 0.8 s | 12.0 s | 15.8 s |" in table
    footer = table.splitlines()[-1]
    assert footer.startswith("Estimate: 31.5 s one run at a time; with --jobs 2 at best 15.8 s (the total over 2, or "
                             "the longest chain of runs that need each other, 15.8 s, whichever is longer). Included")
    assert "a validation pass per epoch" in footer and "2 checkpoint writes per epoch" in footer


def test_finished_runs_are_left_out_of_the_total(tmp_path):
    run = build_runs(study(tmp_path))["unet-l1"]
    done = plan_run("unet-l1", run.training, 10, 5, TIMES, 7, finished=True)
    todo = plan_run("unet-mse", run.training, 10, 5, TIMES, 7, finished=False)
    table = plan_table([done, todo])
    assert "| unet-l1 | 7 | 9 | 0.500 | 4.5 s | 1.5 s | 12.0 s | done (skipped) |" in table
    assert table.splitlines()[-1].startswith("Estimate: 18.0 s one run at a time. Included")
    assert duration(59.94) == "59.9 s" and duration(90) == "1.5 min" and duration(3600) == "60.0 min"


def test_measure_steps_times_a_step_a_validation_batch_and_a_checkpoint(tmp_path):
    make_pairs(tmp_path / "pairs")
    graph = file_graph(study(tmp_path / "pairs"))[:1]
    planned, = plan_graph(graph, [("", tmp_path / "out")], steps=1, accelerator="cpu", measure=measure_steps)
    times = planned.times
    assert all(math.isfinite(value) and value > 0 for value in (times.step, times.val_batch, times.checkpoint))
    assert not (tmp_path / "out").exists()  # the plan writes nothing into the study folder


@pytest.mark.parametrize("val_images", [1, 4, 5])
def test_validation_batches_round_up(tmp_path, val_images):
    run = build_runs(study(tmp_path))["unet-l1"]
    assert plan_run("r", run.training, 4, val_images, TIMES, 1, False).val_batches == math.ceil(val_images / 4) * 3


def test_with_jobs_the_estimate_is_never_below_the_longest_chain_of_needs():
    # a (10 s) -> b (5 s) and c (12 s): two jobs cannot finish before a and b end, 15 s, though 27 / 2 = 13.5 s.
    a, b, c = (plan_run(name, TrainingConfig(epochs=1, batch_size=1), steps, 1, RunTimes(1.0, 0.0, 0.0), 1, False,
                        needs) for name, steps, needs in (("a", 10, ()), ("b", 5, ("a",)), ("c", 12, ())))
    assert (a.seconds, b.seconds, c.seconds) == (10.0, 5.0, 12.0)
    assert "with --jobs 2 at best 15.0 s (the total over 2" in plan_table([a, b, c], jobs=2)
    assert "with --jobs 4 at best 15.0 s" in plan_table([a, b, c], jobs=4)
    finished_a = plan_run("a", TrainingConfig(epochs=1, batch_size=1), 10, 1, RunTimes(1.0, 0.0, 0.0), 1, True)
    assert "with --jobs 2 at best 12.0 s (the total over 2" in plan_table([finished_a, b, c], jobs=2)  # max(17 / 2, 12)
