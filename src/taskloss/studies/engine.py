"""The study engine: a study file (:mod:`taskloss.studies.spec`) trained, scored and reported.

The data of ``task: paired`` (:mod:`taskloss.studies.paired`) and ``task: csmri``
(:mod:`taskloss.studies.kspace_pairs`) are both image pairs; everything below is shared.

``taskloss study run STUDY.yaml`` calls :func:`run_file_study`:

1. **runs**: every network x loss of the file is one run, ``OUT/<name>/runs/<network>-<loss>/``,
   whose ``config.yaml`` records what the run depends on (data, network, loss, training; not the
   hardware). A run that has finished is skipped; one whose folder holds other settings is
   refused, naming the keys that differ (adding a loss or a network to the file only adds runs).
2. **task loss network** (when a loss has ``task: {network: segmentation}``): a segmentation
   network trained on the targets first, ``OUT/<name>/task_network/``, seed ``training.seed + 1``.
3. **training** (the Fabric :class:`~taskloss.training.Trainer`: resumable, seeded): one run after
   the other, ``jobs`` at a time in local processes (CPU threads split between them), or one
   job per run with submitit (``launcher="slurm"``).
4. **scoring network** (when the data folder has ``labels/``): a segmentation network trained on
   the targets (``OUT/<name>/segmentation/``, seed ``training.seed``) or loaded from
   ``segmentation.weights``.
5. **evaluation** of each run's best checkpoint on the test split: per image MAE, PSNR, SSIM,
   HFEN, NMSE (predictions clipped to [0, 1] when the data is normalised; data_range 1, the
   target's scale, or each target's max - min with ``normalize: none``), and the scoring
   network's foreground Dice on the prediction; ``runs/<run>/evaluation/test.csv`` and the
   predictions. With ``task: csmri`` the zero-filled inputs are scored the same way
   (``zero_filled/evaluation/test.csv``), the table's reference row.
6. **report** (:mod:`taskloss.studies.file_report`).

Best checkpoints are picked by the validation mean of ``training.monitor`` (default the first
metric); runs with an adversarial term keep their last epoch.
"""

import concurrent.futures
import math
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from lightning.fabric import Fabric
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader

from taskloss.config import StrictModel
from taskloss.data.kspace import undersample
from taskloss.data.signals import cut_rois, insert_signals
from taskloss.errors import ConfigError, DataError
from taskloss.losses import AdversarialLoss, CompositeLoss, CrossEntropyLoss, load_task_network
from taskloss.metrics import DataRange, dice, haarpsi, hfen, mae, ms_ssim, nmse, psnr, ssim, vsi
from taskloss.metrics.comparisons import read_long_table
from taskloss.networks import create_network
from taskloss.studies.base import Study, StudyRequest
from taskloss.studies.common import (
    save_npz,
    validate_config,
    write_json,
    write_per_image,
    write_run_config,
    write_run_info,
)
from taskloss.studies.detection import DETECTION_FILE, GROUND_TRUTH, calibrate, head_masks, score_methods_rois
from taskloss.studies.file_report import file_plans, render_file_study
from taskloss.studies.kspace_pairs import slice_mask
from taskloss.studies.layout import (
    CHECKPOINT_DIR,
    EVALUATION_DIR,
    PREDICTIONS_FILE,
    RESULTS_DIR,
    RUN_CONFIG_FILE,
    RUNS_DIR,
    SCORER_DIR,
    SEEDS_DIR,
    STUDY_FILE,
    STUDY_RECORD,
    TASK_NETWORK_DIR,
    TEST_CSV,
    ZERO_FILLED_DIR,
)
from taskloss.studies.paired import paired_data, paired_splits
from taskloss.studies.report_kit import ALPHA, mde_markdown, plan_mdes
from taskloss.studies.seeds import is_seeded, replicate_dir, run_seeds, seed_offset
from taskloss.studies.spec import (
    FILE_STUDY,
    TASKS,
    AnyDataSpec,
    DataSpec,
    FileRun,
    KspaceDataSpec,
    SegmentationSpec,
    StudySpec,
    build_runs,
    extra_metrics,
    load_study,
)
from taskloss.studies.terms import build_loss, describe_loss, term_values
from taskloss.training import FitResult, SupervisedTask, Trainer, TrainingConfig, make_fabric
from taskloss.training.adversarial import AdversarialTask, Generated
from taskloss.training.checkpoint import atomic_write, read_checkpoint
from taskloss.training.config import OptimizerConfig, load_yaml
from taskloss.training.task import Batch, TrainingTask

LAUNCHERS: dict[str, str | None] = {"local": None, "slurm": "slurm", "submitit-local": "local",
                                    "submitit-debug": "debug"}
"""``--launcher`` -> submitit cluster: "local" trains on this machine without submitit; "slurm" submits
SLURM jobs; "submitit-local" and "submitit-debug" run the same submitit path without a cluster (in
subprocesses, or in this process), to try it."""


class SegmentationRun(StrictModel):
    """The task metric's segmentation network, trained on the targets (``segmentation/config.yaml``)."""

    study: Literal["file"] = FILE_STUDY
    task: Literal["segmentation"] = "segmentation"
    data: DataSpec
    network: str
    options: dict[str, Any] = Field(default_factory=dict)
    classes: int = Field(ge=2)
    training: TrainingConfig


def data_range(data: AnyDataSpec) -> DataRange:
    """The data_range of PSNR, SSIM and the SSIM loss: 1 for normalised data (targets span [0, 1]),
    each target's max - min otherwise."""
    return 1.0 if data.normalize != "none" else "target_range"


def output_image(pred: torch.Tensor, data: AnyDataSpec) -> torch.Tensor:
    """What is scored: the prediction, clipped to [0, 1] for normalised data."""
    return pred.clamp(0.0, 1.0) if data.normalize != "none" else pred


def image_metrics(data: AnyDataSpec, test: bool = False) -> Callable[[torch.Tensor, Batch], dict[str, torch.Tensor]]:
    """Per-image MAE, PSNR, SSIM, HFEN and NMSE of a prediction against the batch's target, and with
    ``test`` the :data:`~taskloss.studies.spec.EXTRA_METRICS` that the data allow (HaarPSI, VSI, MS-SSIM;
    :func:`~taskloss.studies.spec.extra_metrics`), each (B,)."""
    scale = data_range(data)
    extra = extra_metrics(data.size, data.normalize) if test else ()
    more = {"haarpsi": haarpsi, "vsi": vsi, "ms_ssim": ms_ssim}

    def metrics(pred: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        pred, target = output_image(pred, data), batch["target"]
        scores = {"mae": mae(pred, target), "psnr": psnr(pred, target, data_range=scale),
                  "ssim": ssim(pred, target, data_range=scale), "hfen": hfen(pred, target),
                  "nmse": nmse(pred, target)}
        return {**scores, **{name: more[name](pred, target, data_range=scale) for name in extra}}

    return metrics


class PairedTask(SupervisedTask):
    """A network trained on a study loss: ``criterion`` is the loss's :class:`CompositeLoss`, its
    terms computed from the prediction and the whole batch (the penalty needs the input); each
    weighted term is logged beside the total."""

    def training_step(self, batch: Batch, fabric: Fabric) -> dict[str, torch.Tensor]:
        """Forward, loss terms, backward, (clip), Adam step."""
        self.optimizer.zero_grad(set_to_none=True)
        pred = self.forward(self.model, batch)
        assert isinstance(self.criterion, CompositeLoss)
        output = self.criterion(term_values(self.criterion, pred, batch))
        fabric.backward(output.total)
        if self.grad_clip is not None:
            fabric.clip_gradients(self.model, self.optimizer, max_norm=self.grad_clip)
        self.optimizer.step()
        return {"loss": output.total.detach(), **output.weighted}


def build_task(run: FileRun, run_dir: Path, task_network: nn.Module | None = None
               ) -> tuple[TrainingTask, str]:
    """The training task of a run (adversarial when its loss has an adversarial term) and its loss
    description.

    Args:
        run: the run's configuration.
        run_dir: its folder, ``OUT/<name>/runs/<run>`` (the task term's network is found from it).
        task_network: the task term's network; default :func:`task_network_of` the run.
    """
    if task_network is None and run.loss.task is not None:
        task_network = task_network_of(run, run_dir)
    loss = build_loss(run.loss, data_range(run.data), task_network)
    metrics = image_metrics(run.data)
    description = describe_loss(run.loss)

    def network() -> nn.Module:
        return create_network(run.network.name, **run.network.options)

    adversarial = run.loss.adversarial
    if adversarial is None:
        return PairedTask(network, loss, metrics), description
    discriminator = adversarial.discriminator

    def generate(model: nn.Module, batch: Batch) -> Generated:
        return Generated(model(batch["input"]), {})

    def terms(generated: Generated, d_fake: Any, d_real: Any, batch: Batch) -> dict[str, torch.Tensor]:
        return term_values(loss, generated.image, batch, d_fake, d_real)

    task = AdversarialTask(network, lambda: create_network(discriminator.name, **discriminator.options),
                           generate, lambda image: image, lambda batch: batch["target"], terms, loss,
                           AdversarialLoss(adversarial.criterion, real_label=adversarial.real_label), metrics,
                           discriminator.optimizer, pool_size=adversarial.pool_size)
    return task, description + f" (discriminator {discriminator.name})"


def _hardware(config: TrainingConfig, devices: int, accelerator: str, progress: bool) -> TrainingConfig:
    return config.model_copy(update={"devices": devices, "accelerator": accelerator, "progress": progress})


def train_file_run(run: FileRun, run_dir: Path, devices: int = 1, accelerator: str = "auto",
                   progress: bool = True, fabric: Fabric | None = None) -> FitResult:
    """Train one run in ``run_dir`` (resuming; at once when finished); record ``evaluation/run.json``.

    ``config.yaml`` holds the run without its hardware (devices, accelerator): a run may resume on
    other hardware.
    """
    splits = paired_splits(run.data)  # the data checked before the run folder is written
    write_run_config(run_dir, run.model_copy(update={"training": _hardware(run.training, 1, "auto", True)}))
    task, description = build_task(run, run_dir)
    trainer = Trainer(task, _hardware(run.training, devices, accelerator, progress), run_dir, fabric)
    result = trainer.fit(splits.train, splits.val)
    if trainer.fabric.is_global_zero:
        write_run_info(run_dir, result, description)
    return result


def load_file_run(run_dir: Path) -> FileRun:
    """The configuration of a run folder."""
    return validate_config(FileRun, load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))


# -- the task network (SIS) ------------------------------------------------------------------------


def _foreground_dice(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Dice of the foreground (every label > 0) per image; NaN where neither has foreground."""
    return dice(logits.argmax(dim=1, keepdim=True) > 0, labels > 0)


def _segmentation_task(run: SegmentationRun) -> SupervisedTask:
    def metrics(logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        return {"dice": torch.nan_to_num(_foreground_dice(logits, batch["label"]), nan=1.0)}

    return SupervisedTask(lambda: _segmentation_network(run), CrossEntropyLoss(), metrics,
                          forward=lambda model, batch: model(batch["target"]), target_key="label")


def segmentation_run(spec: StudySpec, seed_offset: int = 0) -> SegmentationRun | None:
    """The segmentation run of a study whose data has labels (None without labels), seeded with
    ``training.seed + seed_offset``."""
    data = paired_splits(spec.data).train.data  # type: ignore[attr-defined]
    if data.labels is None:
        return None
    settings: SegmentationSpec = spec.segmentation
    training = TrainingConfig(epochs=settings.epochs, batch_size=spec.training.batch_size,
                              seed=spec.training.seed + seed_offset, monitor="dice", monitor_mode="max",
                              optimizer=OptimizerConfig(lr=settings.lr))
    return SegmentationRun(data=spec.data, network=settings.network, options=settings.options,
                           classes=max(2, int(data.labels.max()) + 1), training=training)


def _segmentation_network(run: SegmentationRun) -> nn.Module:
    return create_network(run.network, **{"num_classes": run.classes, **run.options})


def train_segmentation(run: SegmentationRun, run_dir: Path, devices: int = 1, accelerator: str = "auto"
                       ) -> SupervisedTask:
    """Train (or resume, or skip when finished) a segmentation run on the targets; the task with its best
    weights, in evaluation mode."""
    task = _segmentation_task(run)
    splits = paired_splits(run.data)
    write_run_config(run_dir, run)
    trainer = Trainer(task, _hardware(run.training, devices, accelerator, True), run_dir)
    trainer.fit(splits.train, splits.val)
    trainer.load_weights("best")
    task.set_training(False)
    return task


def train_task_network(spec: StudySpec, out_dir: Path, devices: int = 1, accelerator: str = "auto") -> None:
    """Train the task loss's network (``OUT/<name>/task_network``, seed ``training.seed + 1``) when a
    loss asks for it."""
    if not any(loss.trains_task_network for loss in spec.losses.values()):
        return
    run = segmentation_run(spec, seed_offset=1)
    if run is None:
        raise DataError(f"a task term with network 'segmentation' trains its network on {spec.data.path / 'labels'}, "
                        "which does not exist; add labels/ or give the task term a TorchScript network file")
    train_segmentation(run, out_dir / TASK_NETWORK_DIR, devices, accelerator)


def task_network_of(run: FileRun, run_dir: Path) -> nn.Module:
    """The frozen network of a run's task term: the study's trained task network
    (``OUT/<name>/task_network``, best checkpoint) or the TorchScript file the term names."""
    term = run.loss.task
    assert term is not None
    if term.network != "segmentation":
        return load_task_network(term.network)
    folder = run_dir.parent.parent / TASK_NETWORK_DIR
    config = validate_config(SegmentationRun, load_yaml(folder / RUN_CONFIG_FILE), str(folder / RUN_CONFIG_FILE))
    network = _segmentation_network(config)
    _load_state(network, folder / CHECKPOINT_DIR / "best.ckpt")
    return network.eval()


def segmenter(spec: StudySpec, out_dir: Path, devices: int = 1, accelerator: str = "auto"
              ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The scoring network as ``images (B, 1, H, W) -> logits``: trained on the targets in
    ``out_dir/segmentation`` (resumed, skipped when finished), or loaded from
    ``segmentation.weights``; None when the data has no labels."""
    run = segmentation_run(spec)
    if run is None:
        return None
    if spec.segmentation.weights is None:
        model = train_segmentation(run, out_dir / SCORER_DIR, devices, accelerator).model
    else:
        model = _segmentation_network(run)
        _load_state(model, spec.segmentation.weights)
        model.eval()
    device = next(model.parameters()).device

    def segment(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(images.to(device))

    return segment


def _load_state(model: nn.Module, path: Path) -> None:
    """Load a segmentation network from the ``best.ckpt`` of a run or a plain state dict file."""
    payload = read_checkpoint(Path(path))
    state = payload["task"]["model"] if "task" in payload else payload
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        raise ConfigError(f"segmentation.weights {path} does not fit the network {type(model).__name__} "
                          f"({type(error).__name__}); give the best.ckpt of a segmentation run with the same "
                          "network and options") from None


# -- evaluation ------------------------------------------------------------------------------------


def evaluate_file_run(run_dir: Path, split: str = "test",
                      segment: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Path:
    """Score a run's best checkpoint on ``split`` image by image.

    Writes ``evaluation/<split>.csv`` (id and every metric of :func:`image_metrics` with ``test``, plus ``dice``
    and ``roi`` (1 where the label has foreground) with a task network) and, for the test split,
    ``evaluation/test_predictions.npz`` (``ids``, ``pred`` (N, H, W) float32 as scored).

    Returns:
        The CSV file.
    """
    run = load_file_run(run_dir)
    dataset = getattr(paired_splits(run.data), split)
    task, _ = build_task(run, run_dir)
    trainer = Trainer(task, _hardware(run.training, 1, "auto", False), run_dir)
    trainer.load_weights("best")
    task.set_training(False)
    metrics = image_metrics(run.data, test=True)
    ids: list[str] = []
    values: dict[str, list[float]] = {}
    predictions = []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=run.training.batch_size, shuffle=False):
            batch = trainer.fabric.to_device(batch)
            pred = output_image(task.predict(batch).float(), run.data)  # type: ignore[attr-defined]
            scores = metrics(pred, batch)
            if segment is not None:
                scores["dice"] = _foreground_dice(segment(pred), batch["label"])
                scores["roi"] = (batch["label"] > 0).flatten(1).any(dim=1).float()
            for name, value in scores.items():
                values.setdefault(name, []).extend(value.cpu().tolist())
            ids.extend(batch["id"])
            predictions.append(pred[:, 0].cpu().numpy())
    path = run_dir / EVALUATION_DIR / f"{split}.csv"
    write_per_image(path, ids, {k: np.asarray(v) for k, v in values.items()})
    if split == "test":
        save_npz(run_dir / EVALUATION_DIR / PREDICTIONS_FILE, {"ids": np.array(ids),
                                                           "pred": np.concatenate(predictions).astype(np.float32)})
    return path


def evaluate_targets(spec: StudySpec, out_dir: Path, segment: Callable[[torch.Tensor], torch.Tensor]) -> Path:
    """The task network's Dice on the test targets (the denominator of SIS):
    ``segmentation/evaluation/test.csv`` (id, dice, roi)."""
    dataset = paired_splits(spec.data).test
    ids: list[str] = []
    values: dict[str, list[float]] = {"dice": [], "roi": []}
    for batch in DataLoader(dataset, batch_size=spec.training.batch_size, shuffle=False):
        values["dice"] += _foreground_dice(segment(batch["target"]), batch["label"]).cpu().tolist()
        values["roi"] += (batch["label"] > 0).flatten(1).any(dim=1).float().tolist()
        ids.extend(batch["id"])
    path = out_dir / SCORER_DIR / EVALUATION_DIR / TEST_CSV
    write_per_image(path, ids, {k: np.asarray(v) for k, v in values.items()})
    return path


def evaluate_inputs(spec: StudySpec, out_dir: Path) -> Path:
    """Score the test inputs as if they were outputs (``task: csmri``: the zero-filled reference, the
    field's baseline): ``zero_filled/evaluation/test.csv`` with every metric of :func:`image_metrics`,
    clipped and scaled as the runs' outputs are."""
    metrics = image_metrics(spec.data, test=True)
    ids: list[str] = []
    values: dict[str, list[float]] = {}
    for batch in DataLoader(paired_splits(spec.data).test, batch_size=spec.training.batch_size, shuffle=False):
        for name, value in metrics(batch["input"], batch).items():
            values.setdefault(name, []).extend(value.tolist())
        ids.extend(batch["id"])
    path = out_dir / ZERO_FILLED_DIR / EVALUATION_DIR / TEST_CSV
    write_per_image(path, ids, {k: np.asarray(v) for k, v in values.items()})
    return path


# -- the detection task ----------------------------------------------------------------------------

MIN_DETECTION_IMAGES = {"val": 8, "test": 4}
"""Fewest images per split for ``detection:``: the calibration puts the signal in half of the validation
images (:func:`taskloss.data.signals.calibrate_contrast` needs 8), and each test class needs 2."""


def check_detection_data(spec: StudySpec) -> None:
    """Refuse, before anything is trained, ``detection:`` on splits too small for it.

    Raises:
        DataError: naming the split, its size and the fix.
    """
    if spec.detection is None:
        return
    splits = paired_splits(spec.data)
    for split, fewest in MIN_DETECTION_IMAGES.items():
        found = len(getattr(splits, split))
        if found < fewest:
            raise DataError(f"detection: the {split} split holds {found} images, fewer than the {fewest} the "
                            "detection task needs; add data, change data.split, or leave detection out")


def detection_images(spec: StudySpec, contrast: float) -> tuple[dict[str, torch.Tensor], np.ndarray, np.ndarray,
                                                                list[str]]:
    """The test split with the disc of ``contrast`` inserted into the even positions' images.

    ``task: paired``: the disc is added to the input and the target at the same place (exact when the
    input is the target plus noise, an approximation for other degradations); ``task: csmri``: to the
    fully sampled complex image, which is acquired again with the slice's own mask (undersampling is
    linear, so the odd positions stay the data set's pairs exactly).

    Returns:
        ``{"input", "target", "signal"}`` (N, 1, S, S) float32 (the signal: the real disc added, 0 at odd
        positions), the signal centres (N, 2), which images have the signal (N,) bool, and the ids.
    """
    settings = spec.detection
    assert settings is not None
    data, test = paired_data(spec.data), paired_splits(spec.data).test
    rows = [data.ids.index(test[i]["id"]) for i in range(len(test))]
    targets = data.targets[rows].double()[:, 0].numpy()
    inserted = insert_signals(targets, settings.signal(contrast), (settings.roi, settings.roi), seed=settings.seed,
                              mask=head_masks(targets))
    present = np.arange(len(rows)) % 2 == 0
    signals = torch.from_numpy((inserted.present - inserted.absent) * present[:, None, None]).float()[:, None]
    inputs, new_targets = data.inputs[rows].clone(), data.targets[rows] + signals
    if data.references is not None and isinstance(spec.data, KspaceDataSpec):
        image = data.references[rows] + signals.to(torch.complex64)
        masks = torch.stack([slice_mask(spec.data, data.ids[r]) for r in rows])
        zero_filled = undersample(image, masks)[0].abs().float()
        inputs[present], new_targets[present] = zero_filled[present], image.abs().float()[present]
    else:
        inputs = inputs + signals
    images = {"input": inputs, "target": new_targets, "signal": signals}
    return images, inserted.locations, present, [data.ids[r] for r in rows]


def score_file_detection(spec: StudySpec, out_dir: Path, names: Sequence[str]) -> Path:
    """The detection task of a study file (docs/observers.md, "Detection in study files"): the disc's
    contrast calibrated on the validation targets (:func:`taskloss.studies.detection.calibrate`), the test
    images with and without it (:func:`detection_images`) through every run's best checkpoint, scored by
    the CHO and NPW with the targets (and, for ``task: csmri``, the zero-filled inputs) as references;
    writes ``results/detection.json``."""
    settings = spec.detection
    assert settings is not None
    splits = paired_splits(spec.data)
    validation = np.stack([splits.val[i]["target"][0].double().numpy() for i in range(len(splits.val))])
    contrast = calibrate(settings, validation)
    images, locations, present, ids = detection_images(spec, contrast)
    outputs = {GROUND_TRUTH: images["target"]}
    if spec.task == "csmri":
        outputs["zero_filled"] = images["input"].clamp(0, 1)
    for name in names:
        outputs[name] = _predict_images(out_dir / RUNS_DIR / name, images["input"])
    cut = {name: cut_rois(output[:, 0].double().numpy(), locations, (settings.roi, settings.roi))
           for name, output in outputs.items()}
    scores, unscored = score_methods_rois({name: (rois[present], rois[~present]) for name, rois in cut.items()},
                                          settings, settings.seed)
    record = {"settings": settings.model_dump(), "contrast": contrast, "signal": "disc",
              "n_present": int(present.sum()), "n_absent": int((~present).sum()),
              "ids_present": [i for i, p in zip(ids, present, strict=True) if p],
              "ids_absent": [i for i, p in zip(ids, present, strict=True) if not p],
              "methods": scores, "unscored": unscored}
    path = out_dir / RESULTS_DIR / DETECTION_FILE
    write_json(path, record)
    return path


def _predict_images(run_dir: Path, inputs: torch.Tensor) -> torch.Tensor:
    """A run's best checkpoint on ``inputs`` (N, 1, S, S): its output images as scored (N, 1, S, S), CPU."""
    run = load_file_run(run_dir)
    task, _ = build_task(run, run_dir)
    trainer = Trainer(task, _hardware(run.training, 1, "auto", False), run_dir)
    trainer.load_weights("best")
    task.set_training(False)
    predict = task.predict  # type: ignore[attr-defined]
    with torch.no_grad():
        return torch.cat([output_image(predict(trainer.fabric.to_device({"input": part})).float(), run.data).cpu()
                          for part in inputs.split(run.training.batch_size)])


# -- running many runs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunJob:
    """One run to train: everything a worker process (local or SLURM) needs, picklable."""

    name: str
    config: dict[str, Any]
    run_dir: str
    devices: int
    accelerator: str
    threads: int | None
    progress: bool


def train_job(job: RunJob) -> float:
    """Train one run (in this or a worker process); returns its seconds per step (NaN if skipped)."""
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    run = validate_config(FileRun, job.config, f"run {job.name}")
    return train_file_run(run, Path(job.run_dir), job.devices, job.accelerator, job.progress).seconds_per_step


def _jobs(runs: Mapping[str, FileRun], out_dir: Path, devices: int, accelerator: str, threads: int | None,
          progress: bool, run_dirs: Mapping[str, Path] | None = None) -> list[RunJob]:
    folders = run_dirs or {name: out_dir / RUNS_DIR / name for name in runs}
    return [RunJob(name, run.model_dump(mode="json"), str(folders[name]), devices, accelerator, threads,
                   progress) for name, run in runs.items()]


def _pin_device(devices: Any) -> None:
    """Pool worker start: take one GPU index from the queue and see only that GPU (None: CPU)."""
    index = devices.get()
    if index is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)


def train_local(runs: Mapping[str, FileRun], out_dir: Path, jobs: int = 1, devices: int = 1,
                accelerator: str = "auto", run_dirs: Mapping[str, Path] | None = None) -> dict[str, float]:
    """Train runs on this machine, ``jobs`` at a time.

    With ``jobs > 1`` each run trains in a worker process (spawned: a fresh interpreter, as CUDA and
    OpenMP need) with ``cores // jobs`` CPU threads, so the processes do not oversubscribe the
    cores; on a machine with GPUs worker k sees only GPU ``k mod count`` (``CUDA_VISIBLE_DEVICES``).
    Each run trains in ``out_dir/runs/<name>``, or in ``run_dirs[name]`` when given (the runs of
    several seed replicates in one pool).

    Returns:
        Seconds per training step of every run (NaN for runs that had finished).
    """
    if devices > 1:
        raise ConfigError(f"--devices {devices} trains each run with DDP, which the local launcher does not "
                          "start; use --launcher slurm, or train one run with `taskloss train "
                          f"{out_dir / 'runs' / '<run>' / RUN_CONFIG_FILE} training.devices={devices}`")
    if jobs == 1:
        return {job.name: train_job(job) for job in _jobs(runs, out_dir, devices, accelerator, None, True, run_dirs)}
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    gpus = torch.cuda.device_count() if accelerator != "cpu" else 0
    queue = context.Queue()
    for worker in range(jobs):
        queue.put(worker % gpus if gpus else None)
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_pin_device,
                                                initargs=(queue,)) as pool:
        futures = {job.name: pool.submit(train_job, job)
                   for job in _jobs(runs, out_dir, devices, accelerator, threads, False, run_dirs)}
        return {name: future.result() for name, future in futures.items()}


def train_submitit(runs: Mapping[str, FileRun], out_dir: Path, spec: StudySpec, devices: int = 1,
                   accelerator: str = "auto", cluster: str = "slurm") -> dict[str, float]:
    """Train each run as a job submitted with submitit and wait for all of them.

    Args:
        runs: the runs by name.
        out_dir: the study folder; submitit's logs go to ``out_dir/submitit``.
        spec: the study (its ``slurm`` settings).
        devices: GPUs (and tasks) per run: a job gets ``devices`` tasks on one node and the run
            trains with DDP across them (Lightning Fabric reads the SLURM environment).
        accelerator: "auto", "cpu" or "cuda".
        cluster: "slurm", or submitit's "local" (subprocesses) or "debug" (this process)
            executor, to try the path without a cluster.

    Returns:
        Seconds per training step of every run.
    """
    import submitit

    slurm = spec.slurm
    executor = submitit.AutoExecutor(folder=out_dir / "submitit", cluster=cluster)
    executor.update_parameters(timeout_min=slurm.timeout_min, tasks_per_node=devices, nodes=1,
                               cpus_per_task=slurm.cpus_per_task, mem_gb=slurm.mem_gb,
                               gpus_per_node=slurm.gpus_per_node if cluster == "slurm" else 0,
                               name=f"taskloss-{spec.name}")
    if cluster == "slurm":
        executor.update_parameters(slurm_partition=slurm.partition,
                                   slurm_additional_parameters=dict(slurm.additional))
    jobs = _jobs(runs, out_dir, devices, accelerator, None, False)
    with executor.batch():
        submitted = [executor.submit(train_job, job) for job in jobs]
    results = {}
    for job, handle in zip(jobs, submitted, strict=True):
        try:
            outcome = handle.result()
        except Exception as error:  # submitit re-raises the job's failure with its log
            raise DataError(f"run {job.name} failed in its {cluster} job ({type(error).__name__}: "
                            f"{str(error).splitlines()[-1] if str(error) else ''}); see {out_dir / 'submitit'}"
                            ) from None
        # A DDP job returns one value per task; rank 0's is the run's.
        results[job.name] = outcome[0] if isinstance(outcome, list) else outcome
    return results


def run_file_study(spec: StudySpec, out_dir: Path, devices: int = 1, accelerator: str = "auto", jobs: int = 1,
                   launcher: str = "local") -> Path:
    """Train, score and report a study (finished runs are skipped).

    Args:
        spec: the study.
        out_dir: its folder (``OUT/<name>``).
        devices: devices (processes) per run; > 1 trains each run with DDP.
        accelerator: "auto", "cpu" or "cuda".
        jobs: runs trained at once on this machine (``launcher="local"``).
        launcher: a key of :data:`LAUNCHERS`: "local" (this machine), "slurm" (one job per run,
            submitit), "submitit-local" or "submitit-debug" (the submitit path without a cluster).

    Returns:
        The results folder.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {launcher!r} is unknown; use one of {', '.join(LAUNCHERS)}")
    if spec.seeds is not None:
        return _run_file_seeds(spec, out_dir, devices, accelerator, jobs, launcher)
    started = time.perf_counter()
    runs = build_runs(spec)
    paired_splits(spec.data)  # read and check the data first: a data error stops the study before it writes
    check_detection_data(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STUDY_FILE).write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    train_task_network(spec, out_dir, devices, accelerator)
    cluster = LAUNCHERS[launcher]
    if cluster is None:
        step_times = train_local(runs, out_dir, jobs, devices, accelerator)
    else:
        step_times = train_submitit(runs, out_dir, spec, devices, accelerator, cluster)
    trained = time.perf_counter()
    segment = segmenter(spec, out_dir, devices, accelerator)
    if segment is not None:
        evaluate_targets(spec, out_dir, segment)
    for name in runs:
        evaluate_file_run(out_dir / RUNS_DIR / name, "test", segment)
    if spec.task == "csmri":
        evaluate_inputs(spec, out_dir)
    if spec.detection is not None:
        score_file_detection(spec, out_dir, list(runs))
    write_json(out_dir / STUDY_RECORD, {
        "study": spec.name, "jobs": jobs, "launcher": launcher, "devices": devices,
        "seconds": time.perf_counter() - started, "seconds_training": trained - started,
        "seconds_per_step": {k: (v if math.isfinite(v) else None) for k, v in step_times.items()}})
    render_file_study(out_dir)
    return out_dir / RESULTS_DIR


def replicate_spec(spec: StudySpec, offset: int) -> StudySpec:
    """One replicate of a study with ``seeds``: the study without ``seeds``, its training seed (and so
    every run's, the task network's and the scorer's) + ``offset``."""
    training = spec.training.model_copy(update={"seed": spec.training.seed + offset})
    return spec.model_copy(update={"seeds": None, "training": training})


def _run_file_seeds(spec: StudySpec, out_dir: Path, devices: int, accelerator: str, jobs: int, launcher: str
                    ) -> Path:
    """Every seed's replicate in ``out_dir/seeds/<seed>/`` (:mod:`taskloss.studies.seeds`), then the
    report over the seeds; the study file as run is kept in ``out_dir`` (``taskloss report`` finds it)."""
    paired_splits(spec.data)  # a data error stops the study before it writes
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STUDY_FILE).write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    assert spec.seeds is not None
    if jobs > 1 and LAUNCHERS[launcher] is None:
        _train_replicates(spec, out_dir, devices, accelerator, jobs)
    return run_seeds(out_dir, spec.seeds, lambda folder, offset: run_file_study(
        replicate_spec(spec, offset), folder, devices, accelerator, jobs, launcher), render_file_study)


def _train_replicates(spec: StudySpec, out_dir: Path, devices: int, accelerator: str, jobs: int) -> None:
    """With ``--jobs``, the runs of every seed's replicate in one pool of ``jobs`` workers (each replicate's
    task network first, in this process): the replicates then find their runs finished and score them."""
    assert spec.seeds is not None
    runs: dict[str, FileRun] = {}
    folders: dict[str, Path] = {}
    for seed in spec.seeds:
        replicate, folder = replicate_spec(spec, seed_offset(seed)), replicate_dir(out_dir, seed)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STUDY_FILE).write_text(yaml.safe_dump(replicate.model_dump(mode="json"), sort_keys=False))
        train_task_network(replicate, folder, devices, accelerator)
        for name, run in build_runs(replicate).items():
            runs[f"{SEEDS_DIR}/{seed}/{name}"], folders[f"{SEEDS_DIR}/{seed}/{name}"] = run, folder / RUNS_DIR / name
    train_local(runs, out_dir, jobs, devices, accelerator, run_dirs=folders)


# -- plan ------------------------------------------------------------------------------------------


CHECKPOINTS_PER_EPOCH = 2
"""Checkpoint writes per epoch in the plan's estimate: ``last.ckpt`` every epoch and ``best.ckpt``
when the monitored metric improves (every epoch at most, so an upper bound)."""
VALIDATION_BATCHES = 2
"""Validation batches timed per run by :func:`measure_run`."""


@dataclass(frozen=True)
class RunTimes:
    """Measured costs of one run, in seconds.

    Attributes:
        step: one training step (the median of a few real steps, after a warm-up step).
        val_batch: one validation batch (the median of up to :data:`VALIDATION_BATCHES`).
        checkpoint: writing one checkpoint of the run's state (models, optimisers), measured once.
    """

    step: float
    val_batch: float
    checkpoint: float


@dataclass(frozen=True)
class PlannedRun:
    """A run of a study before training, and its time estimate.

    Attributes:
        name: the run's folder name.
        parameters: trainable parameters of its network (and discriminator).
        steps: optimiser steps it will take (``ceil(train images / batch) * epochs``).
        val_batches: validation batches over the run (``ceil(val images / batch) * epochs``).
        checkpoints: checkpoint writes over the run (:data:`CHECKPOINTS_PER_EPOCH` per epoch, plus
            one every ``checkpoint_every_steps`` steps when set).
        times: the measured costs on this machine.
        finished: whether its folder holds a finished run (it will be skipped).
    """

    name: str
    parameters: int
    steps: int
    val_batches: int
    checkpoints: int
    times: RunTimes
    finished: bool

    @property
    def seconds_per_step(self) -> float:
        """Measured seconds of one training step."""
        return self.times.step

    @property
    def training_seconds(self) -> float:
        """``steps * times.step``."""
        return self.steps * self.times.step

    @property
    def validation_seconds(self) -> float:
        """``val_batches * times.val_batch``."""
        return self.val_batches * self.times.val_batch

    @property
    def checkpoint_seconds(self) -> float:
        """``checkpoints * times.checkpoint``."""
        return self.checkpoints * self.times.checkpoint

    @property
    def seconds(self) -> float:
        """The estimate: training steps + validation passes + checkpoint writes."""
        return self.training_seconds + self.validation_seconds + self.checkpoint_seconds


def _median_seconds(action: Callable[[Any], Any], batches: Sequence[Any], warm_up: int) -> float:
    """Median seconds of ``action(batch)`` over ``batches[warm_up:]`` (the first ``warm_up`` untimed)."""
    times = []
    for batch in batches:
        start = time.perf_counter()
        action(batch)
        times.append(time.perf_counter() - start)
    return float(np.median(times[warm_up:]))


def _time_checkpoint(task: TrainingTask) -> float:
    """Seconds to write the task's state once, as the trainer does (``torch.save``, fsync, rename)."""
    payload = {"task": {name: state.state_dict() for name, state in task.checkpoint_state().items()}}
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        atomic_write(Path(folder) / "last.ckpt", lambda tmp: torch.save(payload, tmp))
        return time.perf_counter() - start


def measure_run(run: FileRun, steps: int, accelerator: str, task_network: nn.Module | None) -> RunTimes:
    """Time a run's costs on this machine: ``steps`` real training steps (after one warm-up step),
    up to :data:`VALIDATION_BATCHES` validation batches (after the steps, without gradients) and one
    checkpoint write."""
    config = run.training.model_copy(update={"accelerator": accelerator, "devices": 1, "progress": False})
    fabric = make_fabric(config)
    fabric.seed_everything(config.seed, verbose=False)
    task, _ = build_task(run, Path(), task_network)
    task.setup(fabric, config)
    task.set_training(True)
    splits = paired_splits(run.data)
    loader = DataLoader(splits.train, batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0), drop_last=False)
    batches = [fabric.to_device(batch) for _, batch in zip(range(steps + 1), _cycle(loader), strict=False)]
    step = _median_seconds(lambda batch: task.training_step(batch, fabric), batches, warm_up=1)
    val_loader = DataLoader(splits.val, batch_size=config.batch_size, shuffle=False)
    val = [fabric.to_device(batch) for _, batch in zip(range(VALIDATION_BATCHES), val_loader, strict=False)]
    task.set_training(False)
    with torch.no_grad():
        val_batch = _median_seconds(task.validation_step, val, warm_up=0)
    return RunTimes(step=step, val_batch=val_batch, checkpoint=_time_checkpoint(task))


def _untrained_task_network(spec: StudySpec, run: FileRun) -> nn.Module | None:
    """A stand-in of the same cost for a task network not trained yet (timing only)."""
    if run.loss.task is None:
        return None
    if run.loss.task.network != "segmentation":
        return load_task_network(run.loss.task.network)
    segmentation = segmentation_run(spec)
    if segmentation is None:
        raise DataError(f"a task term with network 'segmentation' needs {spec.data.path / 'labels'}; add labels/ "
                        "or give the task term a TorchScript network file")
    return _segmentation_network(segmentation)


def _cycle(loader: DataLoader) -> Any:
    while True:
        yield from loader


def trainable_parameters(name: str, options: Mapping[str, Any]) -> int:
    """Trainable parameters of ``create_network(name, **options)``, built on the meta device (no memory)."""
    with torch.device("meta"):
        network = create_network(name, **options)
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def _parameters(run: FileRun) -> int:
    count = trainable_parameters(run.network.name, run.network.options)
    if run.loss.adversarial is not None:
        discriminator = run.loss.adversarial.discriminator
        count += trainable_parameters(discriminator.name, discriminator.options)
    return count


Measure = Callable[[FileRun, int, str, nn.Module | None], RunTimes]


def plan_run(name: str, run: FileRun, train_images: int, val_images: int, times: RunTimes, parameters: int,
             finished: bool) -> PlannedRun:
    """A run's counts of steps, validation batches and checkpoint writes, with its measured costs."""
    training = run.training
    steps = math.ceil(train_images / training.batch_size) * training.epochs
    checkpoints = CHECKPOINTS_PER_EPOCH * training.epochs
    if training.checkpoint_every_steps:
        checkpoints += steps // training.checkpoint_every_steps
    return PlannedRun(name, parameters, steps, math.ceil(val_images / training.batch_size) * training.epochs,
                      checkpoints, times, finished)


def plan_study(spec: StudySpec, out_dir: Path, steps: int = 3, accelerator: str = "auto",
               measure: Measure = measure_run) -> list[PlannedRun]:
    """The runs of a study with their sizes and a time estimate from measured costs.

    Args:
        spec: the study.
        out_dir: its folder (runs that have finished there are marked).
        steps: real training steps timed per run (after one warm-up step).
        accelerator: where to time them.
        measure: what times a run (:func:`measure_run`; tests inject fixed times).
    """
    splits = paired_splits(spec.data)
    runs = build_runs(spec)
    times = {name: measure(run, steps, accelerator, _untrained_task_network(spec, run)) for name, run in runs.items()}
    # With seeds, every run once per replicate (seeds/<seed>/runs/<name>), timed once: a seed changes
    # the initialisation and the data order, not the cost of a step.
    folders = [("", out_dir)] if spec.seeds is None else [
        (f"{SEEDS_DIR}/{seed}/", replicate_dir(out_dir, seed)) for seed in spec.seeds]
    return [plan_run(prefix + name, run, len(splits.train), len(splits.val), times[name], _parameters(run),
                     _finished(folder / RUNS_DIR / name, run.training.epochs))
            for prefix, folder in folders for name, run in runs.items()]


def plan_detectable(spec: StudySpec, pilot: Path, alpha: float = ALPHA) -> str:
    """The minimal detectable effects of the study's primary comparisons (Markdown), for its design
    (the test split's subjects x its seeds), from the spread of the same comparisons in ``pilot``, a
    long per-image table (e.g. an earlier run's ``results/per_image.csv``; :mod:`taskloss.metrics.power`).
    """
    data = paired_data(spec.data)
    n_subjects = len({s for s, split in zip(data.subjects, data.splits, strict=True) if split == "test"})
    n_seeds = len(spec.seeds or [spec.training.seed])
    plans = file_plans(spec, build_runs(spec), scored=segmentation_run(spec) is not None)
    rows, skipped = plan_mdes(read_long_table(pilot), plans, n_subjects, n_seeds, alpha=alpha)
    return mde_markdown(rows, skipped, str(pilot), n_subjects, n_seeds, alpha)


def _finished(run_dir: Path, epochs: int) -> bool:
    path = run_dir / CHECKPOINT_DIR / "last.ckpt"
    return path.is_file() and read_checkpoint(path)["loop"]["epoch"] >= epochs


def duration(seconds: float) -> str:
    """Seconds as text: ``"42.0 s"`` below a minute, else ``"3.5 min"``."""
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def plan_table(planned: Sequence[PlannedRun], jobs: int = 1) -> str:
    """The plan as a Markdown table, with the total estimate and what it includes."""
    lines = ["| run | trainable parameters | steps | s / step (measured) | training | validation | checkpoints "
             "| estimate |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run in planned:
        estimate = "done (skipped)" if run.finished else duration(run.seconds)
        lines.append(f"| {run.name} | {run.parameters:,} | {run.steps} | {run.seconds_per_step:.3f} | "
                     f"{duration(run.training_seconds)} | {duration(run.validation_seconds)} | "
                     f"{duration(run.checkpoint_seconds)} | {estimate} |")
    total = sum(run.seconds for run in planned if not run.finished)
    parallel = "" if jobs == 1 else f"; with --jobs {jobs} at best {duration(total / jobs)}"
    lines += ["", f"Estimate: {duration(total)} one run at a time{parallel}. Included, from costs measured on "
              "this machine: the training steps; a validation pass per epoch (validation batches timed, times the "
              f"batches of the val split); {CHECKPOINTS_PER_EPOCH} checkpoint writes per epoch (last and best; "
              "best is written only when it improves, so this is an upper bound), one write timed. Not included: "
              "reading the data, the task network, evaluation, the report, and other load on the machine."]
    return "\n".join(lines)


# -- the Study interface ---------------------------------------------------------------------------


class FileStudy(Study):
    """A study described by a study file, behind the :class:`Study` interface.

    ``request.options`` of :meth:`run`: ``jobs`` (runs at once) and ``launcher`` ("local",
    "slurm"). ``request.preset`` is ignored; ``request.data`` replaces ``data.path``.
    """

    OPTIONS = ("jobs", "launcher")

    def __init__(self, spec: StudySpec | None = None) -> None:
        self.spec = spec
        self.name = spec.name if spec is not None else FILE_STUDY
        self.title = f"study file {spec.name}" if spec is not None else "a study file's runs"

    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Train, score and report the study (:func:`run_file_study`)."""
        self.check_options(request, self.OPTIONS)
        if self.spec is None:
            raise ConfigError("a study file is needed to run a study; use `taskloss study run STUDY.yaml`")
        spec = self.spec
        if request.data is not None:
            spec = spec.model_copy(update={"data": spec.data.model_copy(update={"path": request.data.resolve()})})
        return run_file_study(spec, out_dir, request.devices, request.accelerator,
                              int(request.options.get("jobs", 1)), str(request.options.get("launcher", "local")))

    def train(self, config: Mapping[str, Any], run_dir: Path, source: str) -> FitResult:
        """One run from its configuration (``taskloss train runs/<run>/config.yaml``; its
        ``training.devices`` > 1 trains with DDP)."""
        run = validate_config(FileRun, config, source)
        return train_file_run(run, run_dir, run.training.devices, run.training.accelerator)

    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Per-image metrics of a run's best checkpoint (without the task metric)."""
        return evaluate_file_run(run_dir, split)

    def render(self, out_dir: Path) -> str:
        """Results and report section of a study folder (:func:`render_file_study`)."""
        return render_file_study(out_dir)

    def has_results(self, out_dir: Path) -> bool:
        """Whether ``out_dir`` holds a study file and evaluated runs."""
        return (out_dir / STUDY_FILE).is_file() and (
            is_seeded(out_dir) or any((out_dir / RUNS_DIR).glob(f"*/{EVALUATION_DIR}/{TEST_CSV}")))


def run_study_of(config: Mapping[str, Any], source: str) -> Study:
    """The study that trains a run configuration written by the engine (``study: file``)."""
    if config.get("task", "paired") not in TASKS:
        raise ConfigError(f"{source}: a {config.get('task')!r} run is trained by `taskloss study run`, not alone")
    return FileStudy()


def find_file_studies(out: Path) -> list[tuple[Study, Path]]:
    """Every study-file study under ``out`` with results (folders holding ``study.yaml``)."""
    found: list[tuple[Study, Path]] = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()) if out.is_dir() else []:
        study = FileStudy(load_study(folder / STUDY_FILE)) if (folder / STUDY_FILE).is_file() else None
        if study is not None and study.has_results(folder):
            found.append((study, folder))
    return found

