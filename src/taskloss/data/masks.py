"""Undersampling masks for Cartesian k-space: 1-D line patterns and a 2-D variable-density pattern.

All masks are float32 0/1 tensors (1 = sampled) of shape (1, H, W) with k-space centred (DC at
``(H // 2, W // 2)``, as :mod:`taskloss.data.kspace`). The 1-D masks sample whole lines along the
last axis (columns; phase encoding along W, as fastMRI) and repeat them over the rows. Seitzer et al.
sample rows in their code; columns here are the same pattern transposed.

- ``cartesian-vd`` (Seitzer et al. 2018): exactly ``round(W / acceleration)`` lines, the
  ``center_lines`` central lines always, the others drawn without replacement with probability
  ``exp(-(k - W/2)^2 / (2 (W/10)^2)) + 1 / (2 acceleration)`` (renormalised over non-central lines).
- ``random`` (fastMRI ``RandomMaskFunc``): ``round(W * center_fraction)`` central lines, every other
  line with probability ``(W / acceleration - n_center) / (W - n_center)``.
- ``equispaced`` (fastMRI ``EquiSpacedMaskFunc``): the central lines and every ``acceleration``-th
  line from a random offset (integer accelerations only).
- ``vd-2d``: exactly ``round(H W / acceleration)`` points, a central square of side
  ``round(sqrt(center_fraction) * side)`` always, the rest drawn without replacement with a Gaussian
  density ``exp(-r^2 / (2 * 0.3^2)) + 1 / (2 acceleration)`` (``r`` the radius normalised to 1 at
  the edge midpoints).

Randomness comes from a ``torch.Generator``: the same generator state gives the same mask.

:class:`MaskSettings` is the one mask configuration of the k-space data sources (the csmri
simulator's :class:`~taskloss.data.csmri.CsmriConfig` and a study file's fastMRI
``data:``): the keys ``mask``, ``acceleration`` and ``center_fraction``, checked once.
"""

import math
from abc import abstractmethod
from enum import Enum
from typing import Literal

import torch
from pydantic import Field, model_validator

from taskloss.config import StrictModel
from taskloss.errors import InputError


class MaskKind(str, Enum):
    """The undersampling patterns."""

    CARTESIAN_VD = "cartesian-vd"
    RANDOM = "random"
    EQUISPACED = "equispaced"
    VD_2D = "vd-2d"


def _check_acceleration(acceleration: float, lines: int) -> None:
    if not acceleration >= 1:
        raise InputError(f"acceleration must be >= 1 (1 = fully sampled), got {acceleration}")
    if lines < 1:
        raise InputError(f"k-space needs at least one line, got {lines}")


def _line_mask(lines: torch.Tensor, height: int) -> torch.Tensor:
    return lines.to(torch.float32)[None, None, :].expand(1, height, -1).contiguous()


def _central(n: int, count: int) -> torch.Tensor:
    """Boolean (n,) with the ``count`` central lines set (fastMRI's placement)."""
    central = torch.zeros(n, dtype=torch.bool)
    start = (n - count + 1) // 2
    central[start:start + count] = True
    return central


def cartesian_vd_mask(
    shape: tuple[int, int], acceleration: float, center_lines: int, generator: torch.Generator
) -> torch.Tensor:
    """Seitzer's variable-density Cartesian mask, exactly ``round(W / acceleration)`` lines.

    Args:
        shape: k-space (H, W).
        acceleration: undersampling factor, >= 1.
        center_lines: central lines always sampled, 0 <= center_lines <= round(W / acceleration).
        generator: random generator.

    Returns:
        (1, H, W) float32 0/1.
    """
    height, width = shape
    _check_acceleration(acceleration, width)
    total = max(1, round(width / acceleration))
    if center_lines < 0:
        raise InputError(f"center_lines must be >= 0, got {center_lines}")
    if center_lines > total:
        raise InputError(f"center_lines ({center_lines}) is more than the {total} lines sampled at "
                         f"acceleration {acceleration} of {width}; lower center_lines or acceleration")
    central = _central(width, center_lines)
    k = torch.arange(width, dtype=torch.float64)
    density = torch.exp(-((k - width / 2) ** 2) * 0.5 / (width / 10) ** 2) + 1 / (2 * acceleration)
    density[central] = 0
    lines = central.clone()
    if total > center_lines:
        lines[torch.multinomial(density, total - center_lines, replacement=False, generator=generator)] = True
    return _line_mask(lines, height)


def random_mask(
    shape: tuple[int, int], acceleration: float, center_fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """fastMRI's ``RandomMaskFunc``: central lines plus each other line with a fixed probability.

    Args:
        shape: k-space (H, W).
        acceleration: undersampling factor, >= 1.
        center_fraction: share of central lines always sampled, in [0, 1 / acceleration].
        generator: random generator.

    Returns:
        (1, H, W) float32 0/1 (the line count is random, ``W / acceleration`` on average).
    """
    height, width = shape
    _check_acceleration(acceleration, width)
    n_center = _center_count(width, center_fraction, acceleration)
    probability = (width / acceleration - n_center) / max(width - n_center, 1)
    lines = torch.rand(width, generator=generator, dtype=torch.float64) < probability
    return _line_mask(lines | _central(width, n_center), height)


def equispaced_mask(
    shape: tuple[int, int], acceleration: float, center_fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """fastMRI's ``EquiSpacedMaskFunc``: central lines plus every ``acceleration``-th line.

    Args:
        shape: k-space (H, W).
        acceleration: integer undersampling factor, >= 1.
        center_fraction: share of central lines always sampled, in [0, 1 / acceleration].
        generator: random generator (draws the offset in ``[0, acceleration)``).

    Returns:
        (1, H, W) float32 0/1.
    """
    height, width = shape
    _check_acceleration(acceleration, width)
    if acceleration != int(acceleration):
        raise InputError(f"equispaced masks need an integer acceleration, got {acceleration}")
    n_center = _center_count(width, center_fraction, acceleration)
    offset = int(torch.randint(0, int(acceleration), (1,), generator=generator))
    lines = _central(width, n_center)
    lines[offset::int(acceleration)] = True
    return _line_mask(lines, height)


def _center_count(width: int, center_fraction: float, acceleration: float) -> int:
    if not 0 <= center_fraction <= 1 / acceleration:
        raise InputError(f"center_fraction must be in [0, 1 / acceleration] = [0, {1 / acceleration:.4g}], "
                         f"got {center_fraction}; the central lines alone would exceed the budget")
    return round(width * center_fraction)


def variable_density_2d_mask(
    shape: tuple[int, int], acceleration: float, center_fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """2-D variable-density random mask with exactly ``round(H W / acceleration)`` points.

    Args:
        shape: k-space (H, W).
        acceleration: undersampling factor, >= 1.
        center_fraction: share of the k-space area fully sampled as a central square, in
            [0, 1 / acceleration].
        generator: random generator.

    Returns:
        (1, H, W) float32 0/1.
    """
    height, width = shape
    _check_acceleration(acceleration, min(height, width))
    if not 0 <= center_fraction <= 1 / acceleration:
        raise InputError(f"center_fraction must be in [0, 1 / acceleration] = [0, {1 / acceleration:.4g}], "
                         f"got {center_fraction}")
    side = math.sqrt(center_fraction)
    centre = _central(height, round(side * height))[:, None] & _central(width, round(side * width))[None, :]
    total = max(int(centre.sum()), round(height * width / acceleration))
    ky = (torch.arange(height, dtype=torch.float64) - height / 2) / (height / 2)
    kx = (torch.arange(width, dtype=torch.float64) - width / 2) / (width / 2)
    radius2 = ky[:, None] ** 2 + kx[None, :] ** 2
    density = (torch.exp(-radius2 / (2 * 0.3**2)) + 1 / (2 * acceleration)).flatten()
    density[centre.flatten()] = 0
    sampled = centre.flatten().clone()
    remaining = total - int(centre.sum())
    if remaining > 0:
        sampled[torch.multinomial(density, remaining, replacement=False, generator=generator)] = True
    return sampled.reshape(1, height, width).to(torch.float32)


def make_mask(
    kind: MaskKind | str,
    shape: tuple[int, int],
    acceleration: float,
    generator: torch.Generator,
    *,
    center_lines: int | None = None,
    center_fraction: float | None = None,
) -> torch.Tensor:
    """A mask of any kind, with the kind's defaults for the centre.

    Args:
        kind: one of :class:`MaskKind` (``"cartesian-vd"``, ``"random"``, ``"equispaced"``,
            ``"vd-2d"``).
        shape: k-space (H, W).
        acceleration: undersampling factor, >= 1.
        generator: random generator.
        center_lines: ``cartesian-vd`` only, instead of ``center_fraction``; default Seitzer's 8
            lines of 512 scaled to W, at least 2 (and at most the line budget).
        center_fraction: share of central lines always sampled, in [0, 1 / acceleration]
            (``cartesian-vd``: ``round(W * center_fraction)`` lines); default for the other kinds 0.08
            at acceleration 4 or less, else 0.04 (the fastMRI pairs), capped at ``1 / acceleration``.

    Returns:
        (1, H, W) float32 0/1.
    """
    try:
        kind = MaskKind(kind)
    except ValueError:
        raise InputError(f"unknown mask {kind!r}; use one of {[k.value for k in MaskKind]}") from None
    if kind is MaskKind.CARTESIAN_VD:
        if center_lines is None and center_fraction is not None:
            _check_acceleration(acceleration, shape[1])
            center_lines = _center_count(shape[1], center_fraction, acceleration)
        if center_lines is None:
            budget = max(1, round(shape[1] / max(acceleration, 1)))
            center_lines = min(budget, max(2, round(8 * shape[1] / 512)))
        return cartesian_vd_mask(shape, acceleration, center_lines, generator)
    if center_fraction is None:
        center_fraction = min(0.08 if acceleration <= 4 else 0.04, 1 / max(acceleration, 1))
    build = {MaskKind.RANDOM: random_mask, MaskKind.EQUISPACED: equispaced_mask,
             MaskKind.VD_2D: variable_density_2d_mask}[kind]
    return build(shape, acceleration, center_fraction, generator)


MaskName = Literal["cartesian-vd", "random", "equispaced", "vd-2d"]
"""A mask's name in a config (the values of :class:`MaskKind`)."""


class MaskSettings(StrictModel):
    """The mask keys of a k-space data source, checked once for every source.

    A source subclasses this, gives ``mask`` (a :data:`MaskName`) and ``acceleration`` its
    defaults and says in :meth:`mask_shape` which k-space the
    masks cover; a setting no mask of that shape can follow (an equispaced mask at a fractional
    acceleration, a centre over the line budget) is refused when the config is made.

    Attributes:
        mask: ``"cartesian-vd"`` (Seitzer et al.), ``"random"`` (fastMRI's ``RandomMaskFunc``),
            ``"equispaced"`` (``EquiSpacedMaskFunc``) or ``"vd-2d"``; lines along the last axis.
        acceleration: undersampling factor, >= 1 (an integer for ``"equispaced"``).
        center_fraction: share of central k-space always sampled, in [0, 1 / acceleration]; None:
            the kind's default (:func:`make_mask`: 0.08 at acceleration <= 4, else 0.04;
            ``cartesian-vd`` Seitzer's 8 lines of 512, scaled).
    """

    mask: MaskName
    acceleration: float  # >= 1, checked with the mask (its message says what 1 means)
    center_fraction: float | None = Field(None, ge=0, lt=1)

    @abstractmethod
    def mask_shape(self) -> tuple[int, int]:
        """The k-space (H, W) the masks of this source cover."""

    @model_validator(mode="after")
    def _mask_is_possible(self) -> "MaskSettings":
        try:
            self.make_mask(torch.Generator().manual_seed(0))
        except InputError as error:
            raise ValueError(str(error)) from None
        return self

    def make_mask(self, generator: torch.Generator, shape: tuple[int, int] | None = None) -> torch.Tensor:
        """One mask (1, H, W) float32 0/1 of these settings (``shape`` default :meth:`mask_shape`)."""
        return make_mask(self.mask, shape or self.mask_shape(), self.acceleration, generator,
                         center_fraction=self.center_fraction)
