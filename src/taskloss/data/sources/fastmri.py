"""``task: csmri``: fastMRI single-coil HDF5 files undersampled into image pairs (:class:`KspaceDataSpec`).

``data.path`` holds ``*.h5`` files (read by :func:`taskloss.data.io.read_fastmri`): ``kspace``
(slices, H, W) complex, fully sampled, DC at the centre; optionally ``reconstruction_esc`` or
``reconstruction_rss``, whose *shape* gives fastMRI's crop. Each file is one volume, so one
subject: the files are split with ``data.split`` (seeded, by file;
:func:`taskloss.data.sources.pairs.split_groups`, the paired study's rule).

Each kept slice ``k`` of ``F.h5`` (``data.slices``) is one pair with id ``F_z<k:03d>``, built with
the conventions of the built-in csmri study (:mod:`taskloss.data.kspace`, orthonormal centred
FFTs; steps 1-2 are :func:`taskloss.data.csmri.fastmri_slices`, which the built-in study's
fastMRI loader uses too):

1. ``x = center_crop(ifft2c(kspace[k]), crop)``: the fully sampled complex image on the grid of
   the stored reconstruction (``reconstruction_esc``, else ``reconstruction_rss``, else the
   centred square of side min(H, W));
2. ``x = ifft2c(center_crop(fft2c(x), (size, size)))``: the central k-space kept (the same field of
   view at a lower resolution; nothing changes when ``size`` is the crop's side), then
   ``x = x / max|x|`` (:func:`taskloss.data.csmri.normalize_peak`);
3. a mask ``m`` (1, size, size) of ``data.mask`` at ``data.acceleration`` (lines along the last
   axis, :mod:`taskloss.data.masks`), drawn once per slice from ``(data.mask_seed, crc32(id))``:
   the same in every run and split, so evaluation is reproducible;
4. **input** ``|ifft2c(m * fft2c(x))|``, the zero-filled magnitude, and **target** ``|x|``: both
   on the reference's scale, the target's maximum 1 (the input may exceed 1 a little; scored
   outputs are clipped to [0, 1] and data_range is 1, as for normalised paired data).

The target is the magnitude of the fully sampled k-space's image, not the stored reconstruction's
values: input and target then come from the same k-space (at acceleration 1 they are equal). For
fastMRI's single-coil files this is how ``reconstruction_esc`` is defined (the magnitude of the
emulated single-coil k-space's inverse FFT, cropped to 320 x 320), so at ``size`` 320 the target is
``reconstruction_esc`` divided by its slice maximum.
"""

import zlib
from pathlib import Path
from typing import ClassVar, Literal

import torch
from pydantic import Field

from taskloss.data import io
from taskloss.data.csmri import MASK_STREAM, fastmri_slices
from taskloss.data.fields import generator_for
from taskloss.data.kspace import undersample
from taskloss.data.masks import MaskName
from taskloss.data.sources.pairs import (
    FileSplitSpec,
    FolderSpec,
    KspaceSpec,
    PairedData,
    check_varies,
    split_counts,
    split_groups,
    warn_identical,
)
from taskloss.errors import DataError

SUFFIX = ".h5"


class KspaceDataSpec(FolderSpec, KspaceSpec):
    """``task: csmri``: a folder of fastMRI single-coil HDF5 files, undersampled into image pairs.

    Each selected slice of each file is one pair (the module docstring says how): input the
    zero-filled magnitude of the undersampled k-space, target the reference magnitude, both divided
    by the reference's largest value (the target's maximum is 1).

    Attributes:
        path: folder of ``*.h5`` files (relative paths are relative to the study file's folder).
        size: slices are cropped to the stored reconstruction's shape (fastMRI's 320 x 320 crop)
            and reduced to ``size`` x ``size`` by keeping the central k-space, as the built-in
            csmri study does.
        split: the split of the files (each file is one volume, so one subject).
        slices: ``[start, stop]``, the slices kept of every volume with Python's slice rule
            (negative numbers count from the end: ``[5, -5]`` drops five at each end; None is an
            open end); None keeps all.
        mask, acceleration, center_fraction: the masks (:class:`~taskloss.data.masks.MaskSettings`,
            the keys of the csmri simulator); default fastMRI's ``random`` at 4x (the knee
            challenge's setting), where the simulator's is Seitzer et al.'s ``cartesian-vd`` at 8x.
        mask_seed: seed of the masks; each slice has one fixed mask, drawn from ``mask_seed`` and
            the slice's id, the same in every run and every split.
        training_masks: "fixed" or "fresh" (:class:`~taskloss.data.sources.pairs.KspaceSpec`).
    """

    TASK: ClassVar[str] = "csmri"
    size: int = Field(320, ge=8)
    split: FileSplitSpec = FileSplitSpec()
    slices: tuple[int | None, int | None] | None = None
    mask: MaskName = "random"
    acceleration: float = 4.0
    mask_seed: int = 0

    @property
    def normalize(self) -> Literal["peak"]:
        """The scaling (:class:`~taskloss.data.sources.folders.DataSpec`'s key): slices divided by
        the reference's peak, so targets span [0, 1] (predictions are clipped to [0, 1], data_range 1)."""
        return "peak"

    def mask_shape(self) -> tuple[int, int]:
        """The pairs' k-space, ``(size, size)``."""
        return self.size, self.size

    @property
    def masks_seed(self) -> int:
        """``mask_seed``."""
        return self.mask_seed

    def describe(self, data: PairedData) -> str:
        """``Data: N slices of F fastMRI files in `PATH`, the masks, input and target, the split.``"""
        centre = "default" if self.center_fraction is None else f"{self.center_fraction:g}"
        fresh = "" if self.training_masks == "fixed" else f"; {self.masks_note()}"
        return (f"Data: {len(data.ids)} slices of {len(set(data.subjects))} fastMRI files in `{self.path}`, "
                f"{self.size} px, {self.mask} mask at acceleration {self.acceleration:g} (centre fraction {centre}, "
                f"mask seed {self.mask_seed}{fresh}); input the zero-filled magnitude, target the fully sampled "
                f"magnitude, both divided by the target's maximum; split by file (seed {self.split.seed}): "
                f"{split_counts(data)} slices.")


def slice_id(path: Path, index: int) -> str:
    """The id of slice ``index`` of a file: ``<stem>_z<index:03d>``."""
    return f"{path.stem}_z{index:03d}"


def slice_mask(spec: KspaceDataSpec, image_id: str) -> torch.Tensor:
    """The fixed mask (1, size, size) float32 0/1 of one slice, from ``spec.mask_seed`` and its id."""
    return spec.make_mask(generator_for(spec.mask_seed, MASK_STREAM, zlib.crc32(image_id.encode())))


def kept_slices(spec: KspaceDataSpec, count: int, path: Path) -> list[int]:
    """Indices of the slices ``spec.slices`` keeps of a volume of ``count`` slices (Python's slice rule)."""
    kept = list(range(count))[slice(*spec.slices)] if spec.slices is not None else list(range(count))
    if not kept:
        raise DataError(f"{path}: data.slices {list(spec.slices or ())} keeps none of its {count} slices; "
                        "widen data.slices (e.g. [0, null] keeps all) or leave the file out")
    return kept


def find_files(folder: Path) -> list[Path]:
    """The ``*.h5`` files of a folder, sorted by name."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; data.path of a csmri study is a folder of fastMRI "
                        "single-coil .h5 files")
    files = sorted(p for p in folder.iterdir() if p.suffix == SUFFIX and p.is_file())
    if not files:
        raise DataError(f"{folder} holds no .h5 file; a csmri study reads fastMRI single-coil HDF5 files "
                        "('kspace' (slices, H, W) complex)")
    return files


def read_kspace_pairs(spec: KspaceDataSpec) -> PairedData:
    """Read, undersample and split the slices of ``spec.path`` (see the module docstring).

    Returns:
        Inputs and targets (N, 1, size, size) float32, no labels, ids ``<stem>_z<k>``, subjects the
        file stems, split by file.

    Raises:
        DataError: a missing or empty folder, an unreadable or malformed file (naming it), slices
            smaller than ``size``, a kept slice that is blank (constant, e.g. all-zero k-space;
            file and slice named), a ``slices`` range that keeps nothing, fewer than 3 files.
    """
    inputs, targets, references, all_masks, ids, subjects = [], [], [], [], [], []
    for path in find_files(spec.path):
        volume = io.read_fastmri(path, reconstruction_optional=True)
        kept = kept_slices(spec, volume.kspace.shape[0], path)
        reference = fastmri_slices(volume, spec.size, kept)
        for k, image in zip(kept, reference, strict=True):
            check_varies(image.abs(), f"{path}: slice {k} (at data.size {spec.size})", "a target")
        names = [slice_id(path, k) for k in kept]
        masks = torch.stack([slice_mask(spec, name) for name in names])
        zero_filled, _ = undersample(reference, masks)
        inputs.append(zero_filled.abs())
        targets.append(reference.abs())
        references.append(reference)
        all_masks.append(masks.bool())
        ids += names
        subjects += [path.stem] * len(kept)
    splits = split_groups(subjects, spec.split, f"{spec.path}: {len(ids)} slices", "file",
                          "add fastMRI files (each file is one volume)")
    data = PairedData(inputs=torch.cat(inputs).float(), targets=torch.cat(targets).float(), labels=None, ids=ids,
                      subjects=subjects, splits=splits, by="file", references=torch.cat(references),
                      masks=torch.cat(all_masks))
    warn_identical(ids, data.inputs, data.targets, str(spec.path), "slice {id}, at data.acceleration "
                   f"{spec.acceleration:g}: its mask keeps the whole k-space")
    return data
