"""The MR -> X-ray projection synthesis study (Stimpel et al. 2017; the source's first table).

Three generators (CRN, UNet, ResNet) are each trained twice, with the perceptual loss (Chen &
Koltun: pixel term plus conv1_2 ... conv5_2 of VGG-19, or the domain network offline, each term
balanced by its mean over the first batches) and with the l1 loss: six runs. Each run's best
checkpoint (highest validation SSIM, a metric neither loss optimises directly) is scored on the
held-out test subjects with MAE, SSIM and PSNR (data_range 1: images are in [0, 1]) and, beside the
table, HFEN (the source claims the perceptual loss keeps high-frequency detail). Predictions are
clipped to [0, 1] before scoring.
"""

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.fabric import Fabric
from pydantic import Field

from taskloss.data.mr2xray import Mr2XrayConfig, Splits, mr2xray_splits
from taskloss.errors import DataError
from taskloss.losses import L1Loss, PerceptualLoss
from taskloss.metrics import PairedTest, hfen, mae, paired_wilcoxon, psnr, ssim, summarize
from taskloss.networks import create_network
from taskloss.report import Case, Column, ResultTable, Row, comparison_figure, detail_crop
from taskloss.studies.common import (
    CASES_FILE,
    CONFIG_FILE,
    EVALUATION_DIR,
    TEST_CSV,
    collect_predictions,
    figure_case_indices,
    format_p,
    pick_preset,
    read_per_image,
    read_run_info,
    save_npz,
    validate_config,
    write_json,
    write_per_image,
    write_run_config,
    write_run_info,
    write_table,
    write_text,
)
from taskloss.studies.perception import PerceptionChoice, perception_network
from taskloss.training import FitResult, SupervisedTask, Trainer, TrainingConfig, make_fabric
from taskloss.training.config import StrictModel, load_yaml
from taskloss.training.task import Batch

STUDY = "mr2xray"
LOSSES = ("perceptual", "l1")
LOSS_LABELS = {"perceptual": "p loss", "l1": "ℓ1 loss"}
METRICS = ("mae", "ssim", "psnr", "hfen")


class PerceptualSettings(StrictModel):
    """The perceptual loss of a run (see :class:`taskloss.losses.PerceptualLoss`)."""

    network: PerceptionChoice = "auto"
    layers: list[str] | None = Field(None, description="default: the network's CRN-style layer set")
    distance: Literal["l1", "l2"] = "l1"
    include_pixel: bool = True
    balance_batches: int = Field(10, ge=1)
    weights_path: str | None = None


class Mr2XrayRun(StrictModel):
    """One training run of the study: a network, a loss, the data and the training settings."""

    study: Literal["mr2xray"] = "mr2xray"
    network: str
    network_options: dict[str, Any] = Field(default_factory=dict)
    loss: Literal["perceptual", "l1"]
    perceptual: PerceptualSettings = PerceptualSettings()
    data: dict[str, Any] = Field(default_factory=dict)
    training: TrainingConfig = TrainingConfig(monitor="ssim", monitor_mode="max")

    def data_config(self) -> Mr2XrayConfig:
        """The data settings as a :class:`Mr2XrayConfig` (unknown keys are errors)."""
        return Mr2XrayConfig.from_mapping(self.data)


@functools.lru_cache(maxsize=2)
def study_splits(config: Mr2XrayConfig) -> Splits:
    """The data of a configuration, simulated (or read) once per process: the six runs of a study,
    their evaluation and the figure share it."""
    return mr2xray_splits(config)


def build_loss(run: Mr2XrayRun) -> tuple[torch.nn.Module, str]:
    """The run's loss module (called as ``loss(pred, target)``) and its one-line description."""
    if run.loss == "l1":
        return L1Loss(), "l1 loss (mean absolute error)"
    settings = run.perceptual
    network, default_layers = perception_network(settings.network, settings.weights_path)
    loss = PerceptualLoss(layers=settings.layers or default_layers, layer_weights="balance",
                          distance=settings.distance, include_pixel=settings.include_pixel, network=network,
                          balance_batches=settings.balance_batches)
    return loss, loss.description


def _metrics(pred: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
    pred = pred.clamp(0.0, 1.0)
    target = batch["target"]
    return {"mae": mae(pred, target), "ssim": ssim(pred, target, data_range=1.0),
            "psnr": psnr(pred, target, data_range=1.0), "hfen": hfen(pred, target)}


def build_task(run: Mr2XrayRun) -> tuple[SupervisedTask, str]:
    """The supervised task of a run and its loss description."""
    criterion, description = build_loss(run)
    task = SupervisedTask(lambda: create_network(run.network, **run.network_options), criterion, _metrics)
    return task, description


def run_name(network_label: str, loss: str) -> str:
    """Folder name of a run, e.g. ``crn-perceptual``."""
    return f"{network_label.lower()}-{loss}"


def train_run(run: Mr2XrayRun, run_dir: Path, fabric: Fabric | None = None) -> FitResult:
    """Train a run in ``run_dir`` (resuming, or returning at once when it has finished).

    Writes ``config.yaml``, the checkpoints and the logs.
    """
    write_run_config(run_dir, run)
    splits = study_splits(run.data_config())
    task, description = build_task(run)
    trainer = Trainer(task, run.training, run_dir, fabric)
    result = trainer.fit(splits.train, splits.val)
    if trainer.fabric.is_global_zero:
        write_run_info(run_dir, result, description)
    return result


def evaluate_run(run_dir: Path, split: str = "test", fabric: Fabric | None = None,
                 figure_cases: int = 3) -> Path:
    """Score a trained run's best checkpoint on a split.

    Writes ``evaluation/<split>.csv`` (per image: id, mae, ssim, psnr, hfen) and, for the test
    split, ``evaluation/cases.npz`` (predictions of the figure's cases).

    Returns:
        The CSV file.
    """
    run = validate_config(Mr2XrayRun, load_yaml(run_dir / CONFIG_FILE), str(run_dir / CONFIG_FILE))
    dataset = getattr(study_splits(run.data_config()), split)
    task, _ = build_task(run)
    trainer = Trainer(task, run.training, run_dir, fabric)
    trainer.load_weights("best")
    values = trainer.per_image(trainer.eval_loader(dataset))
    path = run_dir / EVALUATION_DIR / f"{split}.csv"
    if trainer.fabric.is_global_zero:
        ids = [dataset[int(i)]["id"] for i in values["index"]]
        write_per_image(path, ids, {m: values[m] for m in METRICS})
        if split == "test":
            task.set_training(False)
            cases = collect_predictions(lambda b: task.predict(trainer.fabric.to_device(b)).clamp(0, 1),
                                        dataset, figure_case_indices(len(dataset), figure_cases))
            save_npz(run_dir / EVALUATION_DIR / CASES_FILE, cases)
    return path


@dataclass(frozen=True)
class Mr2XrayPreset:
    """A scale of the study: data, training settings and the three networks' sizes.

    Attributes:
        name: "demo", "small" or "full".
        data: :class:`Mr2XrayConfig` settings.
        training: :class:`TrainingConfig` settings.
        networks: table label -> (registry name, constructor options).
        balance_batches: K of the perceptual loss's layer balancing.
        figure_cases: test images shown in the figure.
        notes: one line for the report.
    """

    name: str
    data: dict[str, Any]
    training: dict[str, Any]
    networks: dict[str, tuple[str, dict[str, Any]]]
    balance_batches: int = 10
    figure_cases: int = 3
    notes: str = ""


PRESETS: dict[str, Mr2XrayPreset] = {
    "demo": Mr2XrayPreset(
        name="demo",
        data={"subjects": 16, "angles": 8, "size": 64},
        training={"epochs": 30, "batch_size": 8, "optimizer": {"lr": 1e-3}},
        networks={"UNet": ("unet", {"widths": (16, 32, 64, 128, 256)}),
                  "ResNet": ("resnet", {"base_width": 16, "num_blocks": 6}),
                  "CRN": ("crn_64", {"channels": (64, 64, 64, 32, 16)})},
        notes="64 px, 16 subjects x 8 views, reduced widths; minutes on 2 CPU cores",
    ),
    "small": Mr2XrayPreset(
        name="small",
        data={"subjects": 30, "angles": 12, "size": 128},
        training={"epochs": 30, "batch_size": 8, "optimizer": {"lr": 5e-4}},
        networks={"UNet": ("unet", {"widths": (32, 64, 128, 256, 512)}),
                  "ResNet": ("resnet", {"base_width": 32}),
                  "CRN": ("crn_128", {"channels": (128, 128, 128, 64, 32, 16)})},
        notes="128 px, 30 subjects x 12 views; about an hour on CPU",
    ),
    "full": Mr2XrayPreset(
        name="full",
        data={"subjects": 100, "angles": 36, "size": 256},
        training={"epochs": 100, "batch_size": 4, "optimizer": {"lr": 1e-4}},
        networks={"UNet": ("unet", {}), "ResNet": ("resnet", {}), "CRN": ("crn_256", {})},
        notes="256 px, 100 subjects x 36 views, published widths, Adam 1e-4; for a GPU",
    ),
}


def preset_runs(preset: Mr2XrayPreset, data: dict[str, Any] | None = None,
                training: dict[str, Any] | None = None) -> dict[str, Mr2XrayRun]:
    """The six runs of a preset by folder name, in table order (losses outer, networks inner).

    Args:
        preset: the scale.
        data: overrides of the data settings (e.g. ``{"data": "/my/pairs"}``).
        training: overrides of the training settings (e.g. ``{"devices": 4}``).
    """
    training_settings = {"monitor": "ssim", "monitor_mode": "max", **preset.training, **(training or {})}
    runs = {}
    for loss in LOSSES:
        for label, (network, options) in preset.networks.items():
            runs[run_name(label, loss)] = Mr2XrayRun(
                network=network, network_options=options, loss=loss,
                perceptual=PerceptualSettings(balance_batches=preset.balance_batches),
                data={**preset.data, **(data or {})}, training=TrainingConfig(**training_settings))
    return runs


SOURCE_TABLE = """| Network - loss | MAE | SSIM | PSNR |
|---|---|---|---|
| UNet - p loss | 0.083 | 0.891 | 26.994 |
| ResNet - p loss | 0.077 | 0.924 | 27.675 |
| CRN - p loss | **0.071** | **0.931** | **28.353** |
| UNet - ℓ1 loss | 0.068 | 0.917 | 28.506 |
| ResNet - ℓ1 loss | **0.058** | **0.938** | **30.067** |
| CRN - ℓ1 loss | 0.084 | 0.92 | 27.097 |
"""
"""The source document's table (Stimpel et al.'s data), for comparison in the report."""

TABLE_COLUMNS = (Column("mae", "MAE", higher_is_better=False), Column("ssim", "SSIM", higher_is_better=True),
                 Column("psnr", "PSNR", higher_is_better=True, digits=2))


def run_study(preset: str | Mr2XrayPreset, out_dir: Path, data_dir: Path | None = None, devices: int = 1,
              accelerator: str = "auto") -> Path:
    """Train and score the six runs of a preset (finished runs are skipped), then render results.

    Args:
        preset: "demo", "small", "full", or a :class:`Mr2XrayPreset`.
        out_dir: the study folder (``OUT/mr2xray``).
        data_dir: the user's paired folder (``input/``, ``target/``) instead of the simulator.
        devices: devices (processes) per run; > 1 trains with DDP.
        accelerator: "auto", "cpu" or "cuda".

    Returns:
        The results folder.
    """
    preset = pick_preset(PRESETS, preset)
    data = {"data": str(data_dir)} if data_dir is not None else {}
    runs = preset_runs(preset, data, {"devices": devices, "accelerator": accelerator})
    fabric = make_fabric(next(iter(runs.values())).training)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    for name, run in runs.items():
        timings[name] = train_run(run, out_dir / "runs" / name, fabric).seconds_per_step
        evaluate_run(out_dir / "runs" / name, "test", fabric, preset.figure_cases)
    if fabric.is_global_zero:
        write_json(out_dir / "study.json", {
            "study": STUDY, "preset": preset.name, "notes": preset.notes, "data": runs[next(iter(runs))].data,
            "seconds": time.perf_counter() - started, "seconds_per_step": timings})
        render_results(out_dir)
    fabric.barrier()
    return out_dir / "results"


def _load_runs(out_dir: Path) -> dict[str, tuple[Mr2XrayRun, list[str], dict[str, np.ndarray]]]:
    runs = {}
    for run_dir in sorted((out_dir / "runs").iterdir()) if (out_dir / "runs").is_dir() else []:
        config = validate_config(Mr2XrayRun, load_yaml(run_dir / CONFIG_FILE), str(run_dir / CONFIG_FILE))
        ids, values = read_per_image(run_dir / EVALUATION_DIR / TEST_CSV)
        runs[run_dir.name] = (config, ids, values)
    if not runs:
        raise DataError(f"{out_dir} holds no evaluated mr2xray run; run `taskloss study mr2xray` first")
    return runs


def render_results(out_dir: Path) -> str:
    """Write the tables, p-values, per-image results and figure; return the report's section.

    Reads only what the runs saved (``config.yaml``, ``evaluation/``), so it can be re-run at any
    time (``taskloss report``).
    """
    results = out_dir / "results"
    study = json.loads((out_dir / "study.json").read_text()) if (out_dir / "study.json").is_file() else {}
    runs = _load_runs(out_dir)
    labels = {name: _row_label(name) for name in runs}
    ordered = sorted(runs, key=lambda n: (LOSSES.index(n.rsplit("-", 1)[1]), _network_order(n)))
    rows = [Row(labels[n], {m: summarize(runs[n][2][m]) for m in METRICS}, group=n.rsplit("-", 1)[1])
            for n in ordered]
    caption = "MAE, SSIM and PSNR (mean ± sd over test images); best per loss in bold."
    table = ResultTable(TABLE_COLUMNS, rows, caption, first_header="Network - loss")
    tests = _paired_tests(runs)
    write_table(results, table)
    write_text(results / "pvalues.md", _pvalue_markdown(tests))
    _write_per_image_long(results / "per_image.csv", runs)
    figure = _figure(out_dir, runs, ordered, labels)
    return _section(study, table, tests, runs, figure, out_dir)


def _row_label(run_name_: str) -> str:
    network, loss = run_name_.rsplit("-", 1)
    display = {"unet": "UNet", "resnet": "ResNet", "crn": "CRN"}.get(network, network)
    return f"{display} - {LOSS_LABELS.get(loss, loss)}"


NETWORK_ORDER = ("unet", "resnet", "crn")


def _network_order(name: str) -> int:
    network = name.rsplit("-", 1)[0]
    return NETWORK_ORDER.index(network) if network in NETWORK_ORDER else len(NETWORK_ORDER)


def _paired_tests(runs: dict[str, Any]) -> dict[str, dict[str, PairedTest]]:
    """Per network: Wilcoxon of perceptual vs l1 for every metric, on the same test images."""
    tests: dict[str, dict[str, PairedTest]] = {}
    for name in runs:
        network, loss = name.rsplit("-", 1)
        other = f"{network}-l1"
        if loss != "perceptual" or other not in runs:
            continue
        _, ids_p, values_p = runs[name]
        _, ids_l, values_l = runs[other]
        if ids_p != ids_l:
            raise DataError(f"runs {name} and {other} were scored on different test images; re-run them "
                            "with the same data settings")
        tests[network] = {m: paired_wilcoxon(values_p[m], values_l[m]) for m in METRICS}
    return tests


def _pvalue_markdown(tests: dict[str, dict[str, PairedTest]]) -> str:
    header = "| Network | " + " | ".join(f"{m.upper()} p loss - ℓ1 (p)" for m in METRICS) + " |"
    lines = [header, "|" + "---|" * (len(METRICS) + 1)]
    for network, by_metric in tests.items():
        cells = [f"{t.median_difference:+.4g} ({format_p(t.p_value)})" for t in by_metric.values()]
        lines.append(f"| {_row_label(network + '-x').split(' - ')[0]} | " + " | ".join(cells) + " |")
    lines += ["", "*Median per-image difference (perceptual minus ℓ1) and the two-sided paired Wilcoxon "
              "p-value; HFEN lower is better (less high-frequency error).*"]
    return "\n".join(lines) + "\n"


def _write_per_image_long(path: Path, runs: dict[str, Any]) -> None:
    ids, values, names = [], {m: [] for m in METRICS}, []
    for name, (_, run_ids, run_values) in runs.items():
        ids += [f"{name}/{i}" for i in run_ids]
        names += [name] * len(run_ids)
        for metric in METRICS:
            values[metric].extend(run_values[metric])
    write_per_image(path, ids, {m: np.asarray(v) for m, v in values.items()})


def _figure(out_dir: Path, runs: dict[str, Any], ordered: list[str], labels: dict[str, str]) -> Path | None:
    cases_by_run = {n: np.load(out_dir / "runs" / n / EVALUATION_DIR / CASES_FILE) for n in ordered
                    if (out_dir / "runs" / n / EVALUATION_DIR / CASES_FILE).is_file()}
    if len(cases_by_run) != len(ordered):
        return None
    first = cases_by_run[ordered[0]]
    config = runs[ordered[0]][0]
    splits = study_splits(config.data_config())
    test_items = {splits.test[i]["id"]: splits.test[i] for i in range(len(splits.test))}
    cases = []
    for k, case_id in enumerate(first["ids"]):
        item = test_items[str(case_id)]
        target = item["target"][0].numpy()
        outputs = {labels[n]: cases_by_run[n]["pred"][k, 0] for n in ordered}
        cases.append(Case(str(case_id), item["input"][0].numpy(), outputs, target,
                          detail_crop(target, max(16, target.shape[0] // 4)), display_range=(0.0, 1.0)))
    return comparison_figure(out_dir / "results" / "figure.png", cases, input_label="MR projection",
                             target_label="X-ray (target)",
                             title="MR -> X-ray projection synthesis, test images")


def _section(study: dict[str, Any], table: ResultTable, tests: dict[str, dict[str, PairedTest]],
             runs: dict[str, Any], figure: Path | None, out_dir: Path) -> str:
    info = {name: read_run_info(out_dir / "runs" / name) for name in runs}
    lines = ["## MR → X-ray projection synthesis (mr2xray)", ""]
    if study:
        lines.append(f"Preset `{study['preset']}` ({study['notes']}); wall time of the study "
                     f"{study['seconds'] / 60:.1f} min.")
    losses = sorted({i["loss"] for i in info.values() if i})
    lines += [f"Losses: {'; '.join(losses)}." if losses else "", "", table.markdown(),
              "Paired tests, perceptual vs ℓ1 per network (HFEN: high-frequency error, lower is better):", "",
              _pvalue_markdown(tests), ""]
    if figure is not None:
        lines += [f"![mr2xray test images](mr2xray/results/{figure.name})", ""]
    lines += ["| Run | seconds per training step | steps | best epoch |", "|---|---|---|---|"]
    lines += [f"| {_row_label(n)} | {i['seconds_per_step']:.3f} | {i['steps']} | {i['best_epoch']} |"
              for n, i in info.items() if i]
    lines += ["", "For comparison, the source document's table (Stimpel et al. 2017, on their data):", "",
              SOURCE_TABLE]
    return "\n".join(lines)



def train_config(data: dict[str, Any], run_dir: Path, source: str) -> FitResult:
    """Train one run from a configuration mapping (``taskloss train``)."""
    return train_run(validate_config(Mr2XrayRun, data, source), run_dir)
