"""``task: paired``: a folder of image pairs, prepared and split into :class:`~taskloss.data.sources.pairs.PairedData`.

Folder layout::

    PATH/input/<name>.<ext>     the network's input, one 2-D image per file
    PATH/target/<name>.<ext>    its target, matched by file name (stem)
    PATH/labels/<name>.<ext>    optional: label map of the target (task metric, SIS); its values
                                are mapped to classes 0 .. K-1 in sorted order (0/255 -> 0/1)

Any format :func:`taskloss.data.io.read_image` reads (NPY, PNG, TIFF, DICOM, NIfTI); RGB images
become gray. Before any training the folder is refused, file named, when two files of one sub-folder
share a name in two formats (``s0_0.npy`` beside ``s0_0.png``), when a target is a link to (the same
file as) its input, or when an input or target image is constant (all zero included:
:func:`~taskloss.data.sources.pairs.check_varies`), or every label map holds one value; a warning
says, once, how many targets equal their inputs. Each image is resized to ``size`` x ``size``
(bilinear, antialiased; labels nearest) and scaled as ``data.normalize`` says ("target": input and
target by the target's minimum and maximum, so the target spans [0, 1]; "each": each image by its
own; "none": as stored).

**Split rule.** With ``split.by: subject`` every name is ``<subject>_<rest>``: the subject is the
part before the *last* underscore (``p07_slice012`` -> ``p07``; ``p_07_s3`` -> ``p_07``), and all
images of one subject fall in the same split. ``split.by: file`` makes every file its own subject.
``split.by: auto`` (the default) splits by subject when every name has an underscore and the
prefixes give at least 3 subjects, fewer than the files; else by file. Subjects are shuffled with
``split.seed``; validation and test get ``round(n * share)`` subjects each (at least one).

Item of :class:`~taskloss.data.sources.pairs.PairedDataset`: ``{"input": (1, S, S) float32, "target": (1, S, S)
float32, "id": str, "subject": str}`` and ``"label": (1, S, S) int64`` when the folder has ``labels/``.
"""

import os
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from taskloss.data import io
from taskloss.data.sources.pairs import (
    FileSplitSpec,
    FolderSpec,
    PairedData,
    check_varies,
    split_counts,
    split_groups,
    warn_identical,
)
from taskloss.data.splits import subject_of
from taskloss.errors import DataError

FOLDERS = ("input", "target")
LABELS = "labels"


class SplitSpec(FileSplitSpec):
    """Seeded train/val/test split of pairs (the module docstring's split rule).

    Attributes:
        by: "auto" (by subject when the file names say so, else by file), "subject" or "file";
            the other attributes as :class:`~taskloss.data.sources.pairs.FileSplitSpec`.
    """

    by: Literal["auto", "subject", "file"] = "auto"


class DataSpec(FolderSpec):
    """``task: paired``: where the pairs are and how they are prepared.

    Attributes:
        path: folder holding ``input/``, ``target/`` and optional ``labels/`` (relative paths are
            relative to the study file's folder).
        size: images are resized to ``size`` x ``size`` px (bilinear, antialiased; labels nearest).
        split: the split settings.
        normalize: "target" (input and target scaled by the target's minimum and maximum, so the
            target spans [0, 1]), "each" (each image by its own minimum and maximum) or "none".
    """

    TASK: ClassVar[str] = "paired"
    size: int = Field(64, ge=8)
    split: SplitSpec = SplitSpec()
    normalize: Literal["target", "each", "none"] = "target"

    def describe(self, data: PairedData) -> str:
        """``Data: N pairs from `PATH` at S px (normalize ...), split by ... (seed ...): counts.``"""
        return (f"Data: {len(data.ids)} pairs from `{self.path}` at {self.size} px (normalize `{self.normalize}`), "
                f"split by {data.by} (seed {self.split.seed}): {split_counts(data)} images.")


def assign_subjects(ids: list[str], by: str) -> tuple[list[str], str]:
    """Subject of every id by the split rule (module docstring); returns them and the rule used."""
    prefixes = [subject_of(name) for name in ids]
    groups = {p for p in prefixes if p is not None}
    by_subject_possible = None not in prefixes and 3 <= len(groups) < len(ids)
    if by == "subject":
        if None in prefixes:
            bad = ids[prefixes.index(None)]
            raise DataError(f"data.split.by is 'subject' but the file name {bad!r} has no '_'; name files "
                            "<subject>_<slice> or use split.by: file")
        return [p for p in prefixes if p is not None], "subject"
    if by == "auto" and by_subject_possible:
        return [p for p in prefixes if p is not None], "subject"
    return list(ids), "file"


def _entries(folder: Path, name: str) -> dict[str, Path]:
    sub = folder / name
    if not sub.is_dir():
        raise DataError(f"{sub}: no such folder; a paired study folder holds input/ and target/ (and "
                        "optionally labels/) with one image per file, matched by file name")
    entries: dict[str, Path] = {}
    for path in sorted(sub.iterdir()):
        if not (io.is_image_entry(path) and path.is_file()):
            continue
        name = io.stem(path)
        if name in entries:
            raise DataError(f"{sub}: {entries[name].name} and {path.name} are both the image {name!r}, and a pair "
                            "is matched by name; keep one of them (move the other out of the folder)")
        entries[name] = path
    if not entries:
        raise DataError(f"{sub} holds no image; supported: {', '.join(io.IMAGE_SUFFIXES)}")
    return entries


def find_pairs(folder: Path) -> tuple[list[str], dict[str, dict[str, Path]]]:
    """Matched stems and, per sub-folder (input, target, labels if present), the file of each."""
    found = {name: _entries(folder, name) for name in FOLDERS}
    if (folder / LABELS).is_dir():
        found[LABELS] = _entries(folder, LABELS)
    names = set(found["input"])
    for entries in found.values():
        if set(entries) != names:
            other = sorted(set(entries) ^ names)
            raise DataError(f"{folder}: {other[:5]} are not in every one of {', '.join(found)}; every "
                            f"input needs a target (and a label when {LABELS}/ exists) of the same name")
    return sorted(names), found


def _read_2d(path: Path) -> torch.Tensor:
    array = io.read_image(path).array
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or np.iscomplexobj(array) or not np.isfinite(array).all():
        raise DataError(f"{path} holds a {array.dtype} array of shape {array.shape}; a paired study "
                        "needs real, finite 2-D images (save one slice per file)")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]


def _resize(image: torch.Tensor, size: int, labels: bool = False) -> torch.Tensor:
    if image.shape[-2:] == (size, size):
        return image
    if labels:
        return F.interpolate(image, size=(size, size), mode="nearest-exact")
    return F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _classes(labels: torch.Tensor) -> torch.Tensor:
    """Label values mapped to classes 0 .. K-1 in sorted order (a 0/255 mask becomes 0/1)."""
    return torch.unique(labels, return_inverse=True)[1].reshape(labels.shape)


def _scale(image: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    low, high = reference.min(), reference.max()
    return (image - low) / (high - low).clamp(min=torch.finfo(torch.float32).tiny)


def _prepare(input_: torch.Tensor, target: torch.Tensor, normalize: str) -> tuple[torch.Tensor, torch.Tensor]:
    if normalize == "target":
        return _scale(input_, target), _scale(target, target)
    if normalize == "each":
        return _scale(input_, input_), _scale(target, target)
    return input_, target


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file (a symbolic or hard link of the other).

    Examples:
        >>> same_file(Path(__file__), Path(__file__)), same_file(Path(__file__), Path(io.__file__))
        (True, False)
    """
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _read_pair(files: dict[str, dict[str, Path]], name: str, spec: DataSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """One pair, checked (not a link of one file, same size, neither constant) and prepared."""
    input_path, target_path = files["input"][name], files["target"][name]
    if same_file(input_path, target_path):
        raise DataError(f"{target_path} is a link to its input {input_path}; a target must be its own image (the "
                        "clean or reference version of the input), replace the link with that file")
    input_, target = _read_2d(input_path), _read_2d(target_path)
    if input_.shape != target.shape:
        raise DataError(f"{input_path} is {tuple(input_.shape[-2:])} px but {target_path} is "
                        f"{tuple(target.shape[-2:])}; a pair needs one size")
    check_varies(target, str(target_path), "a target")
    check_varies(input_, str(input_path), "a network's input")
    return _prepare(_resize(input_, spec.size), _resize(target, spec.size), spec.normalize)


def read_paired(spec: DataSpec) -> PairedData:
    """Read, check, prepare and split the pairs of ``spec.path`` (see the module docstring).

    Raises:
        DataError: naming the file or folder, for a folder that is missing or holds no pair, a
            name in two formats, an image that is unreadable, not 2-D, not finite or constant,
            a target that links to its input, pairs of two sizes, label maps that hold one value,
            or too few subjects for the split.
    """
    ids, files = find_pairs(spec.path)
    inputs, targets, labels = [], [], []
    for name in ids:
        input_, target = _read_pair(files, name, spec)
        inputs.append(input_[0])
        targets.append(target[0])
        if LABELS in files:
            labels.append(_resize(_read_2d(files[LABELS][name]), spec.size, labels=True)[0].round().long())
    if labels and all(bool((label == labels[0].flatten()[0]).all()) for label in labels):
        raise DataError(f"{spec.path / LABELS}: every label map holds only the value {int(labels[0].flatten()[0])}; "
                        "the task metric needs a foreground class, fix the labels or remove the folder")
    warn_identical(ids, torch.stack(inputs), torch.stack(targets), str(spec.path), "{id} in input/ and target/")
    subjects, by = assign_subjects(ids, spec.split.by)
    splits = split_groups(subjects, spec.split, f"{spec.path}: {len(ids)} pairs", "subject",
                          "add pairs (or use split.by: file)")
    return PairedData(inputs=torch.stack(inputs), targets=torch.stack(targets),
                      labels=_classes(torch.stack(labels)) if labels else None, ids=ids, subjects=subjects,
                      splits=splits, by=by)
