"""Write ``tiny_studies.json``: the per-image metrics of the tiny mr2xray and csmri studies.

The fixture was made with the code before the presets became study files (commit 8715ffa), so that
the tiny-study tests (``tests/studies/test_mr2xray_study.py``, ``test_csmri_study.py``) can show
that the studies give the same numbers through the new path. The tiny presets here are those of
``tests/studies/test_mr2xray_study.py`` and ``test_csmri_study.py`` at that commit, written against
that commit's API; run it against a checkout of that commit (its ``src`` first on the path)::

    git worktree add /tmp/old 8715ffa
    PYTHONPATH=/tmp/old/src nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python \
        tests/studies/golden/make_golden.py [OUT_DIR]

Stored per study: every per-image CSV the study scores (mr2xray: ``runs/<run>/evaluation/test.csv``;
csmri: ``results/per_image/<method>.csv`` and ``results/generalisation/<method>.csv``), as
``{file: {"id": [...], metric: [...]}}`` with full float precision (``inf`` as the string "inf").
"""

import csv
import json
import sys
import tempfile
from pathlib import Path

import taskloss
from taskloss.studies import csmri, mr2xray

GOLDEN = Path(__file__).with_name("tiny_studies.json")

MR2XRAY_TINY = mr2xray.Mr2XrayPreset(
    name="tiny",
    data={"subjects": 4, "angles": 2, "size": 32, "anatomy": "ellipsoid"},
    training={"epochs": 1, "batch_size": 2, "progress": False},
    networks={"UNet": ("unet", {"widths": (4, 8, 8, 8, 8)}),
              "ResNet": ("resnet", {"base_width": 4, "num_blocks": 1}),
              "CRN": ("crn_64", {"channels": (8, 8, 8, 8)})},
    task_networks=("UNet",), bone_epochs=1, balance_batches=1, figure_cases=2, notes="test scale")

CSMRI_TINY = csmri.CsmriPreset(
    "tiny", {"subjects": 3, "slices": 3, "size": 64, "anatomy": "ellipsoid"},
    csmri._runs({"segmentation": 1, "recnet": 1, "refinement": 1, "dagan": 1}, 4, "small", task_weights=(0.5,)),
    {"outer_iterations": 1, "ksvd_iterations": 1, "training_patches": 300, "stride": 4},
    notes="test scale")


def read_csv(path: Path) -> dict[str, list[str | float]]:
    """A per-image CSV as columns: ids as strings, metrics as floats (inf and nan as strings)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[str | float]] = {"id": [row["id"] for row in rows]}
    for name in rows[0]:
        if name != "id":
            columns[name] = [_number(row[name]) for row in rows]
    return columns


def _number(text: str) -> float | str:
    value = float(text)
    return value if value == value and abs(value) != float("inf") else text


def collect(study_dir: Path, patterns: tuple[str, ...]) -> dict[str, dict[str, list[str | float]]]:
    """Every per-image CSV of ``study_dir`` matching ``patterns``, keyed by its relative path."""
    files = sorted(p for pattern in patterns for p in study_dir.glob(pattern))
    return {str(p.relative_to(study_dir)): read_csv(p) for p in files}


def main(out: Path) -> None:
    for settings in CSMRI_TINY.runs.values():
        settings["training"]["progress"] = False
    mr2xray.run_study(MR2XRAY_TINY, out / "mr2xray", accelerator="cpu")
    csmri.run_study(CSMRI_TINY, out / "csmri", accelerator="cpu")
    golden = {
        "made_with": f"taskloss {taskloss.__version__} at commit 8715ffa (tests/studies/golden/make_golden.py)",
        "mr2xray": collect(out / "mr2xray", ("runs/*/evaluation/test.csv",)),
        "csmri": collect(out / "csmri", ("results/per_image/*.csv", "results/generalisation/*.csv")),
    }
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
