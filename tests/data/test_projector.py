"""Projector: exact sums on aligned grids, analytic ball integrals, cone magnification, gradients."""

import math

import pytest
import torch

from taskloss.data.projector import Geometry, project
from taskloss.errors import InputError


def ball(n: int, spacing: float, radius: float, centre=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Partial-volume ball (1, 1, n, n, n) on axes (z, y, x), centre (x, y, z) mm."""
    axis = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * spacing
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    distance = ((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2).sqrt()
    return ((radius - distance) / spacing + 0.5).clamp(0, 1)[None, None]


def test_parallel_aligned_grid_equals_axis_sums():
    generator = torch.Generator().manual_seed(0)
    volume = torch.rand((2, 3, 9, 7, 9), generator=generator, dtype=torch.float64)  # odd sizes
    geometry = Geometry(size=9, field_of_view_mm=9 * 2.0)
    out = torch.cat([project(volume, (2.0, 2.0, 2.0), [angle], geometry) for angle in (0.0, 90.0)], dim=2)
    assert out.shape == (2, 3, 2, 9, 9)
    # One angle per call and one step per voxel: the samples fall on voxel centres, so the
    # integrals are exact sums.
    # 0 degrees: rays along +y, columns along +x, row 0 superior (last z).
    torch.testing.assert_close(out[:, :, 0], volume.sum(dim=3).flip(2) * 2.0)
    # 90 degrees: rays along +x, columns along -y (H has 7 voxels, centred in 9 columns).
    lateral = (volume.sum(dim=4) * 2.0).flip(2).flip(3)  # (B, C, z top-down, y descending)
    torch.testing.assert_close(out[:, :, 1, :, 1:8], lateral.to(out))


@pytest.mark.parametrize("angle", [0.0, 33.0, 90.0, 151.0])
def test_parallel_ball_matches_chord_length_and_mass(angle):
    radius, spacing = 30.0, 1.5
    volume = ball(61, spacing, radius).float()
    geometry = Geometry(size=45, field_of_view_mm=90.0)
    out = project(volume, (spacing,) * 3, [angle], geometry)[0, 0, 0]
    assert out[22, 22].item() == pytest.approx(2 * radius, rel=0.01)  # central chord
    mass = out.sum().item() * geometry.pixel_mm**2
    assert mass == pytest.approx(4 / 3 * math.pi * radius**3, rel=0.01)


def test_cone_beam_magnifies_off_centre_objects():
    volume = ball(81, 2.0, 6.0, centre=(30.0, 60.0, 0.0)).float()
    cone = Geometry(size=81, field_of_view_mm=162.0, beam="cone", source_isocentre_mm=750.0,
                    source_detector_mm=1200.0)
    parallel = Geometry(size=81, field_of_view_mm=162.0)
    columns = (torch.arange(81, dtype=torch.float32) - 40) * 2.0
    for geometry, expected in ((cone, 30.0 * 750 / (750 + 60)), (parallel, 30.0)):
        image = project(volume, (2.0,) * 3, [0.0], geometry)[0, 0, 0]
        centroid = (image.sum(dim=0) * columns).sum() / image.sum()
        assert centroid.item() == pytest.approx(expected, abs=0.3)


def test_antialias_block_average_keeps_the_integral():
    volume = ball(64, 1.0, 20.0).float()
    geometry = Geometry(size=16, field_of_view_mm=64.0)  # 4 mm pixels: 4 voxels per pixel
    fine = project(volume, (1.0,) * 3, [20.0], geometry, antialias=False)
    coarse = project(volume, (1.0,) * 3, [20.0], geometry)
    assert coarse.sum().item() == pytest.approx(fine.sum().item(), rel=0.01)


def test_gradcheck_float64():
    volume = torch.rand((1, 1, 4, 5, 4), dtype=torch.float64, requires_grad=True)
    geometry = Geometry(size=3, field_of_view_mm=6.0, beam="cone", source_isocentre_mm=20.0,
                        source_detector_mm=30.0)
    assert torch.autograd.gradcheck(lambda v: project(v, (1.0, 1.2, 1.0), [10.0, 100.0], geometry), (volume,))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: project(torch.zeros(4, 4, 4), (1, 1, 1), [0], Geometry(4)), r"expected \(5 dimensions\)|shape"),
    (lambda: project(torch.zeros(1, 1, 4, 4, 4), (1, -1, 1), [0], Geometry(4)), "spacing must be 3 positive"),
    (lambda: project(torch.zeros(1, 1, 4, 4, 4), (1, 1, 1), [], Geometry(4)), "angles must be a non-empty"),
    (lambda: Geometry(4, beam="cone", source_isocentre_mm=900, source_detector_mm=800),
     "detector lies beyond"),
    (lambda: Geometry(4, beam="fan"), "'fan' is not a valid Beam"),
])
def test_bad_arguments(call, message):
    with pytest.raises((InputError, ValueError), match=message):
        call()
