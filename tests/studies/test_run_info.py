"""studies.common.write_run_info: the run record keeps what the training call measured and who made it."""

import json
import math

import pytest
import torch

from taskloss.config import StrictModel
from taskloss.errors import ConfigError
from taskloss.provenance import KEYS
from taskloss.studies.common import read_run_info, write_run_info
from taskloss.training.engine import FitResult


def _result(run_dir, seconds: float) -> FitResult:
    return FitResult(run_dir=run_dir, epochs=3, steps=30, best_value=0.5, best_epoch=2, history=[],
                     seconds_per_step=seconds)


def test_a_trained_run_records_its_provenance_and_a_skipped_one_keeps_the_trainings(tmp_path):
    (tmp_path / "evaluation").mkdir()
    write_run_info(tmp_path, _result(tmp_path, 0.25), "l1")
    info = read_run_info(tmp_path)
    assert set(info["provenance"]) == set(KEYS) and info["provenance"]["torch"] == torch.__version__
    assert (info["loss"], info["steps"], info["seconds_per_step"]) == ("l1", 30, 0.25)

    # A rerun finds the run finished (no step trained: NaN seconds): step time and provenance are those
    # of the call that trained it, not of the rerun.
    path = tmp_path / "evaluation" / "run.json"
    stored = json.loads(path.read_text())
    stored["provenance"] = {**stored["provenance"], "git_commit": "0" * 40}
    path.write_text(json.dumps(stored))
    write_run_info(tmp_path, _result(tmp_path, math.nan), "l1")
    again = read_run_info(tmp_path)
    assert (again["seconds_per_step"], again["provenance"]["git_commit"]) == (0.25, "0" * 40)


def test_a_trained_run_resumes_with_other_progress_bars_but_not_other_settings(tmp_path):
    """A run trained in a worker process (no bars) resumes in a terminal (bars): ``training.progress`` is
    not a setting of the run (:data:`DISPLAY_KEYS`); any other change is refused."""
    from taskloss.studies.common import DISPLAY_KEYS, write_run_config
    from taskloss.training import TrainingConfig

    class Run(StrictModel):
        training: TrainingConfig

    write_run_config(tmp_path, Run(training=TrainingConfig(progress=False)))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"trained")
    write_run_config(tmp_path, Run(training=TrainingConfig(progress=True)))
    assert DISPLAY_KEYS == ("training.progress",)
    assert "progress: true" in (tmp_path / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(changed: training.epochs\)"):
        write_run_config(tmp_path, Run(training=TrainingConfig(progress=False, epochs=3)))
