"""The mr2xray dataset: paired MR projection -> X-ray projection images, split by subject.

Each simulated subject is a head phantom (:mod:`taskloss.data.phantoms`) seen from ``angles`` views
evenly spaced over half a turn (``k * 180 / angles`` degrees; 0 posterior-anterior, 90 lateral). For
every view the same rays (:mod:`taskloss.data.projector`) integrate:

- the spin-echo MR signal (bone gives almost none: dark), with a bias field, plus Rician noise of
  ``mr_noise`` times the projection's maximum (an MR projection is measured as one image, so its noise
  is the noise of that image);
- the attenuation ``mu`` (bone dominates: bright), measured as ``-ln(I / I0)`` with Poisson noise of
  ``photons`` per pixel, blurred by the detector (``detector_blur_mm``) and shown as radiographs are
  displayed (:class:`taskloss.data.physics.RadiographDisplay`: log intensity, bone bright, the
  head's thickness compressed, windowed to [0, 1]).

Normalisation: every MR input is scaled to [0, 1] by its own minimum and maximum; the simulated X-ray
target is the windowed radiograph display, in [0, 1]. A user's images (inputs and targets) are
scaled to [0, 1] by their own minimum and maximum.

Bone masks (simulated data): the phantom's bone share (:func:`taskloss.data.physics.bone_fraction`,
the mineralised tissues: skull, spine, facial bones, teeth) is projected along the same rays; a
pixel is bone where a ray crosses at least ``bone_threshold_mm`` of bone. The mask is the label of the
fluoroscopy reader's task, bone segmentation on the X-ray.

Item of :class:`Mr2XrayDataset`: ``{"input": (1, S, S) float32 MR projection in [0, 1], "target":
(1, S, S) float32 X-ray projection in [0, 1], "id": str, "subject": int, "angle": float degrees (NaN
for a user's 2-D image whose angle is unknown)}``, plus ``"bone": (1, S, S) int64 0/1`` where the
data has bone masks (simulated data; not a user's folder).
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, field_validator, model_validator
from torch.utils.data import Dataset

from taskloss.config import StrictModel
from taskloss.data import io
from taskloss.data.fields import generator_for
from taskloss.data.phantoms import Phantom, Variation, head_phantom
from taskloss.data.physics import (
    RadiographDisplay,
    SpinEcho,
    Tissue,
    attenuation_volume,
    bone_fraction,
    detector_blur,
    hu_to_attenuation,
    mr_volume,
    rician,
    xray_line_integral,
)
from taskloss.data.projector import Beam, Geometry, project
from taskloss.data.splits import (
    SPLITS,
    Splits,
    check_subjects,
    read_config,
    read_index,
    simulate_subjects,
    split_subjects,
    write_config,
    write_index,
)
from taskloss.errors import DataError, InputError

INPUT_DIR = "input"
TARGET_DIR = "target"


class Mr2XrayConfig(StrictModel):
    """Settings of the mr2xray data: simulated in memory, read from a folder, or a user's pairs.

    Frozen and hashable (the studies cache a configuration's data); a bad setting is a
    :class:`~taskloss.errors.ConfigError` naming the key (:mod:`taskloss.config`).

    Attributes:
        subjects: simulated subjects (>= 3, split by subject).
        angles: views per subject (for a user's volumes too), evenly spaced over 180 degrees.
        size: image side S in pixels; a user's images of another size are resized (bilinear,
            antialiased; the aspect ratio is not kept).
        seed: seed of the phantoms, noise and split.
        anatomy: ``"mni152"`` or ``"ellipsoid"``.
        beam: ``"cone"`` (a C-arm) or ``"parallel"``.
        field_of_view_mm: side of the imaged square at the isocentre, mm (simulation only; a user's
            volume is fitted whole).
        source_isocentre_mm: cone beam source to isocentre, mm.
        source_detector_mm: cone beam source to detector, mm.
        weighting: MR contrast preset, ``"t1"``, ``"t2"`` or ``"pd"``.
        photons: X-ray photons per pixel without object, ``I0``; ``None`` for no Poisson noise.
        mr_noise: Rician noise sigma relative to the MR projection's maximum.
        bias: MR bias field strength (see :func:`taskloss.data.physics.mr_volume`).
        detector_blur_mm: X-ray detector and focal-spot blur, Gaussian FWHM in mm at the isocentre.
        display_compression: share of the head's large-scale thickness variation that the X-ray
            display removes (:class:`taskloss.data.physics.RadiographDisplay`); 0 shows the plain
            log intensity.
        bone_threshold_mm: bone path length along a ray (mm) from which a pixel is bone in the
            projected bone mask.
        val_fraction: share of subjects for validation.
        test_fraction: share of subjects for testing.
        data: ``None`` to simulate in memory, or a folder: one written by ``taskloss simulate
            mr2xray``, or a user's ``input/`` and ``target/`` folders of pairs matched by file name.
    """

    model_config = ConfigDict(frozen=True)

    subjects: int = Field(12, ge=1)
    angles: int = Field(4, ge=1)
    size: int = Field(64, ge=1)
    seed: int = 0
    anatomy: Literal["mni152", "ellipsoid"] = "mni152"
    beam: Literal["cone", "parallel"] = "cone"
    field_of_view_mm: float = 260.0
    source_isocentre_mm: float = 750.0
    source_detector_mm: float = 1200.0
    weighting: str = "t1"
    photons: float | None = 1e5
    mr_noise: float = Field(0.01, ge=0)
    bias: float = 0.2
    detector_blur_mm: float = Field(0.5, ge=0)
    display_compression: float = 0.7
    bone_threshold_mm: float = 25.0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    data: Path | None = None
    variation: Variation = Variation()

    @field_validator("weighting")
    @classmethod
    def _known_weighting(cls, weighting: str) -> str:
        SpinEcho.preset(weighting)
        return weighting

    @field_validator("display_compression")
    @classmethod
    def _display(cls, compression: float) -> float:
        RadiographDisplay(compression)
        return compression

    @model_validator(mode="after")
    def _consistent(self) -> "Mr2XrayConfig":
        check_subjects(self.subjects, self.data)
        self.geometry()
        return self

    def geometry(self, field_of_view_mm: float | None = None) -> Geometry:
        """The projection geometry at this size (optionally with another field of view)."""
        return Geometry(size=self.size, field_of_view_mm=field_of_view_mm or self.field_of_view_mm,
                        beam=Beam(self.beam),
                        source_isocentre_mm=self.source_isocentre_mm,
                        source_detector_mm=self.source_detector_mm)

    def angle_list(self) -> list[float]:
        """Projection angles in degrees, ``k * 180 / angles``."""
        return [k * 180.0 / self.angles for k in range(self.angles)]

    def phantom_spacing_mm(self) -> int:
        """Voxel size of the phantoms: the detector pixel at the isocentre, rounded down, 1 to 4 mm."""
        return int(min(4, max(1, math.floor(self.field_of_view_mm / self.size))))


@dataclass(frozen=True)
class Mr2XrayData:
    """All samples of an mr2xray dataset, in memory.

    Attributes:
        inputs: MR projections (N, 1, S, S) float32 in [0, 1].
        targets: X-ray projections (N, 1, S, S) float32 in [0, 1].
        ids: sample names, N.
        subjects: subject of each sample, (N,) int64.
        angles: view angle of each sample in degrees, (N,) float64 (NaN when unknown).
        splits: split name of each sample, N.
        bone: projected bone masks (N, 1, S, S) bool, or None (a user's data).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    ids: list[str]
    subjects: torch.Tensor
    angles: torch.Tensor
    splits: list[str]
    bone: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)


class Mr2XrayDataset(Dataset):
    """One split of an mr2xray dataset (see the module docstring for the item)."""

    def __init__(self, data: Mr2XrayData, split: str | None = None) -> None:
        """Select the samples of ``split`` (``"train"``, ``"val"``, ``"test"``, or None for all)."""
        if split is not None and split not in SPLITS:
            raise InputError(f"split must be one of {SPLITS} or None, got {split!r}")
        self.data = data
        self.split = split
        self.indices = [i for i, s in enumerate(data.splits) if split is None or s == split]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self.indices[index]
        item = {"input": self.data.inputs[i], "target": self.data.targets[i], "id": self.data.ids[i],
                "subject": int(self.data.subjects[i]), "angle": float(self.data.angles[i])}
        if self.data.bone is not None:
            item["bone"] = self.data.bone[i].long()
        return item


def mr2xray_splits(config: Mr2XrayConfig) -> Splits:
    """The train/val/test datasets the mr2xray study trains and scores on.

    Simulates in memory when ``config.data`` is None, else reads the folder.
    """
    data = simulated_mr2xray(config) if config.data is None else load_mr2xray_folder(config.data, config)
    return Splits(*(Mr2XrayDataset(data, split) for split in SPLITS))


def normalize_min_max(images: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Scale every image (N, C, H, W) to [0, 1] by its own minimum and maximum (constant -> 0), or by those
    of ``reference`` (same shape; values outside its range are clipped)."""
    flat = (images if reference is None else reference).flatten(1)
    low = flat.min(dim=1).values.reshape(-1, *[1] * (images.ndim - 1))
    high = flat.max(dim=1).values.reshape(-1, *[1] * (images.ndim - 1))
    return ((images - low) / (high - low).clamp(min=torch.finfo(images.dtype).tiny)).clamp(0, 1)


def simulate_subject(config: Mr2XrayConfig, subject: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MR and X-ray projections of one subject at every angle, each (A, 1, S, S) in [0, 1]."""
    mr, xray, _ = simulate_views(config, subject)
    return mr, xray


def simulate_views(config: Mr2XrayConfig, subject: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MR and X-ray projections (A, 1, S, S) in [0, 1] and bone masks (A, 1, S, S) bool of one subject."""
    return finish_views(config, view_integrals(config, subject))


NODULE_STREAM = 2
"""``generator_for(seed, subject, NODULE_STREAM)`` draws a subject's nodule site (stream 1 is its noise)."""
NODULE_SITE_FRACTION = 0.9
"""A nodule's centre lies in a voxel of at least this white-matter fraction (as the phantoms' lesions)."""


@dataclass(frozen=True)
class ViewIntegrals:
    """One subject's noise-free line integrals at every angle, and the state of its noise generator.

    Attributes:
        mr: MR signal line integrals (A, 1, S, S).
        mu: attenuation line integrals (A, 1, S, S), dimensionless.
        bone_mm: bone path length (A, 1, S, S), mm.
        noise_state: the state of the subject's generator after the MR bias field, where its noise
            draws start (:func:`finish_views` draws from a copy, so every call gives the same noise).
        nodule_mr: with a nodule, the line integrals of the MR signal inside it (A, 1, S, S); else None.
        nodule_mu: with a nodule, those of the attenuation inside it; else None.
        nodule_px: with a nodule, its centre in every view, (A, 2) int64 (row, column) pixels, where its
            projected chord is longest; else None.
    """

    mr: torch.Tensor
    mu: torch.Tensor
    bone_mm: torch.Tensor
    noise_state: torch.Tensor
    nodule_mr: torch.Tensor | None = None
    nodule_mu: torch.Tensor | None = None
    nodule_px: torch.Tensor | None = None


def nodule_site(phantom: Phantom, config: Mr2XrayConfig) -> tuple[int, int, int]:
    """The voxel (d, h, w) of the subject's nodule centre: drawn among the white-matter voxels
    (:data:`NODULE_SITE_FRACTION`) with ``generator_for(config.seed, subject, NODULE_STREAM)``."""
    candidates = (phantom.fractions[Tissue.WHITE_MATTER] >= NODULE_SITE_FRACTION).nonzero()
    if len(candidates) == 0:
        raise DataError(f"subject {phantom.subject}'s phantom has no white-matter voxel for a nodule; use more "
                        "pixels (data.size) or the mni152 anatomy")
    generator = generator_for(config.seed, phantom.subject, NODULE_STREAM)
    d, h, w = candidates[int(torch.randint(len(candidates), (1,), generator=generator))].tolist()
    return d, h, w


def nodule_volume(shape: tuple[int, int, int], centre: tuple[int, int, int], radius_mm: float,
                  spacing_mm: float) -> torch.Tensor:
    """A sphere's share of every voxel, (D, H, W) float32 in [0, 1]: 1 inside, 0 outside, a linear
    ramp one voxel wide across the surface (partial volume)."""
    axes = [(torch.arange(n, dtype=torch.float32) - c) * spacing_mm for n, c in zip(shape, centre, strict=True)]
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    distance = (z.square() + y.square() + x.square()).sqrt()
    return ((radius_mm - distance) / spacing_mm + 0.5).clamp(0.0, 1.0)


def view_integrals(config: Mr2XrayConfig, subject: int, nodule_radius_mm: float | None = None) -> ViewIntegrals:
    """The line integrals of one subject's views (:func:`finish_views` makes the images).

    With ``nodule_radius_mm``, also those of a spherical nodule of that radius at :func:`nodule_site`,
    whose MR signal and attenuation are the surrounding tissue's (a nodule of contrast c multiplies
    both by 1 + c inside the sphere, see :func:`finish_views`), and its centre in every view.
    """
    phantom = head_phantom(subject, config.seed, anatomy=config.anatomy,
                           spacing_mm=config.phantom_spacing_mm(), variation=config.variation)
    generator = generator_for(config.seed, subject, 1)
    channels = [mr_volume(phantom.fractions, phantom.properties, SpinEcho.preset(config.weighting), config.bias,
                          generator),
                attenuation_volume(phantom.fractions, phantom.properties), bone_fraction(phantom.fractions)]
    if nodule_radius_mm is not None:
        sphere = nodule_volume(tuple(phantom.fractions.shape[1:]), nodule_site(phantom, config), nodule_radius_mm,
                               phantom.spacing_mm)[None]
        channels += [sphere * channels[0], sphere * channels[1], sphere]
    line_integrals = project(torch.cat(channels)[None], phantom.spacing, config.angle_list(), config.geometry())[0]
    views = line_integrals[:, :, None]  # (C, A, 1, S, S)
    nodule: dict[str, torch.Tensor] = {}
    if nodule_radius_mm is not None:
        chords = views[5].flatten(1).argmax(dim=1)
        size = config.size
        nodule = {"nodule_mr": views[3], "nodule_mu": views[4],
                  "nodule_px": torch.stack([chords // size, chords % size], dim=1)}
    return ViewIntegrals(views[0], views[1], views[2], generator.get_state(), **nodule)


def finish_views(config: Mr2XrayConfig, integrals: ViewIntegrals, contrast: float = 0.0,
                 noise_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The measured images of a subject's views: MR with Rician noise, X-ray with Poisson noise and
    detector blur, normalised as the data set is (module docstring).

    A nodule is inserted into the measured data, as lesion-insertion studies add a lesion's projection
    to the raw data: ``contrast`` times its line integrals is added to the noisy MR and X-ray line
    integrals, before the detector blur, and the result is normalised (MR) and windowed (X-ray) as the
    view without it. The noise is therefore that of the views without it (its change by a low-contrast
    nodule is neglected): the views with and without the nodule differ by the signal alone (clipped to
    [0, 1]), and an observer's d' is a smooth function of the contrast.

    Args:
        config: the data settings.
        integrals: the subject's :func:`view_integrals`.
        contrast: the nodule's relative contrast c (its MR signal and attenuation times 1 + c); 0 or
            no nodule in ``integrals``: the views as simulated for the data set.
        noise_state: the state of the generator of the noise draws; default ``integrals.noise_state``
            (the data set's noise). Another state gives the same views with other noise.

    Returns:
        MR (A, 1, S, S) in [0, 1], X-ray (A, 1, S, S) in [0, 1], bone masks (A, 1, S, S) bool; the
        noise is the same for every ``contrast`` (drawn from a copy of ``noise_state``, by default
        ``integrals.noise_state``).
    """
    if contrast != 0.0 and (integrals.nodule_mr is None or integrals.nodule_mu is None):
        raise InputError("contrast is not 0 but these integrals have no nodule; pass nodule_radius_mm to "
                         "view_integrals")
    generator = torch.Generator().set_state(integrals.noise_state if noise_state is None else noise_state)
    bone = integrals.bone_mm >= config.bone_threshold_mm  # bone path length, mm
    sigma = config.mr_noise * integrals.mr.flatten(1).amax(dim=1).reshape(-1, 1, 1, 1)
    mr = rician(integrals.mr, sigma, generator)
    xray = xray_line_integral(integrals.mu, config.photons, generator)
    pixel_mm = config.geometry().pixel_mm
    display = RadiographDisplay(config.display_compression)
    blurred = detector_blur(xray, config.detector_blur_mm, pixel_mm)
    if contrast == 0.0:
        return normalize_min_max(mr), display(blurred, pixel_mm), bone
    # The nodule's views are normalised and windowed as the views without it, so that they differ by the signal.
    window = display.window(blurred, pixel_mm)
    xray = detector_blur(xray + contrast * integrals.nodule_mu, config.detector_blur_mm, pixel_mm)
    return normalize_min_max(mr + contrast * integrals.nodule_mr, mr), display(xray, pixel_mm, window), bone


def simulate_mr2xray(
    config: Mr2XrayConfig, progress: Callable[[int], None] | None = None
) -> Mr2XrayData:
    """Simulate every subject of ``config`` (deterministic for a given config).

    Args:
        config: the settings.
        progress: called with the number of subjects done after each subject.

    Returns:
        All samples, ordered by subject then angle, with their split.
    """
    split_of = split_subjects(range(config.subjects), config.seed, config.val_fraction,
                              config.test_fraction)
    bones: list[torch.Tensor] = []

    def simulate(subject: int) -> tuple[torch.Tensor, torch.Tensor]:
        mr, xray, bone = simulate_views(config, subject)
        bones.append(bone)
        return mr, xray

    inputs, targets = simulate_subjects(config.subjects, simulate, progress)
    angles = config.angle_list()
    pairs = [(s, a) for s in range(config.subjects) for a in angles]
    return Mr2XrayData(
        inputs=inputs, targets=targets,
        ids=[f"s{s:03d}_a{a:05.1f}" for s, a in pairs],
        subjects=torch.tensor([s for s, _ in pairs]),
        angles=torch.tensor([a for _, a in pairs], dtype=torch.float64),
        splits=[split_of[s] for s, _ in pairs],
        bone=torch.cat(bones),
    )


@functools.lru_cache(maxsize=2)
def simulated_mr2xray(config: Mr2XrayConfig) -> Mr2XrayData:
    """:func:`simulate_mr2xray`, once per process and configuration: a study's datasets and the pairs
    of its bone networks (:mod:`taskloss.data.sources.simulated`) share one simulation. The tensors
    are shared: do not change them in place."""
    return simulate_mr2xray(config)


def write_mr2xray(folder: Path, data: Mr2XrayData, config: Mr2XrayConfig) -> None:
    """Write ``input/<id>.npy``, ``target/<id>.npy`` (float32 S x S), ``index.csv`` and ``config.json``."""
    for name in (INPUT_DIR, TARGET_DIR):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i, sample_id in enumerate(data.ids):
        np.save(folder / INPUT_DIR / f"{sample_id}.npy", data.inputs[i, 0].numpy())
        np.save(folder / TARGET_DIR / f"{sample_id}.npy", data.targets[i, 0].numpy())
    write_index(folder, [{"id": sample_id, "subject": int(data.subjects[i]), "angle": float(data.angles[i]),
                          "split": data.splits[i]} for i, sample_id in enumerate(data.ids)])
    write_config(folder, "mr2xray", config.model_dump(exclude={"data"}))


def load_mr2xray_folder(folder: Path, config: Mr2XrayConfig) -> Mr2XrayData:
    """Read pairs from ``folder/input`` and ``folder/target``, matched by file name.

    2-D images are used as they are; volumes (NIfTI, DICOM series, 3-D NPY) are projected at
    ``config.angles`` angles with ``config``'s beam, the field of view fitted to the volume: the input
    volume as MR signal, the target volume as CT in HU (converted to attenuation). Subjects come from
    ``index.csv`` when present (columns ``id``, ``subject``, optional ``angle`` and ``split``), else
    every pair is its own subject; splits come from ``index.csv``'s ``split`` column, else from a
    seeded split by subject.
    """
    folder = Path(folder)
    pairs = find_pairs(folder)
    config_json = read_config(folder)
    if config_json is not None and config_json.get("kind") != "mr2xray":
        raise DataError(f"{folder} holds a {config_json.get('kind')!r} dataset, not mr2xray; point "
                        "--data at an mr2xray folder")
    rows = {row["id"]: row for row in read_index(folder) or []}
    inputs, targets, pair_ids, ids, subjects, angles = [], [], [], [], [], []
    for number, (pair_id, input_path, target_path) in enumerate(pairs):
        row = rows.get(pair_id, {})
        mr, xray, views = _pair_images(input_path, target_path, config)
        for view, angle in enumerate(views):
            pair_ids.append(pair_id)
            ids.append(pair_id if len(views) == 1 else f"{pair_id}_a{angle:05.1f}")
            subjects.append(int(row.get("subject", number)))
            angles.append(float(row.get("angle") or angle))
            inputs.append(mr[view])
            targets.append(xray[view])
    split_names = _splits(folder, rows, pair_ids, subjects, config)
    return Mr2XrayData(inputs=normalize_min_max(torch.stack(inputs)),
                       targets=normalize_min_max(torch.stack(targets)), ids=ids,
                       subjects=torch.tensor(subjects), angles=torch.tensor(angles, dtype=torch.float64),
                       splits=split_names)


def _splits(folder: Path, rows: dict[str, dict[str, str]], pair_ids: list[str], subjects: list[int],
            config: Mr2XrayConfig) -> list[str]:
    """Split of every sample: index.csv's ``split`` column when it names one for every pair, else a
    seeded split by subject."""
    given = [rows.get(p, {}).get("split") or "" for p in pair_ids]
    if "" in given:
        split_of = split_subjects(subjects, config.seed, config.val_fraction, config.test_fraction)
        return [split_of[s] for s in subjects]
    bad = sorted(set(given) - set(SPLITS))
    if bad:
        raise DataError(f"{folder / 'index.csv'}: unknown split name(s) {bad}; use {list(SPLITS)}")
    return given


def find_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """``(id, input path, target path)`` of every pair in ``folder/input`` and ``folder/target``."""
    folder = Path(folder)
    found = {}
    for name in (INPUT_DIR, TARGET_DIR):
        sub = folder / name
        if not sub.is_dir():
            raise DataError(f"{sub}: no such folder; a paired dataset folder holds {INPUT_DIR}/ (MR) and "
                            f"{TARGET_DIR}/ (X-ray) with one file (or DICOM series folder) per sample, "
                            "matched by file name")
        found[name] = {io.stem(p): p for p in sorted(sub.iterdir()) if io.is_image_entry(p)}
    inputs, targets = found[INPUT_DIR], found[TARGET_DIR]
    only_input, only_target = sorted(set(inputs) - set(targets)), sorted(set(targets) - set(inputs))
    if only_input or only_target:
        raise DataError(f"{folder}: unmatched files: {only_input[:5]} only in {INPUT_DIR}/, "
                        f"{only_target[:5]} only in {TARGET_DIR}/; every input needs a target of the "
                        "same name")
    if not inputs:
        raise DataError(f"{folder}: {INPUT_DIR}/ and {TARGET_DIR}/ hold no image; supported: "
                        f"{', '.join(io.IMAGE_SUFFIXES)} and DICOM series folders")
    return [(name, inputs[name], targets[name]) for name in sorted(inputs)]


def _pair_images(
    input_path: Path, target_path: Path, config: Mr2XrayConfig
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Images (V, 1, S, S) of one pair and their angles (NaN for a 2-D pair)."""
    mr, xray = io.read_image(input_path), io.read_image(target_path)
    if mr.array.shape != xray.array.shape:
        raise DataError(f"{input_path} has shape {mr.array.shape} but {target_path} has shape "
                        f"{xray.array.shape}; a pair must have one shape (resample one of them)")
    for image in (mr, xray):
        if np.iscomplexobj(image.array) or not np.isfinite(image.array).all():
            raise DataError(f"{image.path} holds complex, NaN or infinite values; save real, finite "
                            "intensities")
        if image.array.ndim not in (2, 3):
            raise DataError(f"{image.path} has shape {image.array.shape}; expected a 2-D image or a "
                            "3-D volume")
    if mr.array.ndim == 2:
        images = [torch.from_numpy(a.array)[None, None] for a in (mr, xray)]
        return *(_resize(i, config.size) for i in images), [math.nan]
    return (*_project_volumes(mr, xray, config), config.angle_list())


def _project_volumes(
    mr: io.ImageData, ct: io.ImageData, config: Mr2XrayConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project an MR volume (signal) and a CT volume (HU) at the config's angles: (A, 1, S, S) each."""
    io.check_hounsfield(ct)
    spacing = mr.spacing_mm or ct.spacing_mm or (1.0, 1.0, 1.0)
    depth, height, width = (n * s for n, s in zip(mr.array.shape, spacing, strict=True))
    geometry = config.geometry(field_of_view_mm=max(depth, math.hypot(height, width)))
    mu = hu_to_attenuation(torch.from_numpy(ct.array))
    signal = torch.from_numpy(mr.array).clamp(min=0)
    volumes = torch.stack([signal, mu])[None]
    line_integrals = project(volumes, spacing, config.angle_list(), geometry)[0]
    return line_integrals[0][:, None], line_integrals[1][:, None]


def _resize(image: torch.Tensor, size: int) -> torch.Tensor:
    if image.shape[-2:] == (size, size):
        return image
    return F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

