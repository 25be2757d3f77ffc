"""Smooth random fields (deformations, bias fields, thickness and phase maps) and seeding helpers."""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def generator_for(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded from a tuple of integers (seed, subject, epoch, index, ...).

    The keys are mixed by numpy's ``SeedSequence``, so nearby tuples give independent streams and
    the same tuple always gives the same stream, on any machine and in any worker process.
    """
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0] >> np.uint64(1)))


def smooth_field(
    shape: Sequence[int],
    control_points: int,
    generator: torch.Generator,
    channels: int = 1,
) -> torch.Tensor:
    """A smooth random field: standard normal values on a coarse grid, upsampled (multi)linearly.

    Args:
        shape: output spatial shape, 2 or 3 axes.
        control_points: number of coarse grid points per axis (>= 2); fewer means smoother.
        generator: random generator (CPU).
        channels: number of independent fields.

    Returns:
        float32 tensor (channels, *shape); each value has unit variance at the control points and
        less between them.
    """
    coarse = torch.randn((1, channels, *([control_points] * len(shape))), generator=generator)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return F.interpolate(coarse, size=tuple(shape), mode=mode, align_corners=True)[0]
