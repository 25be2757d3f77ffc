"""The compressed-sensing MRI study (Seitzer et al. 2018; the source's second table).

Methods: zero-filled, DLMRI (Ravishankar & Bresler 2011), DAGAN (Yang et al. 2018), RecNet (stage
1, MSE) and RecNet + visual refinement (stage 2, adversarial + feature matching + VGG + penalty,
balanced at the first batch); beyond the source, RecNet + task loss (the trained RecNet fine-tuned
with MSE + the lesion-segmentation network's :class:`~taskloss.losses.TaskLoss`, one run per weight
of a sweep, against the same fine-tuning with MSE alone, the control) and refinement + task loss.
Scored per test slice on magnitudes: PSNR and SSIM (data_range = the ground truth's maximum,
Gaussian SSIM window), SIS (lesion Dice of an *independent* segmentation UNet, run
``sis_segmentation``: another seed and width than the task loss's network, trained on the same
ground-truth training split; relative to its Dice on the ground truth; slices without lesion
skipped), the same ratio for the task loss's own network (run ``segmentation``, so the gap is seen)
and MOS (from a reader study, ``taskloss readers``; a dash until one exists). Trained runs are in
:mod:`taskloss.studies.csmri_runs`. A generalisation check scores the trained models on real MR
images shipped with pydicom and pydicom-data (other anatomy), undersampled the same way.

Results folder (``OUT/csmri/results``): ``per_image/<method>.csv`` (id, psnr, ssim, nmse, dice,
lesion), ``images/<method>/<id>.npy`` and ``methods.json`` (the reader study's input),
``labels/<id>.npy``, ``generalisation/<method>.csv``, tables, p-values, figures and the
PSNR-SIS trade-off figure (``tradeoff.png``).
"""

import csv
import functools
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from pydantic import Field, field_validator
from torch.utils.data import DataLoader

from taskloss.baselines import DlmriConfig, dlmri
from taskloss.config import Seeds, StrictModel, check_section
from taskloss.data.csmri import CsmriConfig, csmri_data
from taskloss.data.fields import generator_for
from taskloss.data.kspace import complex_to_channels, magnitude, undersample
from taskloss.data.samples import real_mr_images
from taskloss.errors import ConfigError, DataError
from taskloss.metrics import (
    Summary,
    nmse,
    psnr,
    semantic_interpretability,
    ssim,
    summarize,
)
from taskloss.report import (
    Case,
    Column,
    ResultTable,
    Row,
    TradeoffPoint,
    box_crop,
    comparison_figure,
    tradeoff_figure,
)
from taskloss.studies.common import (
    BUILTIN_RUN,
    SCALES,
    given,
    load_preset,
    read_per_image,
    read_run_info,
    read_study_json,
    study_splits,
    trained,
    validate_config,
    write_json,
    write_per_image,
    write_table,
    write_text,
)
from taskloss.studies.csmri_runs import (
    CsmriFileRun,
    CsmriRun,
    LesionSegmentation,
    csmri_task,
    dagan_output_magnitude,
)
from taskloss.studies.detection import (
    DETECTION_FILE,
    DETECTION_TRADEOFF,
    DetectionSettings,
    calibrate,
    report_detection,
    score_methods,
)
from taskloss.studies.graph import RunNode, nodes_of, train_graph
from taskloss.studies.layout import (
    CSMRI_SCORER_RUN,
    CSMRI_TASK_NETWORK_RUN,
    EVALUATION_DIR,
    RESULTS_DIR,
    RUN_CONFIG_FILE,
    RUNS_DIR,
    STUDY_RECORD,
)
from taskloss.studies.report_kit import (
    LongRow,
    Plan,
    Reported,
    comparisons_markdown,
    long_rows,
    metric_column,
    report_comparisons,
    step_time_lines,
    verdict_lines,
)
from taskloss.studies.seeds import offset_seeds, run_seeds
from taskloss.studies.segmentation import SEGMENTATION_RUN, SegmentationRun, foreground_dice, load_segmentation
from taskloss.studies.task_loss import dice_ratio
from taskloss.training import Trainer, TrainingConfig, make_fabric
from taskloss.training.config import load_yaml

CSMRI_STUDY = "csmri"
METHODS = ("ground_truth", "zero_filled", "dlmri", "dagan", "recnet", "refinement")
METHOD_LABELS = {"ground_truth": "Ground truth", "zero_filled": "Zero-filled", "dlmri": "DLMRI", "dagan": "DAGAN",
          "recnet": "RecNet", "refinement": "RecNet + refinement",
          "refinement_task": "RecNet + refinement + task loss",
          "recnet_finetuned": "RecNet, fine-tuned with MSE (λ = 0)", "recnet_observer": "RecNet + observer loss"}
TASK_METHOD = "recnet_task_"
"""Prefix of the RecNet + task loss runs (and methods) of the weight sweep: ``recnet_task_<weight>``."""
REFINEMENT_TASK = "refinement_task"
OBSERVER_METHOD = "recnet_observer"
"""The RecNet fine-tuned with MSE + the observer loss (its run's ``observer:`` option), against the control."""
CSMRI_HEADING = "## Compressed-sensing MRI (csmri)"
"""The first line of the study's report section."""
CSMRI_METRICS = ("psnr", "ssim", "nmse", "dice", "dice_loss_net")
CONTROL = "recnet_finetuned"
"""The same-budget control of the sweep: RecNet fine-tuned as long with MSE alone (λ = 0)."""

CSMRI_SOURCE_TABLE = """| Method | PSNR | MOS | SIS |
|---|---|---|---|
| Ground Truth | ∞ | 3.78 ± 0.45 | 1 |
| RecNet | **32.46 ± 2.26** | 2.75 ± 0.78 | 0.801 |
| DLMRI | 31.45 ± 2.40 | 1.09 ± 0.29 | 0.842 |
| DAGAN | 28.41 ± 1.91 | 2.61 ± 0.83 | 0.812 |
| Proposed Model | 31.89 ± 2.18 | **3.24 ± 0.63** | **0.941** |
"""
"""The source document's table (Seitzer et al., cardiac LGE MRI), for comparison in the report."""


class CsmriPreset(StrictModel):
    """A scale of the study, as a built-in study file (``presets/csmri-<scale>.yaml``).

    Attributes:
        study: "csmri" (the key that makes a study file a built-in study's).
        name: the scale ("demo", "small", "full", or a copy's own name), shown in the report.
        notes: one line for the report.
        data: :class:`CsmriConfig` settings shared by every run (checked at load, kept as given).
        dlmri: the DLMRI baseline's settings.
        figure_cases: test slices shown in the figure (those with the largest lesions).
        runs: run folder -> :class:`CsmriRun` settings other than ``data``, trained in file order (a
            run names the runs it builds on: ``recnet_run``, ``init_run``, ``task_run``). The
            methods are the runs ``recnet``, ``refinement``, ``dagan``; the task-loss runs
            ``recnet_finetuned``, ``recnet_task_<weight>``, ``refinement_task``; the networks that
            score SIS ``sis_segmentation`` and that the task loss uses ``segmentation``.
        seeds: run the whole study once per training seed (:mod:`taskloss.studies.seeds`); None: once, in
            the study folder itself, with the runs' own seeds.
        detection: the signal-detection task scored by model observers
            (:mod:`taskloss.studies.detection`); None: not scored.
    """

    study: Literal["csmri"]
    name: str
    notes: str = ""
    data: dict[str, Any]
    dlmri: DlmriConfig = DlmriConfig()
    figure_cases: int = Field(3, ge=1)
    runs: dict[str, CsmriFileRun]
    seeds: Seeds | None = None
    detection: DetectionSettings | None = None

    @field_validator("data")
    @classmethod
    def _data(cls, data: dict[str, Any]) -> dict[str, Any]:
        check_section(CsmriConfig, data)
        return data

    @field_validator("runs")
    @classmethod
    def _runs_share_the_data(cls, runs: dict[str, CsmriRun | LesionSegmentation]
                             ) -> dict[str, CsmriRun | LesionSegmentation]:
        missing = [name for name in REQUIRED_RUNS if name not in runs]
        if missing:
            raise ValueError(f"the study needs the run {missing[0]!r} (runs {', '.join(REQUIRED_RUNS)} at least)")
        for name, run in runs.items():
            if "data" in run.model_fields_set:
                raise ValueError(f"{name}.data: runs share the file's data section; move the settings there")
        return runs


REQUIRED_RUNS = (CSMRI_TASK_NETWORK_RUN, CSMRI_SCORER_RUN, "recnet", "refinement", "dagan")
"""The runs every csmri study file holds: the study's methods and its two segmentation networks."""


def method_label(method: str) -> str:
    """The row label of a method key (sweep runs: "RecNet + task loss (λ = w)")."""
    if method.startswith(TASK_METHOD):
        return f"RecNet + task loss (λ = {method.removeprefix(TASK_METHOD)})"
    return METHOD_LABELS[method]


CSMRI_PRESETS: Mapping[str, CsmriPreset] = MappingProxyType(
    {scale: load_preset(CsmriPreset, CSMRI_STUDY, scale) for scale in SCALES})
"""The shipped scales, read from their study files."""


def csmri_preset_runs(preset: CsmriPreset, data: dict[str, Any], training: dict[str, Any]
                      ) -> dict[str, CsmriRun | SegmentationRun]:
    """The trained runs of a preset by folder name, with data and training overrides applied."""
    runs: dict[str, CsmriRun | SegmentationRun] = {}
    for name, run in preset.runs.items():
        if isinstance(run, LesionSegmentation):
            runs[name] = run.run({**preset.data, **data}, training)
            continue
        settings = run.model_dump(exclude_unset=True)
        values = {**settings, "data": {**preset.data, **data},
                  "training": TrainingConfig(**{**settings.get("training", {}), **training})}
        runs[name] = validate_config(CsmriRun, values, f"preset {preset.name}, run {name}")
    return runs


def load_run(run_dir: Path, fabric: Fabric | None = None) -> tuple[CsmriRun, Trainer]:
    """A trained run with its best weights loaded, ready to predict (evaluation mode)."""
    run = validate_config(CsmriRun, load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))
    task, _ = csmri_task(run, run_dir)
    return run, trained(task, run.training, run_dir, fabric)


def evaluate_csmri_run(run_dir: Path, split: str = "test", fabric: Fabric | None = None) -> Path:
    """Score one run's best checkpoint on a split with its validation metrics (``taskloss evaluate``).

    Writes and returns ``evaluation/<split>.csv``.
    """
    run, trainer = load_run(run_dir, fabric)
    dataset = getattr(study_splits(run.data), split)
    values = trainer.per_image(trainer.eval_loader(dataset))
    path = run_dir / EVALUATION_DIR / f"{split}.csv"
    if trainer.fabric.is_global_zero:
        ids = [dataset[int(i)]["id"] for i in values["index"]]
        write_per_image(path, ids, {k: v for k, v in values.items() if k != "index"})
    return path


Reconstructor = Callable[[dict[str, Any]], torch.Tensor]
"""``method(batch) -> magnitude (B, 1, H, W)``."""


def trained_methods(out_dir: Path) -> list[str]:
    """The methods beyond the source whose runs exist in ``out_dir/runs``: the control, the sweep by
    weight, the observer loss, then refinement + task loss."""
    runs = out_dir / RUNS_DIR
    sweep = sorted((p.name for p in runs.glob(f"{TASK_METHOD}*") if p.is_dir()),
                   key=lambda name: float(name.removeprefix(TASK_METHOD)))
    return ([CONTROL] if (runs / CONTROL).is_dir() else []) + sweep + \
        [name for name in (OBSERVER_METHOD, REFINEMENT_TASK) if (runs / name).is_dir()]


def _reconstructors(out_dir: Path, fabric: Fabric, dlmri_config: DlmriConfig, timings: dict[str, float]
                    ) -> dict[str, Reconstructor]:
    task_methods = trained_methods(out_dir)
    trainers = {name: load_run(out_dir / RUNS_DIR / name, fabric)[1]
                for name in ("recnet", "refinement", "dagan", *task_methods)}

    def timed(name: str, function: Reconstructor) -> Reconstructor:
        def run(batch: dict[str, Any]) -> torch.Tensor:
            start = time.perf_counter()
            result = function(batch)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
            return result
        return run

    return {
        "ground_truth": lambda b: b["magnitude"],
        "zero_filled": lambda b: magnitude(b["input"]),
        "dlmri": timed("dlmri", lambda b: magnitude(dlmri(b["kspace"], b["mask"], dlmri_config))),
        "dagan": timed("dagan", lambda b: dagan_output_magnitude(trainers["dagan"].task.predict(b))),
        "recnet": timed("recnet", lambda b: magnitude(trainers["recnet"].task.predict(b))),
        "refinement": timed("refinement", lambda b: magnitude(trainers["refinement"].task.predict(b))),
        **{name: timed(name, functools.partial(_predict_magnitude, trainers[name])) for name in task_methods},
    }


def _predict_magnitude(trainer: Trainer, batch: dict[str, Any]) -> torch.Tensor:
    return magnitude(trainer.task.predict(batch))


Segmenter = Callable[[torch.Tensor], torch.Tensor]


def _score(estimate: torch.Tensor, batch: dict[str, Any], scorer: Segmenter | None, loss_net: Segmenter | None
           ) -> dict[str, torch.Tensor]:
    """PSNR, SSIM, NMSE, lesion Dice of the independent scorer ("dice") and of the task loss's network
    (NaN without the networks: data without lesion labels)."""
    reference = batch["magnitude"]

    def lesion_dice(network: Segmenter | None) -> torch.Tensor:
        if network is None:
            return torch.full((len(estimate),), float("nan"), device=estimate.device)
        return foreground_dice(network(estimate), batch["label"])

    return {"psnr": psnr(estimate, reference, data_range="target_max"),
            "ssim": ssim(estimate, reference, data_range="target_max"),
            "nmse": nmse(estimate, reference), "dice": lesion_dice(scorer), "dice_loss_net": lesion_dice(loss_net)}


def evaluate_methods(out_dir: Path, preset: CsmriPreset, config: CsmriConfig, fabric: Fabric) -> dict[str, Any]:
    """Reconstruct the test split with every method, score it, save images and per-image results.

    Runs on the process of rank 0. Returns the seconds each method spent per image.
    """
    results = out_dir / RESULTS_DIR
    splits = study_splits(config)
    dlmri_config = preset.dlmri
    timings: dict[str, float] = {}
    methods = _reconstructors(out_dir, fabric, dlmri_config, timings)
    scorer, loss_net = (load_segmentation(out_dir / RUNS_DIR / name).to(fabric.device) if has_lesions(config) else
                        None for name in (CSMRI_SCORER_RUN, CSMRI_TASK_NETWORK_RUN))
    values: dict[str, dict[str, list[float]]] = {m: {k: [] for k in (*CSMRI_METRICS, "lesion")} for m in methods}
    ids: list[str] = []
    loader = DataLoader(splits.test, batch_size=8, shuffle=False)
    with torch.no_grad():
        for batch in loader:
            batch = fabric.to_device(batch)
            ids += list(batch["id"])
            lesion = (batch["label"] == 1).flatten(1).any(dim=1).float()
            for method, reconstruct in methods.items():
                estimate = reconstruct(batch).float()
                for name, value in _score(estimate, batch, scorer, loss_net).items():
                    values[method][name] += value.cpu().tolist()
                values[method]["lesion"] += lesion.cpu().tolist()
                _save_images(results / "images" / method, batch["id"], estimate)
            _save_images(results / "labels", batch["id"], batch["label"].float())
    for method in methods:
        write_per_image(results / "per_image" / f"{method}.csv", ids,
                        {k: np.asarray(v) for k, v in values[method].items()})
    write_json(results / "methods.json", {"methods": [{"key": m, "label": method_label(m)} for m in methods]})
    return {name: seconds / len(ids) for name, seconds in timings.items()}


def _save_images(folder: Path, ids: list[str], images: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, image in zip(ids, images, strict=True):
        np.save(folder / f"{image_id}.npy", image[0].clamp(0, 1).cpu().numpy().astype(np.float32))


def evaluate_detection(out_dir: Path, preset: CsmriPreset, settings: DetectionSettings, config: CsmriConfig,
                       fabric: Fabric) -> Path:
    """Score every method on the detection task (:mod:`taskloss.studies.detection`): the contrast set on
    the validation ground truth, the test slices with and without the signal; ``results/detection.json``."""
    splits = study_splits(config)
    validation = np.stack([splits.val[i]["magnitude"][0].double().numpy() for i in range(len(splits.val))])
    contrast = calibrate(settings, validation)
    methods = _reconstructors(out_dir, fabric, preset.dlmri, {})
    with torch.no_grad():
        batches = [fabric.to_device(b) for b in DataLoader(splits.test, batch_size=8, shuffle=False)]
        record = score_methods(settings, contrast, batches, methods)
    path = out_dir / RESULTS_DIR / DETECTION_FILE
    write_json(path, record)
    return path


def evaluate_generalisation(out_dir: Path, preset: CsmriPreset, config: CsmriConfig, fabric: Fabric) -> None:
    """Score every method on real MR images (pydicom, pydicom-data), resized to the study's size,
    scaled to a maximum of 1 and undersampled with fixed seeded masks of the study's kind."""
    images = real_mr_images()
    size = config.size
    batch_items = []
    for index, (name, image) in enumerate(images.items()):
        resized = F.interpolate(torch.from_numpy(image)[None, None], size=(size, size), mode="bilinear",
                                antialias=True, align_corners=False)
        truth = (resized / resized.amax()).to(torch.complex64)
        mask = config.make_mask(generator_for(config.seed, 0x6E4E, index))
        zero, kspace = undersample(truth, mask[None])
        batch_items.append({"input": complex_to_channels(zero)[0], "kspace": kspace[0], "mask": mask,
                            "magnitude": truth.abs()[0].float(), "label": torch.zeros(1, size, size, dtype=torch.long),
                            "target": complex_to_channels(truth)[0], "id": name})
    batch = {k: (torch.stack([i[k] for i in batch_items]) if k != "id" else [i[k] for i in batch_items])
             for k in batch_items[0]}
    batch = fabric.to_device(batch)
    methods = _reconstructors(out_dir, fabric, preset.dlmri, {})
    with torch.no_grad():
        for method, reconstruct in methods.items():
            if method == "ground_truth":
                continue
            estimate = reconstruct(batch).float()
            reference = batch["magnitude"]
            write_per_image(out_dir / RESULTS_DIR / "generalisation" / f"{method}.csv", batch["id"], {
                "psnr": psnr(estimate, reference, data_range="target_max").cpu().numpy(),
                "ssim": ssim(estimate, reference, data_range="target_max").cpu().numpy()})


RUN_REFERENCES = ("recnet_run", "init_run", "task_run")
"""The keys of a :class:`CsmriRun` that name another run whose trained network it uses."""


def has_lesions(config: CsmriConfig) -> bool:
    """Whether any slice of the data holds a lesion (fastMRI files have no lesion labels)."""
    return bool(csmri_data(config).labels.any())


def trainable_runs(runs: Mapping[str, CsmriRun | SegmentationRun], config: CsmriConfig
                   ) -> dict[str, CsmriRun | SegmentationRun]:
    """``runs``, less the segmentation runs and the task-loss runs (``task_run``) when no slice of the
    data holds a lesion: there is nothing to segment, so no SIS and no task term (fastMRI files; the
    mr2xray study has no bone runs on a user's data either)."""
    if has_lesions(config):
        return dict(runs)
    return {name: run for name, run in runs.items() if isinstance(run, CsmriRun) and run.task_run is None}


def csmri_graph(runs: Mapping[str, CsmriRun | SegmentationRun], out_dir: Path) -> list[RunNode]:
    """The study's run graph: ``runs/<run>`` for every run (segmentation runs of their own kind,
    :data:`~taskloss.studies.segmentation.SEGMENTATION_RUN`), each needing the runs its
    :data:`RUN_REFERENCES` name. A reference to no run of the file must be a trained run folder already
    in ``out_dir/runs`` (or an absolute path).

    Raises:
        ConfigError: a reference that is neither, named with its run and key.
    """
    methods = {name: run for name, run in runs.items() if isinstance(run, CsmriRun)}
    for name, run in methods.items():
        for key in RUN_REFERENCES:
            reference = getattr(run, key)
            if reference is not None and reference not in runs and not (out_dir / RUNS_DIR / reference).is_dir():
                raise ConfigError(f"runs.{name}.{key}: {reference!r} is no run of the study file ({', '.join(runs)}) "
                                  f"and no run folder in {out_dir / RUNS_DIR}; name one of the file's runs")

    def needs(run: CsmriRun) -> list[str]:
        return [f"{RUNS_DIR}/{getattr(run, key)}" for key in RUN_REFERENCES if getattr(run, key) in runs]

    segmentation = {name: run for name, run in runs.items() if isinstance(run, SegmentationRun)}
    return [*nodes_of(segmentation, SEGMENTATION_RUN, RUNS_DIR), *nodes_of(methods, BUILTIN_RUN, RUNS_DIR, needs)]


def run_csmri(preset: str | Path | CsmriPreset, out_dir: Path, data_dir: Path | None = None, devices: int = 1,
              accelerator: str = "auto", seed_offset: int = 0, jobs: int = 1) -> Path:
    """Train the runs of a preset as a graph (:func:`csmri_graph`: each after the runs it builds on,
    ``jobs`` at a time; finished runs are skipped), evaluate every method on the test split and on real
    MR images, and render the results.

    Args:
        preset: "demo", "small", "full" (a shipped study file), the path of a study file, or a
            :class:`CsmriPreset`.
        out_dir: the study folder (``OUT/csmri``).
        data_dir: fastMRI single-coil HDF5 files (or a ``taskloss simulate csmri`` folder) instead of
            the simulator.
        devices: devices (processes) per run; > 1 trains with DDP.
        accelerator: "auto", "cpu" or "cuda".
        seed_offset: added to every run's training seed (one replicate of ``seeds``).
        jobs: runs trained at once (in worker processes when > 1).

    Returns:
        The results folder.
    """
    preset = load_preset(CsmriPreset, CSMRI_STUDY, preset)
    if preset.seeds is not None:
        single = preset.model_copy(update={"seeds": None})
        return run_seeds(out_dir, preset.seeds, lambda folder, offset: run_csmri(
            single, folder, data_dir, devices, accelerator, offset, jobs), render_csmri)
    data: dict[str, Any] = {"data": str(data_dir)} if data_dir is not None else {}
    runs = offset_seeds(csmri_preset_runs(preset, data, {"devices": devices, "accelerator": accelerator}), seed_offset)
    recnet = runs["recnet"]
    assert isinstance(recnet, CsmriRun)  # the file's required RecNet run (CsmriPreset)
    graph = csmri_graph(trainable_runs(runs, recnet.data), out_dir)
    fabric = make_fabric(recnet.training)
    started = time.perf_counter()
    step_times = {name.removeprefix(f"{RUNS_DIR}/"): seconds
                  for name, seconds in train_graph(graph, out_dir, jobs, accelerator, fabric).items()}
    if fabric.is_global_zero:
        config = recnet.data
        per_image = evaluate_methods(out_dir, preset, config, fabric)
        if preset.detection is not None:
            evaluate_detection(out_dir, preset, preset.detection, config, fabric)
        evaluate_generalisation(out_dir, preset, config, fabric)
        write_json(out_dir / STUDY_RECORD, {
            "study": CSMRI_STUDY, "preset": preset.name, "notes": preset.notes, "data": given(config),
            "dlmri": preset.dlmri.model_dump(exclude_unset=True), "seconds": time.perf_counter() - started,
            "seconds_per_step": step_times, "jobs": jobs,
            "seconds_per_image": per_image})
        render_csmri(out_dir)
    fabric.barrier()
    return out_dir / RESULTS_DIR


CSMRI_COLUMNS = (metric_column("psnr"), metric_column("ssim"),
                 Column("sis", "SIS", higher_is_better=True, show_sd=False),
                 Column("sis_loss_net", "SIS, loss's network", higher_is_better=True, show_sd=False),
                 Column("mos", "MOS", higher_is_better=True, digits=2))
GENERALISATION_COLUMNS = CSMRI_COLUMNS[:2]
SWEEP_CURVE = "RecNet + task loss, λ sweep"
"""Label of the λ sweep's curve in the trade-off figure."""


def _read_methods(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    found = {}
    task_methods = sorted((p.stem for p in folder.glob(f"{TASK_METHOD}*.csv")),
                          key=lambda name: float(name.removeprefix(TASK_METHOD)))
    for method in (*METHODS, CONTROL, *task_methods, OBSERVER_METHOD, REFINEMENT_TASK):
        path = folder / f"{method}.csv"
        if path.is_file():
            ids, values = read_per_image(path)
            found[method] = {"ids": np.array(ids), **values}
    if not found:
        raise DataError(f"{folder} holds no per-image results; run `taskloss study csmri` first")
    return found


def read_mos(results: Path) -> dict[str, Summary]:
    """MOS per method from ``mos.csv`` (written by ``taskloss readers mos``); empty when absent."""
    path = results / "mos.csv"
    if not path.is_file():
        return {}
    summaries = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("mos"):
                n = int(row["n_ratings"])
                mean, sd = float(row["mos"]), float(row["sd"] or 0.0)
                summaries[row["method"]] = Summary(n=n, mean=mean, sd=sd, median=float("nan"),
                                                   ci_low=float("nan"), ci_high=float("nan"))
    return summaries


def _sis_cell(values: dict[str, np.ndarray], truth: dict[str, np.ndarray], key: str = "dice") -> Summary | None:
    """SIS (:func:`semantic_interpretability`) from the per-slice Dice ``key`` on lesion slices, with a
    seeded 95 % bootstrap CI (:func:`dice_ratio`)."""
    if key not in values or key not in truth:
        return None
    lesion = truth["lesion"] > 0
    score = semantic_interpretability(values[key], truth[key], lesion)
    if not np.isfinite(score):
        return None
    return dice_ratio(values[key][lesion], truth[key][lesion])


def render_csmri(out_dir: Path) -> str:
    """Write the tables (md, csv, tex), p-values and figures; return the report's section."""
    results = out_dir / RESULTS_DIR
    study = read_study_json(out_dir)
    per_method = _read_methods(results / "per_image")
    mos = read_mos(results)
    truth = per_method["ground_truth"]
    rows = []
    for method, values in per_method.items():
        cells: dict[str, Summary | None] = {m: summarize(values[m]) for m in ("psnr", "ssim")}
        cells["sis"] = _sis_cell(values, truth)
        cells["sis_loss_net"] = _sis_cell(values, truth, "dice_loss_net")
        cells["mos"] = mos.get(method)
        rows.append(Row(method_label(method), cells, group=None if method == "ground_truth" else "methods"))
    caption = ("PSNR, SSIM (mean ± sd over test slices), SIS (lesion Dice of the independent segmentation "
               f"network `{CSMRI_SCORER_RUN}` relative to its Dice on the ground truth), the same ratio for the task "
               f"loss's own network `{CSMRI_TASK_NETWORK_RUN}` (circular for the task-loss rows: it is what they "
               "optimise), MOS (reader study; — until one exists); best in bold.")
    table = ResultTable(CSMRI_COLUMNS, rows, caption)
    write_table(results, table)
    plans = csmri_plans(per_method)
    reported = report_comparisons(results, _csmri_long_rows(per_method), plans, method_label)
    generalisation = _generalisation_table(results)
    if generalisation is not None:
        write_text(results / "generalisation.md", generalisation.markdown())
    figure = _lesion_figure(results, per_method)
    tradeoff = _tradeoff_figure(results, per_method)
    verdicts = verdict_lines(reported.comparisons, method_label, reported.subjects)
    detection: list[str] = []
    found = report_detection(results, method_label, {m: float(np.mean(v["psnr"])) for m, v in per_method.items()},
                             [(plan.baseline, plan.methods) for plan in plans], reference="recnet")
    if found is not None:
        detection = [*found[1], "", f"![csmri PSNR against detectability](csmri/results/"
                     f"{_detection_tradeoff(results, per_method, found[0]).name})"]
    return _csmri_section(out_dir, study, table, reported, generalisation, figure, tradeoff, verdicts, detection)


def _csmri_long_rows(per_method: dict[str, dict[str, np.ndarray]]) -> list[LongRow]:
    """Every method but the ground truth (its PSNR is infinite): PSNR, SSIM, NMSE, the scorer's Dice and
    the ground truth's (``dice_truth``) on lesion slices, the task loss's network's Dice."""
    truth = per_method["ground_truth"]
    lesion = truth["lesion"] > 0
    rows = []
    for method, values in per_method.items():
        if method != "ground_truth":
            columns = {"psnr": values["psnr"], "ssim": values["ssim"], "nmse": values["nmse"],
                       "dice": np.where(lesion, values["dice"], np.nan),
                       "dice_truth": np.where(lesion, truth["dice"], np.nan),
                       "dice_loss_net": np.where(lesion, values["dice_loss_net"], np.nan)}
            rows += long_rows(method, [str(i) for i in values["ids"]], columns)
    return rows


SOURCE_METHODS = ("zero_filled", "dlmri", "dagan", "refinement")
"""The source's table's methods (Seitzer et al. 2018), each compared with RecNet."""


def csmri_plans(per_method: Mapping[str, Any]) -> list[Plan]:
    """The declared comparisons: the source's methods against RecNet (primary: PSNR and SIS, the source's
    columns); the λ sweep and the observer loss against their same-budget control, fine-tuning with MSE
    alone, and refinement + task loss against the refinement (primary: the scorer's Dice and PSNR, the
    trade-off the task loss is about). SSIM, NMSE and the loss's own network's Dice (circular) are
    exploratory."""
    finetuned = (*(m for m in per_method if m.startswith(TASK_METHOD)), OBSERVER_METHOD)
    declared = [("recnet", SOURCE_METHODS, ("psnr", "ssim", "nmse", "dice", "sis"), ("psnr", "sis")),
                (CONTROL, finetuned, ("dice", "psnr", "ssim", "sis", "dice_loss_net"), ("dice", "psnr")),
                ("refinement", (REFINEMENT_TASK,), ("dice", "psnr", "ssim", "sis", "dice_loss_net"), ("dice", "psnr"))]
    return [Plan(baseline, tuple(m for m in methods if m in per_method), metrics, primary)
            for baseline, methods, metrics, primary in declared if baseline in per_method]


def _generalisation_table(results: Path) -> ResultTable | None:
    folder = results / "generalisation"
    if not folder.is_dir():
        return None
    per_method = _read_methods(folder)
    rows = [Row(method_label(m), {k: summarize(v[k]) for k in ("psnr", "ssim")}, group="methods")
            for m, v in per_method.items()]
    n = len(next(iter(per_method.values()))["ids"])
    return ResultTable(GENERALISATION_COLUMNS, rows, f"Real MR images from pydicom / pydicom-data ({n} images, "
                       "head, abdomen, shoulder), undersampled like the test set; models trained on simulated "
                       "heads.")


def _lesion_figure(results: Path, per_method: dict[str, dict[str, np.ndarray]]) -> Path | None:
    truth = per_method["ground_truth"]
    lesion_sizes = [(int(np.load(results / "labels" / f"{i}.npy").sum()), str(i)) for i in truth["ids"]]
    chosen = [i for size, i in sorted(lesion_sizes, reverse=True)[:3] if size > 0] or [str(truth["ids"][0])]
    cases = []
    for case_id in chosen:
        images = {m: np.load(results / "images" / m / f"{case_id}.npy") for m in per_method}
        label = np.load(results / "labels" / f"{case_id}.npy")
        crop = box_crop(label > 0, max(16, label.shape[0] // 3))
        shown = [m for m in per_method if m not in ("ground_truth", "zero_filled") and not m.startswith(TASK_METHOD)]
        shown += [m for m in per_method if m.startswith(TASK_METHOD)][-1:]  # the sweep's largest weight
        outputs = {method_label(m): images[m] for m in shown}
        cases.append(Case(case_id, images["zero_filled"], outputs, images["ground_truth"], crop,
                          input_has_error=True, display_range=(0.0, 1.0)))
    return comparison_figure(results / "figure.png", cases, input_label="Zero-filled",
                             target_label="Ground truth", title="CS-MRI, test slices with the largest lesions")


def _tradeoff_points(per_method: dict[str, dict[str, np.ndarray]],
                     task_value: Callable[[str], tuple[float, float, float] | None]) -> list[TradeoffPoint]:
    """Every method (not the ground truth) as PSNR (mean and 95 % bootstrap CI) against ``task_value``
    (mean, low, high; None leaves the method out); the weight sweep as one curve from its λ = 0 (the
    MSE control, else RecNet)."""
    points = []
    for method, values in per_method.items():
        y = task_value(method) if method != "ground_truth" else None
        if y is None:
            continue
        psnr_summary = summarize(values["psnr"])
        x = (psnr_summary.mean, psnr_summary.ci_low, psnr_summary.ci_high)
        if method.startswith(TASK_METHOD):
            points.append(TradeoffPoint(f"λ = {method.removeprefix(TASK_METHOD)}", x, y, curve=SWEEP_CURVE))
            continue
        if method == (CONTROL if CONTROL in per_method else "recnet"):  # the sweep's λ = 0
            points.append(TradeoffPoint("λ = 0", x, y, curve=SWEEP_CURVE))
        points.append(TradeoffPoint(method_label(method), x, y))
    return points


def _tradeoff_figure(results: Path, per_method: dict[str, dict[str, np.ndarray]]) -> Path | None:
    """PSNR against SIS (independent scorer) with 95 % bootstrap CIs; the weight sweep as a curve from RecNet."""
    truth = per_method["ground_truth"]

    def sis(method: str) -> tuple[float, float, float] | None:
        cell = _sis_cell(per_method[method], truth)
        return None if cell is None else (cell.mean, cell.ci_low, cell.ci_high)

    points = _tradeoff_points(per_method, sis)
    if not points:
        return None
    return tradeoff_figure(results / "tradeoff.png", points, "PSNR (dB), mean over test slices",
                           f"SIS (scored by {CSMRI_SCORER_RUN})", title="CS-MRI: image quality against the task")


def _detection_tradeoff(results: Path, per_method: dict[str, dict[str, np.ndarray]], record: Mapping[str, Any]
                        ) -> Path:
    """PSNR (95 % bootstrap CI) against the CHO's d' (normal-theory CI) of the detection task, per method."""
    def dprime(method: str) -> tuple[float, float, float] | None:
        cho = record["methods"].get(method, {}).get("cho")
        return None if cho is None else (cho["snr"], *cho["snr_ci"])

    points = _tradeoff_points(per_method, dprime)
    return tradeoff_figure(results / DETECTION_TRADEOFF, points, "PSNR (dB), mean over test slices",
                           "detectability d' (CHO, Laguerre-Gauss)", title="CS-MRI: image quality against detection")


def _csmri_section(out_dir: Path, study: dict[str, Any], table: ResultTable, reported: Reported,
                   generalisation: ResultTable | None, figure: Path | None, tradeoff: Path | None,
                   verdict: list[str], detection: list[str]) -> str:
    lines = [CSMRI_HEADING, ""]
    if study:
        acceleration = study["data"].get("acceleration", CsmriConfig.model_fields["acceleration"].default)
        lines.append(f"Preset `{study['preset']}` ({study['notes']}); acceleration "
                     f"{acceleration}; wall time of the study {study['seconds'] / 60:.1f} min.")
    runs = sorted(p for p in (out_dir / RUNS_DIR).iterdir() if p.is_dir()) if (out_dir / RUNS_DIR).is_dir() else []
    info = {run.name: read_run_info(run) for run in runs}
    losses = [f"{name}: {i['loss']}" for name, i in info.items() if i]
    lines += ["", "Losses: " + "; ".join(losses) + ".", "", table.markdown(),
              f"Comparisons (Dice and SIS by `{CSMRI_SCORER_RUN}`, never by the network inside the loss):", "",
              comparisons_markdown(reported.comparisons, method_label, reported.commands), ""]
    if verdict:
        lines += ["Verdicts of the primary families (the source's methods vs RecNet on PSNR and SIS; the task loss "
                  "vs its same-budget control on Dice and PSNR):", "", *verdict, ""]
    if detection:
        lines += [*detection, ""]
    if tradeoff is not None:
        lines += [f"![csmri PSNR against SIS](csmri/results/{tradeoff.name})", ""]
    if figure is not None:
        lines += [f"![csmri test slices](csmri/results/{figure.name})", ""]
    if generalisation is not None:
        lines += ["Generalisation to real MR images:", "", generalisation.markdown()]
    lines += step_time_lines(info, str)
    if study.get("seconds_per_image"):
        lines += ["", "Reconstruction time per test image: " + ", ".join(
            f"{method_label(m)} {s:.3g} s" for m, s in study["seconds_per_image"].items()) + "."]
    lines += ["", "For comparison, the source document's table (Seitzer et al. 2018, cardiac LGE MRI):", "",
              CSMRI_SOURCE_TABLE]
    return "\n".join(lines)

