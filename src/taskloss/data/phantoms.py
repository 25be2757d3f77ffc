"""Head phantoms: 3-D tissue-fraction volumes on real anatomy, different for every subject.

The brain comes from real anatomy: nilearn's bundled MNI152 (ICBM 2009a symmetric) T1 template and its
grey- and white-matter probability maps (brain only, no skull). Everything between the brain tissues
inside the inner skull surface is CSF (sulci, ventricles, cisterns). The outer layers are generated:
a CSF rim, the skull's inner table, diploe (marrow) and outer table, scalp fat and skin, each as a
shell at a distance from the inner skull surface, with a thickness that varies smoothly over the head.
Below the foramen magnum the bone becomes soft tissue (the neck). The grid extends
:data:`NECK_MM` below the template, down to the chin and the neck. Ellipsoids painted over the layers
(:data:`STRUCTURES`) add what the brain template lacks and a lateral skull radiograph shows: the face
and neck soft tissue; the facial bones (maxilla, zygomatic arches, hard palate, nasal septum), the
mandible (body and rami) and two rows of teeth; the orbits with the eyes; the air of the frontal,
ethmoid, sphenoid and maxillary sinuses, the nasal cavity, the pharynx, the ear canals and the
mastoid cells; the sella, the petrous ridges and the cervical spine (vertebral bodies, arches and
spinous processes). Optional small enhancing lesions sit in the white matter.

Every subject differs by a seeded draw of: layer thicknesses and their smooth variation, lesions, a
rotation, an anisotropic scaling, a smooth random deformation, and a jitter of every tissue's
T1, T2, PD and HU. :func:`ellipsoid_anatomy` is a procedural, file-free fallback with the same layers
around an ellipsoidal brain, for fast tests.

A phantom is a tensor of tissue fractions (N_TISSUES, D, H, W) in the order of
:class:`taskloss.data.physics.Tissue` that sums to 1 in every voxel (partial volume), on the axes of
:mod:`taskloss.data.projector`: D along ``z`` (inferior -> superior), H along ``y`` (posterior ->
anterior), W along ``x`` (left -> right), centred on the middle of the volume.
"""

import importlib.util
import math
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, field_validator
from scipy import ndimage

from taskloss.config import StrictModel
from taskloss.data.fields import generator_for, smooth_field
from taskloss.data.physics import N_TISSUES, Tissue, property_table
from taskloss.errors import DataError, InputError

MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
"""nilearn's bundled 1 mm MNI152 files (in ``nilearn/datasets/data``)."""

FORAMEN_MAGNUM_Z_MM = -42.0
"""MNI z below which the skull layers become neck soft tissue."""

NECK_MM = 64
"""Extent of the grid below the template's lowest slice (MNI z -72), mm: room for the mandible, the
teeth and the upper neck (MNI z down to -136)."""

SOFT = (Tissue.AIR, Tissue.SKIN, Tissue.FAT, Tissue.CORTICAL_BONE, Tissue.MARROW, Tissue.TOOTH)
"""Tissues outside the brain that the painted structures may replace."""
BONY = (Tissue.CORTICAL_BONE, Tissue.MARROW)


@dataclass(frozen=True)
class Structure:
    """An ellipsoid of one tissue painted over the layered head (skull base, face, sinuses, spine).

    Attributes:
        tissue: the tissue it becomes.
        centre: (x, y, z), MNI mm.
        semi_axes: (x, y, z) semi-axes, mm, before the rotation.
        replaces: the tissues it replaces (others, such as the brain, stay).
        yaw_deg: rotation about z, degrees.
        y_min: if given, only the part anterior to MNI y = ``y_min`` mm (e.g. the horseshoe of the
            mandible: a ring of which the posterior part is cut away).
    """

    tissue: Tissue
    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    replaces: tuple[Tissue, ...] = SOFT
    yaw_deg: float = 0.0
    y_min: float | None = None


def _mirrored(structure: Structure) -> tuple[Structure, Structure]:
    x, y, z = structure.centre
    return structure, Structure(structure.tissue, (-x, y, z), structure.semi_axes, structure.replaces,
                                -structure.yaw_deg, structure.y_min)


def _teeth(z: float, half_width: float, depth: float, back_y: float, tip: float) -> tuple[Structure, ...]:
    """One dental arch: 8 teeth a side on the front half of an ellipse (x semi-axis ``half_width``,
    y semi-axis ``depth``, centre at y = ``back_y``), crowns ``tip`` mm high around MNI z = ``z``;
    incisors narrow, molars wide."""
    teeth = []
    for number in range(8):
        angle = math.radians(8.0 + 11.0 * number)  # from the midline to the third molar
        width = 2.6 + 0.35 * number  # incisor ~5 mm, molar ~10 mm wide (full width)
        centre = (half_width * math.sin(angle), back_y + depth * math.cos(angle), z)
        teeth += _mirrored(Structure(Tissue.TOOTH, centre, (width, width, tip), (*SOFT, Tissue.CSF),
                                     yaw_deg=math.degrees(angle)))
    return tuple(teeth)


def _vertebrae() -> tuple[Structure, ...]:
    """C2 to C7 below the atlas: a body (cortex and marrow) with its arch and spinous process."""
    parts: list[Structure] = [
        Structure(Tissue.CORTICAL_BONE, (0.0, -4.0, -58.0), (6.0, 5.0, 6.0)),  # atlas anterior arch
        Structure(Tissue.CORTICAL_BONE, (0.0, -16.0, -62.0), (6.0, 6.0, 12.0)),  # dens of the axis
        Structure(Tissue.CORTICAL_BONE, (0.0, -42.0, -60.0), (20.0, 5.0, 4.0)),  # atlas posterior arch
    ]
    for level in range(6):
        z = -78.0 - 15.0 * level
        parts += [
            Structure(Tissue.CORTICAL_BONE, (0.0, -14.0, z), (10.0, 8.0, 6.0)),
            Structure(Tissue.MARROW, (0.0, -14.0, z), (8.0, 6.0, 4.5), (Tissue.CORTICAL_BONE,)),
            Structure(Tissue.CORTICAL_BONE, (0.0, -38.0, z), (14.0, 4.0, 4.0)),  # laminae
            Structure(Tissue.CORTICAL_BONE, (0.0, -52.0, z - 3.0), (3.0, 10.0, 3.5)),  # spinous process
        ]
    return tuple(parts)


# Approximate MNI positions (mm) of structures the brain template lacks, from adult skull
# proportions: orbits at the level of the orbitofrontal cortex, the Frankfort plane near z -45, the
# hard palate near z -72, the occlusal plane near z -86, the chin near z -120, the cervical spine in
# front of the neck's posterior muscles. Painted in this order, last wins.
STRUCTURES: tuple[Structure, ...] = (
    # Face and neck soft tissue, with a fat layer under the facial skin.
    Structure(Tissue.SKIN, (0.0, 50.0, -70.0), (58.0, 48.0, 62.0), (Tissue.AIR,)),
    Structure(Tissue.FAT, (0.0, 50.0, -68.0), (54.0, 44.0, 56.0), (Tissue.SKIN,)),
    Structure(Tissue.SKIN, (0.0, 48.0, -68.0), (49.0, 39.0, 50.0), (Tissue.FAT,)),
    Structure(Tissue.SKIN, (0.0, -14.0, -118.0), (52.0, 58.0, 70.0), (Tissue.AIR,)),
    # Midface: a bony shell (maxilla, zygoma) with soft tissue inside, zygomatic arches, palate.
    Structure(Tissue.CORTICAL_BONE, (0.0, 52.0, -54.0), (46.0, 32.0, 28.0), (*SOFT, Tissue.CSF)),
    Structure(Tissue.SKIN, (0.0, 52.0, -54.0), (43.0, 29.0, 25.0), BONY),
    *_mirrored(Structure(Tissue.CORTICAL_BONE, (50.0, 22.0, -46.0), (5.0, 26.0, 5.0))),
    Structure(Tissue.CORTICAL_BONE, (0.0, 40.0, -72.0), (22.0, 30.0, 3.0)),
    # Orbits (fat) with the eyes (vitreous: CSF-like water), the orbital rims around them.
    *_mirrored(Structure(Tissue.CORTICAL_BONE, (33.0, 60.0, -32.0), (19.0, 19.0, 17.0))),
    *_mirrored(Structure(Tissue.FAT, (33.0, 60.0, -32.0), (16.0, 17.0, 14.0))),
    *_mirrored(Structure(Tissue.CSF, (33.0, 66.0, -33.0), (12.0, 12.0, 12.0))),
    # Air: maxillary sinuses, nasal cavity to the choanae, ethmoid cells, pharynx.
    *_mirrored(Structure(Tissue.AIR, (24.0, 56.0, -56.0), (12.0, 17.0, 14.0))),
    Structure(Tissue.AIR, (0.0, 50.0, -52.0), (8.0, 40.0, 16.0)),
    Structure(Tissue.CORTICAL_BONE, (0.0, 62.0, -50.0), (1.5, 24.0, 14.0)),  # nasal septum
    Structure(Tissue.AIR, (0.0, 55.0, -30.0), (9.0, 14.0, 9.0)),  # ethmoid cells
    Structure(Tissue.AIR, (0.0, 8.0, -96.0), (9.0, 8.0, 42.0)),  # pharynx
    # Mandible: a horseshoe body (cortex, marrow) open behind, and the rami up to the condyles.
    Structure(Tissue.CORTICAL_BONE, (0.0, 26.0, -106.0), (48.0, 50.0, 14.0), y_min=4.0),
    Structure(Tissue.MARROW, (0.0, 26.0, -106.0), (45.0, 47.0, 10.0), (Tissue.CORTICAL_BONE,), y_min=4.0),
    Structure(Tissue.SKIN, (0.0, 22.0, -104.0), (39.0, 42.0, 18.0), BONY),
    *_mirrored(Structure(Tissue.CORTICAL_BONE, (46.0, 0.0, -78.0), (5.0, 13.0, 30.0))),
    *_mirrored(Structure(Tissue.MARROW, (46.0, 0.0, -78.0), (3.0, 10.0, 26.0), (Tissue.CORTICAL_BONE,))),
    *_mirrored(Structure(Tissue.CORTICAL_BONE, (48.0, -12.0, -47.0), (9.0, 6.0, 5.0))),
    # Teeth: the upper arch under the palate, the lower arch on the mandible.
    *_teeth(-80.0, 30.0, 34.0, 30.0, 6.0),
    *_teeth(-93.0, 28.0, 32.0, 30.0, 6.0),
    # Skull base: sphenoid body with its sinus, petrous ridges with the ear canals and mastoid cells.
    Structure(Tissue.CORTICAL_BONE, (0.0, 18.0, -40.0), (14.0, 14.0, 12.0), (*SOFT, Tissue.CSF)),
    Structure(Tissue.AIR, (0.0, 18.0, -40.0), (10.0, 10.0, 8.0)),
    *_mirrored(Structure(Tissue.CORTICAL_BONE, (30.0, -22.0, -38.0), (24.0, 7.0, 7.0), (*SOFT, Tissue.CSF),
                         yaw_deg=-50.0)),
    *_mirrored(Structure(Tissue.AIR, (50.0, -30.0, -50.0), (7.0, 8.0, 8.0))),
    *_mirrored(Structure(Tissue.AIR, (62.0, -18.0, -42.0), (9.0, 3.0, 3.0))),
    # Cervical spine.
    *_vertebrae(),
    # Frontal sinus, last: air inside the frontal bone.
    Structure(Tissue.AIR, (0.0, 72.0, 6.0), (15.0, 7.0, 11.0), (Tissue.CSF, Tissue.CORTICAL_BONE,
                                                              Tissue.MARROW)),
)
"""Structures painted over the layers, last wins; the last is the frontal sinus."""

LAYERS = (Tissue.CSF, Tissue.CORTICAL_BONE, Tissue.MARROW, Tissue.CORTICAL_BONE, Tissue.FAT, Tissue.SKIN)
"""Outer layers from the inner skull surface outwards: CSF rim, inner table, diploe, outer table,
scalp fat, skin."""

LAYER_THICKNESS_MM = (2.0, 1.8, 3.0, 1.8, 3.5, 2.5)
"""Mean thickness of each layer of :data:`LAYERS`, mm (adult head; a subject draws +-20 %)."""


class AnatomySource(str, Enum):
    """Where the brain of a phantom comes from."""

    MNI152 = "mni152"
    ELLIPSOID = "ellipsoid"


@dataclass(frozen=True)
class Anatomy:
    """Subject-independent anatomy on a regular grid.

    Attributes:
        grey: grey-matter fraction (D, H, W), float32.
        white: white-matter fraction (D, H, W), float32.
        hull: 1 inside the inner skull surface, 0 outside (D, H, W), float32.
        distance_mm: distance of each voxel centre outside the hull to the hull, 0 inside (D, H, W).
        origin_mm: coordinates (x, y, z) of the volume centre in template (MNI) mm.
        spacing_mm: isotropic voxel size, mm.
    """

    grey: torch.Tensor
    white: torch.Tensor
    hull: torch.Tensor
    distance_mm: torch.Tensor
    origin_mm: tuple[float, float, float]
    spacing_mm: float

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (D, H, W)."""
        return tuple(self.grey.shape)  # type: ignore[return-value]

    def coordinates(self) -> torch.Tensor:
        """Template (MNI) coordinates (x, y, z) of every voxel centre, (D, H, W, 3) float32, mm."""
        axes = [(torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * self.spacing_mm + o
                for n, o in zip(self.shape, reversed(self.origin_mm), strict=True)]
        z, y, x = torch.meshgrid(*axes, indexing="ij")
        return torch.stack([x, y, z], dim=-1)


@dataclass(frozen=True)
class Phantom:
    """One subject's head.

    Attributes:
        fractions: tissue fractions (N_TISSUES, D, H, W) float32, summing to 1 per voxel.
        spacing_mm: isotropic voxel size, mm.
        properties: this subject's tissue table (N_TISSUES, 4) float64, columns (T1 ms, T2 ms, PD,
            HU), see :func:`taskloss.data.physics.property_table`.
        subject: the subject's index.
        origin_mm: template (MNI) coordinates (x, y, z) of the volume centre, mm (before the
            subject's own rotation, scaling and deformation, which keep the centre in place).
    """

    fractions: torch.Tensor
    spacing_mm: float
    properties: torch.Tensor
    subject: int
    origin_mm: tuple[float, float, float]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (sz, sy, sx), mm, as :func:`taskloss.data.projector.project` takes it."""
        return (self.spacing_mm,) * 3

    def labels(self) -> torch.Tensor:
        """The dominant tissue of every voxel, (D, H, W) uint8 with values of :class:`Tissue`."""
        return self.fractions.argmax(dim=0).to(torch.uint8)


def nilearn_data_file(name: str) -> Path:
    """Path of a file bundled in nilearn's ``datasets/data`` folder, without importing nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("nilearn is not installed; it ships the MNI152 template of the head "
                        "phantoms: pip install nilearn (or use anatomy='ellipsoid')")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise DataError(f"nilearn's bundled file {path} is missing; reinstall nilearn "
                        "(pip install --force-reinstall nilearn) or use anatomy='ellipsoid'")
    return path


@cache
def mni_anatomy(spacing_mm: int = 2) -> Anatomy:
    """The MNI152 brain, its inner skull surface and distances, at ``spacing_mm`` (cached).

    The 1 mm maps are averaged over blocks of ``spacing_mm``^3 voxels (exact partial volume). The
    inner skull surface (hull) closes the sulci: the brain mask smoothed with a 4 mm Gaussian,
    thresholded at 0.3, with holes filled.

    Args:
        spacing_mm: integer voxel size, 1 to 4 mm.

    Returns:
        The anatomy on a grid of about (254, 233, 197) / spacing_mm voxels (z from MNI -136 mm).
    """
    if spacing_mm not in (1, 2, 3, 4):
        raise InputError(f"spacing_mm must be an integer from 1 to 4, got {spacing_mm}")
    import nibabel as nib

    def load(key: str) -> np.ndarray:
        path = nilearn_data_file(MNI_FILES[key])
        image = nib.load(path)
        # RAS arrays (x, y, z) -> (z, y, x), the (D, H, W) order of the projector.
        return np.asarray(image.dataobj, dtype=np.float32).transpose(2, 1, 0) / 255.0

    t1, grey, white = load("t1"), load("gm"), load("wm")
    brain = np.maximum((t1 > 0).astype(np.float32), grey + white)
    # NECK_MM of empty slices below the template, for the jaw and the neck.
    grey, white, brain = (np.pad(a, ((NECK_MM, 0), (0, 0), (0, 0))) for a in (grey, white, brain))
    # Template voxel (0, 0, 0) lies at MNI (-98, -134, -72) (the template's fixed affine), the padded
    # grid's at z -72 - NECK_MM; block j of f voxels is centred at z0 + j f + (f - 1) / 2 along z,
    # and likewise along y and x.
    grey, white, brain = (_block_mean(a, spacing_mm) for a in (grey, white, brain))
    covered = np.array(grey.shape) * spacing_mm
    centre_zyx = np.array([-72.0 - NECK_MM, -134.0, -98.0]) + (covered - 1) / 2
    return _anatomy_from_brain(grey, white, brain, tuple(centre_zyx[::-1]), spacing_mm)


@cache
def ellipsoid_anatomy(spacing_mm: int = 4) -> Anatomy:
    """A procedural brain: a white-matter ellipsoid in a grey-matter shell, with two ventricles.

    Same coordinate frame and size as the MNI152 brain (semi-axes 68, 86, 62 mm around MNI
    (0, -18, 16)) and the same grid below it (:data:`NECK_MM`), so the same layers, face and neck
    structures apply. No file is read.

    Args:
        spacing_mm: integer voxel size, 1 to 4 mm (4 is the light default for tests).
    """
    if spacing_mm not in (1, 2, 3, 4):
        raise InputError(f"spacing_mm must be an integer from 1 to 4, got {spacing_mm}")
    shape = np.ceil(np.array([189 + NECK_MM, 233, 197]) / spacing_mm).astype(int)  # (z, y, x)
    centre = (0.0, -18.0, 22.0 - NECK_MM / 2)  # volume centre (x, y, z), MNI mm
    axes = [(np.arange(n) - (n - 1) / 2) * spacing_mm + c
            for n, c in zip(shape, centre[::-1], strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij")

    def inside(cx: float, cy: float, cz: float, ax: float, ay: float, az: float) -> np.ndarray:
        radius = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2)
        # Soft edge one voxel wide (partial volume), measured along the smallest semi-axis.
        return np.clip((1 - radius) * min(ax, ay, az) / spacing_mm + 0.5, 0, 1).astype(np.float32)

    brain = inside(0, -18, 16, 68, 86, 62)
    white_core = inside(0, -18, 18, 58, 76, 52)
    ventricles = np.maximum(inside(-10, -10, 20, 6, 28, 10), inside(10, -10, 20, 6, 28, 10))
    white = white_core * (1 - ventricles)
    grey = brain - white_core
    return _anatomy_from_brain(grey, white, brain, centre, spacing_mm)


def _block_mean(volume: np.ndarray, factor: int) -> np.ndarray:
    """Mean over blocks of ``factor``^3 voxels, zero-padding the high end of each axis."""
    if factor == 1:
        return volume
    padded = np.pad(volume, [(0, (-n) % factor) for n in volume.shape])
    d, h, w = (n // factor for n in padded.shape)
    return padded.reshape(d, factor, h, factor, w, factor).mean(axis=(1, 3, 5))


def _anatomy_from_brain(
    grey: np.ndarray,
    white: np.ndarray,
    brain: np.ndarray,
    origin_mm: tuple[float, float, float],
    spacing_mm: int,
) -> Anatomy:
    smooth = ndimage.gaussian_filter(brain, sigma=4.0 / spacing_mm)
    hull = ndimage.binary_fill_holes((smooth > 0.3) | (brain > 0.5))
    distance = ndimage.distance_transform_edt(~hull, sampling=spacing_mm)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    return Anatomy(grey=tensor(grey), white=tensor(white), hull=tensor(hull), distance_mm=tensor(distance),
                   origin_mm=tuple(float(o) for o in origin_mm), spacing_mm=float(spacing_mm))


class Variation(StrictModel):
    """How much subjects differ (each value is the half-width of a uniform draw unless noted).

    A frozen (hashable) config: a data config holds it, and simulated datasets are cached by
    config. Negative values, relative values of 1 or more and a bad lesion range are errors that
    name the key (through :func:`taskloss.config.validate_config`, a ``ConfigError``).

    Attributes:
        rotation_deg: rotation about each axis, degrees, >= 0.
        scale: relative scaling along each axis (0.08: 0.92 to 1.08), in [0, 1).
        deformation_mm: standard deviation of the smooth random displacement, mm, >= 0.
        thickness: relative change of each layer's mean thickness, in [0, 1).
        thickness_local: standard deviation of the smooth local thickness change, relative, >= 0.
        tissue: relative jitter of every tissue's T1, T2, PD and HU, in [0, 1).
        lesions: most lesions per subject (the count is drawn from 1..lesions; 0 for none).
        lesion_radius_mm: (smallest, largest) lesion semi-axis, mm, 0 < smallest <= largest.
    """

    model_config = ConfigDict(frozen=True)

    rotation_deg: float = Field(6.0, ge=0)
    scale: float = Field(0.08, ge=0, lt=1)
    deformation_mm: float = Field(2.5, ge=0)
    thickness: float = Field(0.2, ge=0, lt=1)
    thickness_local: float = Field(0.2, ge=0)
    tissue: float = Field(0.05, ge=0, lt=1)
    lesions: int = Field(5, ge=0)
    lesion_radius_mm: tuple[float, float] = (4.0, 9.0)

    @field_validator("lesion_radius_mm")
    @classmethod
    def _lesion_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low <= high:
            raise ValueError(f"must be (low, high) with 0 < low <= high, got {list(value)}")
        return value


def head_phantom(
    subject: int,
    seed: int = 0,
    *,
    anatomy: AnatomySource | str = AnatomySource.MNI152,
    spacing_mm: int = 2,
    variation: Variation | None = None,
) -> Phantom:
    """Build subject ``subject``'s head phantom, deterministically from ``(seed, subject)``.

    Args:
        subject: subject index (>= 0); different subjects differ by every drawn variation.
        seed: seed of the whole population.
        anatomy: ``"mni152"`` (real anatomy) or ``"ellipsoid"`` (procedural, file-free).
        spacing_mm: voxel size in mm, 1 to 4.
        variation: how much subjects differ; default :class:`Variation` ().

    Returns:
        The phantom, about (254, 233, 197) / spacing_mm voxels.
    """
    if subject < 0:
        raise InputError(f"subject must be >= 0, got {subject}")
    source = _anatomy_source(anatomy)
    base = mni_anatomy(spacing_mm) if source is AnatomySource.MNI152 else ellipsoid_anatomy(spacing_mm)
    variation = Variation() if variation is None else variation
    generator = generator_for(seed, subject)
    coordinates = base.coordinates()
    fractions = _tissue_fractions(base, coordinates, variation, generator)
    fractions = _warp(fractions, base.spacing_mm, variation, generator)
    jitter = 1 + variation.tissue * (2 * torch.rand((N_TISSUES, 4), generator=generator,
                                                    dtype=torch.float64) - 1)
    jitter[Tissue.AIR] = 1  # air stays air: no protons, -1000 HU
    return Phantom(fractions=fractions, spacing_mm=base.spacing_mm, properties=property_table() * jitter,
                   subject=subject, origin_mm=base.origin_mm)


def _anatomy_source(anatomy: AnatomySource | str) -> AnatomySource:
    try:
        return AnatomySource(anatomy)
    except ValueError:
        raise InputError(f"unknown anatomy {anatomy!r}; use one of "
                         f"{[a.value for a in AnatomySource]}") from None


def _soft_inside(signed_mm: torch.Tensor, spacing_mm: float) -> torch.Tensor:
    """Partial-volume occupancy from a signed distance (positive inside, mm): a 1-voxel linear ramp."""
    return (signed_mm / spacing_mm + 0.5).clamp(0, 1)


def _tissue_fractions(
    base: Anatomy, coordinates: torch.Tensor, variation: Variation, generator: torch.Generator
) -> torch.Tensor:
    """Fractions (N_TISSUES, D, H, W) in template space: brain, CSF, layers, sinus, neck, lesions."""
    spacing = base.spacing_mm
    brain = base.grey + base.white
    fractions = torch.zeros((N_TISSUES, *base.shape))
    fractions[Tissue.GREY_MATTER] = base.grey
    fractions[Tissue.WHITE_MATTER] = base.white
    rest = (1 - brain).clamp(min=0)  # what the brain leaves to CSF (inside) or to the layers
    fractions[Tissue.CSF] = base.hull * rest
    # Layers: shell k lies between cumulative depths b_{k-1} and b_k outside the hull. The hull's
    # surface lies half a voxel beyond the centres of its outer voxels, hence the + spacing / 2.
    mean = torch.tensor(LAYER_THICKNESS_MM, dtype=torch.float32)
    mean = mean * (1 + variation.thickness * (2 * torch.rand(len(LAYERS), generator=generator) - 1))
    local = 1 + variation.thickness_local * smooth_field(base.shape, 6, generator, channels=len(LAYERS))
    depth = torch.cumsum(mean[:, None, None, None] * local.clamp(min=0.3), dim=0)
    surface_distance = base.distance_mm - spacing / 2
    occupancy = _soft_inside(depth - surface_distance, spacing) * (1 - base.hull)  # (L, D, H, W)
    shells = torch.diff(occupancy, dim=0, prepend=torch.zeros_like(occupancy[:1])).clamp(min=0)
    for tissue, shell in zip(LAYERS, shells, strict=True):
        fractions[tissue] += shell * rest
    fractions[Tissue.AIR] = (1 - occupancy[-1]) * (1 - base.hull) * rest
    _neck(fractions, coordinates, spacing)
    for structure in STRUCTURES:
        _paint(fractions, coordinates, structure, spacing)
    _lesions(fractions, base, coordinates, variation, generator)
    return fractions


def _neck(fractions: torch.Tensor, coordinates: torch.Tensor, spacing: float) -> None:
    """Below the foramen magnum, bone and marrow become skin/muscle (soft transition), in place."""
    skull = _soft_inside(coordinates[..., 2] - FORAMEN_MAGNUM_Z_MM, 2 * spacing)
    for bone in (Tissue.CORTICAL_BONE, Tissue.MARROW):
        fractions[Tissue.SKIN] += fractions[bone] * (1 - skull)
        fractions[bone] *= skull


def _ellipsoid(coordinates: torch.Tensor, centre: torch.Tensor, semi_axes: torch.Tensor,
               spacing: float, yaw_deg: float = 0.0) -> torch.Tensor:
    """Soft occupancy (partial volume) of an ellipsoid rotated by ``yaw_deg`` about z, (D, H, W)."""
    offset = coordinates - centre
    if yaw_deg:
        yaw = math.radians(yaw_deg)
        rotation = torch.tensor([[math.cos(yaw), math.sin(yaw), 0.0], [-math.sin(yaw), math.cos(yaw), 0.0],
                                 [0.0, 0.0, 1.0]])
        offset = offset @ rotation.T
    radius = (offset / semi_axes).norm(dim=-1)
    return _soft_inside((1 - radius) * float(semi_axes.min()), spacing)


def _box(coordinates: torch.Tensor, centre: torch.Tensor, reach: float,
         spacing: float) -> tuple[slice, slice, slice]:
    """Index ranges (D, H, W) of the voxels within ``reach`` mm (plus a voxel) of ``centre`` (x, y, z)."""
    first = coordinates[0, 0, 0].flip(0)  # (z, y, x) of voxel (0, 0, 0)
    low = ((centre.flip(0) - reach - first) / spacing).floor().long() - 1
    high = ((centre.flip(0) + reach - first) / spacing).ceil().long() + 2
    return tuple(slice(max(0, int(lo)), max(0, int(hi))) for lo, hi in zip(low, high, strict=True))


def _paint(fractions: torch.Tensor, coordinates: torch.Tensor, structure: Structure, spacing: float) -> None:
    """Move the replaceable tissues inside the structure's ellipsoid to its tissue, in place.

    Only the ellipsoid's bounding box is computed (an ellipsoid is small next to the head).
    """
    centre, semi_axes = torch.tensor(structure.centre), torch.tensor(structure.semi_axes)
    box = _box(coordinates, centre, float(semi_axes.max()), spacing)
    inside = _ellipsoid(coordinates[box], centre, semi_axes, spacing, structure.yaw_deg)
    if structure.y_min is not None:
        inside = inside * _soft_inside(coordinates[box][..., 1] - structure.y_min, spacing)
    region = fractions[(slice(None), *box)]
    for tissue in structure.replaces:
        if tissue is structure.tissue:
            continue
        moved = region[tissue] * inside
        region[structure.tissue] += moved
        region[tissue] -= moved


def _lesions(fractions: torch.Tensor, base: Anatomy, coordinates: torch.Tensor, variation: Variation,
             generator: torch.Generator) -> None:
    """Replace brain tissue by lesion inside random ellipsoids centred in white matter, in place."""
    if variation.lesions == 0:
        return
    count = int(torch.randint(1, variation.lesions + 1, (1,), generator=generator))
    candidates = (base.white > 0.9).nonzero()
    if len(candidates) == 0:
        return
    picks = candidates[torch.randint(len(candidates), (count,), generator=generator)]
    low, high = variation.lesion_radius_mm
    semi_axes = low + (high - low) * torch.rand((count, 3), generator=generator)
    lesion = torch.zeros(base.shape)
    for (d, h, w), axes in zip(picks.tolist(), semi_axes, strict=True):
        box = _box(coordinates, coordinates[d, h, w], float(axes.max()), base.spacing_mm)
        inside = _ellipsoid(coordinates[box], coordinates[d, h, w], axes, base.spacing_mm)
        lesion[box] = torch.maximum(lesion[box], inside)
    for tissue in (Tissue.GREY_MATTER, Tissue.WHITE_MATTER):
        moved = fractions[tissue] * lesion
        fractions[Tissue.LESION] += moved
        fractions[tissue] -= moved


def _warp(fractions: torch.Tensor, spacing: float, variation: Variation,
          generator: torch.Generator) -> torch.Tensor:
    """Resample the fractions through a random rotation, scaling and smooth deformation.

    Each output voxel ``p`` (mm, centred) reads the template at ``(R S)^-1 p + u(p)``, trilinearly;
    air is recomputed as 1 minus the other tissues, so the fractions still sum to 1 and the
    surroundings are air.
    """
    shape = fractions.shape[1:]
    axes = [(torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * spacing for n in shape]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    points = torch.stack([x, y, z], dim=-1)  # (D, H, W, 3)
    angles = torch.deg2rad(variation.rotation_deg * (2 * torch.rand(3, generator=generator) - 1))
    scale = 1 + variation.scale * (2 * torch.rand(3, generator=generator) - 1)
    inverse = torch.linalg.inv(_rotation(angles) @ torch.diag(scale))
    displacement = variation.deformation_mm * smooth_field(shape, 5, generator, channels=3)
    source = points @ inverse.T + displacement.permute(1, 2, 3, 0)
    half_extent = torch.tensor([shape[2], shape[1], shape[0]], dtype=torch.float32) * spacing / 2
    grid = (source / half_extent)[None]
    tissues = F.grid_sample(fractions[None, 1:], grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)[0]
    air = (1 - tissues.sum(dim=0, keepdim=True)).clamp(min=0)
    return torch.cat([air, tissues], dim=0)


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrix R_z R_y R_x for angles (about x, about y, about z) in radians, (3, 3)."""
    cx, cy, cz = torch.cos(angles).tolist()
    sx, sy, sz = torch.sin(angles).tolist()
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx

