"""Feature matching (Salimans et al. 2016) on discriminator features, as Seitzer et al. use it.

``L_feat = mean over layers of mean |F_l(fake) - F_l(real).detach()|``: the L1 distance between the
discriminator's activations for the generated image and for the real one (no gradient to the
real branch), averaged over all of the discriminator's layers *and* its logits, as in Seitzer et
al.'s code; multi-scale outputs are averaged over scales. Discriminator outputs take the forms of
:mod:`taskloss.losses.adversarial`.
"""

from typing import Literal

import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.losses.adversarial import DiscriminatorOutput, discriminator_scales
from taskloss.losses.precision import full_precision

Distance = Literal["l1", "l2"]


def feature_matching_loss(
    fake_output: DiscriminatorOutput,
    real_output: DiscriminatorOutput,
    *,
    distance: Distance = "l1",
    include_logits: bool = True,
) -> torch.Tensor:
    """Mean distance between the discriminator's features of fakes and of (detached) reals.

    Args:
        fake_output: discriminator output for generated images (gradients flow through it).
        real_output: discriminator output for the matching real images (detached here).
        distance: "l1" (Seitzer et al.) or "l2" (mean squared difference).
        include_logits: also match the logits, the last tensor of each scale (Seitzer et al.).

    Returns:
        Scalar: the mean over scales of the mean over layers of each layer's mean distance.

    Examples:
        Two layers, |1 - 0| and |3 - 1| on average, then the mean over the layers:

        >>> fake = [torch.ones(1, 4, 8, 8), torch.full((1, 1, 2, 2), 3.0)]
        >>> real = [torch.zeros(1, 4, 8, 8), torch.ones(1, 1, 2, 2)]
        >>> feature_matching_loss(fake, real), feature_matching_loss(fake, real, include_logits=False)
        (tensor(1.5000), tensor(1.))
    """
    _check_distance(distance)
    fake_scales = discriminator_scales(fake_output, "fake_output")
    real_scales = discriminator_scales(real_output, "real_output")
    _check_same_structure(fake_scales, real_scales)
    per_scale = []
    for fake_layers, real_layers in zip(fake_scales, real_scales, strict=True):
        pairs = list(zip(fake_layers, real_layers, strict=True))
        if not include_logits:
            pairs = pairs[:-1]
        if not pairs:
            raise InputError("the discriminator output holds only logits, so there are no features "
                             "to match; return the features with the logits last, or pass "
                             "include_logits=True")
        distances = []
        for fake, real in pairs:
            difference = full_precision(fake) - full_precision(real.detach())
            distances.append(difference.abs().mean() if distance == "l1" else difference.square().mean())
        per_scale.append(torch.stack(distances).mean())
    return torch.stack(per_scale).mean()


def _check_distance(distance: object) -> None:
    if distance not in ("l1", "l2"):
        raise ConfigError(f"distance={distance!r} is unknown; use 'l1' or 'l2'")


def _check_same_structure(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> None:
    fake_shapes = [[tuple(x.shape) for x in scale] for scale in fake]
    real_shapes = [[tuple(x.shape) for x in scale] for scale in real]
    if fake_shapes != real_shapes:
        raise InputError(f"fake_output and real_output differ in structure or shapes ({fake_shapes} "
                         f"vs {real_shapes}); pass outputs of the same discriminator for batches of "
                         "the same shape")


class FeatureMatchingLoss(nn.Module):
    """Module form of :func:`feature_matching_loss`.

    Examples:
        >>> fake = [torch.ones(1, 4, 8, 8), torch.full((1, 1, 2, 2), 3.0)]
        >>> real = [torch.zeros(1, 4, 8, 8), torch.ones(1, 1, 2, 2)]
        >>> FeatureMatchingLoss(distance="l2")(fake, real)  # (1 + 4) / 2
        tensor(2.5000)
    """

    def __init__(self, distance: Distance = "l1", include_logits: bool = True) -> None:
        super().__init__()
        _check_distance(distance)  # when built, not at the first batch
        self.distance: Distance = distance
        self.include_logits = include_logits

    def forward(self, fake_output: DiscriminatorOutput, real_output: DiscriminatorOutput) -> torch.Tensor:
        return feature_matching_loss(fake_output, real_output, distance=self.distance,
                                     include_logits=self.include_logits)
