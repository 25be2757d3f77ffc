"""The csmri dataset: undersampled k-space of MR slices, zero-filled images and lesion labels.

Ground truth: slices of the simulated heads' spin-echo MR volumes (bias field included), ``slices``
per subject, on a ``field_of_view_mm`` square. By default all are axial, evenly spaced from 25 mm
below to 65 mm above the AC-PC plane (MNI z); ``orientations`` cycles the slices through axial,
coronal and sagittal planes (each evenly spaced over its own range, :data:`SLICE_RANGES_MM`), and
``zoom`` gives each slice a random field of view between ``field_of_view_mm / zoom`` and
``field_of_view_mm``, its centre moved at random so the square stays inside the full one (real
scans are often zoomed on a region, with anatomy up to the image border). Scanner effects, in the
order applied to each slice: tissue texture below the phantom's resolution (``texture``: the
magnitude times ``exp(texture * t)``, t a unit-variance random field correlated over about a pixel;
real tissue is not piecewise smooth at the phantom's 1-4 mm voxels), an optional smooth synthetic
phase (``phase``), and white complex Gaussian noise added to the fully sampled k-space (``noise``,
standard deviation relative to the slice's largest magnitude; with orthonormal FFTs this is the
same standard deviation per pixel, so the magnitude is Rician, and SNR = mean tissue magnitude /
sigma). Two acquisition effects, off by default: Gibbs ringing (``gibbs``: the slice is formed on a
grid ``gibbs`` times finer and its k-space truncated to the central ``size`` x ``size``, the
acquisition's finite extent, before the noise; see :func:`truncate_kspace`) and partial Fourier
(``partial_fourier``: only that share of the phase-encoding lines is acquired, the rest of k-space
is zero after the noise, and the ground truth is the zero-filled reconstruction, whose magnitude is
what a scanner without homodyne reconstruction shows; see :func:`partial_fourier_lines`). Phase
encoding is along the columns (the last axis, W), as the 1-D masks sample whole columns. Each slice
is then divided by its largest magnitude: magnitude in [0, 1] (as Seitzer et al.). The label marks
the lesion (lesion fraction > 0.5), at the pixel centres. In axial slices rows run from anterior
(row 0) to posterior, columns from the patient's left to right.

Undersampling (:mod:`taskloss.data.masks`, :mod:`taskloss.data.kspace`): ``kspace = mask *
fft2c(x)`` (orthonormal, centred), ``zero_filled = ifft2c(kspace)``; the noise is in ``x``, the
fully sampled noisy image, as in a fully sampled scan used as ground truth. Training
items draw a fresh mask per sample from ``(seed, epoch, index)`` (call :meth:`CsmriDataset.set_epoch`
each epoch); validation and test items use one fixed mask per slice from ``(seed, index)``. The same
config therefore gives the same masks in every run and in any DataLoader worker.

Item of :class:`CsmriDataset`: ``{"input": (2, H, W) float32 zero-filled (real, imaginary),
"target": (2, H, W) float32 ground truth (real, imaginary), "kspace": (1, H, W) complex64 masked
k-space, "mask": (1, H, W) float32 0/1, "magnitude": (1, H, W) float32 |target| in [0, 1], "label":
(1, H, W) int64 0/1 lesion, "id": str, "subject": int}``.
"""

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, field_validator, model_validator
from torch.utils.data import Dataset

from taskloss.data import io
from taskloss.data.fields import generator_for, smooth_field
from taskloss.data.kspace import center_crop, complex_to_channels, fft2c, ifft2c, undersample
from taskloss.data.masks import MaskName, MaskSettings
from taskloss.data.phantoms import Phantom, Variation, head_phantom
from taskloss.data.physics import SpinEcho, Tissue, add_complex_noise, mr_volume
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

IMAGE_DIR = "images"
LABEL_DIR = "labels"
SLICE_RANGE_MM = (-25.0, 65.0)
"""MNI z of the lowest and highest simulated slice (the cerebrum, where lesions lie)."""
SLICE_RANGES_MM = {"axial": SLICE_RANGE_MM, "coronal": (-60.0, 30.0), "sagittal": (-45.0, 45.0)}
"""Range of the slice positions per orientation: MNI z (axial), y (coronal), x (sagittal), mm."""
Orientation = Literal["axial", "coronal", "sagittal"]
ORIENTATIONS: tuple[Orientation, ...] = get_args(Orientation)
MASK_STREAM = 0x3A5C
"""Seed key that separates mask draws from the other random streams."""


class CsmriConfig(MaskSettings):
    """Settings of the csmri data: simulated in memory, or read from a folder.

    Frozen and hashable (the studies cache a configuration's data); a bad setting is a
    :class:`~taskloss.errors.ConfigError` naming the key (:mod:`taskloss.config`).

    Attributes:
        subjects: simulated subjects (>= 3, split by subject).
        slices: slices per simulated subject.
        size: slice side (H = W) in pixels; fastMRI slices are cropped to their
            ``reconstruction_esc`` size and reduced to ``size`` by keeping the central k-space.
        seed: seed of phantoms, noise, phase, masks and split.
        anatomy: ``"mni152"`` or ``"ellipsoid"``.
        weighting: MR contrast preset, ``"t1"`` (lesions bright), ``"t2"`` or ``"pd"``.
        field_of_view_mm: side of the slice, mm (the largest one with ``zoom``).
        orientations: slice planes, cycled over a subject's slices (``"axial"``, ``"coronal"``,
            ``"sagittal"``); rows run anterior to posterior (axial) or superior to inferior.
        zoom: largest zoom factor, >= 1: each slice's field of view is ``field_of_view_mm / z``,
            ``z`` uniform in [1, zoom] (1: all slices show the whole field).
        noise: standard deviation of the complex Gaussian k-space noise, relative to the slice's
            largest magnitude (0 for none); see :func:`add_kspace_noise`.
        texture: strength of the sub-resolution tissue texture, >= 0 (0 for none): the standard
            deviation of the log-magnitude modulation (0.1: about +-10 %); see :func:`tissue_texture`.
        gibbs: oversampling factor of the simulation grid, 1 to 8 (1: off, the slice is formed at
            ``size`` directly). With ``g`` > 1 the phantom, texture and phase are formed at
            ``g * size`` pixels over the same field and the k-space is truncated to the central
            ``size`` x ``size`` (:func:`truncate_kspace`), so sharp edges ring as in a real scan; 2
            suffices for visible ringing. The noise is relative to the truncated slice's peak. The
            phantom follows the finer pixel (:meth:`phantom_spacing_mm`): at 64 px over 220 mm,
            ``gibbs=2`` builds 1 mm phantoms (about 16 s per MNI subject on one core, against 2 s).
        partial_fourier: share of the phase-encoding k-space columns acquired, in (0.5, 1] (1: off;
            0.625 = 5/8): the first :func:`partial_fourier_lines` columns (every negative frequency,
            DC and the lowest positive ones); the others are zero in the ground truth's k-space.
        bias: MR bias-field strength.
        phase: give slices a smooth synthetic phase (up to about +-pi) instead of a real image.
        mask, acceleration, center_fraction: the masks (:class:`~taskloss.data.masks.MaskSettings`,
            the same keys as a study file's fastMRI data); default Seitzer et al.'s ``cartesian-vd``
            at 8x.
        val_fraction: share of subjects for validation.
        test_fraction: share of subjects for testing.
        data: ``None`` to simulate in memory, or a folder: one written by ``taskloss simulate
            csmri``, or a folder of fastMRI single-coil ``.h5`` files (one subject per file).
    """

    model_config = ConfigDict(frozen=True)

    subjects: int = Field(12, ge=1)
    slices: int = Field(16, ge=1)
    size: int = Field(96, ge=1)
    seed: int = 0
    anatomy: Literal["mni152", "ellipsoid"] = "mni152"
    weighting: str = "t1"
    field_of_view_mm: float = Field(220.0, gt=0)
    orientations: tuple[Orientation, ...] = Field(("axial",), min_length=1)
    zoom: float = Field(1.0, ge=1, description="1: the whole field of view")
    noise: float = Field(0.01, ge=0)
    texture: float = Field(0.0, ge=0)
    gibbs: int = Field(1, ge=1, le=8, strict=True, description="1: off")
    partial_fourier: float = Field(1.0, gt=0.5, le=1, description="1: off")
    bias: float = 0.2
    phase: bool = False
    mask: MaskName = "cartesian-vd"
    acceleration: float = 8.0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    data: Path | None = None
    variation: Variation = Variation()

    @field_validator("weighting")
    @classmethod
    def _known_weighting(cls, weighting: str) -> str:
        SpinEcho.preset(weighting)
        return weighting

    @model_validator(mode="after")
    def _consistent(self) -> "CsmriConfig":
        check_subjects(self.subjects, self.data)
        return self

    def mask_shape(self) -> tuple[int, int]:
        """The simulated slices' k-space, ``(size, size)`` (a fastMRI folder's slices are masked at
        their own shape)."""
        return self.size, self.size

    def phantom_spacing_mm(self) -> int:
        """Voxel size of the phantoms: the simulation grid's pixel size (``gibbs`` times finer than
        ``size``'s) rounded down, 1 to 4 mm."""
        return int(min(4, max(1, math.floor(self.field_of_view_mm / (self.size * self.gibbs)))))


@dataclass(frozen=True)
class CsmriData:
    """All slices of a csmri dataset, in memory.

    Attributes:
        images: ground truth (N, 1, H, W) complex64, magnitude in [0, 1] per slice.
        labels: lesion labels (N, 1, H, W) int64 0/1.
        ids: slice names, N.
        subjects: subject of each slice, (N,) int64.
        splits: split name of each slice, N.
    """

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str]
    subjects: torch.Tensor
    splits: list[str]

    def __len__(self) -> int:
        return len(self.ids)


class CsmriDataset(Dataset):
    """One split of a csmri dataset; undersamples each slice on the fly (see the module docstring)."""

    def __init__(self, data: CsmriData, split: str | None, config: CsmriConfig) -> None:
        """Select the slices of ``split`` (``"train"``, ``"val"``, ``"test"``, or None for all).

        Masks are fresh per sample and epoch for ``"train"``, fixed per slice otherwise.
        """
        if split is not None and split not in SPLITS:
            raise InputError(f"split must be one of {SPLITS} or None, got {split!r}")
        self.data, self.split, self.config = data, split, config
        self.indices = [i for i, s in enumerate(data.splits) if split is None or s == split]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the training masks of ``epoch`` (no effect on validation and test masks)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def mask(self, index: int) -> torch.Tensor:
        """The mask (1, H, W) of item ``index`` of this split, in the current epoch."""
        i = self.indices[index]
        keys = (self.config.seed, MASK_STREAM, self.epoch, i) if self.split == "train" else (
            self.config.seed, MASK_STREAM, i)
        return self.config.make_mask(generator_for(*keys), tuple(self.data.images.shape[-2:]))

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self.indices[index]
        image, mask = self.data.images[i], self.mask(index)
        zero_filled, kspace = undersample(image[None], mask[None])
        target = complex_to_channels(image[None])[0]
        return {"input": complex_to_channels(zero_filled)[0], "target": target, "kspace": kspace[0],
                "mask": mask, "magnitude": image.abs(), "label": self.data.labels[i],
                "id": self.data.ids[i], "subject": int(self.data.subjects[i])}


def csmri_splits(config: CsmriConfig) -> Splits:
    """The train/val/test datasets the csmri study trains and scores on.

    Simulates in memory when ``config.data`` is None, else reads the folder.
    """
    data = csmri_data(config)
    return Splits(*(CsmriDataset(data, split, config) for split in SPLITS))


@functools.lru_cache(maxsize=2)
def csmri_data(config: CsmriConfig) -> CsmriData:
    """The slices of ``config``, once per process and configuration: simulated (:func:`simulate_csmri`)
    when ``config.data`` is None, else read (:func:`load_csmri_folder`). A study's datasets and the
    pairs of its segmentation runs (:mod:`taskloss.data.sources.simulated`) share them; the tensors are
    shared: do not change them in place."""
    return simulate_csmri(config) if config.data is None else load_csmri_folder(config.data, config)


def slice_orientations(config: CsmriConfig) -> list[str]:
    """The plane of each simulated slice: ``config.orientations`` cycled."""
    return [config.orientations[k % len(config.orientations)] for k in range(config.slices)]


def slice_positions_mm(config: CsmriConfig) -> list[float]:
    """MNI coordinate of each simulated slice along its plane's normal: the slices of each orientation
    evenly spaced over its range in :data:`SLICE_RANGES_MM` (all axial by default: MNI z over
    :data:`SLICE_RANGE_MM`)."""
    planes = slice_orientations(config)
    positions = []
    for k, plane in enumerate(planes):
        low, high = SLICE_RANGES_MM[plane]
        rank, count = planes[:k].count(plane), planes.count(plane)
        positions.append((low + high) / 2 if count == 1 else low + (high - low) * rank / (count - 1))
    return positions


_NORMAL_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def _slice_grid(config: CsmriConfig, origin: tuple[float, float, float], generator: torch.Generator | None
                ) -> torch.Tensor:
    """Sampling points (slices, S, S, 3) of every slice, (x, y, z) in mm from the volume centre.

    Axial: columns along x (left to right), rows along -y (anterior at the top); coronal: columns
    along x, rows along -z (superior at the top); sagittal: columns along -y (anterior at the
    left), rows along -z. With ``zoom`` > 1 each slice draws its zoom and centre from ``generator``.
    With ``gibbs`` = g > 1 the grid has ``g * size`` points per axis, ``1 / g`` pixel apart, placed
    so that :func:`truncate_kspace` samples the band-limited slice at the pixel centres of ``size``
    (every g-th point, from :func:`_coarse_start`, is one of them).
    """
    size, factor = config.size, config.gibbs
    steps = torch.arange(size * factor, dtype=torch.float32) - (size * factor) // 2
    unit = (steps / factor + (size // 2 - (size - 1) / 2)) * (config.field_of_view_mm / size)
    rows_mm, cols_mm = torch.meshgrid(-unit, unit, indexing="ij")
    points = []
    for plane, position in zip(slice_orientations(config), slice_positions_mm(config), strict=True):
        rows, cols = rows_mm, cols_mm
        if config.zoom > 1:
            if generator is None:
                raise InputError("zoomed slices need a random generator")
            factor = 1 + (config.zoom - 1) * float(torch.rand((), generator=generator))
            room = config.field_of_view_mm * (1 - 1 / factor) / 2  # the centre may move this far
            shift = room * (2 * torch.rand(2, generator=generator) - 1)
            rows, cols = rows / factor + float(shift[0]), cols / factor + float(shift[1])
        normal = torch.full_like(rows, position - origin[_NORMAL_AXIS[plane]])
        if plane == "axial":
            xyz = (cols, rows, normal)
        elif plane == "coronal":
            xyz = (cols, normal, rows)
        else:
            xyz = (normal, -cols, rows)
        points.append(torch.stack(xyz, dim=-1))
    return torch.stack(points)


def _sample_slices(volumes: torch.Tensor, phantom: Phantom, config: CsmriConfig,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Planes of (C, D, H, W) volumes at :func:`slice_positions_mm`: (C, slices, S, S)."""
    depth, height, width = volumes.shape[1:]
    half = torch.tensor([width, height, depth], dtype=torch.float32) * phantom.spacing_mm / 2
    grid = (_slice_grid(config, phantom.origin_mm, generator) / half)[None]
    return F.grid_sample(volumes[None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[0]


def _coarse_start(size: int, factor: int) -> int:
    """Index of the first point of the ``factor`` times finer grid of :func:`_slice_grid` that is a
    pixel centre of ``size``: the fine index ``N // 2`` (N = factor * size) maps to ``size // 2``."""
    return (size * factor) // 2 - factor * (size // 2)


def simulate_subject(config: CsmriConfig, subject: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth slices (slices, 1, S, S) complex64 and labels (slices, 1, S, S) int64 of a subject."""
    phantom = head_phantom(subject, config.seed, anatomy=config.anatomy,
                           spacing_mm=config.phantom_spacing_mm(), variation=config.variation)
    generator = generator_for(config.seed, subject, 2)
    signal = mr_volume(phantom.fractions, phantom.properties, SpinEcho.preset(config.weighting),
                       config.bias, generator)
    planes = _sample_slices(torch.cat([signal, phantom.fractions[Tissue.LESION][None]]), phantom, config,
                            generator_for(config.seed, subject, 3))
    magnitude, lesion = planes[0][:, None], planes[1][:, None]
    start = _coarse_start(config.size, config.gibbs)
    lesion = lesion[..., start::config.gibbs, start::config.gibbs]  # the label at the pixel centres
    if config.texture > 0:
        magnitude = magnitude * tissue_texture(magnitude.shape, config.texture, generator)
    image = magnitude.to(torch.complex64)
    if config.phase:
        phase = math.pi / 2 * smooth_field(magnitude.shape[-2:], 4, generator, channels=config.slices)
        image = image * torch.exp(1j * phase[:, None])
    if config.gibbs > 1:
        image = truncate_kspace(image, config.size)
        peak = image.abs().flatten(1).amax(dim=1).reshape(-1, 1, 1, 1)
    else:
        peak = magnitude.flatten(1).amax(dim=1).reshape(-1, 1, 1, 1)
    image = add_kspace_noise(image, config.noise * peak, generator)
    if config.partial_fourier < 1:
        image = partial_fourier(image, config.partial_fourier)
    return normalize_peak(image), (lesion > 0.5).to(torch.int64)


def truncate_kspace(image: torch.Tensor, size: int) -> torch.Tensor:
    """Keep the central ``size`` x ``size`` of the k-space of finer images: Gibbs ringing.

    A scan measures k-space only up to a finite extent, so the image is the object convolved with a
    periodic sinc, which over- and undershoots next to sharp edges; truncating a finer image's
    k-space reproduces that. The DC sample stays at the centre of the centred k-space (index
    ``size // 2``; not :func:`~taskloss.data.kspace.center_crop`'s placement, which moves it by
    one for an odd ``size`` and an even image side). The orthonormal FFTs scale the values by
    ``N / size``; the caller normalises the peak anyway.

    Args:
        image: complex images (..., N, N), N >= ``size``.
        size: side of the result.

    Returns:
        The complex images (..., size, size): sample ``n`` is the band-limited image at the fine
        pixel ``N // 2 + (N / size) (n - size // 2)`` for an N that ``size`` divides.
    """
    side = image.shape[-1]
    if image.shape[-2] != side or not 0 < size <= side:
        raise InputError(f"truncate_kspace needs square images of side >= size {size}, got "
                         f"{tuple(image.shape[-2:])}")
    start = side // 2 - size // 2
    kspace = fft2c(image)[..., start:start + size, start:start + size]
    return ifft2c(kspace).to(torch.complex64)


def partial_fourier_lines(width: int, share: float) -> int:
    """Phase-encoding columns acquired with partial Fourier: ``max(round(share * width), width // 2 + 1)``.

    The acquired columns are the first ones of the centred k-space: every negative frequency, DC
    (column ``width // 2``) and the lowest positive ones; the highest positive frequencies are not
    acquired (a real scan skips one end of k-space; which one does not matter for the magnitude).
    At least DC and one half of k-space are kept, as partial Fourier needs.
    """
    return max(round(share * width), width // 2 + 1)


def partial_fourier(image: torch.Tensor, share: float) -> torch.Tensor:
    """Zero-filled partial-Fourier reconstruction of complex images (N, 1, H, W): the k-space columns
    after the first :func:`partial_fourier_lines` (W, share) set to zero, complex64."""
    kspace = fft2c(image)
    kspace[..., partial_fourier_lines(image.shape[-1], share):] = 0
    return ifft2c(kspace).to(torch.complex64)


TEXTURE_KERNEL = (0.25, 0.5, 0.25)
"""Separable smoothing of the texture's white noise (one-pixel correlation)."""


def tissue_texture(shape: torch.Size | tuple[int, ...], strength: float, generator: torch.Generator) -> torch.Tensor:
    """A multiplicative texture ``exp(strength * t)`` of shape (N, 1, H, W).

    ``t`` is white standard-normal noise smoothed by the separable kernel :data:`TEXTURE_KERNEL`
    along both axes (reflect padding) and divided by the smoothing's noise gain
    ``sum(k^2) = 0.375`` per axis, so every value of ``t`` has unit variance and neighbours are
    correlated (0.67 along an axis).
    """
    kernel = torch.tensor(TEXTURE_KERNEL)
    gain = float(kernel.square().sum())  # per-axis variance gain of the smoothing
    white = torch.randn(tuple(shape), generator=generator)
    padded = F.pad(white, (1, 1, 1, 1), mode="reflect")
    smooth = F.conv2d(F.conv2d(padded, kernel.view(1, 1, 1, 3)), kernel.view(1, 1, 3, 1))
    return torch.exp(strength * smooth / gain)


def add_kspace_noise(image: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``ifft2c(fft2c(image) + sigma (n_re + i n_im))``: white complex Gaussian measurement noise.

    Args:
        image: complex images (N, 1, H, W).
        sigma: standard deviation of each part of the noise per k-space sample, a number or a
            tensor broadcastable to (N, 1, 1, 1). The FFT is orthonormal, so the image-domain noise
            is white with the same standard deviation per pixel (Parseval).
        generator: random generator of the noise.

    Returns:
        The noisy complex images (N, 1, H, W) complex64.
    """
    kspace = add_complex_noise(fft2c(image), sigma, generator)
    return ifft2c(kspace).to(torch.complex64)


def normalize_peak(images: torch.Tensor) -> torch.Tensor:
    """Divide every complex image (N, 1, H, W) by its largest magnitude (an all-zero image stays 0)."""
    peak = images.abs().flatten(1).amax(dim=1).reshape(-1, 1, 1, 1)
    return (images / peak.clamp(min=torch.finfo(torch.float32).tiny)).to(torch.complex64)


def simulate_csmri(config: CsmriConfig, progress: Callable[[int], None] | None = None) -> CsmriData:
    """Simulate every subject of ``config`` (deterministic for a given config).

    Args:
        config: the settings.
        progress: called with the number of subjects done after each subject.

    Returns:
        All slices, ordered by subject then slice, with their split.
    """
    split_of = split_subjects(range(config.subjects), config.seed, config.val_fraction,
                              config.test_fraction)
    images, labels = simulate_subjects(config.subjects, lambda subject: simulate_subject(config, subject), progress)
    pairs = [(s, k) for s in range(config.subjects) for k in range(config.slices)]
    return CsmriData(images=images, labels=labels,
                     ids=[f"s{s:03d}_z{k:03d}" for s, k in pairs],
                     subjects=torch.tensor([s for s, _ in pairs]), splits=[split_of[s] for s, _ in pairs])


def write_csmri(folder: Path, data: CsmriData, config: CsmriConfig) -> None:
    """Write ``images/<id>.npy`` (complex64 H x W), ``labels/<id>.npy`` (uint8), ``index.csv`` and
    ``config.json`` (masks are not stored: they follow from the seed)."""
    for name in (IMAGE_DIR, LABEL_DIR):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i, slice_id in enumerate(data.ids):
        np.save(folder / IMAGE_DIR / f"{slice_id}.npy", data.images[i, 0].numpy())
        np.save(folder / LABEL_DIR / f"{slice_id}.npy", data.labels[i, 0].numpy().astype(np.uint8))
    write_index(folder, [{"id": slice_id, "subject": int(data.subjects[i]), "split": data.splits[i]}
                         for i, slice_id in enumerate(data.ids)])
    write_config(folder, "csmri", config.model_dump(exclude={"data"}))


def load_csmri_folder(folder: Path, config: CsmriConfig) -> CsmriData:
    """Read a folder written by ``taskloss simulate csmri`` or a folder of fastMRI ``.h5`` files.

    A simulated folder keeps its splits (``index.csv``); fastMRI files are one subject each, split
    by a seeded draw, with all-zero labels (fastMRI has no lesion labels, so SIS cannot be scored).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; pass a folder written by 'taskloss simulate csmri' "
                        "or one of fastMRI single-coil .h5 files")
    if (folder / IMAGE_DIR).is_dir():
        return _load_simulated(folder)
    files = sorted(folder.glob("*.h5"))
    if not files:
        raise DataError(f"{folder} holds neither {IMAGE_DIR}/ (a simulated csmri folder) nor .h5 files "
                        "(fastMRI single-coil); write one with 'taskloss simulate csmri --out DIR'")
    return _load_fastmri(files, config)


def _load_simulated(folder: Path) -> CsmriData:
    settings = read_config(folder)
    if settings is not None and settings.get("kind") != "csmri":
        raise DataError(f"{folder} holds a {settings.get('kind')!r} dataset, not csmri; point --data at "
                        "a csmri folder")
    rows = read_index(folder)
    if rows is None:
        raise DataError(f"{folder / 'index.csv'}: missing; a csmri folder lists its slices (id, subject, "
                        "split) there")
    images, labels = [], []
    for row in rows:
        image = io.read_image(folder / IMAGE_DIR / f"{row['id']}.npy").array
        label_path = folder / LABEL_DIR / f"{row['id']}.npy"
        label = io.read_image(label_path).array if label_path.exists() else np.zeros(image.shape)
        if image.ndim != 2 or label.shape != image.shape:
            raise DataError(f"{folder}: slice {row['id']} has image shape {image.shape} and label shape "
                            f"{label.shape}; both must be the same (H, W)")
        images.append(torch.from_numpy(image.astype(np.complex64)))
        labels.append(torch.from_numpy((label > 0.5).astype(np.int64)))
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) != 1:
        raise DataError(f"{folder}: slices have different shapes {sorted(shapes)}; all must be equal")
    splits = [row.get("split") or "" for row in rows]
    subjects = [int(row["subject"]) for row in rows]
    if "" in splits or set(splits) - set(SPLITS):
        raise DataError(f"{folder / 'index.csv'}: every row needs a split in {list(SPLITS)}")
    return CsmriData(images=normalize_peak(torch.stack(images)[:, None]), labels=torch.stack(labels)[:, None],
                     ids=[row["id"] for row in rows], subjects=torch.tensor(subjects), splits=splits)


def fastmri_slices(volume: io.FastMRIVolume, size: int, kept: Sequence[int] | None = None) -> torch.Tensor:
    """The fully sampled complex images of a fastMRI volume at ``size`` px, each of peak magnitude 1.

    The inverse FFT of each slice's k-space, cropped to ``volume.crop`` (the stored reconstruction's
    grid), then reduced to its central ``size`` x ``size`` k-space: the same field of view at a lower
    resolution (nothing changes when ``size`` is the crop's side).

    Args:
        volume: the file's contents (:func:`taskloss.data.io.read_fastmri`).
        size: the side of the images, at most the crop's.
        kept: the slice indices to use (all when None).

    Returns:
        Complex64 (S, 1, size, size), S the number of slices used.

    Raises:
        DataError: the crop is smaller than ``size``, naming the file.
    """
    kspace = volume.kspace if kept is None else volume.kspace[list(kept)]
    image = center_crop(ifft2c(torch.from_numpy(kspace)), volume.crop)
    if min(image.shape[-2:]) < size:
        raise DataError(f"{volume.path}: slices of {tuple(image.shape[-2:])} (the {volume.reference} grid) are "
                        f"smaller than data.size {size}; use a data.size of at most {min(image.shape[-2:])}, "
                        "or leave the file out")
    return normalize_peak(ifft2c(center_crop(fft2c(image), (size, size)))[:, None])


def _load_fastmri(files: list[Path], config: CsmriConfig) -> CsmriData:
    images, ids, subjects = [], [], []
    for subject, path in enumerate(files):
        image = fastmri_slices(io.read_fastmri(path), config.size)
        images.append(image)
        ids += [f"{path.stem}_z{k:03d}" for k in range(image.shape[0])]
        subjects += [subject] * image.shape[0]
    split_of = split_subjects(subjects, config.seed, config.val_fraction, config.test_fraction)
    stacked = torch.cat(images)
    return CsmriData(images=stacked, labels=torch.zeros(stacked.shape, dtype=torch.int64), ids=ids,
                     subjects=torch.tensor(subjects), splits=[split_of[s] for s in subjects])
