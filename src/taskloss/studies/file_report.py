"""Results of a study file: table, comparisons, figure, per-image CSV, reader-study hand-off, report.

Reads only what the engine saved (``study.yaml``, ``runs/*/evaluation/``, ``segmentation/``), so
``taskloss report OUT`` can redo it at any time. Written to ``OUT/<name>/results/``:

- ``table.md``, ``table.tex``, ``table.csv``: rows "network - loss", the study's metrics as mean ±
  sd over the test images (best per network in bold), and SIS when the data has labels; with a
  k-space source (``task: csmri``, ``csmri-simulator``) a first row "Zero-filled", the network
  inputs scored (never bold);
- ``per_image.csv``: the long table of :mod:`taskloss.studies.report_kit` (method = run, subject
  as split, case = image id; ``zero_filled`` rows with a k-space source);
- ``comparisons.csv``, ``comparisons.md``: per network, every loss against the baseline loss,
  subjects as the units, Holm within the primary family (the study file's ``primary``, default
  its metrics and Dice with a scoring network: images whose label has foreground) and within each
  exploratory metric (SIS among them); ``comparisons.md`` ends with the ``taskloss compare`` calls
  that recompute every row;
- ``figure.png``: input, every run and the target for a few test images, a zoomed crop and error maps;
- ``images/<run>/<id>.npy``, ``images/ground_truth/<id>.npy`` and ``methods.json``: the input of
  ``taskloss readers create --from OUT/<name>/results`` (images in [0, 1]).
"""

import functools
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from taskloss.data.sources import paired_data, paired_splits
from taskloss.errors import DataError
from taskloss.metrics import Summary, semantic_interpretability, summarize
from taskloss.metrics.registry import METRICS
from taskloss.report import Case, Column, ResultTable, Row, comparison_figure, detail_crop
from taskloss.studies.common import (
    figure_case_indices,
    read_per_image,
    read_run_info,
    write_json,
    write_table,
)
from taskloss.studies.detection import GROUND_TRUTH, report_detection
from taskloss.studies.layout import (
    EVALUATION_DIR,
    PREDICTIONS_FILE,
    RESULTS_DIR,
    RUNS_DIR,
    SCORER_DIR,
    STUDY_FILE,
    STUDY_RECORD,
    TEST_CSV,
    ZERO_FILLED_DIR,
)
from taskloss.studies.report_kit import (
    LongRow,
    Plan,
    Reported,
    comparisons_markdown,
    long_rows,
    report_comparisons,
    step_time_lines,
    verdict_lines,
)
from taskloss.studies.spec import StudySpec, build_runs, load_study
from taskloss.studies.terms import describe_loss

Results = dict[str, tuple[list[str], dict[str, np.ndarray]]]


def _label(spec: StudySpec, name: str) -> str:
    network, loss = _parts(spec, name)
    return f"{network} - {loss}"


def _method_label(spec: StudySpec, name: str) -> str:
    """A method's label: a run's ``network - loss``, "Zero-filled" for the inputs (k-space sources), "Ground
    truth" for the targets (the detection task's reference)."""
    return {ZERO_FILLED_DIR: "Zero-filled", GROUND_TRUTH: "Ground truth"}.get(name) or _label(spec, name)


def _detection_report(out_dir: Path, spec: StudySpec, results: Results, plans: list[Plan]) -> list[str]:
    """The detection subsection (``results/detection.json``, docs/observers.md "Detection in study files"):
    the observers' table, the per-subject comparisons on d' (``results/detection_comparisons.csv``) and
    where PSNR and d' disagree against the first baseline; empty without a record."""
    psnr = {name: float(np.mean(values["psnr"])) for name, (_, values) in results.items() if "psnr" in values}
    found = report_detection(out_dir / RESULTS_DIR, functools.partial(_method_label, spec), psnr,
                             [(plan.baseline, plan.methods) for plan in plans])
    return [] if found is None else ["### Detection (model observers)", "", *found[1], ""]


def _parts(spec: StudySpec, name: str) -> tuple[str, str]:
    """(network key, loss key) of a run name, from the study's keys (never parsed by splitting)."""
    return next((n, loss) for n in spec.networks for loss in spec.losses if f"{n}-{loss}" == name)


def _read(out_dir: Path, spec: StudySpec) -> Results:
    found = {name: read_per_image(out_dir / RUNS_DIR / name / EVALUATION_DIR / TEST_CSV) for name in build_runs(spec)
             if (out_dir / RUNS_DIR / name / EVALUATION_DIR / TEST_CSV).is_file()}
    if not found:
        raise DataError(f"{out_dir} holds no evaluated run; run `taskloss study run {out_dir / STUDY_FILE}` first")
    ids = {tuple(r[0]) for r in found.values()}
    if len(ids) != 1:
        raise DataError(f"the runs in {out_dir / 'runs'} were scored on different test images; delete the "
                        "runs/*/evaluation folders and run the study again")
    return found


def _truth_dice(out_dir: Path) -> dict[str, np.ndarray] | None:
    path = out_dir / SCORER_DIR / EVALUATION_DIR / TEST_CSV
    return read_per_image(path)[1] if path.is_file() else None


def _sis(values: dict[str, np.ndarray], truth: dict[str, np.ndarray] | None) -> Summary | None:
    if truth is None or "dice" not in values:
        return None
    roi = truth["roi"] > 0
    score = semantic_interpretability(values["dice"], truth["dice"], roi)
    if not np.isfinite(score):
        return None
    return Summary(n=int(roi.sum()), mean=score, sd=float("nan"), median=float("nan"), ci_low=float("nan"),
                   ci_high=float("nan"))


def _zero_filled(out_dir: Path) -> tuple[list[str], dict[str, np.ndarray]] | None:
    """The scores of the zero-filled inputs (k-space sources), when the engine saved them."""
    path = out_dir / ZERO_FILLED_DIR / EVALUATION_DIR / TEST_CSV
    return read_per_image(path) if path.is_file() else None


def results_table(spec: StudySpec, results: Results, truth: dict[str, np.ndarray] | None,
                  zero_filled: tuple[list[str], dict[str, np.ndarray]] | None = None) -> ResultTable:
    """Rows "network - loss" in study order, the study's metrics (and SIS with a task network); the
    zero-filled inputs first when given (a reference row that competes for no bold cell)."""
    columns = [Column(m, m.upper(), METRICS[m].higher_is_better, digits=METRICS[m].digits) for m in spec.metrics]
    if truth is not None:
        columns.append(Column("sis", "SIS", higher_is_better=True, show_sd=False))
    rows = []
    if zero_filled is not None:
        rows.append(Row("Zero-filled", {m: summarize(zero_filled[1][m]) for m in spec.metrics}, group=None))
    for name, (_, values) in results.items():
        cells: dict[str, Summary | None] = {m: summarize(values[m]) for m in spec.metrics}
        cells["sis"] = _sis(values, truth)
        rows.append(Row(_label(spec, name), cells, group=_parts(spec, name)[0]))
    caption = (f"Test images (n = {len(next(iter(results.values()))[0])}), mean ± sd; best per network in bold"
               + ("; SIS: the task network's Dice on outputs relative to its Dice on targets." if truth else ".")
               + (" Zero-filled: the network input (the undersampled k-space's image) scored as an output."
                  if zero_filled is not None else ""))
    return ResultTable(columns, rows, caption, first_header="Network - loss")


def _file_long_rows(spec: StudySpec, results: Results, truth: dict[str, np.ndarray] | None,
               zero_filled: tuple[list[str], dict[str, np.ndarray]] | None) -> list[LongRow]:
    """The zero-filled inputs (k-space sources) and every run: the study's metrics, and with a scoring
    network the Dice on the output and on the target (``dice_truth``), on images whose label has
    foreground; subjects as the split assigned them."""
    data = paired_data(spec.data)
    subject = dict(zip(data.ids, data.subjects, strict=True))
    roi = truth["roi"] > 0 if truth is not None else None
    rows = []
    for name, (ids, values) in ({ZERO_FILLED_DIR: zero_filled, **results} if zero_filled else results).items():
        columns = {m: values[m] for m in spec.metrics}
        if roi is not None and truth is not None and "dice" in values:
            columns |= {"dice": np.where(roi, values["dice"], np.nan),
                        "dice_truth": np.where(roi, truth["dice"], np.nan)}
        rows += long_rows(name, ids, columns, [subject[i] for i in ids])
    return rows


def file_plans(spec: StudySpec, results: Collection[str], scored: bool) -> list[Plan]:
    """Per network, every other loss against the baseline loss on the study's metrics (and Dice and SIS
    with a scoring network); primary: the study file's ``primary``, by default its metrics and Dice.
    ``results``: the runs with results (their names; a :data:`Results` mapping will do)."""
    extra = ("dice", "sis") if scored else ()
    metrics = (*spec.metrics, *extra)
    primary = tuple(m for m in (spec.primary or [*spec.metrics, "dice"]) if m in metrics)
    plans = []
    for network in spec.networks:
        baseline = f"{network}-{spec.baseline_loss}"
        methods = tuple(f"{network}-{loss}" for loss in spec.losses
                        if loss != spec.baseline_loss and f"{network}-{loss}" in results)
        if baseline in results:
            plans.append(Plan(baseline, methods, metrics, primary))
    return plans


def _display(image: np.ndarray, target: np.ndarray, spec: StudySpec) -> np.ndarray:
    """An image in [0, 1] for readers: as is for normalised data, else by the target's min and max."""
    if spec.data.normalize == "none":
        low, high = float(target.min()), float(target.max())
        image = (image - low) / max(high - low, np.finfo(np.float32).tiny)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _predictions(out_dir: Path, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    found = {}
    for name in names:
        path = out_dir / RUNS_DIR / name / EVALUATION_DIR / PREDICTIONS_FILE
        if path.is_file():
            with np.load(path) as arrays:
                found[name] = dict(zip((str(i) for i in arrays["ids"]), arrays["pred"], strict=True))
    return found


def write_reader_images(results_dir: Path, spec: StudySpec, predictions: dict[str, dict[str, np.ndarray]],
                        targets: dict[str, np.ndarray]) -> None:
    """``images/<run>/<id>.npy``, ``images/ground_truth/<id>.npy`` and ``methods.json``."""
    for name, by_id in predictions.items():
        folder = results_dir / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        for image_id, image in by_id.items():
            np.save(folder / f"{image_id}.npy", _display(image, targets[image_id], spec))
    folder = results_dir / "images" / GROUND_TRUTH
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, target in targets.items():
        np.save(folder / f"{image_id}.npy", _display(target, target, spec))
    methods = [{"key": name, "label": _label(spec, name)} for name in predictions]
    write_json(results_dir / "methods.json", {"methods": [*methods, {"key": GROUND_TRUTH, "label": "Ground truth"}]})


def _test_figure(results_dir: Path, spec: StudySpec, predictions: dict[str, dict[str, np.ndarray]]) -> Path | None:
    if not predictions:
        return None
    test = paired_splits(spec.data).test
    cases = []
    for index in figure_case_indices(len(test), spec.figure_cases):
        item = test[index]
        target = item["target"][0].numpy()
        outputs = {_label(spec, name): by_id[item["id"]] for name, by_id in predictions.items()}
        window = (0.0, 1.0) if spec.data.normalize != "none" else None
        cases.append(Case(item["id"], item["input"][0].numpy(), outputs, target,
                          detail_crop(target, max(16, target.shape[0] // 4)), display_range=window))
    return comparison_figure(results_dir / "figure.png", cases,
                             input_label="Zero-filled" if spec.data.KSPACE else "Input", target_label="Target",
                             title=f"{spec.name}: test images")


def render_file_study(out_dir: Path) -> str:
    """Write the results of a study folder (module docstring) and return its report section."""
    spec = load_study(out_dir / STUDY_FILE)
    results = _read(out_dir, spec)
    truth = _truth_dice(out_dir)
    zero_filled = _zero_filled(out_dir)
    results_dir = out_dir / RESULTS_DIR
    table = results_table(spec, results, truth, zero_filled)
    write_table(results_dir, table)
    scored = truth is not None and all("dice" in values for _, values in results.values())
    reported = report_comparisons(results_dir, _file_long_rows(spec, results, truth, zero_filled),
                                  file_plans(spec, results, scored), lambda n: _method_label(spec, n))
    predictions = _predictions(out_dir, list(results))
    test = paired_splits(spec.data).test
    targets = {test[i]["id"]: test[i]["target"][0].numpy() for i in range(len(test))}
    write_reader_images(results_dir, spec, predictions, targets)
    figure = _test_figure(results_dir, spec, predictions)
    detection = _detection_report(out_dir, spec, results, file_plans(spec, results, scored))
    return _file_section(out_dir, spec, table, reported, figure, list(results), detection)


def _file_section(out_dir: Path, spec: StudySpec, table: ResultTable, reported: Reported,
                  figure: Path | None, names: list[str], detection: list[str]) -> str:
    study: dict[str, Any] = {}
    if (out_dir / STUDY_RECORD).is_file():
        study = json.loads((out_dir / STUDY_RECORD).read_text())
    lines = [f"## {spec.name} (study file)", "", spec.data.describe(paired_data(spec.data))]

    label = functools.partial(_method_label, spec)
    if study:
        lines.append(f"Wall time {study['seconds'] / 60:.1f} min (training {study['seconds_training'] / 60:.1f} min, "
                     f"{study['jobs']} run(s) at a time, launcher {study['launcher']}).")
    lines += ["", "Losses: " + "; ".join(f"`{key}` = {describe_loss(loss)}" for key, loss in spec.losses.items())
              + f". Baseline: `{spec.baseline_loss}`.", "", table.markdown(),
              f"Comparisons against `{spec.baseline_loss}` on the same network:", "",
              comparisons_markdown(reported.comparisons, label, reported.commands),
              "Verdicts of the primary family:", "",
              *verdict_lines(reported.comparisons, label, reported.subjects), ""]
    if figure is not None:
        lines += [f"![{spec.name} test images]({out_dir.name}/results/{figure.name})", ""]
    lines += detection
    info = {name: read_run_info(out_dir / RUNS_DIR / name) for name in names}
    lines += step_time_lines(info, lambda name: _label(spec, name))
    lines += ["", f"Reader study: `taskloss readers create STUDY_DIR --from {out_dir / 'results'} --readers NAMES` "
              "(images and methods.json are there).", ""]
    return "\n".join(lines)
