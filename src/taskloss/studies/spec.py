"""The study file: a loss study described as data (YAML), validated at load into typed models.

Every key is documented in ``docs/studies.md``. An unknown key, a wrong type, an unknown network or
an unknown loss term is one :class:`~taskloss.errors.ConfigError` whose message names the file, the
key and the choices, e.g. ``study.yaml: losses.ssim_l1: unknown key 'sssim'; choose one of l1, mse,
...``.

``task:`` names the data source (:data:`taskloss.data.sources.SOURCES`: ``paired`` reads image
pairs from a folder, ``csmri`` undersamples fastMRI k-space into pairs), ``data:`` is that source's
typed section; the other keys are the same for every source.

Example (``docs/studies.md`` explains each key)::

    name: denoise-t1
    task: paired
    data: {path: pairs/, size: 64, split: {val: 0.2, test: 0.2, seed: 0}}
    networks:
      unet: {name: unet, options: {widths: [16, 32, 64, 128]}}
      resnet: {name: resnet}
    losses:
      l1: {l1: 1.0}
      ssim_l1: {ssim: 0.84, l1: 0.16}
    metrics: [mae, psnr, ssim, hfen]
    baseline: l1
    training: {epochs: 5, batch_size: 8, lr: 0.001}
"""

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from taskloss.config import Seeds, StrictModel, check_section
from taskloss.data.sources import SOURCES, TASKS, AnyDataSpec, data_spec
from taskloss.errors import TasklossError
from taskloss.metrics.ms_ssim import MS_SSIM_WEIGHTS, smallest_size
from taskloss.metrics.registry import METRICS
from taskloss.networks.base import Network
from taskloss.networks.factory import NetworkName, create_network
from taskloss.studies.common import SCORER_NETWORK, validate_config
from taskloss.studies.detection import DetectionSettings
from taskloss.studies.terms import LossSpec
from taskloss.training.config import OptimizerConfig, TrainingConfig, load_yaml

NAME_PATTERN = r"^[A-Za-z0-9_.]+$"
"""Names of networks and losses: letters, digits, ``_`` and ``.`` (they become folder names, and
``-`` joins network and loss in a run name)."""
STUDY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
"""Names of studies (a folder name): letters, digits, ``_``, ``.`` and ``-``."""

IMAGE_METRICS = ("mae", "psnr", "ssim", "hfen", "nmse")
"""Image metrics computed on every validation pass and test image (:mod:`taskloss.studies.engine`);
one of them may select the best checkpoint (``training.monitor``)."""
EXTRA_METRICS = ("haarpsi", "vsi", "ms_ssim")
"""Image metrics computed on the test images only, where the data allow them (:func:`extra_metrics`):
HaarPSI (Reisenhofer et al. 2018) and VSI (Zhang et al. 2014), the two measures without learned
weights that tracked radiologists' ratings of MR images best in Kastryulin et al. (IEEE Access 11,
2023), and MS-SSIM (Wang et al. 2003, five scales)."""
HAARPSI_MIN_SIZE = 16
"""HaarPSI's smallest image side: its 8-tap Haar filter after the 2 x 2 average (taskloss.metrics.haarpsi)."""
MS_SSIM_MIN_SIZE = smallest_size(len(MS_SSIM_WEIGHTS), 11, "pytorch_msssim")
"""MS-SSIM's smallest image side: five scales of the 11-tap Gaussian window (161 px)."""
Metric = Literal["mae", "psnr", "ssim", "hfen", "nmse", "haarpsi", "vsi", "ms_ssim"]


def extra_metric_problems(size: int, normalize: str) -> dict[str, str]:
    """Why each of :data:`EXTRA_METRICS` cannot be computed on images of side ``size`` and the data's
    ``normalize`` (metric -> reason; the ones absent can be).

    Examples:
        >>> sorted(extra_metric_problems(64, "minmax"))
        ['ms_ssim']
    """
    problems = {}
    if normalize == "none":
        why = "takes images in [0, data_range], so the data must be normalised (data.normalize other than none)"
        problems.update(haarpsi=why, vsi=why)
    elif size < HAARPSI_MIN_SIZE:
        problems["haarpsi"] = f"needs data.size >= {HAARPSI_MIN_SIZE}, got {size}"
    if size < MS_SSIM_MIN_SIZE:
        problems["ms_ssim"] = (f"needs data.size >= {MS_SSIM_MIN_SIZE} (five scales of an 11-tap window), got "
                               f"{size}")
    return problems


def extra_metrics(size: int, normalize: str) -> tuple[str, ...]:
    """The :data:`EXTRA_METRICS` that images of side ``size`` with this ``normalize`` allow."""
    problems = extra_metric_problems(size, normalize)
    return tuple(m for m in EXTRA_METRICS if m not in problems)


def _source(task: str) -> str:
    if task not in SOURCES:
        raise PydanticCustomError("task", "unknown task {task}; choose one of {choices}",
                                  {"task": repr(task), "choices": ", ".join(TASKS)})
    return task


TaskName = Annotated[str, AfterValidator(_source)]
"""A task of :data:`taskloss.data.sources.SOURCES` (the data source of a study file)."""


class NetworkSpec(StrictModel):
    """A network of the library by registry name, with constructor options."""

    name: NetworkName
    options: dict[str, Any] = Field(default_factory=dict)


class SegmentationSpec(StrictModel):
    """The segmentation networks of a study whose data has labels: the task term's network and the
    scorer of Dice and SIS, always two runs of two architecture families.

    Both are trained on the targets (cross-entropy, best checkpoint by validation Dice). When a loss
    trains the task network (``task: {network: segmentation}``), it learns from the first half of the
    training subjects and the scorer from the other half, so the scorer never saw the subjects the
    loss's network learnt from; otherwise the scorer trains on every training subject.

    Attributes:
        network, options: the task term's network (a registered network and its options).
        scorer, scorer_options: the scorer's network, :data:`SCORER_NETWORK` by default.
        epochs, lr: training of both.
        weights: the scorer's trained weights (a ``best.ckpt`` of a segmentation run with the same
            ``scorer``, or a state dict file) instead of training it.
    """

    network: NetworkName = "segmentation_unet"
    options: dict[str, Any] = Field(default_factory=dict)
    scorer: NetworkName = SCORER_NETWORK
    scorer_options: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(20, ge=1)
    lr: float = Field(1e-3, gt=0)
    weights: Path | None = None


STUDY_FILE_LR = 1e-3
"""Adam's learning rate of a study file's runs when the file gives none (the built-in files give theirs)."""
ADAM_BETAS = (0.9, 0.999)
"""Adam's default betas (Kingma & Ba 2015), when a study file gives none."""


class TrainingSpec(StrictModel):
    """Training settings shared by every run (see :class:`taskloss.training.TrainingConfig`).

    Attributes:
        epochs, batch_size, seed, grad_clip: as in ``TrainingConfig``.
        optimizer: Adam's settings (the generator's, with an adversarial term), in the shape of the
            built-in study files' ``training.optimizer`` (:class:`OptimizerConfig`: ``lr``, ``betas``,
            ``weight_decay``, ``step_epochs``, ``gamma``); ``lr`` :data:`STUDY_FILE_LR` and ``betas``
            :data:`ADAM_BETAS` unless given.
        lr, betas: shorthands of ``optimizer.lr`` and ``optimizer.betas`` (None: not given); giving one
            of them both ways is refused (one place for each setting).
        monitor: the validation metric that picks each run's best checkpoint; default the first
            of ``metrics`` (adversarial runs keep their last epoch).
    """

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float | None = Field(None, gt=0)
    betas: tuple[float, float] | None = None
    optimizer: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    grad_clip: float | None = Field(None, gt=0)
    monitor: Literal["mae", "psnr", "ssim", "hfen", "nmse"] | None = None

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_section(OptimizerConfig, value)  # a bad key or value is named when the file loads
        return value

    @model_validator(mode="after")
    def _one_place_for_each_setting(self) -> "TrainingSpec":
        both = [key for key in ("lr", "betas") if getattr(self, key) is not None and key in self.optimizer]
        if both:
            raise ValueError(f"{both[0]} is given twice, as training.{both[0]} and training.optimizer.{both[0]}; "
                             "keep one")
        return self

    def optimizer_config(self) -> OptimizerConfig:
        """Adam's settings of every run: ``optimizer`` over the shorthands over the defaults."""
        shorthands = {key: value for key in ("lr", "betas") if (value := getattr(self, key)) is not None}
        return OptimizerConfig(**{"lr": STUDY_FILE_LR, "betas": ADAM_BETAS, **shorthands, **self.optimizer})

    def config(self, monitor: str | None, devices: int = 1, accelerator: str = "auto") -> TrainingConfig:
        """The :class:`TrainingConfig` of a run that selects its best epoch by ``monitor``."""
        mode = "max" if monitor is not None and METRICS[monitor].higher_is_better else "min"
        return TrainingConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                              grad_clip=self.grad_clip, monitor=monitor, monitor_mode=mode, devices=devices,
                              accelerator=accelerator,  # type: ignore[arg-type]
                              optimizer=self.optimizer_config())


class SlurmSpec(StrictModel):
    """SLURM settings of ``--launcher slurm`` (submitit's ``slurm_*`` parameters, one job per run).

    Attributes:
        partition: the partition (None: the cluster's default).
        timeout_min: wall-time limit of each job, minutes.
        cpus_per_task: CPU cores per task.
        gpus_per_node: GPUs per job (a run with ``--devices N`` needs N).
        mem_gb: memory per job.
        additional: any other ``#SBATCH`` settings, e.g. ``{account: proj42, qos: normal}``.
    """

    partition: str | None = None
    timeout_min: int = Field(240, ge=1)
    cpus_per_task: int = Field(4, ge=1)
    gpus_per_node: int = Field(1, ge=0)
    mem_gb: int = Field(32, ge=1)
    additional: dict[str, Any] = Field(default_factory=dict)


class StudySpec(StrictModel):
    """A whole study file (see the module docstring and ``docs/studies.md``)."""

    name: str = Field(pattern=STUDY_NAME_PATTERN)
    task: TaskName = TASKS[0]
    data: AnyDataSpec
    networks: dict[str, NetworkSpec] = Field(min_length=1)
    losses: dict[str, LossSpec] = Field(min_length=1)
    metrics: list[Metric] = Field(default_factory=lambda: ["mae", "psnr", "ssim"], min_length=1)
    baseline: str | None = None
    primary: list[Literal[Metric, "dice", "sis"]] | None = None
    seeds: Seeds | None = None
    training: TrainingSpec = TrainingSpec()
    segmentation: SegmentationSpec = SegmentationSpec()
    figure_cases: int = Field(3, ge=1)
    slurm: SlurmSpec = SlurmSpec()
    detection: DetectionSettings | None = None

    @field_validator("data", mode="wrap")
    @classmethod
    def _data_of_task(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> AnyDataSpec:
        return data_spec(info.data.get("task"), value)

    @field_validator("networks", "losses")
    @classmethod
    def _folder_names(cls, entries: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        for key in entries:
            if not re.match(NAME_PATTERN, key):
                raise PydanticCustomError("name", "{what} name {key} may hold only letters, digits, '_' and '.'",
                                          {"what": {"networks": "network", "losses": "loss"}[str(info.field_name)],
                                           "key": repr(key)})
        return entries

    @field_validator("baseline")
    @classmethod
    def _baseline_is_a_loss(cls, baseline: str | None, info: ValidationInfo) -> str | None:
        losses = info.data.get("losses") or {}
        if baseline is not None and losses and baseline not in losses:
            raise PydanticCustomError("baseline", "{name} is not a loss of this study; choose one of {choices}",
                                      {"name": repr(baseline), "choices": ", ".join(losses)})
        return baseline

    @field_validator("primary")
    @classmethod
    def _primary_is_compared(cls, primary: list[str] | None, info: ValidationInfo) -> list[str] | None:
        metrics = info.data.get("metrics") or []
        for metric in primary or []:
            if metrics and metric not in [*metrics, "dice", "sis"]:
                raise PydanticCustomError("primary", "{metric} is not among the study's metrics ({metrics}) or "
                                          "dice / sis; add it to metrics or leave it out of primary",
                                          {"metric": metric, "metrics": ", ".join(metrics)})
        return primary

    @model_validator(mode="after")
    def _metrics_fit_the_data(self) -> "StudySpec":
        problems = extra_metric_problems(self.data.size, self.data.normalize)
        for metric in self.metrics:
            if metric in problems:
                # a ValueError, as below: its message names the key (the check spans data and metrics)
                raise ValueError(f"metrics: {metric} {problems[metric]}; leave it out or change the data")
        return self

    @model_validator(mode="after")
    def _networks_fit_the_data(self) -> "StudySpec":
        checks = [(f"networks.{key}", network.name, network.options) for key, network in self.networks.items()]
        checks += [(f"losses.{key}.adversarial.discriminator", loss.adversarial.discriminator.name,
                    loss.adversarial.discriminator.options)
                   for key, loss in self.losses.items() if loss.adversarial is not None]
        checks.append(("segmentation", self.segmentation.network, {"num_classes": 2, **self.segmentation.options}))
        checks.append(("segmentation.scorer", self.segmentation.scorer,
                       {"num_classes": 2, **self.segmentation.scorer_options}))
        for key, name, options in checks:
            problem = network_problem(name, options, self.data.size)
            if problem is not None:  # a ValueError: its message names the key (the check spans data and networks)
                raise ValueError(f"{key}{problem[0]}: {problem[1]}")
        return self

    @property
    def trains_task_network(self) -> bool:
        """Whether a loss needs the task network the engine trains (``task: {network: segmentation}``)."""
        return any(loss.trains_task_network for loss in self.losses.values())

    @property
    def baseline_loss(self) -> str:
        """The loss every other loss is tested against: ``baseline``, else the first loss."""
        return self.baseline or next(iter(self.losses))

    @property
    def monitor(self) -> str:
        """The metric that selects best checkpoints: ``training.monitor``, else the first of ``metrics``
        that validation computes (:data:`IMAGE_METRICS`), else ``mae``."""
        return self.training.monitor or next((m for m in self.metrics if m in IMAGE_METRICS), IMAGE_METRICS[0])


FILE_STUDY = "file"
"""``study:`` of the run configurations a study file's runs are written with."""


class FileRun(StrictModel):
    """One run of a study file: what its training depends on (``runs/<run>/config.yaml``).

    Hardware (devices, accelerator) and progress bars are not part of it: a run may resume on
    other hardware.
    """

    study: Literal["file"] = FILE_STUDY
    task: TaskName = TASKS[0]
    data: AnyDataSpec
    network: NetworkSpec
    loss: LossSpec
    training: TrainingConfig

    @field_validator("data", mode="wrap")
    @classmethod
    def _data_of_task(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> AnyDataSpec:
        return data_spec(info.data.get("task"), value)


def run_name(network: str, loss: str) -> str:
    """Folder name of a run: ``<network>-<loss>``."""
    return f"{network}-{loss}"


def build_runs(spec: StudySpec) -> dict[str, FileRun]:
    """Every network x loss of a study by run name, networks outer, losses inner (table order)."""
    return {run_name(network, loss): FileRun(task=spec.task, data=spec.data, network=spec.networks[network],
                                             loss=spec.losses[loss], training=spec.training.config(
                                                 None if spec.losses[loss].adversarial else spec.monitor))
            for network in spec.networks for loss in spec.losses}


def network_problem(name: str, options: dict[str, Any], size: int) -> tuple[str, str] | None:
    """What keeps network ``name`` with ``options`` from training on ``size`` x ``size`` images, in
    the study file's words: the key below the network's (``".options"`` or ``""``) and the problem;
    None when nothing does. The network is built on the meta device (no memory, no values).

    Examples:
        >>> network_problem("unet", {"widths": [4, 8]}, 64) is None
        True
        >>> network_problem("unet", {"widths": [4, 8, 16, 32, 64, 128]}, 16)  # doctest: +ELLIPSIS
        ('', 'unet with these options takes image sides that are multiples of 32 ... set data.size to 32, ...')
    """
    try:
        with torch.device("meta"):
            network = create_network(name, **options)
    except (TasklossError, TypeError, ValueError) as error:
        return ".options", str(error)
    if not isinstance(network, Network) or network.is_valid_size(size):
        return None
    multiple, smallest = network.size_multiple, network.min_size
    fit = max(smallest, -(-size // multiple) * multiple)
    below = size // multiple * multiple
    sizes = f"{fit}" if below < smallest or below == fit else f"{below} or {fit}"
    return "", (f"{name} with these options takes image sides that are multiples of {multiple} (its total stride), "
                f"at least {smallest} px, but data.size is {size}; set data.size to {sizes}, or make the network "
                "shallower (fewer levels in its options, e.g. fewer widths)")


def parse_study(data: dict[str, Any], source: str, base: Path | None = None) -> StudySpec:
    """Validate a study mapping; a data folder relative to ``base`` is made absolute.

    Raises:
        ConfigError: one line naming ``source``, each bad key and the choices.
    """
    spec = validate_config(StudySpec, data, source)
    folder = spec.data.data_folder()
    if base is not None and folder is not None and not folder.is_absolute():
        spec.data = spec.data.with_data_folder((base / folder).resolve())
    return spec


def load_study(path: Path) -> StudySpec:
    """Read and validate a study file (YAML)."""
    return parse_study(load_yaml(path), str(path), Path(path).parent)
