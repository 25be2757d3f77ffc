"""Training the domain perception network (``taskloss train-perception``).

Two tasks, trained together. Training images come from simulated heads
(:func:`taskloss.data.phantoms.head_phantom`, with a wider anatomical variation than the studies'
default, :data:`TRAINING_VARIATION`):

- 2-D slices (axial, coronal, sagittal) of the MR volume in two contrasts (two of T1-, T2- and
  PD-weighted, by subject) and of the attenuation (CT) volume; the target of a pixel is the tissue
  fractions of its voxel;
- MR and X-ray projections over a half turn, normalised exactly as the mr2xray data (MR min-max per
  image; the X-ray in the radiograph display of :class:`taskloss.data.physics.RadiographDisplay`);
  the target of a pixel is the share of each tissue in the path of its ray through the head (air
  outside the head not counted; a ray that misses the head is all air).

Supervised: per-pixel tissue composition, soft-label cross-entropy. Self-supervised: the input is
corrupted (Gaussian noise and a blur of random strength) and one more output channel restores the
clean image (L1, weight ``self_supervised_weight``), so the features keep the fine intensity
structure that the tissue labels alone do not ask for.

The network (:class:`taskloss.features.domain.DomainFeatures`) gets a light head for training: a
1x1 convolution on each tapped layer to the tissue logits and the restored image, upsampled to the
input size and summed (FCN-style). Only the feature layers are saved. Held-out subjects give the
reported accuracy (argmax agreement on slices) and composition error (on projections).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from torch import nn

from taskloss.config import StrictModel
from taskloss.data.fields import generator_for
from taskloss.data.mr2xray import normalize_min_max
from taskloss.data.phantoms import Variation, head_phantom
from taskloss.data.physics import (
    N_TISSUES,
    RadiographDisplay,
    SpinEcho,
    Tissue,
    attenuation_volume,
    gaussian_blur,
    mr_volume,
)
from taskloss.data.projector import Beam, Geometry, project
from taskloss.features.domain import DOMAIN_LAYERS, DomainFeatures
from taskloss.training.checkpoint import atomic_write

MIN_TISSUE_PATH_MM = 2.0  # a ray with less non-air tissue than this counts as missing the head
FIELD_OF_VIEW_MM = 260.0  # the projections' field of view, as the mr2xray data's default
TRAINING_VARIATION = Variation(rotation_deg=12.0, scale=0.12, deformation_mm=4.0, thickness=0.3)
"""Subjects vary more than in the studies' data (rotation, scale, deformation, layer thickness), so
the features see more anatomy than the studies' test subjects."""


class PerceptionTrainingConfig(StrictModel):
    """Settings of ``taskloss train-perception`` (frozen; a bad setting names its key, :mod:`taskloss.config`).

    Attributes:
        subjects: simulated training subjects (2 more are held out for the reported scores).
        size: side of the training crops in pixels; examples are simulated at 1.5 times this size
            and random crops of half to all of them are resized to it.
        slices_per_subject: slices per volume and subject.
        angles: projection views per subject.
        steps: optimiser steps.
        batch_size: images per step.
        lr: Adam learning rate.
        seed: seed of the phantoms, sampling and weights.
        self_supervised_weight: weight of the restoration term (0: tissue labels only).
        corruption_noise: largest standard deviation of the input noise of the restoration task.
    """

    model_config = ConfigDict(frozen=True)

    subjects: int = Field(8, ge=1)
    size: int = Field(64, ge=8)
    slices_per_subject: int = Field(24, ge=1)
    angles: int = Field(12, ge=1)
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0
    self_supervised_weight: float = Field(1.0, ge=0)
    corruption_noise: float = Field(0.1, ge=0)


class _TrainingHead(nn.Module):
    """FCN head on the tapped layers: 1x1 conv to tissue logits, upsampled and summed."""

    def __init__(self, network: DomainFeatures) -> None:
        super().__init__()
        self.network = network
        with torch.no_grad():  # the channels of each tapped layer, from one tiny forward pass
            probe = network(torch.zeros(1, 1, 8, 8), DOMAIN_LAYERS)
        widths = {name: value.shape[1] for name, value in probe.items()}
        self.heads = nn.ModuleDict({name: nn.Conv2d(w, N_TISSUES + 1, 1) for name, w in widths.items()})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Tissue logits (B, N_TISSUES, H, W) and the restored image (B, 1, H, W), concatenated."""
        spec = self.network.input_spec
        features = self.network((images - spec.mean[0]) / spec.std[0], DOMAIN_LAYERS)
        size = images.shape[-2:]
        return torch.stack([F.interpolate(self.heads[name](value), size=size, mode="bilinear",
                                          align_corners=False) for name, value in features.items()]).sum(0)


def _slices(volume: torch.Tensor, fractions: torch.Tensor, count: int, size: int,
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random slices through the head: images (count, 1, S, S), targets (count, K, S, S)."""
    if count == 0:
        return torch.zeros(0, 1, size, size), torch.zeros(0, fractions.shape[0], size, size)
    head = fractions[Tissue.AIR] < 0.5
    images, targets = [], []
    for _ in range(count):
        axis = int(torch.randint(0, 3, (1,), generator=generator))
        positions = torch.nonzero(head.movedim(axis, 0).flatten(1).any(dim=1)).flatten()
        # Skip the outer sixth on each side: slices there show little but skin and air.
        low, high = int(positions[len(positions) // 6]), int(positions[-(len(positions) // 6) - 1])
        index = int(torch.randint(low, high + 1, (1,), generator=generator))
        image = volume.select(axis, index)[None, None]
        target = fractions.select(axis + 1, index)[None]
        images.append(_square(image, size))
        targets.append(_square(target, size))
    return normalize_min_max(torch.cat(images)), torch.cat(targets)


def _square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Pad (N, C, H, W) to a square (edge values) and resize to ``size`` (area)."""
    height, width = image.shape[-2:]
    side = max(height, width)
    pad = ((side - width) // 2, side - width - (side - width) // 2, (side - height) // 2,
           side - height - (side - height) // 2)
    return F.interpolate(F.pad(image, pad, mode="replicate"), size=(size, size), mode="area")


def _projections(mr: torch.Tensor, mu: torch.Tensor, fractions: torch.Tensor, spacing: tuple[float, ...],
                 angles: list[float], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MR and X-ray projections (2A, 1, S, S) and their ray compositions (2A, K, S, S)."""
    geometry = Geometry(size=size, field_of_view_mm=FIELD_OF_VIEW_MM, beam=Beam.CONE)
    volumes = torch.cat([mr, mu, fractions])[None]
    lines = project(volumes, spacing, angles, geometry)[0]  # (2 + K, A, S, S)
    path = lines[2:].permute(1, 0, 2, 3).clamp(min=0)  # (A, K, S, S) mm of each tissue
    tissue = path.clone()
    tissue[:, Tissue.AIR] = 0
    total = tissue.sum(dim=1, keepdim=True)
    composition = torch.where(total > MIN_TISSUE_PATH_MM, tissue / total.clamp(min=1e-6),
                              F.one_hot(torch.zeros_like(total[:, 0], dtype=torch.long),
                                        N_TISSUES).permute(0, 3, 1, 2).float())
    xray = RadiographDisplay()(lines[1][:, None].clamp(min=0), geometry.pixel_mm)
    images = torch.cat([normalize_min_max(lines[0][:, None]), xray])
    return images, torch.cat([composition, composition])


def simulate_examples(subject: int, config: PerceptionTrainingConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Training examples of one subject: images (N, 1, S, S) in [0, 1] and soft targets (N, K, S, S)."""
    phantom = head_phantom(subject, config.seed, spacing_mm=2, variation=TRAINING_VARIATION)
    generator = generator_for(config.seed, subject, 0xD0)
    weightings = ("t1", "t2", "pd")
    first, second = weightings[subject % 3], weightings[(subject + 1) % 3]
    mr = mr_volume(phantom.fractions, phantom.properties, SpinEcho.preset(first), 0.2, generator)
    mr_second = mr_volume(phantom.fractions, phantom.properties, SpinEcho.preset(second), 0.2, generator)
    mu = attenuation_volume(phantom.fractions, phantom.properties)
    half = config.slices_per_subject // 2
    size = config.size * 3 // 2
    mr_images, mr_targets = _slices(mr[0], phantom.fractions, half - half // 2, size, generator)
    second_images, second_targets = _slices(mr_second[0], phantom.fractions, half // 2, size, generator)
    ct_images, ct_targets = _slices(mu[0], phantom.fractions, half, size, generator)
    angles = [k * 180.0 / config.angles + 7.0 * subject for k in range(config.angles)]
    projection_images, projection_targets = _projections(mr, mu, phantom.fractions, phantom.spacing,
                                                          angles, size)
    return (torch.cat([mr_images, second_images, ct_images, projection_images]),
            torch.cat([mr_targets, second_targets, ct_targets, projection_targets]))


@dataclass(frozen=True)
class PerceptionTrainingResult:
    """Scores of the trained network on 2 held-out subjects.

    Attributes:
        slice_accuracy: share of slice pixels whose predicted dominant tissue is the true one.
        projection_error: mean absolute error of the predicted ray composition on projections.
        final_loss: training loss over the last 50 steps.
    """

    slice_accuracy: float
    projection_error: float
    final_loss: float


def train_domain_network(out: Path, config: PerceptionTrainingConfig,
                         progress: Callable[[str, int, int], None] | None = None) -> PerceptionTrainingResult:
    """Simulate the examples, train the network, save its feature weights to ``out`` atomically.

    Args:
        out: the weights file to write.
        config: the settings.
        progress: called with (phase, done, total) as subjects are simulated and steps taken.
    """
    torch.manual_seed(config.seed)
    examples = []
    total = config.subjects + 2
    for subject in range(total):
        examples.append(simulate_examples(subject, config))
        if progress:
            progress("simulate", subject + 1, total)
    images = torch.cat([e[0] for e in examples[: config.subjects]])
    targets = torch.cat([e[1] for e in examples[: config.subjects]])
    model = _TrainingHead(DomainFeatures(random=True, seed=config.seed))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    generator = torch.Generator().manual_seed(config.seed)
    losses = []
    for step in range(config.steps):
        index = torch.randint(0, len(images), (config.batch_size,), generator=generator)
        batch, target = _augment(images[index], targets[index], generator, config.size)
        output = model(_corrupt(batch, config.corruption_noise, generator))
        loss = -(target * F.log_softmax(output[:, :N_TISSUES], dim=1)).sum(dim=1).mean()
        if config.self_supervised_weight > 0:
            loss = loss + config.self_supervised_weight * F.l1_loss(output[:, N_TISSUES:], batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if progress and (step + 1) % 10 == 0:
            progress("train", step + 1, config.steps)
    result = _evaluate(model, examples[config.subjects :], config, sum(losses[-50:]) / len(losses[-50:]))
    state = {f"features.{k}": v.detach().clone() for k, v in model.network.features.state_dict().items()}
    atomic_write(out, lambda tmp: torch.save(state, tmp))
    return result


def _augment(images: torch.Tensor, targets: torch.Tensor, generator: torch.Generator, size: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """A random square crop (half to all of the side) resized to ``size`` (so anatomy appears at
    several pixel scales, as at 64 to 256 px in the studies), a random flip and a random gamma
    (contrast) per image; targets cropped, resized and flipped alike."""
    side = images.shape[-1]
    crop = int(torch.randint(side // 2, side + 1, (), generator=generator))
    top, left = (int(torch.randint(0, side - crop + 1, (), generator=generator)) for _ in range(2))
    images = F.interpolate(images[..., top : top + crop, left : left + crop], size=(size, size),
                           mode="bilinear", align_corners=False, antialias=True)
    targets = F.interpolate(targets[..., top : top + crop, left : left + crop], size=(size, size),
                            mode="bilinear", align_corners=False, antialias=True)
    if bool(torch.rand((), generator=generator) < 0.5):
        images, targets = images.flip(-1), targets.flip(-1)
    gamma = torch.exp(0.3 * torch.randn(len(images), 1, 1, 1, generator=generator))
    return images.clamp(min=0) ** gamma, targets


def _corrupt(images: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """The restoration task's input: a Gaussian blur of sigma 0 to 1 px (one per batch) and Gaussian
    noise of standard deviation 0 to ``noise`` (one per image); ``noise`` 0 returns the images."""
    if noise <= 0:
        return images
    blurred = gaussian_blur(images, float(torch.rand((), generator=generator)))
    sigma = noise * torch.rand(len(images), 1, 1, 1, generator=generator)
    return blurred + sigma * torch.randn(images.shape, generator=generator)


def _evaluate(model: _TrainingHead, held_out: list[tuple[torch.Tensor, torch.Tensor]],
              config: PerceptionTrainingConfig, final_loss: float) -> PerceptionTrainingResult:
    model.eval()
    n_slices = 2 * (config.slices_per_subject // 2)
    correct, pixels, errors = 0.0, 0, []
    with torch.no_grad():
        for images, targets in held_out:
            prediction = torch.softmax(model(images)[:, :N_TISSUES], dim=1)
            slices = slice(0, n_slices)
            correct += float((prediction[slices].argmax(1) == targets[slices].argmax(1)).sum())
            pixels += prediction[slices, 0].numel()
            errors.append(float((prediction[n_slices:] - targets[n_slices:]).abs().sum(1).mean() / 2))
    return PerceptionTrainingResult(correct / pixels, sum(errors) / len(errors), final_loss)

