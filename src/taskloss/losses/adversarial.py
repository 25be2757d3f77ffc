"""Adversarial losses for the generator and the discriminator, and the WGAN-GP gradient penalty.

Discriminator outputs are *logits* (no sigmoid) in one of three forms, all accepted everywhere:

- a tensor, the logit map (e.g. a PatchGAN map (B, 1, h, w)) or (B, 1);
- a list of tensors: intermediate feature maps with the logits last (MONAI's
  ``PatchDiscriminator``, Seitzer's discriminator; the features feed
  :func:`taskloss.losses.feature_matching_loss`);
- a list of such lists, one per scale (multi-scale discriminators); losses are averaged over the
  scales.

Criteria, with D(x) the logits and ``mean`` over every logit of a scale:

==========  ==========================================  ===========================================
criterion   generator                                   discriminator
==========  ==========================================  ===========================================
"bce"       BCE(D(fake), 1) = mean softplus(-D(fake))   BCE(D(real), real_label) + BCE(D(fake), 0)
            (non-saturating, Goodfellow et al.)
"lsgan"     mean (D(fake) - 1)^2                        mean (D(real) - real_label)^2 + mean D(fake)^2
"hinge"     -mean D(fake)                               mean relu(1 - D(real)) + mean relu(1 + D(fake))
"wgan-gp"   -mean D(fake)                               mean D(fake) - mean D(real)  (add
                                                        10 * :func:`gradient_penalty`)
==========  ==========================================  ===========================================

The discriminator loss is the *sum* of its real and fake terms, as in Seitzer et al.'s and DAGAN's
code (pix2pix halves it; scale it yourself to match). ``real_label`` < 1 is one-sided label
smoothing (Seitzer et al.: 0.9); it applies to "bce" and "lsgan" only.
"""

from collections.abc import Callable, Sequence
from typing import Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.losses.precision import full_precision

Criterion = Literal["bce", "lsgan", "hinge", "wgan-gp"]
CRITERIA: tuple[Criterion, ...] = ("bce", "lsgan", "hinge", "wgan-gp")
DiscriminatorOutput: TypeAlias = torch.Tensor | Sequence[torch.Tensor] | Sequence[Sequence[torch.Tensor]]


def discriminator_scales(output: DiscriminatorOutput, name: str = "output") -> list[list[torch.Tensor]]:
    """Normalise a discriminator output to one list per scale, ``[feature, ..., logits]``.

    Args:
        output: a tensor, a list of tensors (logits last), or a list of such lists.
        name: the argument's name, for error messages.

    Returns:
        A list (scales) of non-empty lists of tensors, logits last in each.

    Examples:
        >>> logits, features = torch.zeros(2, 1, 4, 4), torch.zeros(2, 8, 8, 8)
        >>> discriminator_scales(logits) == [[logits]], len(discriminator_scales([features, logits])[0])
        (True, 2)
        >>> len(discriminator_scales([[features, logits], [logits]]))  # two scales
        2
    """
    if isinstance(output, torch.Tensor):
        return [[output]]
    if isinstance(output, Sequence) and output and all(isinstance(x, torch.Tensor) for x in output):
        return [list(output)]
    if (isinstance(output, Sequence) and output and all(
            isinstance(scale, Sequence) and scale and all(isinstance(x, torch.Tensor) for x in scale)
            for scale in output)):
        return [list(scale) for scale in output]
    raise InputError(f"{name} must be a tensor of logits, a list of tensors with the logits last, "
                     f"or a list of such lists (one per scale), got {_describe(output)}")


def discriminator_logits(output: DiscriminatorOutput, name: str = "output") -> list[torch.Tensor]:
    """The logits of each scale of a discriminator output (the last tensor of each list).

    Examples:
        >>> logits, features = torch.zeros(2, 1, 4, 4), torch.zeros(2, 8, 8, 8)
        >>> [x.shape for x in discriminator_logits([features, logits])]
        [torch.Size([2, 1, 4, 4])]
    """
    return [scale[-1] for scale in discriminator_scales(output, name)]


def generator_loss(fake_output: DiscriminatorOutput, criterion: Criterion = "bce") -> torch.Tensor:
    """Adversarial loss of the generator on the discriminator's output for fakes (see the table).

    Args:
        fake_output: discriminator output for generated images (gradients flow through it).
        criterion: "bce", "lsgan", "hinge" or "wgan-gp".

    Returns:
        Scalar, the mean over scales.

    Examples:
        At logits 0 the bce loss is log 2; lsgan's (0 - 1)^2 = 1; hinge and wgan-gp's -mean D = 0.

        >>> fake = torch.zeros(2, 1, 4, 4)
        >>> [round(generator_loss(fake, criterion).item(), 4) for criterion in CRITERIA]
        [0.6931, 1.0, 0.0, 0.0]
    """
    _check_criterion(criterion, real_label=1.0)
    logits = discriminator_logits(fake_output, "fake_output")
    return torch.stack([_generator_term(full_precision(x), criterion) for x in logits]).mean()


def discriminator_loss(
    real_output: DiscriminatorOutput,
    fake_output: DiscriminatorOutput,
    criterion: Criterion = "bce",
    *,
    real_label: float = 1.0,
) -> torch.Tensor:
    """Adversarial loss of the discriminator: its real term plus its fake term (see the table).

    Args:
        real_output: discriminator output for real images.
        fake_output: discriminator output for (detached) generated images.
        criterion: "bce", "lsgan", "hinge" or "wgan-gp".
        real_label: target for real images, in (0, 1]; < 1 is one-sided label smoothing
            ("bce" and "lsgan" only).

    Returns:
        Scalar, the mean over scales.

    Examples:
        >>> real, fake = torch.full((2, 1), 2.0), torch.full((2, 1), -2.0)
        >>> round(discriminator_loss(real, fake, "hinge").item(), 4)  # relu(1 - 2) + relu(1 - 2)
        0.0
        >>> round(discriminator_loss(real, fake, "lsgan", real_label=0.9).item(), 4)  # (2 - 0.9)^2 + (-2)^2
        5.21
        >>> round(discriminator_loss(real, fake, "wgan-gp").item(), 4)  # mean D(fake) - mean D(real)
        -4.0
    """
    _check_criterion(criterion, real_label)
    real = discriminator_logits(real_output, "real_output")
    fake = discriminator_logits(fake_output, "fake_output")
    if len(real) != len(fake):
        raise InputError(f"real_output has {len(real)} scales but fake_output has {len(fake)}; pass "
                         "the outputs of the same discriminator")
    terms = [_discriminator_term(full_precision(r), full_precision(f), criterion, real_label)
             for r, f in zip(real, fake, strict=True)]
    return torch.stack(terms).mean()


def gradient_penalty(
    discriminator: Callable[[torch.Tensor], DiscriminatorOutput],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017): mean over images of (||grad D(x_hat)|| - 1)^2.

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U(0, 1)`` per image; the gradient is
    that of the sum of D's logits (over positions of a patch map, and over scales) with respect to
    ``x_hat``, its norm taken per image over all channels and positions. The graph is kept
    (``create_graph=True``) so the penalty trains the discriminator. Usual weight: 10.

    Args:
        discriminator: the discriminator (any output form of this module).
        real: real images (B, C, ...).
        fake: generated images of the same shape (detached from the generator).
        generator: random generator for eps (default: torch's global one).

    Returns:
        Scalar penalty.

    Examples:
        A linear critic D(x) = sum(w x) has gradient w everywhere: the penalty is (||w|| - 1)^2.

        >>> weight = torch.full((1, 1, 2, 2), 1.0)  # ||w|| = 2
        >>> critic = lambda x: (weight * x).flatten(1).sum(dim=1, keepdim=True)
        >>> real, fake = torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
        >>> gradient_penalty(critic, real, fake)
        tensor(1.)
    """
    if real.shape != fake.shape:
        raise InputError(f"real has shape {tuple(real.shape)} but fake has {tuple(fake.shape)}; "
                         "they must be equal")
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = torch.rand(shape, generator=generator, dtype=real.dtype, device=real.device)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    total = torch.stack([full_precision(x).sum() for x in discriminator_logits(discriminator(mixed))]).sum()
    (grad,) = torch.autograd.grad(total, mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


class AdversarialLoss(nn.Module):
    """Both sides of an adversarial loss; calling the module gives the generator's loss.

    Args:
        criterion: "bce", "lsgan", "hinge" or "wgan-gp" (see the module docstring).
        real_label: the discriminator's target for real images (one-sided label smoothing < 1).

    Examples:
        >>> loss = AdversarialLoss("lsgan", real_label=0.9)
        >>> fake, real = torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.9)
        >>> loss(fake), loss.discriminator(real, fake)  # generator: (0 - 1)^2; discriminator: 0 + 0
        (tensor(1.), tensor(0.))
        >>> AdversarialLoss("hinge", real_label=0.9)
        Traceback (most recent call last):
        ...
        taskloss.errors.ConfigError: real_label=0.9 (label smoothing) applies to 'bce' and 'lsgan' only; ...
    """

    def __init__(self, criterion: Criterion = "bce", real_label: float = 1.0) -> None:
        super().__init__()
        _check_criterion(criterion, real_label)
        self.criterion: Criterion = criterion
        self.real_label = float(real_label)

    def forward(self, fake_output: DiscriminatorOutput) -> torch.Tensor:
        """Generator loss, :func:`generator_loss`."""
        return generator_loss(fake_output, self.criterion)

    def discriminator(self, real_output: DiscriminatorOutput,
                      fake_output: DiscriminatorOutput) -> torch.Tensor:
        """Discriminator loss, :func:`discriminator_loss`."""
        return discriminator_loss(real_output, fake_output, self.criterion, real_label=self.real_label)

    def extra_repr(self) -> str:
        return f"criterion={self.criterion!r}, real_label={self.real_label}"


def _check_criterion(criterion: str, real_label: float) -> None:
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion={criterion!r} is unknown; use one of {', '.join(CRITERIA)}")
    if not 0.0 < real_label <= 1.0:
        raise ConfigError(f"real_label={real_label} must be in (0, 1] (0.9 is one-sided label "
                          "smoothing)")
    if real_label != 1.0 and criterion in ("hinge", "wgan-gp"):
        raise ConfigError(f"real_label={real_label} (label smoothing) applies to 'bce' and 'lsgan' "
                          f"only; {criterion!r} has no labels: leave real_label=1.0")


def _generator_term(logits: torch.Tensor, criterion: Criterion) -> torch.Tensor:
    if criterion == "bce":
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    if criterion == "lsgan":
        return (logits - 1).square().mean()
    return -logits.mean()  # hinge and wgan-gp


def _discriminator_term(real: torch.Tensor, fake: torch.Tensor, criterion: Criterion,
                        real_label: float) -> torch.Tensor:
    if criterion == "bce":
        return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if criterion == "lsgan":
        return (real - real_label).square().mean() + fake.square().mean()
    if criterion == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return fake.mean() - real.mean()  # wgan-gp


def _describe(output: object) -> str:
    if isinstance(output, Sequence) and not isinstance(output, str):
        return f"a {type(output).__name__} of {[type(x).__name__ for x in output][:4]}"
    return type(output).__name__
