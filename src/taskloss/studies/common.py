"""Pieces shared by the studies: run folders, per-image result files, training and evaluation, presets.

The folder layout of a study is named in :mod:`taskloss.studies.layout`.
"""

import csv
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import torch
import yaml
from lightning.fabric import Fabric
from pydantic import BaseModel, field_serializer
from torch.utils.data import Dataset, Subset

from taskloss.config import StrictModel
from taskloss.config import validate_config as validate_config  # the studies' one validation path
from taskloss.data.csmri import CsmriConfig, csmri_splits
from taskloss.data.mr2xray import Mr2XrayConfig, mr2xray_splits
from taskloss.data.splits import Splits
from taskloss.errors import ConfigError, DataError
from taskloss.provenance import provenance
from taskloss.report import ResultTable
from taskloss.studies.graph import Prepared, RunKind
from taskloss.studies.layout import CHECKPOINT_DIR, EVALUATION_DIR, RUN_CONFIG_FILE, RUN_INFO_FILE, STUDY_RECORD
from taskloss.training import FitResult, Trainer, TrainingConfig
from taskloss.training.checkpoint import atomic_write
from taskloss.training.config import apply_overrides, load_yaml
from taskloss.training.task import TrainingTask

DISPLAY_KEYS = ("training.progress",)
"""Keys of a run configuration that change how training shows itself, not what it trains: a run
resumes with another value (e.g. trained in a worker process, without progress bars, then resumed
in a terminal)."""


def write_run_config(run_dir: Path, config: BaseModel) -> None:
    """Write ``config.yaml``; a folder holding a trained run with a different configuration is an error.

    Resuming into a folder trained with other settings would mix two runs, so once a checkpoint
    exists the stored configuration must equal the new one. Before that, the folder holds no
    trained state: a configuration left by an attempt that failed before its first checkpoint
    (a bad setting, unreadable data) is replaced, so that the corrected rerun is not blocked. Keys of
    :data:`DISPLAY_KEYS` may differ.
    """
    path = run_dir / RUN_CONFIG_FILE
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    if path.is_file() and _has_checkpoint(run_dir) and path.read_text() != text:
        try:
            stored = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            stored = {}
        new = config.model_dump(mode="json")
        changed = sorted(key for key in _changed_keys(stored, new) if key not in DISPLAY_KEYS)
        if not changed:
            atomic_write(path, lambda tmp: tmp.write_text(text))
            return
        raise ConfigError(f"{run_dir} holds a run with other settings (changed: {', '.join(changed)}); use "
                          "another --out folder or delete that run folder to start it again")
    atomic_write(path, lambda tmp: tmp.write_text(text))


def _has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / CHECKPOINT_DIR).glob("*.ckpt"))


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = set(old) | set(new)
        return [k for key in keys for k in _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def write_per_image(path: Path, ids: Sequence[str], values: Mapping[str, np.ndarray]) -> None:
    """Write per-image results: a column ``id`` then one column per metric (full precision)."""
    names = list(values)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", *names])
            for row, image_id in enumerate(ids):
                writer.writerow([image_id, *(repr(float(values[name][row])) for name in names)])

    atomic_write(path, write)


def read_per_image(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read what :func:`write_per_image` wrote: ids and metric columns."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; run the study (or `taskloss evaluate`) first")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DataError(f"{path} holds no result rows; evaluate the run again")
    if "id" not in rows[0]:
        raise DataError(f"{path} has no 'id' column; it was not written by taskloss, evaluate the run again")
    names = [name for name in rows[0] if name != "id"]
    return [row["id"] for row in rows], {n: _column(path, rows, n) for n in names}


def _column(path: Path, rows: list[dict[str, str]], name: str) -> np.ndarray:
    """The values of column ``name`` as floats; a cell that is not a number is a DataError naming it."""
    values = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            values.append(float(row[name]))
        except (TypeError, ValueError):
            raise DataError(f"{path}, line {line}, column {name!r}: {row[name]!r} is not a number; the file "
                            "was edited or damaged, evaluate the run again (`taskloss evaluate RUN_DIR`)") from None
    return np.array(values)


def read_study_json(out_dir: Path) -> dict[str, Any]:
    """The ``study.json`` a finished study wrote into ``out_dir`` (preset, notes, timings).

    Raises:
        DataError: when it is missing (the study did not finish: its report would lack lines) or
            is not a JSON object.
    """
    path = out_dir / STUDY_RECORD
    if not path.is_file():
        raise DataError(f"{path} is missing: the study in {out_dir} did not finish; run the same "
                        "`taskloss study` command again (finished runs are kept) before `taskloss report`")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}); run the same `taskloss study` command again "
                        "to write it") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds {type(data).__name__}, not a JSON object; run the same `taskloss "
                        "study` command again to write it")
    return data


def figure_case_indices(count: int, cases: int) -> list[int]:
    """Indices of ``cases`` test images spread over a split of ``count`` (first, middle, ..., last)."""
    if count <= cases:
        return list(range(count))
    return sorted({round(i * (count - 1) / (cases - 1)) for i in range(cases)}) if cases > 1 else [0]


def collect_predictions(
    predict: Callable[[dict[str, Any]], torch.Tensor], dataset: Any, indices: Sequence[int]
) -> dict[str, np.ndarray]:
    """Predictions of the items ``indices`` of ``dataset``, one at a time (few figure cases).

    Returns:
        ``{"ids": (k,) str array, "pred": (k, C, H, W) float32}``.
    """
    predictions, ids = [], []
    with torch.no_grad():
        for index in indices:
            item = dataset[index]
            batch = {k: (v[None] if isinstance(v, torch.Tensor) else [v]) for k, v in item.items()}
            predictions.append(predict(batch)[0].float().cpu().numpy())
            ids.append(str(item["id"]))
    return {"ids": np.array(ids), "pred": np.stack(predictions)}


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to ``path`` (.npz) atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write)


def write_text(path: Path, text: str) -> None:
    """Write text to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_table(folder: Path, table: ResultTable) -> None:
    """Write ``table.md``, ``table.tex`` and ``table.csv`` into ``folder``."""
    for suffix, text in (("md", table.markdown()), ("tex", table.latex()), ("csv", table.csv())):
        write_text(folder / f"table.{suffix}", text)


PRESET_DIR = Path(__file__).with_name("presets")
"""The built-in studies' study files, ``<study>-<scale>.yaml`` (shipped in the package)."""
SCALES = ("demo", "small", "full")
"""The scales every built-in study ships a file for."""

PresetT = TypeVar("PresetT", bound=BaseModel)
RunT = TypeVar("RunT", bound=BaseModel)


def shipped_study_files() -> dict[str, Path]:
    """The shipped built-in study files by name (``mr2xray-demo``, ...), sorted."""
    return {path.stem: path for path in sorted(PRESET_DIR.glob("*.yaml"))}


def load_preset(model: type[PresetT], study: str, preset: "str | Path | PresetT", sets: Sequence[str] = ()
                ) -> PresetT:
    """A built-in study's settings: a shipped scale by name, a study file, or the settings themselves.

    Args:
        model: the study's settings model (its ``study`` key names the study).
        study: the study's name, for the shipped file ``<study>-<preset>.yaml``.
        preset: "demo", "small", "full"; the path of a study file (e.g. a copy of a shipped one);
            or an instance of ``model``.
        sets: ``KEY=VALUE`` overrides of the file (``--set``, VALUE is YAML), applied before it is
            validated; messages then name the file "with --set ...". Not with an instance.

    Raises:
        ConfigError: an unknown scale, a missing or malformed file, an unknown key (named with the
            keys of its section), a wrong type or a bad value.
    """
    if isinstance(preset, model):
        if sets:
            raise ConfigError(f"--set {' '.join(sets)}: overrides apply to a study file, not to settings already "
                              "validated; give the file")
        return preset
    if isinstance(preset, str):
        if preset not in SCALES:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(SCALES)} (or run a copy of a "
                              f"built-in study file with `taskloss study run FILE.yaml`)")
        preset = PRESET_DIR / f"{study}-{preset}.yaml"
    path = Path(preset)  # type: ignore[arg-type]
    return validate_config(model, apply_overrides(load_yaml(path), list(sets)), overridden(path, sets))


def overridden(path: Path, sets: Sequence[str] | None) -> str:
    """How messages name a study file's settings: the file, and the ``--set`` overrides when there are any."""
    return f"{path} with --set {' '.join(sets)}" if sets else str(path)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (sorted keys, indented)."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def with_hardware(run: RunT, devices: int, accelerator: str, progress: bool = True) -> RunT:
    """``run`` (a model with ``training``) trained on ``devices`` x ``accelerator``: a run's
    ``config.yaml`` records it with 1 x "auto" (hardware is not part of a run's identity)."""
    return run.model_copy(update={"training": run.training.model_copy(
        update={"devices": devices, "accelerator": accelerator, "progress": progress})})


def write_run_info(run_dir: Path, result: FitResult, loss_description: str) -> None:
    """Record ``evaluation/run.json``: loss description, steps, best epoch, seconds per step, and the
    provenance of the process that trained it (:func:`taskloss.provenance.provenance`: version, git
    commit and dirty flag, library versions, machine).

    A run skipped because it had finished keeps the step time and provenance of when it trained.
    """
    path = run_dir / EVALUATION_DIR / RUN_INFO_FILE
    seconds, origin = result.seconds_per_step, provenance()
    if not math.isfinite(seconds) and path.is_file():
        stored = json.loads(path.read_text())
        seconds, origin = stored["seconds_per_step"], stored.get("provenance", origin)
    write_json(path, {"loss": loss_description, "steps": result.steps, "epochs": result.epochs,
                      "best_epoch": result.best_epoch, "best_value": result.best_value,
                      "seconds_per_step": seconds, "provenance": origin})


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """What :func:`write_run_info` wrote, or an empty dict when the run has none."""
    path = run_dir / EVALUATION_DIR / RUN_INFO_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


@functools.lru_cache(maxsize=4)
def study_splits(config: Mr2XrayConfig | CsmriConfig) -> Splits:
    """The data of a built-in study's configuration, simulated (or read) once per process: the runs
    of a study, their evaluation and the figure share it."""
    return mr2xray_splits(config) if isinstance(config, Mr2XrayConfig) else csmri_splits(config)


SCORER_NETWORK = "segmentation_resnet"
"""The independent scorer's network in every study (study files, mr2xray; csmri's presets name it):
Johnson et al.'s ResNet, another architecture family than the segmentation UNet inside the task losses."""

TrainSubjects = Literal["all", "first_half", "second_half"]
"""Which subjects of the training split a run trains on: all, or one half of them (sorted by subject,
the first ``n // 2`` or the rest): the task loss's network and the independent scorer train on the two
disjoint halves, so the scorer never saw the subjects the loss's network learnt from (issue 20)."""


def split_subjects(dataset: Dataset) -> list[int | str]:
    """The subject of every item of a split (a dataset with ``.data.subjects`` and ``.indices``: the
    built-in studies' and :class:`~taskloss.data.sources.pairs.PairedDataset`), in item order."""
    subjects = dataset.data.subjects  # type: ignore[attr-defined]
    return [int(subjects[i]) if isinstance(subjects, torch.Tensor) else subjects[i]
            for i in dataset.indices]  # type: ignore[attr-defined]


def subject_half(dataset: Dataset, half: TrainSubjects) -> Dataset:
    """The items of ``dataset`` (a split with ``.data.subjects`` and ``.indices``, as
    :func:`split_subjects`) whose subject is in ``half`` of its subjects; ``"all"``: the dataset itself.

    Raises:
        DataError: when the split holds fewer than 2 subjects (no two halves).
    """
    if half == "all":
        return dataset
    subjects = split_subjects(dataset)
    distinct = sorted(set(subjects))
    if len(distinct) < 2:
        raise DataError(f"the training split holds {len(distinct)} subject(s); a run with train_subjects "
                        f"{half!r} needs at least 2 (simulate more subjects)")
    first = set(distinct[: len(distinct) // 2])
    keep = [k for k, s in enumerate(subjects) if (s in first) == (half == "first_half")]
    return Subset(dataset, keep)


def given(config: BaseModel) -> dict[str, Any]:
    """The settings of ``config`` that were given (not its defaults), as JSON values: what a run's
    ``config.yaml`` and a study's ``study.json`` record of its data."""
    return config.model_dump(mode="json", exclude_unset=True)


class BuiltinRun(StrictModel):
    """A run of a built-in study (mr2xray, csmri): a subclass types its ``data`` (the study's data
    config, validated with the run) and names its training task, which is all :func:`train_run` needs.

    ``config.yaml`` records the data settings as given (the keys set, not every default), so a run
    folder's record stays what its study file said.

    Attributes:
        train_subjects: the subjects of the training split it trains on (:data:`TrainSubjects`); the
            validation split is always whole.
    """

    if TYPE_CHECKING:
        training: TrainingConfig
        data: Mr2XrayConfig | CsmriConfig
    train_subjects: TrainSubjects = "all"

    @field_serializer("data", check_fields=False)
    def _data_as_given(self, data: StrictModel) -> dict[str, Any]:
        return given(data)

    def training_task(self, run_dir: Path) -> tuple[TrainingTask, str]:
        """The training task of the run in ``run_dir`` and its loss description."""
        raise NotImplementedError


def train_run(run: BuiltinRun, run_dir: Path, fabric: Fabric | None = None) -> FitResult:
    """Train a built-in study's run in ``run_dir`` (resuming, or returning at once when it has
    finished): ``config.yaml``, the checkpoints, the logs and ``evaluation/run.json``."""
    write_run_config(run_dir, run)
    splits = study_splits(run.data)
    task, description = run.training_task(run_dir)
    trainer = Trainer(task, run.training, run_dir, fabric)
    result = trainer.fit(subject_half(splits.train, run.train_subjects), splits.val)
    if trainer.fabric.is_global_zero:
        write_run_info(run_dir, result, description)
    return result


def trained(task: TrainingTask, training: TrainingConfig, run_dir: Path, fabric: Fabric | None = None) -> Trainer:
    """A trainer of ``task`` in the trained run folder ``run_dir`` with its best weights (``best.ckpt``)
    loaded and the task in evaluation mode: what every study's scoring predicts with."""
    trainer = Trainer(task, training, run_dir, fabric)
    trainer.load_weights("best")
    task.set_training(False)
    return trainer


def prepare_run(run: BuiltinRun, run_dir: Path) -> Prepared:
    """What a built-in study's run trains (its task and datasets), without training it (``study plan``)."""
    splits = study_splits(run.data)
    return Prepared(run.training_task(run_dir)[0], subject_half(splits.train, run.train_subjects), splits.val)


BUILTIN_RUN = RunKind(train=train_run, prepare=prepare_run)
"""A run of a built-in study (:class:`BuiltinRun`) in the study's run graph (:mod:`taskloss.studies.graph`)."""
