"""Training seeds: a study repeated once per seed, and the report over the seeds.

One trained network is one draw of the training noise (initialisation, data order, masks), so a
comparison from one seed is about that network, not about the loss. A study file's ``seeds: [0, 1,
2]`` (study files of networks and losses, and the built-in mr2xray and csmri files alike) runs the
*whole* study once per seed, each replicate a complete study folder ``OUT/<study>/seeds/<seed>/``
(its own runs, task networks and scorers, results and resumable checkpoints), every run's training
seed shifted by ``seed * SEED_STRIDE``; the data (simulated subjects, splits, masks of the test set)
are those of the study file for every seed, so the data seed stays what the file says.

The report over the seeds (``OUT/<study>/results/``) is computed from the replicates' own
``results/per_image.csv`` (a ``seed`` column added) and their declared comparisons
(``results/plans.json``): the same :class:`~taskloss.studies.report_kit.Plan` s, with subjects and
seeds as the units (:mod:`taskloss.metrics.comparisons`: the seed-to-seed variance widens the
interval, and a direction is called only when every seed agrees), and a table of each method's
per-seed means, mean ± sd over the seeds.
"""

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from taskloss.studies.common import write_json, write_text
from taskloss.studies.detection import (
    DETECTION_COMPARISONS_FILE,
    DETECTION_FILE,
    comparison_lines,
    detection_comparisons,
    write_detection_comparisons,
)
from taskloss.studies.layout import PER_IMAGE_CSV, PLANS_FILE, RESULTS_DIR, RUNS_DIR, SEEDS_DIR
from taskloss.studies.report_kit import (
    NO_COMPARISON,
    SIS_RATIO,
    LongRow,
    Plan,
    comparisons_markdown,
    read_plans,
    report_comparisons,
    verdict_lines,
)
from taskloss.training import TrainingConfig

SEED_STRIDE = 1000
"""Seed ``s`` trains every run with its own training seed + ``s * SEED_STRIDE``: far enough apart that
the runs of one replicate (which differ by small seeds, e.g. a scorer's seed 1) never share a seed
with another replicate's."""
SEEDS_RECORD = "seeds.json"
"""``OUT/<study>/seeds.json``: the seeds and the training-seed offset of each."""
SEED_COLUMN = "seed"
KEY_COLUMNS = ("method", "subject", "case", SEED_COLUMN)


class HasTraining(Protocol):
    """A run configuration (pydantic) with training settings."""

    training: TrainingConfig

    def model_copy(self, *, update: Mapping[str, object] | None = None, deep: bool = False) -> "HasTraining": ...


Run = TypeVar("Run", bound=HasTraining)


def seed_offset(seed: int) -> int:
    """The training-seed offset of replicate ``seed``.

    Examples:
        >>> seed_offset(0), seed_offset(2)
        (0, 2000)
    """
    return seed * SEED_STRIDE


def offset_seeds(runs: Mapping[str, Run], offset: int) -> dict[str, Run]:
    """Every run of ``runs`` with its training seed + ``offset`` (the runs are not changed)."""
    return {name: run.model_copy(update={"training": run.training.model_copy(
        update={"seed": run.training.seed + offset})}) for name, run in runs.items()}


def replicate_dir(out_dir: Path, seed: int) -> Path:
    """The folder of replicate ``seed`` of the study in ``out_dir``."""
    return out_dir / SEEDS_DIR / str(seed)


def seed_folders(out_dir: Path, seeds: Sequence[int] | None) -> list[tuple[str, Path]]:
    """``(prefix, study folder)`` of every replicate: ``[("", out_dir)]`` without seeds, else
    ``("seeds/<seed>/", out_dir/seeds/<seed>)`` per seed (the folders a plan lists its runs in)."""
    if seeds is None:
        return [("", out_dir)]
    return [(f"{SEEDS_DIR}/{seed}/", replicate_dir(out_dir, seed)) for seed in seeds]


def replicates(out_dir: Path) -> list[tuple[int, Path]]:
    """The replicates of ``out_dir`` that hold results, by seed: ``[(seed, folder), ...]``."""
    folder = out_dir / SEEDS_DIR
    found = [(int(p.name), p) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()] if folder.is_dir() else []
    return sorted((seed, path) for seed, path in found if (path / RESULTS_DIR / PLANS_FILE).is_file())


def is_seeded(out_dir: Path) -> bool:
    """Whether ``out_dir`` is a study run over several seeds (it holds ``seeds/<seed>/``)."""
    return (out_dir / SEEDS_DIR).is_dir()


def run_seeds(out_dir: Path, seeds: Sequence[int], run_one: Callable[[Path, int], object],
              render_one: Callable[[Path], str]) -> Path:
    """Run the study once per seed, then write the report over the seeds.

    Args:
        out_dir: the study folder (``OUT/<study>``).
        seeds: the seeds, in order (each replicate resumes; finished ones return at once).
        run_one: ``(replicate folder, training-seed offset) -> ...``: runs one replicate, as the
            study without ``seeds``, its training seeds shifted.
        render_one: a replicate's renderer (``folder -> report section``).

    Returns:
        The results folder over the seeds.
    """
    for seed in seeds:
        run_one(replicate_dir(out_dir, seed), seed_offset(seed))
    write_json(out_dir / SEEDS_RECORD, {"seeds": list(seeds), "stride": SEED_STRIDE,
                                        "training_seed_offset": {str(s): seed_offset(s) for s in seeds}})
    render_seeded(out_dir, render_one, rerender=False)
    return out_dir / RESULTS_DIR


def _read_rows(path: Path, seed: int) -> list[LongRow]:
    with open(path, newline="") as handle:
        return [{"method": row["method"], "subject": row["subject"], "case": row["case"], SEED_COLUMN: str(seed),
                 **{k: float(v) if v != "" else math.nan for k, v in row.items()
                    if k not in ("method", "subject", "case")}} for row in csv.DictReader(handle)]


def seed_table(rows: Sequence[LongRow], labels: Mapping[str, str]) -> str:
    """Each method's per-seed mean of every metric (SIS: the per-seed ratio of sums on the cases with a
    region), as mean ± sd over the seeds, in a Markdown table.

    Examples:
        >>> rows = [{"method": "a", "subject": "s0", "case": "c", "seed": s, "psnr": 30.0 + int(s)}
        ...         for s in "01"]
        >>> print(seed_table(rows, {"a": "A"}).splitlines()[2])
        | A | 30.5 ± 0.71 |
    """
    metrics = [k for k in rows[0] if k not in KEY_COLUMNS and k != SIS_RATIO.denominator]
    has_sis = SIS_RATIO.numerator in rows[0] and SIS_RATIO.denominator in rows[0]
    names = [*metrics, *([SIS_RATIO.name] if has_sis else [])]
    lines = ["| Method | " + " | ".join(m.upper().replace("_", " ") for m in names) + " |",
             "|---|" + "---|" * len(names)]
    for method in dict.fromkeys(str(r["method"]) for r in rows):
        mine = [r for r in rows if r["method"] == method]
        cells = []
        for name in names:
            per_seed = [_seed_value(rows_of_seed, name) for rows_of_seed in _by_seed(mine)]
            values = np.array([v for v in per_seed if math.isfinite(v)])
            cells.append("—" if values.size == 0 else f"{values.mean():.4g} ± {values.std(ddof=1):.2g}"
                         if values.size > 1 else f"{values.mean():.4g}")
        lines.append(f"| {labels.get(method, method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _by_seed(rows: Sequence[LongRow]) -> list[list[LongRow]]:
    seeds = dict.fromkeys(str(r[SEED_COLUMN]) for r in rows)
    return [[r for r in rows if str(r[SEED_COLUMN]) == s] for s in seeds]


def _seed_value(rows: Sequence[LongRow], name: str) -> float:
    """One seed's value of a metric: the mean over its finite cells, or SIS's ratio of sums."""
    if name == SIS_RATIO.name:
        pairs = np.array([(float(r[SIS_RATIO.numerator]), float(r[SIS_RATIO.denominator])) for r in rows])  # type: ignore[arg-type]
        pairs = pairs[np.isfinite(pairs).all(axis=1)]
        return float(pairs[:, 0].sum() / pairs[:, 1].sum()) if pairs.size and pairs[:, 1].sum() > 0 else math.nan
    values = np.array([float(r[name]) for r in rows])  # type: ignore[arg-type]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan


def render_seeded(out_dir: Path, render_one: Callable[[Path], str], rerender: bool = True, heading: str = "") -> str:
    """Write the results over the seeds into ``out_dir/results`` and return the report's section.

    Args:
        out_dir: a study folder run with ``seeds`` (:func:`is_seeded`).
        render_one: a replicate's renderer; called first when ``rerender`` (``taskloss report``) on
            every replicate that still holds its run folders, so its results are current; a replicate
            kept as ``study.json`` and ``results/`` alone (committed evidence) is pooled as saved.
        rerender: whether to render the replicates.
        heading: the section's first line when no replicate is rendered (default: the first
            replicate's section's).
    """
    found = replicates(out_dir)
    sections = [render_one(folder) for _, folder in found if (folder / RUNS_DIR).is_dir()] if rerender else []
    if not found:
        return f"## {out_dir.name}\n\nNo replicate of {out_dir / SEEDS_DIR} holds results yet.\n"
    title = (sections[0] if sections else heading or render_one(found[0][1])).splitlines()[0]
    rows = [row for seed, folder in found for row in _read_rows(folder / RESULTS_DIR / PER_IMAGE_CSV, seed)]
    plans, labels = read_plans(found[0][1] / RESULTS_DIR / PLANS_FILE)
    results = out_dir / RESULTS_DIR
    results.mkdir(parents=True, exist_ok=True)
    reported = report_comparisons(results, rows, plans, lambda m: labels.get(m, m))
    table = seed_table(rows, labels)
    write_text(results / "table.md", table)
    seeds = ", ".join(str(s) for s, _ in found)
    lines = [f"{title}, over {len(found)} training seeds ({seeds})", "",
             f"Each seed is a whole replicate of the study (`{SEEDS_DIR}/<seed>/`, its own report section and "
             f"figures in `{SEEDS_DIR}/<seed>/{RESULTS_DIR}/`), every training seed shifted by seed x {SEED_STRIDE}; "
             "the data are the same for every seed. Per-image values of every seed: "
             f"`{out_dir.name}/{RESULTS_DIR}/{PER_IMAGE_CSV}`.", "",
             "Mean ± sd over the seeds of each seed's mean over the test images (SIS: each seed's ratio):", "",
             table, "Comparisons, subjects and seeds as the units:", "",
             comparisons_markdown(reported.comparisons, lambda m: labels.get(m, m), reported.commands),
             "Verdicts of the primary families:", ""]
    lines += verdict_lines(reported.comparisons, lambda m: labels.get(m, m), reported.subjects) \
        if reported.comparisons else ["- " + NO_COMPARISON.format(subjects=reported.subjects)]
    lines += _pooled_detection(found, plans, results, lambda m: labels.get(m, m))
    return "\n".join(lines) + "\n"


def _pooled_detection(found: Sequence[tuple[int, Path]], plans: Sequence[Plan], results: Path,
                      label: Callable[[str], str]) -> list[str]:
    """The detection comparisons over every seed (:func:`detection_comparisons` of all replicates'
    ``detection.json``), written to ``results/detection_comparisons.csv``; empty unless every replicate
    has a detection record with per-slice scores."""
    paths = [folder / RESULTS_DIR / DETECTION_FILE for _, folder in found]
    if not all(path.is_file() for path in paths):
        return []
    records = [json.loads(path.read_text()) for path in paths]
    comparisons = detection_comparisons(records, [(plan.baseline, plan.methods) for plan in plans])
    if not comparisons:
        return []
    write_detection_comparisons(results / DETECTION_COMPARISONS_FILE, comparisons)
    return ["", *comparison_lines(comparisons, label, seeds=len(records))]
