"""The study engine: a study file (:mod:`taskloss.studies.spec`) trained, scored and reported.

Every data source (``task:``, :data:`taskloss.data.sources.SOURCES`) gives image pairs; everything
below is shared.

``taskloss study run STUDY.yaml`` calls :func:`run_file_study`:

1. **runs**: every network x loss of the file is one run, ``OUT/<name>/runs/<network>-<loss>/``,
   whose ``config.yaml`` records what the run depends on (data, network, loss, training; not the
   hardware). A run that has finished is skipped; one whose folder holds other settings is
   refused, naming the keys that differ (adding a loss or a network to the file only adds runs).
2. **task loss network** (when a loss has ``task: {network: segmentation}``): a segmentation
   network (``segmentation.network``) trained on the targets first, ``OUT/<name>/task_network/``,
   seed ``training.seed + 1``, on the first half of the training subjects
   (:mod:`taskloss.studies.segmentation`).
3. **training** (the Fabric :class:`~taskloss.training.Trainer`: resumable, seeded): one run after
   the other, ``jobs`` at a time in local processes (CPU threads split between them), or one
   job per run with submitit (``launcher="slurm"``).
4. **scoring network** (when the data has labels): the independent scorer, another architecture
   family (``segmentation.scorer``) trained on the targets (``OUT/<name>/segmentation/``, seed
   ``training.seed``, the other half of the training subjects when there is a task network) or
   loaded from ``segmentation.weights``.
5. **evaluation** of each run's best checkpoint on the test split: per image MAE, PSNR, SSIM,
   HFEN, NMSE (predictions clipped to [0, 1] when the data is normalised; data_range 1, the
   target's scale, or each target's max - min with ``normalize: none``), and the scoring
   network's foreground Dice on the prediction; ``runs/<run>/evaluation/test.csv`` and the
   predictions. With a k-space source (``task: csmri``, ``csmri-simulator``) the zero-filled
   inputs are scored the same way (``zero_filled/evaluation/test.csv``), the table's reference row.
6. **report** (:mod:`taskloss.studies.file_report`).

Best checkpoints are picked by the validation mean of ``training.monitor`` (default the first
metric); runs with an adversarial term keep their last epoch.
"""

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from lightning.fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader

from taskloss.data.kspace import undersample
from taskloss.data.signals import cut_rois, insert_signals
from taskloss.data.sources import TASKS, AnyDataSpec, paired_data, paired_splits
from taskloss.errors import ConfigError, DataError
from taskloss.losses import AdversarialLoss, CompositeLoss, load_task_network
from taskloss.metrics import DataRange
from taskloss.metrics.comparisons import read_long_table
from taskloss.metrics.registry import score
from taskloss.networks import create_network
from taskloss.studies.base import Study, StudyRequest
from taskloss.studies.common import (
    save_npz,
    split_subjects,
    trained,
    validate_config,
    with_hardware,
    write_json,
    write_per_image,
    write_run_config,
    write_run_info,
)
from taskloss.studies.detection import DETECTION_FILE, GROUND_TRUTH, calibrate, detection_record, head_masks
from taskloss.studies.file_report import file_plans, render_file_study
from taskloss.studies.graph import Prepared, RunKind, RunNode, graph_order, train_graph, train_node
from taskloss.studies.layout import (
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
from taskloss.studies.plan import Measure, PlannedRun, measure_steps, plan_graph
from taskloss.studies.report_kit import ALPHA, mde_markdown, plan_mdes
from taskloss.studies.seeds import is_seeded, replicate_dir, run_seeds, seed_folders, seed_offset
from taskloss.studies.segmentation import (
    SEGMENTATION_RUN,
    SEGMENTATION_TASK,
    SegmentationRun,
    evaluate_segmentation,
    foreground_dice,
    load_segmentation,
    load_weights,
    segmentation_network,
    train_segmentation,
)
from taskloss.studies.spec import (
    FILE_STUDY,
    IMAGE_METRICS,
    FileRun,
    SegmentationSpec,
    StudySpec,
    build_runs,
    extra_metrics,
    load_study,
)
from taskloss.studies.terms import build_loss, describe_loss, term_values
from taskloss.training import FitResult, SupervisedTask, Trainer, TrainingConfig
from taskloss.training.adversarial import AdversarialTask, Generated
from taskloss.training.config import OptimizerConfig, load_yaml
from taskloss.training.task import Batch, TrainingTask

LAUNCHERS: dict[str, str | None] = {"local": None, "slurm": "slurm", "submitit-local": "local",
                                    "submitit-debug": "debug"}
"""``--launcher`` -> submitit cluster: "local" trains on this machine without submitit; "slurm" submits
SLURM jobs; "submitit-local" and "submitit-debug" run the same submitit path without a cluster (in
subprocesses, or in this process), to try it."""


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
    names = (*IMAGE_METRICS, *(extra_metrics(data.size, data.normalize) if test else ()))

    def metrics(pred: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        return score(names, output_image(pred, data), batch["target"], scale)

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


def train_file_run(run: FileRun, run_dir: Path, devices: int = 1, accelerator: str = "auto",
                   progress: bool = True, fabric: Fabric | None = None) -> FitResult:
    """Train one run in ``run_dir`` (resuming; at once when finished); record ``evaluation/run.json``.

    ``config.yaml`` holds the run without its hardware (devices, accelerator): a run may resume on
    other hardware.
    """
    splits = paired_splits(run.data)  # the data checked before the run folder is written
    write_run_config(run_dir, with_hardware(run, 1, "auto"))
    task, description = build_task(run, run_dir)
    trainer = Trainer(task, with_hardware(run, devices, accelerator, progress).training, run_dir, fabric)
    result = trainer.fit(splits.train, splits.val)
    if trainer.fabric.is_global_zero:
        write_run_info(run_dir, result, description)
    return result


def load_file_run(run_dir: Path) -> FileRun:
    """The configuration of a run folder."""
    return validate_config(FileRun, load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))


# -- the task network (SIS) ------------------------------------------------------------------------


SegmentationRole = Literal["task_network", "scorer"]
"""The two segmentation runs of a study file with labels (:class:`~taskloss.studies.spec.SegmentationSpec`)."""


def segmentation_run(spec: StudySpec, role: SegmentationRole = "scorer") -> SegmentationRun | None:
    """The segmentation run of ``role`` of a study whose data has labels (None without labels).

    ``"task_network"``: ``segmentation.network``, seed ``training.seed + 1``, the first half of the
    training subjects. ``"scorer"``: ``segmentation.scorer``, seed ``training.seed``, the other half
    when the study trains a task network (so the scorer never saw the subjects the loss's network
    learnt from), else every training subject.

    Raises:
        DataError: the study trains a task network but the training split holds one subject.
    """
    train = paired_splits(spec.data).train
    data = train.data  # type: ignore[attr-defined]
    if data.labels is None:
        return None
    settings: SegmentationSpec = spec.segmentation
    halves = spec.trains_task_network
    if halves and len(set(split_subjects(train))) < 2:
        raise DataError(f"{spec.data.data_folder() or spec.data.TASK}: the training split holds 1 subject, but the "
                        "task network and the scorer train on two halves of the training subjects; add subjects "
                        "(or lower data.split.val and .test)")
    task_network = role == "task_network"
    training = TrainingConfig(epochs=settings.epochs, batch_size=spec.training.batch_size,
                              seed=spec.training.seed + (1 if task_network else 0), monitor="dice",
                              monitor_mode="max", optimizer=OptimizerConfig(lr=settings.lr))
    return SegmentationRun(data=spec.data, network=settings.network if task_network else settings.scorer,
                           options=settings.options if task_network else settings.scorer_options,
                           classes=max(2, int(data.labels.max()) + 1),
                           train_subjects="first_half" if task_network else "second_half" if halves else "all",
                           training=training)


def task_network_of(run: FileRun, run_dir: Path) -> nn.Module:
    """The frozen network of a run's task term: the study's trained task network
    (``OUT/<name>/task_network``, best checkpoint) or the TorchScript file the term names."""
    term = run.loss.task
    assert term is not None
    if term.network != "segmentation":
        return load_task_network(term.network)
    return load_segmentation(run_dir.parent.parent / TASK_NETWORK_DIR)


def segmenter(spec: StudySpec, out_dir: Path, accelerator: str = "auto"
              ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The scoring network as ``images (B, 1, H, W) -> logits``: the one trained in ``out_dir/segmentation``
    (a node of :func:`file_graph`) or loaded from ``segmentation.weights``; None when the data has no labels."""
    run = segmentation_run(spec)
    if run is None:
        return None
    if spec.segmentation.weights is None:
        model = load_segmentation(out_dir / SCORER_DIR)
    else:
        model = load_weights(segmentation_network(run), spec.segmentation.weights).eval()
    device = torch.device("cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu")
    model.to(device)

    def segment(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(images.to(device))

    return segment


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
    trainer = trained(task, with_hardware(run, 1, "auto", False).training, run_dir)
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
                scores["dice"] = foreground_dice(segment(pred), batch["label"])
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
        values["dice"] += foreground_dice(segment(batch["target"]), batch["label"]).cpu().tolist()
        values["roi"] += (batch["label"] > 0).flatten(1).any(dim=1).float().tolist()
        ids.extend(batch["id"])
    path = out_dir / SCORER_DIR / EVALUATION_DIR / TEST_CSV
    write_per_image(path, ids, {k: np.asarray(v) for k, v in values.items()})
    return path


def evaluate_inputs(spec: StudySpec, out_dir: Path) -> Path:
    """Score the test inputs as if they were outputs (k-space sources: the zero-filled reference, the
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
    input is the target plus noise, an approximation for other degradations); a k-space source: to the
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
    if data.references is not None and data.masks is not None:
        image = data.references[rows] + signals.to(torch.complex64)
        masks = data.masks[rows].float()
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
    the CHO and NPW with the targets (and, for a k-space source, the zero-filled inputs) as references;
    writes ``results/detection.json``."""
    settings = spec.detection
    assert settings is not None
    splits = paired_splits(spec.data)
    validation = np.stack([splits.val[i]["target"][0].double().numpy() for i in range(len(splits.val))])
    contrast = calibrate(settings, validation)
    images, locations, present, ids = detection_images(spec, contrast)
    outputs = {GROUND_TRUTH: images["target"]}
    if spec.data.KSPACE:
        outputs["zero_filled"] = images["input"].clamp(0, 1)
    for name in names:
        outputs[name] = _predict_images(out_dir / RUNS_DIR / name, images["input"])
    cut = {name: cut_rois(output[:, 0].double().numpy(), locations, (settings.roi, settings.roi))
           for name, output in outputs.items()}
    record = detection_record({name: (rois[present], rois[~present]) for name, rois in cut.items()}, settings,
                              contrast, "disc", ([i for i, p in zip(ids, present, strict=True) if p],
                                                 [i for i, p in zip(ids, present, strict=True) if not p]))
    path = out_dir / RESULTS_DIR / DETECTION_FILE
    write_json(path, record)
    return path


def _predict_images(run_dir: Path, inputs: torch.Tensor) -> torch.Tensor:
    """A run's best checkpoint on ``inputs`` (N, 1, S, S): its output images as scored (N, 1, S, S), CPU."""
    run = load_file_run(run_dir)
    task, _ = build_task(run, run_dir)
    trainer = trained(task, with_hardware(run, 1, "auto", False).training, run_dir)
    predict = task.predict  # type: ignore[attr-defined]
    with torch.no_grad():
        return torch.cat([output_image(predict(trainer.fabric.to_device({"input": part})).float(), run.data).cpu()
                          for part in inputs.split(run.training.batch_size)])


# -- the run graph --------------------------------------------------------------------------------


def _train_file_node(run: FileRun, run_dir: Path, fabric: Fabric | None) -> FitResult:
    """:class:`RunKind` ``train`` of a study file's run: its hardware is in ``run.training``."""
    training = run.training
    return train_file_run(run, run_dir, training.devices, training.accelerator, training.progress, fabric)


def _prepare_file_run(run: FileRun, run_dir: Path) -> Prepared:
    """:class:`RunKind` ``prepare`` of a study file's run (its task network read next to ``run_dir``)."""
    splits = paired_splits(run.data)
    return Prepared(build_task(run, run_dir)[0], splits.train, splits.val)


FILE_RUN = RunKind(train=_train_file_node, prepare=_prepare_file_run)
"""A study file's network x loss run (``runs/<network>-<loss>``)."""
def file_graph(spec: StudySpec, devices: int = 1, accelerator: str = "auto") -> list[RunNode]:
    """The run graph of a study file: the task loss's network (when a loss trains one), every network x
    loss run (those with the trained task network need it), then the scoring network (when the data has
    labels and no ``segmentation.weights`` are given). ``devices`` and ``accelerator`` go into each run's
    training settings (the recorded ``config.yaml`` leaves them out)."""
    nodes = []
    if spec.trains_task_network:
        task_run = segmentation_run(spec, "task_network")
        if task_run is None:
            raise DataError(f"a task term with network 'segmentation' trains its network on the data's labels, but "
                            f"{spec.data.data_folder() or 'the data'} has none; add labels/ or give the task term "
                            "a TorchScript network file")
        nodes.append(RunNode(TASK_NETWORK_DIR, with_hardware(task_run, devices, accelerator), SEGMENTATION_RUN))
    for name, run in build_runs(spec).items():
        needs = (TASK_NETWORK_DIR,) if run.loss.task is not None and run.loss.task.network == "segmentation" else ()
        nodes.append(RunNode(f"{RUNS_DIR}/{name}", with_hardware(run, devices, accelerator), FILE_RUN, needs))
    scorer = segmentation_run(spec)
    if scorer is not None and spec.segmentation.weights is None:
        nodes.append(RunNode(SCORER_DIR, with_hardware(scorer, devices, accelerator), SEGMENTATION_RUN))
    return nodes




def train_submitit(nodes: Sequence[RunNode], out_dir: Path, spec: StudySpec, cluster: str = "slurm"
                   ) -> dict[str, float]:
    """Train each node as a job submitted with submitit, in waves: the nodes whose needs have finished.

    Args:
        nodes: the study's run graph (:func:`file_graph`); a node's ``training.devices`` GPUs (and
            tasks) make its job: ``devices`` tasks on one node, trained with DDP across them (Lightning
            Fabric reads the SLURM environment).
        out_dir: the study folder; submitit's logs go to ``out_dir/submitit``.
        spec: the study (its ``slurm`` settings).
        cluster: "slurm", or submitit's "local" (subprocesses) or "debug" (this process)
            executor, to try the path without a cluster.

    Returns:
        Seconds per training step of every node.
    """
    import submitit

    slurm = spec.slurm
    executor = submitit.AutoExecutor(folder=out_dir / "submitit", cluster=cluster)
    devices = max(node.run.training.devices for node in nodes)
    executor.update_parameters(timeout_min=slurm.timeout_min, tasks_per_node=devices, nodes=1,
                               cpus_per_task=slurm.cpus_per_task, mem_gb=slurm.mem_gb,
                               gpus_per_node=slurm.gpus_per_node if cluster == "slurm" else 0,
                               name=f"taskloss-{spec.name}")
    if cluster == "slurm":
        executor.update_parameters(slurm_partition=slurm.partition,
                                   slurm_additional_parameters=dict(slurm.additional))
    results: dict[str, float] = {}
    pending = graph_order(nodes)
    while pending:
        wave = [node for node in pending if all(need in results for need in node.needs)]
        pending = [node for node in pending if node not in wave]
        with executor.batch():
            submitted = [executor.submit(train_node, node, str(out_dir / node.name)) for node in wave]
        for node, handle in zip(wave, submitted, strict=True):
            try:
                outcome = handle.result()
            except Exception as error:  # submitit re-raises the job's failure with its log
                raise DataError(f"run {node.name} failed in its {cluster} job ({type(error).__name__}: "
                                f"{str(error).splitlines()[-1] if str(error) else ''}); see {out_dir / 'submitit'}"
                                ) from None
            # A DDP job returns one value per task; rank 0's is the run's.
            results[node.name] = outcome[0] if isinstance(outcome, list) else outcome
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
    _check_local_devices(devices, launcher, out_dir)
    started = time.perf_counter()
    runs = build_runs(spec)
    paired_splits(spec.data)  # read and check the data first: a data error stops the study before it writes
    check_detection_data(spec)
    graph = file_graph(spec, devices, accelerator)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STUDY_FILE).write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    cluster = LAUNCHERS[launcher]
    if cluster is None:
        step_times = train_graph(graph, out_dir, jobs, accelerator)
    else:
        step_times = train_submitit(graph, out_dir, spec, cluster)
    trained = time.perf_counter()
    segment = segmenter(spec, out_dir, accelerator)
    if segment is not None:
        evaluate_targets(spec, out_dir, segment)
    for name in runs:
        evaluate_file_run(out_dir / RUNS_DIR / name, "test", segment)
    if spec.data.KSPACE:
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
        _check_local_devices(devices, launcher, out_dir)
        train_graph(_replicates_graph(spec, out_dir, devices, accelerator), out_dir, jobs, accelerator)
    return run_seeds(out_dir, spec.seeds, lambda folder, offset: run_file_study(
        replicate_spec(spec, offset), folder, devices, accelerator, jobs, launcher), render_file_study)


def _replicates_graph(spec: StudySpec, out_dir: Path, devices: int, accelerator: str) -> list[RunNode]:
    """The run graphs of every seed's replicate as one graph (nodes ``seeds/<seed>/<node>``), so that
    ``--jobs`` trains them in one pool; the replicates then find their runs finished and score them."""
    assert spec.seeds is not None
    nodes = []
    for seed in spec.seeds:
        replicate, folder = replicate_spec(spec, seed_offset(seed)), replicate_dir(out_dir, seed)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STUDY_FILE).write_text(yaml.safe_dump(replicate.model_dump(mode="json"), sort_keys=False))
        prefix = f"{SEEDS_DIR}/{seed}/"
        nodes += [RunNode(prefix + node.name, node.run, node.kind, tuple(prefix + need for need in node.needs))
                  for node in file_graph(replicate, devices, accelerator)]
    return nodes


def _check_local_devices(devices: int, launcher: str, out_dir: Path) -> None:
    """Refuse ``--devices`` > 1 with the local launcher, which trains each run in one process."""
    if devices > 1 and LAUNCHERS[launcher] is None:
        raise ConfigError(f"--devices {devices} trains each run with DDP, which the local launcher does not "
                          "start; use --launcher slurm, or train one run with `taskloss train "
                          f"{out_dir / RUNS_DIR / '<run>' / RUN_CONFIG_FILE} training.devices={devices}`")


# -- plan ------------------------------------------------------------------------------------------


def plan_study(spec: StudySpec, out_dir: Path, steps: int = 3, accelerator: str = "auto",
               measure: Measure = measure_steps) -> list[PlannedRun]:
    """The runs of a study file's graph with their sizes and a time estimate from measured costs
    (:func:`taskloss.studies.plan.plan_graph`); with seeds, every run once per replicate, timed once.

    Args:
        spec: the study.
        out_dir: its folder (runs that have finished there are marked).
        steps: real training steps timed per run (after one warm-up step).
        accelerator: where to time them.
        measure: what times the steps (tests inject fixed times).
    """
    paired_splits(spec.data)
    return plan_graph(file_graph(spec), seed_folders(out_dir, spec.seeds), steps, accelerator, measure)


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


# -- the Study interface ---------------------------------------------------------------------------


class FileStudy(Study):
    """A study described by a study file, behind the :class:`Study` interface.

    ``request.options`` of :meth:`run`: ``jobs`` (runs at once) and ``launcher`` ("local",
    "slurm"). ``request.preset`` is ignored; ``request.data`` replaces the data folder.
    """

    OPTIONS = ("jobs", "launcher")

    def __init__(self, spec: StudySpec | None = None) -> None:
        self.spec = spec
        self.name = spec.name if spec is not None else FILE_STUDY
        self.title = f"study file {spec.name}" if spec is not None else "a study file's runs"

    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Train, score and report the study (:func:`run_file_study`)."""
        self.check_options(request, self.OPTIONS)
        return run_file_study(self._spec(request), out_dir, request.devices, request.accelerator,
                              int(request.options.get("jobs", 1)), str(request.options.get("launcher", "local")))

    def plan(self, request: StudyRequest, out_dir: Path, steps: int = 3,
             measure: Measure = measure_steps) -> list[PlannedRun]:
        """The study file's graph timed (:func:`plan_study`)."""
        return plan_study(self._spec(request), out_dir, steps, request.accelerator, measure)

    def detectable(self, request: StudyRequest, pilot: Path) -> str:
        """The study file's primary comparisons' minimal detectable effects (:func:`plan_detectable`)."""
        return plan_detectable(self._spec(request), pilot)

    def _spec(self, request: StudyRequest) -> StudySpec:
        if self.spec is None:
            raise ConfigError("a study file is needed to run or plan a study; use `taskloss study run STUDY.yaml`")
        if request.data is None:
            return self.spec
        return self.spec.model_copy(update={"data": self.spec.data.with_data_folder(request.data.resolve())})

    def train(self, config: Mapping[str, Any], run_dir: Path, source: str) -> FitResult:
        """One run from its configuration (``taskloss train runs/<run>/config.yaml``, or a
        segmentation run's; its ``training.devices`` > 1 trains with DDP)."""
        if config.get("task") == SEGMENTATION_TASK:
            return train_segmentation(validate_config(SegmentationRun, config, source), run_dir)
        run = validate_config(FileRun, config, source)
        return train_file_run(run, run_dir, run.training.devices, run.training.accelerator)

    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Per-image metrics of a run's best checkpoint (without the task metric); a segmentation
        run's Dice (:func:`~taskloss.studies.segmentation.evaluate_segmentation`)."""
        if load_yaml(run_dir / RUN_CONFIG_FILE).get("task") == SEGMENTATION_TASK:
            return evaluate_segmentation(run_dir, split)
        return evaluate_file_run(run_dir, split)

    def render(self, out_dir: Path) -> str:
        """Results and report section of a study folder (:func:`render_file_study`)."""
        return render_file_study(out_dir)

    def has_results(self, out_dir: Path) -> bool:
        """Whether ``out_dir`` holds a study file and evaluated runs."""
        return (out_dir / STUDY_FILE).is_file() and (
            is_seeded(out_dir) or any((out_dir / RUNS_DIR).glob(f"*/{EVALUATION_DIR}/{TEST_CSV}")))


def run_study_of(config: Mapping[str, Any], source: str) -> Study:
    """The study that trains a run configuration written by the engine (``study: file``): an image
    run of any data source, or a segmentation run."""
    if config.get("task", TASKS[0]) not in (*TASKS, SEGMENTATION_TASK):
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

