"""benchmarks/gpu_check.py: its helpers, and the whole script with --dry-run on the CPU.

The script runs on a lent GPU machine once in a while; the dry run keeps its code path working
between loans (every step on a tiny size, the ``demo`` presets, DDP over two CPU processes).
"""

import subprocess
import sys
from pathlib import Path

import pytest

from taskloss.data.splits import split_subjects
from taskloss.studies import csmri, mr2xray

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(SCRIPT.parent))
import gpu_check  # noqa: E402  (a script folder, not a package)


def test_items_per_subject_reads_views_or_slices() -> None:
    assert gpu_check.items_per_subject(mr2xray.MR2XRAY_PRESETS["full"].data) == 36
    assert gpu_check.items_per_subject(csmri.CSMRI_PRESETS["full"].data) == 40


@pytest.mark.parametrize("subjects", [3, 5, 6, 40, 100])
def test_train_subjects_follow_the_split(subjects: int) -> None:
    names = split_subjects(range(subjects), 0)
    assert gpu_check.train_subjects(subjects) == sum(n == "train" for n in names.values())
    # 20 % validation and 20 % test subjects, at least one each (split_subjects' rule)
    assert gpu_check.train_subjects(100) == 60


def test_shrink_keeps_the_image_size_unless_asked() -> None:
    full = mr2xray.MR2XRAY_PRESETS["full"].data
    assert gpu_check.shrink(full, 6, 12, None) == {**full, "subjects": 6, "angles": 12}
    assert gpu_check.shrink(csmri.CSMRI_PRESETS["full"].data, 3, 2, 64)["slices"] == 2
    assert gpu_check.shrink(full, 3, 2, 64)["size"] == 64


def test_trained_runs_train_the_task_networks_first(tmp_path: Path) -> None:
    names = [name for name, *_ in gpu_check.trained_runs("mr2xray", "full", {}, 2, tmp_path)]
    bone = list(mr2xray.bone_runs(mr2xray.MR2XRAY_PRESETS["full"]))
    assert names[:len(bone)] == bone
    assert names[len(bone):] == list(mr2xray.mr2xray_preset_runs(mr2xray.MR2XRAY_PRESETS["full"]))
    for _, run, _, _ in gpu_check.trained_runs("csmri", "full", {}, 2, tmp_path):
        assert run.training.epochs == 2


def test_unknown_step_is_refused() -> None:
    with pytest.raises(SystemExit) as error:
        gpu_check.main(["--dry-run", "--skip", "nonsense"])
    assert error.value.code == 2


@pytest.mark.slow
def test_dry_run_prints_one_row_per_measurement(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    final = done.stdout.split("Machine: ")[-1]  # each step prints its rows, then the whole table follows
    rows = [line for line in final.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    steps = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    runs = {study: len(gpu_check.trained_runs(study, "demo", {}, 1, tmp_path)) for study in ("mr2xray", "csmri")}
    assert steps == (["tests"] + ["perceptual"] * 2 + ["data"] + ["epoch"] * runs["mr2xray"] + ["data"]
                     + ["epoch"] * runs["csmri"] + ["ddp"])
    assert "0 failed" in rows[0]
    assert "1 vs 2 cpu processes" in rows[-1]
