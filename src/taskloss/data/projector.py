"""Line-integral projector for volumes: parallel-beam and cone-beam, at any angle, batched, in torch.

Coordinates (patient, RAS, in mm): ``x`` towards the patient's right, ``y`` anterior, ``z`` superior.
A volume tensor is (B, C, D, H, W) with D along ``z``, H along ``y``, W along ``x``, voxel spacing
``(sz, sy, sx)`` in mm, and its centre at the isocentre (the origin).

The source rotates about the ``z`` axis. At angle ``theta`` (degrees) the central ray runs along
``d = (sin theta, cos theta, 0)``: 0 is a posterior-anterior view, 90 a lateral view from the patient's
left. The detector's columns run along ``(cos theta, -sin theta, 0)`` and its rows from superior (row
0) to inferior, so a projection looks like a radiograph with the head up. Cone-beam rays start at the
source, ``source_isocentre_mm`` before the isocentre, and end on a flat detector
``source_detector_mm`` from the source; the field of view is given at the isocentre, so the
detector's pixels are larger by the magnification ``source_detector_mm / source_isocentre_mm``.

Each ray is clipped to the volume's box and sampled at the midpoints of equal steps of about one
voxel (one step per voxel is the default); the volume is read by trilinear interpolation
(``grid_sample``, zero outside), and the line integral is the sum of samples times the ray's step
(midpoint rule) along the true ray length. Written here rather than taken from a
library because no installed package projects torch volumes on CPU and CUDA with gradients (ASTRA and
TIGRE need CUDA builds; ``skimage.transform.radon`` is 2-D, parallel-beam and NumPy only).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import torch
import torch.nn.functional as F

from taskloss.errors import InputError
from taskloss.validation import check_float_tensor

MAX_POINTS = 1 << 23
"""Most ray sample points evaluated in one ``grid_sample`` call (bounds memory to ~100 MB)."""


class Beam(str, Enum):
    """Projection geometry."""

    PARALLEL = "parallel"
    CONE = "cone"


@dataclass(frozen=True)
class Geometry:
    """A square detector and its beam.

    Attributes:
        size: detector pixels per side (the projection is ``size`` x ``size``).
        field_of_view_mm: side of the imaged square at the isocentre, mm.
        beam: parallel or cone beam.
        source_isocentre_mm: source to rotation axis, mm (cone beam only); a C-arm's 750 by default.
        source_detector_mm: source to detector, mm (cone beam only; > source_isocentre_mm).
    """

    size: int = 64
    field_of_view_mm: float = 240.0
    beam: Beam = Beam.PARALLEL
    source_isocentre_mm: float = 750.0
    source_detector_mm: float = 1200.0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InputError(f"detector size must be >= 1 pixel, got {self.size}")
        if self.field_of_view_mm <= 0:
            raise InputError(f"field_of_view_mm must be > 0, got {self.field_of_view_mm}")
        object.__setattr__(self, "beam", Beam(self.beam))
        if self.beam is Beam.CONE and not 0 < self.source_isocentre_mm < self.source_detector_mm:
            raise InputError(
                "cone beam needs 0 < source_isocentre_mm < source_detector_mm, got "
                f"{self.source_isocentre_mm} and {self.source_detector_mm}; the detector lies "
                "beyond the isocentre")

    @property
    def pixel_mm(self) -> float:
        """Pixel pitch at the isocentre, mm."""
        return self.field_of_view_mm / self.size


def project(
    volume: torch.Tensor,
    spacing: Sequence[float],
    angles: Sequence[float] | torch.Tensor,
    geometry: Geometry,
    *,
    antialias: bool = True,
    step_mm: float | None = None,
) -> torch.Tensor:
    """Line integrals of every channel of every volume along the rays of every angle.

    Args:
        volume: (B, C, D, H, W) real values per voxel (e.g. attenuation in 1/mm).
        spacing: voxel size ``(sz, sy, sx)`` in mm.
        angles: projection angles in degrees, (A,).
        geometry: detector and beam.
        antialias: average the volume over blocks of ``k`` voxels per axis first, with ``k`` the
            largest integer such that ``k`` voxels fit in one detector pixel (at the isocentre).
            Rays then sample at the resolution of the detector, without aliasing, and faster.
        step_mm: largest distance between samples along a ray; default the smallest voxel spacing
            (after antialiasing). Each ray is cut into the same number of equal steps, so shorter
            chords are sampled more finely.

    Returns:
        (B, C, A, size, size) line integrals (value x mm), dtype and device of ``volume``.
    """
    check_float_tensor(volume, "volume", ndims=(5,))
    spacing_t = _check_spacing(spacing)
    angles_t = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    if angles_t.numel() == 0 or not bool(torch.isfinite(angles_t).all()):
        raise InputError(f"angles must be a non-empty sequence of finite degrees, got {angles}")
    centre = torch.zeros(3, dtype=torch.float64)
    if antialias:
        volume, spacing_t, centre = _block_average(volume, spacing_t, geometry.pixel_mm)
    step = float(spacing_t.min()) if step_mm is None else step_mm
    if step <= 0:
        raise InputError(f"step_mm must be > 0, got {step_mm}")
    extent = torch.tensor(volume.shape[-3:], dtype=torch.float64).flip(0) * spacing_t.flip(0)
    low, high = centre.flip(0) - extent / 2, centre.flip(0) + extent / 2  # box corners (x, y, z)
    size = geometry.size
    per_chunk = max(1, MAX_POINTS // (volume.shape[0] * size * size * _most_steps(extent, step)))
    projections = [_project_chunk(volume, chunk, geometry, low, high, step)
                   for chunk in angles_t.split(per_chunk)]
    return torch.cat(projections, dim=2)


def _most_steps(extent: torch.Tensor, step: float) -> int:
    """Upper bound of the steps of any ray: the box diagonal over the step."""
    return max(1, math.ceil(float(extent.norm()) / step))


def _check_spacing(spacing: Sequence[float]) -> torch.Tensor:
    spacing_t = torch.as_tensor(spacing, dtype=torch.float64).reshape(-1)
    if spacing_t.numel() != 3 or not bool((spacing_t > 0).all()):
        raise InputError(f"spacing must be 3 positive voxel sizes (sz, sy, sx) in mm, got {spacing}")
    return spacing_t


def _block_average(
    volume: torch.Tensor, spacing: torch.Tensor, pixel_mm: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Average blocks of k^3 voxels (k voxels per detector pixel); returns volume, spacing, centre.

    The volume is padded with zeros at the high end of each axis to a multiple of ``k``; the centre
    of the padded grid moves by half the padding, which the returned centre offset (z, y, x) records.
    """
    k = int(pixel_mm // float(spacing.min()))
    if k < 2:
        return volume, spacing, torch.zeros(3, dtype=torch.float64)
    shape = torch.tensor(volume.shape[-3:], dtype=torch.float64)
    padding = (-shape) % k
    pad = [0, int(padding[2]), 0, int(padding[1]), 0, int(padding[0])]
    pooled = F.avg_pool3d(F.pad(volume, pad), kernel_size=k, stride=k)
    # Blocks span k voxels along each axis; spacing is per axis so anisotropic voxels stay exact.
    return pooled, spacing * k, padding * spacing / 2


def _project_chunk(
    volume: torch.Tensor,
    angles_deg: torch.Tensor,
    geometry: Geometry,
    low: torch.Tensor,
    high: torch.Tensor,
    step: float,
) -> torch.Tensor:
    """Project one chunk of angles through the box ``[low, high]`` (x, y, z mm): (B, C, A, S, S)."""
    starts, directions = _rays(angles_deg, geometry)
    entry, chord = _clip_to_box(starts, directions, low, high)
    n_steps = max(1, math.ceil(float(chord.max()) / step))
    ray_step = chord / n_steps  # (A, S, S)
    fractions = torch.arange(n_steps, dtype=torch.float64) + 0.5  # midpoints
    distance = entry[..., None] + fractions * ray_step[..., None]  # (A, S, S, n)
    points = starts[..., None, :] + distance[..., None] * directions[..., None, :]
    # grid_sample wants (x, y, z) normalised to [-1, 1] over the volume's full extent (outer faces
    # of the outer voxels, align_corners=False).
    grid = (2 * (points - low) / (high - low) - 1).to(volume.dtype).to(volume.device)
    n_angles, size = angles_deg.numel(), geometry.size
    grid = grid.reshape(1, n_angles * size, size, n_steps, 3).expand(volume.shape[0], -1, -1, -1, -1)
    samples = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    weights = ray_step.reshape(1, 1, n_angles * size, size).to(volume)
    integral = samples.sum(dim=-1) * weights
    return integral.reshape(volume.shape[0], volume.shape[1], n_angles, size, size)


def _clip_to_box(
    starts: torch.Tensor, directions: torch.Tensor, low: torch.Tensor, high: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab method: distance from each ray's start to where it enters the box, and its chord length.

    Rays that miss the box get a chord of 0. Both outputs are (A, S, S).
    """
    with torch.no_grad():
        inverse = 1 / directions  # +-inf along an axis the ray is parallel to
        t_low, t_high = (low - starts) * inverse, (high - starts) * inverse
        near = torch.minimum(t_low, t_high).nan_to_num(nan=-math.inf).amax(dim=-1)
        far = torch.maximum(t_low, t_high).nan_to_num(nan=math.inf).amin(dim=-1)
    return near, (far - near).clamp(min=0)


def _rays(angles_deg: torch.Tensor, geometry: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray start points and unit directions, (A, S, S, 3) each, in (x, y, z) mm, float64.

    A parallel ray starts on the plane through the isocentre (the box clipping finds where it
    enters); a cone-beam ray starts at the source.
    """
    theta = torch.deg2rad(angles_deg)
    zeros = torch.zeros_like(theta)
    central = torch.stack([torch.sin(theta), torch.cos(theta), zeros], dim=-1)  # (A, 3)
    across = torch.stack([torch.cos(theta), -torch.sin(theta), zeros], dim=-1)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    coords = (torch.arange(geometry.size, dtype=torch.float64) - (geometry.size - 1) / 2) * geometry.pixel_mm
    u = coords[None, :]  # columns, left to right
    v = -coords[:, None]  # rows, superior (row 0) to inferior
    plane = u[None, ..., None] * across[:, None, None, :] + v[None, ..., None] * up  # (A, S, S, 3)
    if geometry.beam is Beam.PARALLEL:
        return plane, central[:, None, None, :].expand_as(plane)
    source = -geometry.source_isocentre_mm * central[:, None, None, :]
    # The detector pixel lies on the ray from the source through the isocentre-plane point `plane`
    # (the detector is that plane magnified by source_detector_mm / source_isocentre_mm).
    return source.expand_as(plane), F.normalize(plane - source, dim=-1)
