"""Segmentation runs: one run kind for the segmentation networks of every study.

A study whose data has labels trains two of them on its *targets* (the reference images): the
network inside its task loss and the independent scorer of its task metric (Dice, SIS), another
architecture family (:data:`~taskloss.studies.common.SCORER_NETWORK`) trained on the other half of
the training subjects (:data:`~taskloss.studies.common.TrainSubjects`). A study file's
``task_network/`` and ``segmentation/`` (:func:`taskloss.studies.engine.segmentation_run`) and the
mr2xray study's ``task_networks/bone`` and ``task_networks/bone_scorer`` are runs of this kind; their
data is any data source (:mod:`taskloss.data.sources`; mr2xray's is ``task: mr2xray-simulator``).

Training: cross-entropy (optionally class-weighted) of the network's logits on the target against
the labels, Adam, best checkpoint by validation foreground Dice (1 where neither prediction nor label
has foreground). ``config.yaml`` leaves the hardware out (a run may resume on other hardware);
``evaluation/run.json`` records the steps, the best epoch and the provenance.
"""

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.fabric import Fabric
from pydantic import Field, model_validator
from torch import nn
from torch.utils.data import DataLoader

from taskloss.config import StrictModel
from taskloss.data.sources import SOURCES, TASKS, AnyDataSpec, SourceSpec, data_spec, paired_data, paired_splits
from taskloss.data.splits import Splits
from taskloss.errors import ConfigError, DataError
from taskloss.losses import CrossEntropyLoss
from taskloss.metrics import dice
from taskloss.networks import create_network
from taskloss.studies.common import (
    TrainSubjects,
    subject_half,
    validate_config,
    with_hardware,
    write_per_image,
    write_run_config,
    write_run_info,
)
from taskloss.studies.graph import Prepared, RunKind
from taskloss.studies.layout import CHECKPOINT_DIR, EVALUATION_DIR, RUN_CONFIG_FILE
from taskloss.training import FitResult, SupervisedTask, Trainer, TrainingConfig
from taskloss.training.checkpoint import read_checkpoint
from taskloss.training.config import load_yaml
from taskloss.training.task import Batch

SEGMENTATION_TASK = "segmentation"
"""``task:`` of a segmentation run's ``config.yaml`` (a study file's image runs name their data source there)."""


class SegmentationRun(StrictModel):
    """One segmentation run (``config.yaml``).

    Attributes:
        study: "file" (every segmentation run is trained by this module, whichever study it serves).
        task: "segmentation".
        source: the data source (a study file's ``task:``, :data:`~taskloss.data.sources.SOURCES`):
            the one whose section ``data`` is (given a typed section, its ``TASK``; else the default
            source), so that a ``config.yaml`` reads back as the section it was written from.
        data: the data, that source's ``data:`` section; its pairs must have labels.
        network, options: a registered network and its options (``num_classes`` is ``classes``).
        classes: label classes, >= 2.
        class_weights: cross-entropy weight of each class (None: equal), e.g. ``[1, 2]`` for
            mr2xray's bone; as many as ``classes``.
        train_subjects: the training subjects it learns from; the validation split is always whole.
        training: epochs, batch size, seed, optimizer (``monitor: dice``, ``monitor_mode: max``).
    """

    study: Literal["file"] = "file"
    task: Literal["segmentation"] = SEGMENTATION_TASK
    source: str = TASKS[0]
    data: AnyDataSpec
    network: str
    options: dict[str, Any] = Field(default_factory=dict)
    classes: int = Field(ge=2)
    class_weights: tuple[float, ...] | None = None
    train_subjects: TrainSubjects = "all"
    training: TrainingConfig

    @model_validator(mode="before")
    @classmethod
    def _typed_data(cls, values: Any) -> Any:
        """``data`` validated as the section of ``source`` (a smart union would take the first source
        whose keys fit: mr2xray-simulator for a csmri-simulator section of shared keys only)."""
        if not isinstance(values, dict) or "data" not in values:
            return values
        data = values["data"]
        source = values.get("source", data.TASK if isinstance(data, SourceSpec) else TASKS[0])
        if source not in SOURCES:
            raise ValueError(f"source: unknown data source {source!r}; choose one of {', '.join(TASKS)}")
        return {**values, "source": source, "data": data_spec(source, data)}

    def description(self) -> str:
        """The loss, as ``run.json`` records it."""
        if self.class_weights is None:
            return "cross-entropy on the targets"
        return f"cross-entropy on the targets, class weights {', '.join(f'{w:g}' for w in self.class_weights)}"


def foreground_dice(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Dice (B,) of the foreground (every class > 0) of ``logits`` (B, K, H, W) against ``labels``
    (B, 1, H, W); NaN where neither has foreground."""
    return dice(logits.argmax(dim=1, keepdim=True) > 0, labels > 0)


def segmentation_network(run: SegmentationRun) -> nn.Module:
    """The run's network, untrained."""
    return create_network(run.network, **{"num_classes": run.classes, **run.options})


def segmentation_task(run: SegmentationRun) -> SupervisedTask:
    """The training task: (weighted) cross-entropy of the logits on ``batch["target"]`` against
    ``batch["label"]``, validation Dice per image (1 where neither has foreground)."""
    def metrics(logits: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        return {"dice": torch.nan_to_num(foreground_dice(logits, batch["label"]), nan=1.0)}

    weights = None if run.class_weights is None else torch.tensor(run.class_weights)
    return SupervisedTask(lambda: segmentation_network(run), CrossEntropyLoss(class_weights=weights), metrics,
                          forward=lambda model, batch: model(batch["target"]), target_key="label")


def labelled_splits(run: SegmentationRun) -> Splits:
    """The train, val and test splits of the run's data.

    Raises:
        DataError: the data has no labels to learn from.
    """
    if paired_data(run.data).labels is None:
        where = run.data.data_folder() or f"the {run.source} data"
        raise DataError(f"{where}: no labels, which a segmentation run learns from; give data with labels (a "
                        "paired folder's labels/, simulated data with lesions) or leave out the segmentation run")
    return paired_splits(run.data)


def train_segmentation(run: SegmentationRun, run_dir: Path, fabric: Fabric | None = None) -> FitResult:
    """Train (or resume, or return at once when finished) a segmentation run in ``run_dir``."""
    splits = labelled_splits(run)  # the data checked before the run folder is written
    write_run_config(run_dir, with_hardware(run, 1, "auto"))
    trainer = Trainer(segmentation_task(run), run.training, run_dir, fabric)
    result = trainer.fit(subject_half(splits.train, run.train_subjects), splits.val)
    if trainer.fabric.is_global_zero:
        write_run_info(run_dir, result, run.description())
    return result


def _prepare(run: SegmentationRun, run_dir: Path) -> Prepared:
    splits = labelled_splits(run)
    return Prepared(segmentation_task(run), subject_half(splits.train, run.train_subjects), splits.val)


SEGMENTATION_RUN = RunKind(train=train_segmentation, prepare=_prepare)
"""The run kind of every segmentation network of a study (the task loss's, the scorer)."""


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Load ``model``'s weights from the ``best.ckpt`` of a run or a plain state dict file.

    Raises:
        ConfigError: the weights do not fit the network.
    """
    payload = read_checkpoint(Path(path))
    state = payload["task"]["model"] if "task" in payload else payload
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        raise ConfigError(f"{path} does not fit the network {type(model).__name__} ({type(error).__name__}); give "
                          "the best.ckpt of a segmentation run with the same network and options") from None
    return model


def load_segmentation(folder: Path) -> nn.Module:
    """The network of a finished segmentation run folder, best weights, evaluation mode.

    Raises:
        ConfigError: the folder holds no finished run.
    """
    config_path, checkpoint = folder / RUN_CONFIG_FILE, folder / CHECKPOINT_DIR / "best.ckpt"
    if not (config_path.is_file() and checkpoint.is_file()):
        raise ConfigError(f"{folder} holds no finished segmentation run (config.yaml and checkpoints/best.ckpt); "
                          "train it first, or point the task loss at another run folder")
    run = validate_config(SegmentationRun, load_yaml(config_path), str(config_path))
    return load_weights(segmentation_network(run), checkpoint).eval()


def evaluate_segmentation(run_dir: Path, split: str = "test") -> Path:
    """Score a finished segmentation run's best checkpoint on ``split`` of its data, image by image
    (``taskloss evaluate``): ``evaluation/<split>.csv`` with ``dice`` (foreground Dice; NaN where neither
    the prediction nor the label has foreground) and ``roi`` (1 where the label has foreground).

    Returns:
        The CSV file.
    """
    run = validate_config(SegmentationRun, load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))
    network = load_segmentation(run_dir)
    ids: list[str] = []
    values: dict[str, list[float]] = {"dice": [], "roi": []}
    with torch.no_grad():
        for batch in DataLoader(getattr(labelled_splits(run), split), batch_size=run.training.batch_size):
            values["dice"] += foreground_dice(network(batch["target"]), batch["label"]).tolist()
            values["roi"] += (batch["label"] > 0).flatten(1).any(dim=1).float().tolist()
            ids += list(batch["id"])
    path = run_dir / EVALUATION_DIR / f"{split}.csv"
    write_per_image(path, ids, {name: np.asarray(column) for name, column in values.items()})
    return path
