"""The trained runs of the CS-MRI study (Seitzer et al. 2018): RecNet, refinement, DAGAN, segmentation.

- ``recnet`` (stage 1): the deep cascade with data consistency, MSE on the 2-channel complex image;
  best checkpoint by validation MSE.
- ``refinement`` (stage 2): V = R(x) + s u on the frozen stage-1 RecNet (its best checkpoint),
  against Seitzer et al.'s PatchGAN on magnitudes; generator loss = CompositeLoss of the
  adversarial term (BCE, non-saturating; D with one-sided label smoothing 0.9), feature matching,
  a VGG term (MSE of relu5_4 features of magnitudes; on the domain network offline, its deepest
  layer conv4_2) and the penalty mean |u|, normalised by the first batch ("first", the paper's
  rule) or with the released constants 0.5 / 1 / 10 / 2 ("fixed"). A pool of 80 past fakes,
  Adam 2e-4 with beta1 0.5 for both networks. GAN validation metrics do not measure what it
  optimises, so its last epoch is kept.
- ``dagan`` (baseline, Yang et al. 2018): U-Net generator with residual output on the zero-filled
  magnitude in [-1, 1]; loss 1 adversarial + 15 NMSE + 0.0025 VGG (pool4 features, MSE; pool3
  of the domain network offline) + 0.1 frequency MSE; Adam 1e-4, beta1 0.5, lr halved every 5
  epochs; best checkpoint by validation NMSE (its early stopping).
- ``segmentation`` (:class:`LesionSegmentation`): a lesion-segmentation network trained on
  ground-truth magnitudes (cross-entropy with the lesion class weighted up); best by validation
  Dice. It is the one segmentation run kind of every study (:mod:`taskloss.studies.segmentation`)
  on the study's data as ``task: csmri-simulator`` (the same slices and split). The same stage trains
  the task network of the task loss and, with another network, seed and half of the training
  subjects, the independent SIS scorer.
- task loss (``task_run``): a ``recnet`` run adds the :class:`~taskloss.losses.TaskLoss` of the
  segmentation network of ``task_run`` to its MSE, a ``refinement`` run adds it to its composite:
  ``KL(softmax s(ground truth) || softmax s(reconstruction))`` of the network's lesion logits on
  magnitudes (task consistency, no labels). With ``loss_mode: first`` each term is divided by
  its mean over the first ``task_balance_batches`` batches and the task term then weighs
  ``task_weight`` (MSE, resp. the VGG term, weighs 1).
- observer loss (``observer``, ``recnet`` runs): MSE + ``weight`` x the CHO observer loss of a disc
  inserted into each training batch's ground truth (:class:`~taskloss.studies.detection.ObserverTerm`,
  :class:`ObserverFineTuning`), balanced as the task term is (``loss_mode``, ``task_balance_batches``).
- ``init_run`` (``recnet`` runs): start from the best weights of that RecNet run instead of random
  weights (fine-tuning; the presets fine-tune the trained RecNet with the task term, and with MSE
  alone as the same-budget control).
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from lightning.fabric import Fabric
from pydantic import Discriminator, Field
from torch import nn

from taskloss.config import UNION_TAG, StrictModel, tag
from taskloss.data.csmri import CsmriConfig
from taskloss.data.kspace import magnitude
from taskloss.data.signals import cut_rois
from taskloss.data.sources import CsmriSource
from taskloss.errors import ConfigError
from taskloss.features import VGG19Features
from taskloss.losses import (
    SEITZER_FIRST_WEIGHTS,
    SEITZER_FIXED_WEIGHTS,
    AdversarialLoss,
    CompositeLoss,
    PerceptualLoss,
    TaskLoss,
    feature_matching_loss,
    frequency_mse_loss,
    generator_loss,
    output_penalty,
)
from taskloss.losses.pixel import nmse_loss
from taskloss.metrics import nmse, psnr, ssim
from taskloss.metrics.registry import score
from taskloss.networks import VisualRefinement, create_network
from taskloss.studies.common import BuiltinRun, TrainSubjects, validate_config
from taskloss.studies.detection import ObserverTerm, signal_batch
from taskloss.studies.layout import CHECKPOINT_DIR, RUN_CONFIG_FILE
from taskloss.studies.perception import PerceptionChoice, perception_network
from taskloss.studies.segmentation import SegmentationRun, load_segmentation
from taskloss.studies.task_loss import WeightedSum
from taskloss.training import SupervisedTask, TrainingConfig
from taskloss.training.adversarial import AdversarialTask, Generated
from taskloss.training.checkpoint import read_checkpoint
from taskloss.training.config import OptimizerConfig, load_yaml
from taskloss.training.task import Batch, TrainingTask

Stage = Literal["recnet", "refinement", "dagan"]
LESION_WEIGHT = 10.0  # lesions cover about 1 % of a slice's pixels; weight them up in the CE
DAGAN_WEIGHTS = {"adversarial": 1.0, "nmse": 15.0, "vgg": 0.0025, "frequency": 0.1}
"""DAGAN's loss constants (Yang et al. 2018)."""


class CsmriRun(BuiltinRun):
    """One trained run of the CS-MRI study."""

    study: Literal["csmri"] = "csmri"
    stage: Stage
    network: str
    network_options: dict[str, Any] = Field(default_factory=dict)
    discriminator_options: dict[str, Any] = Field(default_factory=dict)
    discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999))
    recnet_run: str | None = Field(None, description="refinement: the stage-1 run folder")
    loss_mode: Literal["first", "fixed"] = "first"
    perception: PerceptionChoice = "auto"
    pool_size: int = Field(80, ge=0)
    task_run: str | None = Field(None, description="recnet, refinement: the segmentation run of the task loss")
    task_weight: float = Field(1.0, gt=0, description="weight of the task term after balancing")
    task_balance_batches: int = Field(5, ge=1, description="batches whose mean balances each term")
    init_run: str | None = Field(None, description="recnet: start from this RecNet run's best weights")
    observer: ObserverTerm | None = Field(None, description="recnet: add the observer loss of an inserted disc")
    data: CsmriConfig = Field(default_factory=CsmriConfig)
    training: TrainingConfig = TrainingConfig()

    def training_task(self, run_dir: Path) -> tuple[TrainingTask, str]:
        """The run's training task and loss description (:func:`csmri_task`)."""
        return csmri_task(self, run_dir)


class LesionSegmentation(StrictModel):
    """A ``stage: segmentation`` run of a csmri study file: its settings but the data (:meth:`run`)."""

    stage: Literal["segmentation"]
    network: str
    network_options: dict[str, Any] = Field(default_factory=dict)
    train_subjects: TrainSubjects = "all"
    training: TrainingConfig

    def run(self, data: Mapping[str, Any], training: Mapping[str, Any]) -> SegmentationRun:
        """The :class:`SegmentationRun`: lesions (2 classes, the lesion's cross-entropy weight
        :data:`LESION_WEIGHT`) of the ground-truth magnitudes of the study's ``data`` section (as
        ``task: csmri-simulator``), with the ``training`` overrides (the hardware)."""
        return SegmentationRun(data=CsmriSource.model_validate(dict(data)), network=self.network,
                               options=self.network_options, classes=2, class_weights=(1.0, LESION_WEIGHT),
                               train_subjects=self.train_subjects,
                               training=TrainingConfig(**{**self.training.model_dump(exclude_unset=True), **training}))


def _stage_kind(value: Any) -> str:
    stage = value.get("stage") if isinstance(value, dict) else getattr(value, "stage", None)
    return f"{UNION_TAG}segmentation" if stage == "segmentation" else f"{UNION_TAG}run"


CsmriFileRun = Annotated[Annotated[CsmriRun, tag("run")] | Annotated[LesionSegmentation, tag("segmentation")],
                         Discriminator(_stage_kind)]
"""A run of a csmri study file's ``runs:``: a :class:`LesionSegmentation` for ``stage: segmentation``,
else a :class:`CsmriRun` (whose ``stage`` check names the stages)."""


def magnitude_metrics(image: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
    """MSE of the 2-channel image, and PSNR, SSIM, NMSE of its magnitude against the ground truth's
    (data_range = each ground-truth slice's maximum, as Seitzer et al.)."""
    return {**score(("mse",), image, batch["target"], "target_max"),
            **score(("nmse", "psnr", "ssim"), magnitude(image), batch["magnitude"], "target_max")}


def reconstruct(model: nn.Module, batch: Batch) -> torch.Tensor:
    """``model(zero-filled, k-space, mask)``: RecNet's call."""
    return model(batch["input"], batch["kspace"], batch["mask"])


def dagan_input(batch: Batch) -> torch.Tensor:
    """DAGAN's input: the zero-filled magnitude mapped from [0, 1] to [-1, 1] (clipped)."""
    return (2.0 * magnitude(batch["input"]) - 1.0).clamp(-1.0, 1.0)


def dagan_output_magnitude(output: torch.Tensor) -> torch.Tensor:
    """A DAGAN output in [-1, 1] as a magnitude in [0, 1]."""
    return (output + 1.0) / 2.0


def _dagan_metrics(output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
    reference = batch["magnitude"]
    estimate = dagan_output_magnitude(output)
    return {"nmse": nmse(estimate, reference), "psnr": psnr(estimate, reference, data_range="target_max"),
            "ssim": ssim(estimate, reference, data_range="target_max")}


def _perceptual(run: CsmriRun, vgg_layer: str, domain_layer: str, input_range: tuple[float, float]
                ) -> PerceptualLoss:
    """A one-layer l2 perceptual loss: ``vgg_layer`` of VGG-19, or ``domain_layer`` of the domain
    network when VGG-19's weights are not available."""
    network, _ = perception_network(run.perception)
    layer = vgg_layer if isinstance(network, VGG19Features) else domain_layer
    return PerceptualLoss(layers=(layer,), distance="l2", network=network, input_range=input_range)


def load_recnet(run_dir: Path) -> nn.Module:
    """The stage-1 RecNet of a run folder with its best weights."""
    return load_trained(run_dir, "recnet", "recnet_run")


def load_trained(run_dir: Path, stage: Stage, key: str) -> nn.Module:
    """The network of a finished run folder of ``stage`` with its best weights, in eval mode.

    Args:
        run_dir: the run folder.
        stage: the stage it must hold.
        key: the option that named the folder (for the error message).
    """
    config = validate_config(CsmriRun, load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))
    if config.stage != stage:
        raise ConfigError(f"{run_dir} holds a {config.stage!r} run; {key} must name a {stage!r} run")
    model = create_network(config.network, **config.network_options)
    model.load_state_dict(read_checkpoint(run_dir / CHECKPOINT_DIR / "best.ckpt")["task"]["model"])
    return model.eval()


def task_loss(run: CsmriRun, run_dir: Path, complex_input: bool) -> TaskLoss:
    """The task loss of a run: KL of the lesion-segmentation network of ``run.task_run`` (its best
    checkpoint) on magnitudes in [0, 1]; ``complex_input`` takes 2-channel complex images."""
    assert run.task_run is not None
    network = load_segmentation(run_dir.parent / run.task_run)  # an absolute task_run replaces the parent
    return TaskLoss(network, output="kl", preprocess=magnitude if complex_input else None,
                    description=f"lesion-segmentation UNet of run {run.task_run!r} (best checkpoint)")


def _task_weights(run: CsmriRun, weights: dict[str, float], term: str = "task",
                  losses: dict[str, nn.Module] | None = None) -> CompositeLoss:
    """``weights`` plus the task term (``term``: "task" at ``task_weight``, "observer" at the observer's
    weight), balanced over the first ``task_balance_batches`` batches (``loss_mode: first``) or fixed;
    ``losses`` are the term modules :meth:`CompositeLoss.pair_terms` calls."""
    mode = run.loss_mode
    weight = run.observer.weight if term == "observer" and run.observer is not None else run.task_weight
    return CompositeLoss({**weights, term: weight}, normalize=mode,
                         normalize_batches=run.task_balance_batches if mode == "first" else 1, losses=losses)


def _recnet_factory(run: CsmriRun, run_dir: Path) -> Callable[[], nn.Module]:
    """A new RecNet, or with ``init_run`` the best weights of that RecNet run, trainable."""
    if run.init_run is None:
        return lambda: create_network(run.network, **run.network_options)
    init_dir = run_dir.parent / run.init_run  # an absolute init_run replaces the parent
    return lambda: load_trained(init_dir, "recnet", "init_run").train()


class ObserverFineTuning(SupervisedTask):
    """RecNet trained on MSE + the observer loss of a disc inserted into each batch (:class:`ObserverTerm`).

    One step reconstructs the batch (MSE against the ground truth, and the signal-absent ROIs) and the
    same slices with the disc in their ground truth, acquired again with their masks (the signal-present
    ROIs); the CHO's d' on the outputs' ROIs is compared with its d' on the ground truth's
    (:class:`~taskloss.losses.ObserverLoss`). The locations are drawn from the global torch generator,
    which the engine seeds and checkpoints. Validation is the plain RecNet's (:func:`magnitude_metrics`).
    """

    def __init__(self, model_factory: Callable[[], nn.Module], term: ObserverTerm, composite: CompositeLoss) -> None:
        super().__init__(model_factory, composite, magnitude_metrics, forward=reconstruct)
        self.term = term
        self.observer = term.loss()

    def training_step(self, batch: Batch, fabric: Fabric) -> dict[str, torch.Tensor]:
        """Forward of both versions, MSE + observer term, backward, (clip), Adam step; logs both raw terms."""
        self.optimizer.zero_grad(set_to_none=True)
        pred = self.forward(self.model, batch)
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        present, locations = signal_batch(batch, self.term.signal(), self.term.roi, seed)
        pred_present = self.forward(self.model, present)
        roi = (self.term.roi, self.term.roi)
        rois = [cut_rois(image, locations, roi) for image in
                (magnitude(pred_present), magnitude(pred), present["magnitude"], batch["magnitude"])]
        mse_term = nn.functional.mse_loss(pred, batch["target"])
        output = self.criterion({"mse": mse_term, "observer": self.observer(*rois)})
        fabric.backward(output.total)
        if self.grad_clip is not None:
            fabric.clip_gradients(self.model, self.optimizer, max_norm=self.grad_clip)
        self.optimizer.step()
        return {"loss": output.total.detach(), **{f"raw_{name}": value for name, value in output.raw.items()}}


def _recnet_task(run: CsmriRun, run_dir: Path) -> tuple[TrainingTask, str]:
    factory = _recnet_factory(run, run_dir)
    start = f", fine-tuned from run {run.init_run!r}" if run.init_run is not None else ""
    balance = (f"each term divided by its mean over the first {run.task_balance_batches} batches"
               if run.loss_mode == "first" else "raw terms")
    if run.observer is not None:
        if run.task_run is not None:
            raise ConfigError("a recnet run takes either task_run (the task loss) or observer (the observer loss), "
                              "not both; make two runs")
        return ObserverFineTuning(factory, run.observer, _task_weights(run, {"mse": 1.0}, "observer")), (
            f"MSE on the complex image + {run.observer.weight:g} x {run.observer.description()} ({balance}){start}")
    if run.task_run is None:
        task = SupervisedTask(factory, nn.MSELoss(), magnitude_metrics, forward=reconstruct)
        return task, f"MSE on the complex image (2 channels){start}"
    task_term = task_loss(run, run_dir, complex_input=True)
    criterion = WeightedSum(_task_weights(run, {"mse": 1.0}, losses={"mse": nn.MSELoss(), "task": task_term}))
    task = SupervisedTask(factory, criterion, magnitude_metrics, forward=reconstruct)
    return task, (f"MSE on the complex image + {run.task_weight:g} x {task_term.description} ({balance}){start}")


def _refinement_task(run: CsmriRun, run_dir: Path) -> tuple[TrainingTask, str]:
    if run.recnet_run is None:
        raise ConfigError("a refinement run needs recnet_run: the folder of a trained RecNet run")
    recnet_dir = run_dir.parent / run.recnet_run  # an absolute recnet_run replaces the parent
    vgg = _perceptual(run, "relu5_4", "conv4_2", (0.0, 1.0))

    def generate(model: nn.Module, batch: Batch) -> Generated:
        output = reconstruct(model, batch)
        return Generated(output.image, {"update": output.update})

    def terms(generated: Generated, d_fake: Any, d_real: Any, batch: Batch) -> dict[str, torch.Tensor]:
        return {"adversarial": generator_loss(d_fake, "bce"),
                "feature_matching": feature_matching_loss(d_fake, d_real),
                "vgg": vgg(magnitude(generated.image), batch["magnitude"]),
                "penalty": output_penalty(generated.extras["update"])}

    def generator() -> nn.Module:
        return VisualRefinement(recnet=load_recnet(recnet_dir), **run.network_options)

    composite = CompositeLoss.seitzer(run.loss_mode)
    loss_modules: list[nn.Module] = [vgg]
    described = ""
    if run.task_run is not None:
        task_term = task_loss(run, run_dir, complex_input=False)
        loss_modules.append(task_term)
        composite = _task_weights(run, SEITZER_FIRST_WEIGHTS if run.loss_mode == "first" else SEITZER_FIXED_WEIGHTS)
        seitzer_terms = terms

        def terms(generated: Generated, d_fake: Any, d_real: Any, batch: Batch) -> dict[str, torch.Tensor]:
            return {**seitzer_terms(generated, d_fake, d_real, batch),
                    "task": task_term(magnitude(generated.image), batch["magnitude"])}

        described = f", {run.task_weight:g} x {task_term.description}"
    task = AdversarialTask(
        generator, lambda: create_network("patch_discriminator", **run.discriminator_options), generate,
        magnitude, lambda batch: batch["target"], terms, composite,
        AdversarialLoss("bce", real_label=0.9), magnitude_metrics, run.discriminator_optimizer,
        pool_size=run.pool_size, loss_modules=loss_modules)
    return task, (f"CompositeLoss ({run.loss_mode}) of BCE adversarial, feature matching, {vgg.description}, "
                  f"penalty mean |u|{described}")


def _dagan_task(run: CsmriRun) -> tuple[TrainingTask, str]:
    vgg = _perceptual(run, "pool4", "pool3", (-1.0, 1.0))

    def generate(model: nn.Module, batch: Batch) -> Generated:
        return Generated(model(dagan_input(batch)), {})

    def real(batch: Batch) -> torch.Tensor:
        return 2.0 * batch["magnitude"] - 1.0

    def terms(generated: Generated, d_fake: Any, d_real: Any, batch: Batch) -> dict[str, torch.Tensor]:
        target = real(batch)
        return {"adversarial": generator_loss(d_fake, "bce"),
                "nmse": nmse_loss(generated.image, target, squared=False),
                "vgg": vgg(generated.image, target),
                "frequency": frequency_mse_loss(generated.image, target, input_range=(-1.0, 1.0))}

    size = run.data.size
    task = AdversarialTask(
        lambda: create_network(run.network, **run.network_options),
        lambda: create_network("dagan_discriminator", **{"image_size": size, **run.discriminator_options}),
        generate, lambda image: image, real, terms, CompositeLoss(DAGAN_WEIGHTS, normalize="fixed"),
        AdversarialLoss("bce"), _dagan_metrics, run.discriminator_optimizer, pool_size=0, loss_modules=[vgg])
    return task, f"DAGAN: 1 adversarial + 15 NMSE + 0.0025 {vgg.description} + 0.1 frequency MSE"


def csmri_task(run: CsmriRun, run_dir: Path) -> tuple[TrainingTask, str]:
    """The task of a run and a one-line description of its loss."""
    if run.task_run is not None and run.stage not in ("recnet", "refinement"):
        raise ConfigError(f"task_run applies to recnet and refinement runs, not to a {run.stage!r} run; remove it")
    if run.init_run is not None and run.stage != "recnet":
        raise ConfigError(f"init_run applies to recnet runs, not to a {run.stage!r} run; remove it")
    if run.observer is not None and run.stage != "recnet":
        raise ConfigError(f"observer applies to recnet runs, not to a {run.stage!r} run; remove it")
    if run.stage == "recnet":
        return _recnet_task(run, run_dir)
    if run.stage == "refinement":
        return _refinement_task(run, run_dir)
    return _dagan_task(run)
