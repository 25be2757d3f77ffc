"""Adversarial training: a generator against a discriminator, one D step per G step.

Used by Seitzer et al.'s visual refinement (stage 2) and by the DAGAN baseline. Per batch:

1. the generator produces its output (and any extras, e.g. the refinement's residual u);
2. **D step**: the discriminator sees the real images and fakes drawn from a pool of past fakes
   (:class:`FakePool`; Shrivastava et al. 2017, as Seitzer et al.), and its adversarial loss is
   minimised;
3. **G step**: the discriminator's outputs are computed *again* after its update (in-place updates
   would otherwise invalidate the graph in modern PyTorch, as Seitzer et al. note), the
   problem-specific generator terms are computed and combined by a
   :class:`~taskloss.losses.CompositeLoss` (fixed or first-batch-normalised weights).

By default (``joint_batch=True``) the discriminator sees the real images and the fakes in *one*
forward pass (concatenated along the batch), in both steps. With batch normalisation in the
discriminator, separate passes normalise an all-real and an all-fake batch each by its own
statistics: every channel then has the same batch mean (BN's shift) for real and fake batches, and
where the feature maps are small (a 2 x 2 PatchGAN map at 64 px, DAGAN's 1 x 1 map before its
dense layer) the logits' batch mean barely depends on the class, so the discriminator stays near
chance (measured: loss at 2 ln 2 throughout). One joint pass shares the statistics, as the
discriminator's evaluation mode would.

The training log records, besides the loss terms, the discriminator's accuracy on the real images
(``d_accuracy_real``, in the D step) and on the current fakes after its update
(``d_accuracy_fake``, in the G step): 0.5 is chance.

The checkpoint holds both networks, both optimisers, the composite's constants, the pool and its
random generator, so a resumed run continues exactly.
"""

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from lightning.fabric import Fabric
from torch import nn

from taskloss.losses import AdversarialLoss, CompositeLoss
from taskloss.losses.adversarial import DiscriminatorOutput, discriminator_logits
from taskloss.training.config import OptimizerConfig, TrainingConfig
from taskloss.training.task import Batch, Stateful, TrainingTask, make_adam, make_schedule


class Generated(NamedTuple):
    """A generator's output for a batch.

    Attributes:
        image: the output in the task's image space (what the metrics score).
        extras: named by-products the generator terms need (e.g. the residual "update").
    """

    image: torch.Tensor
    extras: dict[str, torch.Tensor]


def discriminator_accuracy(output: DiscriminatorOutput, real: bool) -> torch.Tensor:
    """Share of a discriminator's decisions that are right: logits > 0 ("real") for real images,
    logits < 0 for fakes; over every logit (every patch of a PatchGAN) of every scale.

    Args:
        output: the discriminator's output for a batch of images (all real or all fake).
        real: whether the batch is real.

    Returns:
        A scalar in [0, 1] (no graph); 0.5 is chance.
    """
    logits = torch.cat([x.detach().flatten().float() for x in discriminator_logits(output)])
    return ((logits > 0) if real else (logits < 0)).float().mean()


def _split_output(output: DiscriminatorOutput, count: int) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
    """Split a discriminator output (tensor, list, or list of lists) after the first ``count`` images."""
    if isinstance(output, torch.Tensor):
        return output[:count], output[count:]
    parts = [_split_output(item, count) for item in output]
    return [first for first, _ in parts], [second for _, second in parts]


def _detach_output(output: DiscriminatorOutput) -> DiscriminatorOutput:
    """The same output with every tensor detached."""
    if isinstance(output, torch.Tensor):
        return output.detach()
    return [_detach_output(item) for item in output]


GeneratorTerms = Callable[[Generated, DiscriminatorOutput, DiscriminatorOutput, Batch],
                          dict[str, torch.Tensor]]
"""``terms(generated, d_fake, d_real, batch) -> {term: scalar}``: the raw generator loss terms,
given D's outputs for the fake (with graph) and for the real images (no graph)."""


class FakePool(nn.Module):
    """A pool of past generated images shown to the discriminator (Shrivastava et al. 2017).

    Until the pool is full every new image is stored and returned. Afterwards each new image, with
    probability ``probability``, is swapped with a random stored one (the stored one is returned);
    otherwise it is returned itself. Draws come from the pool's own seeded generator, whose state
    is in the state dict together with the stored images.

    Args:
        size: images kept; 0 disables the pool.
        probability: chance of returning a stored image once the pool is full.
        seed: seed of the pool's generator.
    """

    def __init__(self, size: int = 80, probability: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        self.size = size
        self.probability = probability
        self.generator = torch.Generator().manual_seed(seed)
        self.register_buffer("images", torch.empty(0))

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, ...) for the discriminator, each new or from the pool (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            stored = self.images.shape[0] if self.images.numel() else 0
            if stored < self.size:
                self.images = image[None].clone() if stored == 0 else torch.cat([self.images, image[None]])
                out.append(image)
            elif float(torch.rand((), generator=self.generator)) < self.probability:
                slot = int(torch.randint(0, self.size, (), generator=self.generator))
                out.append(self.images[slot].clone())
                self.images[slot] = image
            else:
                out.append(image)
        return torch.stack(out)

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The number of stored images varies: resize the buffer to the saved one before loading.
        key = prefix + "images"
        if key in state_dict:
            self.images = torch.empty_like(state_dict[key], device=self.images.device)
        super()._load_from_state_dict(state_dict, prefix, *args)


class AdversarialTask(TrainingTask):
    """Train a generator against a discriminator.

    Args:
        generator_factory: builds the generator (called after seeding).
        discriminator_factory: builds the discriminator; its output is a list of features with the
            logits last, or logits alone.
        generate: ``generate(generator, batch) -> Generated``.
        discriminator_input: maps an image (generated or real) to the discriminator's input,
            e.g. the magnitude of a 2-channel complex image.
        real_image: ``real_image(batch)``: the real image in the generator's output space.
        terms: the raw generator terms (see :data:`GeneratorTerms`).
        composite: weights and normalises the terms.
        adversarial: the criterion and label smoothing of both sides.
        metrics: ``metrics(image, batch) -> {name: (B,)}`` for validation.
        discriminator_optimizer: Adam settings of D (the run's ``training.optimizer`` serves G).
        pool_size: images in the fake pool (0: none).
        pool_probability: chance of showing D a pooled image once the pool is full.
        joint_batch: show D the real images and the fakes in one forward pass (see the module
            docstring); False runs two passes, one per class.
        loss_modules: modules the terms use (e.g. a perceptual loss), moved to the run's device.
    """

    def __init__(
        self,
        generator_factory: Callable[[], nn.Module],
        discriminator_factory: Callable[[], nn.Module],
        generate: Callable[[nn.Module, Batch], Generated],
        discriminator_input: Callable[[torch.Tensor], torch.Tensor],
        real_image: Callable[[Batch], torch.Tensor],
        terms: GeneratorTerms,
        composite: CompositeLoss,
        adversarial: AdversarialLoss,
        metrics: Callable[[torch.Tensor, Batch], dict[str, torch.Tensor]],
        discriminator_optimizer: OptimizerConfig,
        pool_size: int = 80,
        pool_probability: float = 0.5,
        loss_modules: Sequence[nn.Module] = (),
        joint_batch: bool = True,
    ) -> None:
        self.generator_factory = generator_factory
        self.discriminator_factory = discriminator_factory
        self.generate = generate
        self.discriminator_input = discriminator_input
        self.real_image = real_image
        self.terms = terms
        self.composite = composite
        self.adversarial = adversarial
        self.metrics = metrics
        self.discriminator_optimizer_config = discriminator_optimizer
        self.pool_settings = (pool_size, pool_probability)
        self.joint_batch = joint_batch
        self.loss_modules = list(loss_modules)
        self.generator: nn.Module
        self.discriminator: nn.Module
        self.pool: FakePool
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedules: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    def setup(self, fabric: Fabric, config: TrainingConfig) -> None:
        """Build both networks, Adam for each (and schedules), the pool; move the losses."""
        generator, discriminator = self.generator_factory(), self.discriminator_factory()
        trainable = [p for p in generator.parameters() if p.requires_grad]
        g_optimizer = make_adam(trainable, config.optimizer)
        d_optimizer = make_adam(discriminator.parameters(), self.discriminator_optimizer_config)
        self.generator, g_optimizer = fabric.setup(generator, g_optimizer)
        self.discriminator, d_optimizer = fabric.setup(discriminator, d_optimizer)
        self.optimizers = {"generator": g_optimizer, "discriminator": d_optimizer}
        settings = {"generator": config.optimizer, "discriminator": self.discriminator_optimizer_config}
        for name, optimizer in self.optimizers.items():
            schedule = make_schedule(optimizer, settings[name])
            if schedule is not None:
                self.schedules[name] = schedule
        self.pool = FakePool(*self.pool_settings, seed=config.seed).to(fabric.device)
        for module in (self.composite, self.adversarial, *self.loss_modules):
            module.to(fabric.device)

    def training_step(self, batch: Batch, fabric: Fabric) -> dict[str, torch.Tensor]:
        """One D step on real vs pooled fakes, then one G step on the composite loss."""
        generated = self.generate(self.generator, batch)
        fake = self.discriminator_input(generated.image)
        real = self.discriminator_input(self.real_image(batch))

        d_optimizer = self.optimizers["discriminator"]
        d_optimizer.zero_grad(set_to_none=True)
        pooled = self.pool.query(fake)
        d_on_real, d_on_pooled = self._discriminate(real.detach(), pooled)
        d_loss = self.adversarial.discriminator(d_on_real, d_on_pooled)
        fabric.backward(d_loss)
        d_optimizer.step()

        g_optimizer = self.optimizers["generator"]
        g_optimizer.zero_grad(set_to_none=True)
        d_fake, d_real = self._discriminate(fake, real.detach())
        d_real = _detach_output(d_real)
        output = self.composite(self.terms(generated, d_fake, d_real, batch))
        fabric.backward(output.total)
        g_optimizer.step()
        logs = {"loss": output.total.detach(), "discriminator": d_loss.detach(),
                "d_accuracy_real": discriminator_accuracy(d_on_real, real=True),
                "d_accuracy_fake": discriminator_accuracy(d_fake, real=False)}
        logs.update({f"{name}_raw": value for name, value in output.raw.items()})
        logs.update({f"{name}_weighted": value for name, value in output.weighted.items()})
        return logs

    def _discriminate(self, first: torch.Tensor, second: torch.Tensor
                      ) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
        """D's outputs for two batches: one joint pass (split back) or two passes."""
        if not self.joint_batch:
            return self.discriminator(first), self.discriminator(second)
        both = self.discriminator(torch.cat([first, second]))
        return _split_output(both, first.shape[0])

    def validation_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The metrics of the generator's output."""
        return dict(self.metrics(self.generate(self.generator, batch).image.float(), batch))

    def predict(self, batch: Batch) -> torch.Tensor:
        """The generator's output image for a batch."""
        return self.generate(self.generator, batch).image

    def checkpoint_state(self) -> dict[str, Stateful]:
        """Both networks and optimisers, schedules, the composite's constants and the pool."""
        state: dict[str, Stateful] = {"generator": self.generator, "discriminator": self.discriminator,
                                      "composite": self.composite, "pool": self.pool,
                                      **{f"{k}_optimizer": v for k, v in self.optimizers.items()},
                                      **{f"{k}_schedule": v for k, v in self.schedules.items()}}
        return state

    def set_training(self, training: bool) -> None:
        """Mode of both networks and of the composite (its normalisers record only in training)."""
        self.generator.train(training)
        self.discriminator.train(training)
        self.composite.train(training)

    def end_epoch(self) -> None:
        """Step the learning-rate schedules."""
        for schedule in self.schedules.values():
            schedule.step()
