"""The image pairs a data source becomes, whichever reader made them, and what the readers share.

:class:`PairedData` is filled by every reader of :data:`taskloss.data.sources.SOURCES` (the folder
reader of ``task: paired``, :func:`taskloss.data.sources.folders.read_paired`; the fastMRI k-space
reader of ``task: csmri``, :func:`taskloss.data.sources.fastmri.read_kspace_pairs`; ...); they refuse
constant images with :func:`check_varies`, warn once with :func:`warn_identical` and split by group
(subject or file) with :func:`split_groups` and the settings of :class:`FileSplitSpec`. This module
sits below the readers, so none imports another.

Item of :class:`PairedDataset`: ``{"input": (1, S, S) float32, "target": (1, S, S) float32, "id":
str, "subject": str}`` and ``"label": (1, S, S) int64`` when the data has labels.
"""

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import torch
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from torch.utils.data import Dataset

from taskloss.config import StrictModel
from taskloss.data.csmri import MASK_STREAM
from taskloss.data.fields import generator_for
from taskloss.data.kspace import undersample
from taskloss.data.masks import MaskSettings
from taskloss.data.splits import split_subjects
from taskloss.errors import ConfigError, DataError

MIN_RELATIVE_SPREAD = 1e-6
"""An image whose values span less than this share of their magnitude (``max - min <= 1e-6 *
max |value|``) is refused as constant: float32 resolves about 8 steps in such a span (its machine
epsilon is 1.19e-7), so what is left after scaling to [0, 1] is rounding noise, not an image. An
all-zero image is the case ``max |value| = 0``."""


class SourceSpec(StrictModel):
    """Base of every data source's ``data:`` section: its task name and what the engine asks of it.

    A section also has ``size`` (the pairs' side, px) and ``normalize`` ("none" when the values are
    as stored; anything else means targets span [0, 1], predictions are clipped to [0, 1] and
    data_range is 1).
    """

    TASK: ClassVar[str]
    KSPACE: ClassVar[bool] = False
    """Whether the inputs are zero-filled reconstructions of undersampled k-space: then the pairs
    carry their complex references and masks, the engine scores the inputs as the method
    "Zero-filled", and a detection signal is added to the reference and acquired again."""

    def data_folder(self) -> Path | None:
        """The folder the data is read from; None for simulated data."""
        return None

    def with_data_folder(self, folder: Path) -> Self:
        """This section reading ``folder`` (``--data``, or a study file's relative path resolved).

        Raises:
            ConfigError: the source reads no folder.
        """
        raise ConfigError(f"task: {self.TASK} simulates its data and reads no folder; leave out --data (or use "
                          "task: paired for a folder of pairs)")

    def describe(self, data: "PairedData") -> str:
        """The report's line on the data (``Data: ...``): how many pairs, where from, how split."""
        raise NotImplementedError

    def fresh_masks(self) -> "MaskDraw | None":
        """How the training split draws a fresh mask per pair and epoch; None: every pair keeps its input."""
        return None


class KspaceSpec(SourceSpec, MaskSettings):
    """Base of the k-space sources' sections: the mask keys (:class:`~taskloss.data.masks.MaskSettings`)
    and ``training_masks``.

    Attributes:
        training_masks: "fixed" (default): each pair keeps the one mask its input was made with, in
            training too, so every run of a study sees the same inputs; "fresh": the training split
            draws a new mask per pair and epoch from ``(seed of the masks, MASK_STREAM, epoch, row)``
            (an augmentation; validation and test keep their fixed masks).
    """

    KSPACE: ClassVar[bool] = True
    training_masks: Literal["fixed", "fresh"] = "fixed"

    @property
    def masks_seed(self) -> int:
        """The seed the masks are drawn from."""
        raise NotImplementedError

    def masks_note(self) -> str:
        """How the masks are drawn, for the report's data line."""
        if self.training_masks == "fixed":
            return "one fixed mask per slice"
        return "a fresh training mask per slice and epoch, one fixed mask per validation and test slice"

    def fresh_masks(self) -> "MaskDraw | None":
        """With ``training_masks: fresh``, ``draw(epoch, row)`` of the mask of pair ``row`` in ``epoch``."""
        if self.training_masks == "fixed":
            return None
        seed = self.masks_seed
        return lambda epoch, row: self.make_mask(generator_for(seed, MASK_STREAM, epoch, row))


class FolderSpec(SourceSpec):
    """A source that reads a folder, ``path`` (relative paths are relative to the study file's folder)."""

    path: Path

    def data_folder(self) -> Path:
        """``path``."""
        return self.path

    def with_data_folder(self, folder: Path) -> Self:
        """This section reading ``folder``."""
        return self.model_copy(update={"path": folder})


def split_counts(data: "PairedData") -> str:
    """``"<train> train, <val> val, <test> test"``: the pairs of each split."""
    return ", ".join(f"{data.splits.count(split)} {split}" for split in ("train", "val", "test"))


class FileSplitSpec(StrictModel):
    """Seeded train/val/test split of groups (``task: csmri``: one fastMRI file is one volume).

    Attributes:
        val: share of subjects (or files) for validation, in (0, 1).
        test: share for the test split, in (0, 1); ``val + test < 1``.
        seed: seed of the shuffle.
    """

    val: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _leaves_training_data(self) -> "FileSplitSpec":
        if self.val + self.test >= 1:
            raise PydanticCustomError("split", "val {val} + test {test} leaves no training data; make their sum "
                                      "below 1 (e.g. val: 0.2, test: 0.2)", {"val": f"{self.val:g}",
                                                                              "test": f"{self.test:g}"})
        return self


@dataclass(frozen=True)
class PairedData:
    """Every pair of a folder, prepared, with its split.

    Attributes:
        inputs: (N, 1, S, S) float32.
        targets: (N, 1, S, S) float32.
        labels: (N, 1, S, S) int64, or None without ``labels/``.
        ids: file stems, N.
        subjects: subject of each pair, N.
        splits: "train", "val" or "test" for each pair.
        by: "subject" or "file": how the split was made.
        references: k-space sources (``SourceSpec.KSPACE``): the fully sampled complex images
            (N, 1, S, S) complex64 whose magnitudes are the targets (the detection task inserts its
            signal there); else None.
        masks: k-space sources: the fixed undersampling mask of each pair (N, 1, S, S) bool, the
            one its input was made with; else None.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    labels: torch.Tensor | None
    ids: list[str]
    subjects: list[str]
    splits: list[str]
    by: str
    references: torch.Tensor | None = None
    masks: torch.Tensor | None = None


MaskDraw = Callable[[int, int], torch.Tensor]
"""``draw(epoch, row) -> mask`` (1, S, S) float32 0/1: a fresh training mask of pair ``row`` in ``epoch``."""


class PairedDataset(Dataset):
    """One split of a :class:`PairedData` (see the module docstring for the item).

    With ``masks`` (a k-space source's training split with ``training_masks: fresh``), each item's
    input is acquired again from its complex reference with the mask ``masks(epoch, row)`` of the
    current epoch (:meth:`set_epoch`, which the trainer calls): ``|ifft2c(m * fft2c(reference))|``.
    """

    def __init__(self, data: PairedData, split: str, masks: MaskDraw | None = None) -> None:
        if masks is not None and data.references is None:
            raise ConfigError("fresh training masks need the pairs' complex references (a k-space source)")
        self.data, self.masks, self.epoch = data, masks, 0
        self.indices = [i for i, s in enumerate(data.splits) if s == split]

    def set_epoch(self, epoch: int) -> None:
        """Choose the masks of ``epoch`` (no effect with fixed masks)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = self.indices[index]
        source = self.data.inputs[i]
        if self.masks is not None:
            assert self.data.references is not None
            source = undersample(self.data.references[i][None], self.masks(self.epoch, i)[None])[0][0].abs().float()
        item: dict[str, Any] = {"input": source, "target": self.data.targets[i],
                                "id": self.data.ids[i], "subject": self.data.subjects[i]}
        if self.data.labels is not None:
            item["label"] = self.data.labels[i]
        return item



def check_varies(image: torch.Tensor, where: str, what: str) -> None:
    """Refuse a constant image (all zero included; :data:`MIN_RELATIVE_SPREAD`).

    Args:
        image: the image's values, any shape.
        where: the file (and slice) named in the error.
        what: what it is, e.g. "a target".

    Raises:
        DataError: naming ``where``, its value and the fix.

    Examples:
        >>> check_varies(torch.tensor([0.0, 0.5]), "target/a.npy", "a target")
        >>> check_varies(torch.zeros(4, 4), "target/b.npy", "a target")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        taskloss.errors.DataError: target/b.npy is all zero (every pixel 0); a target must vary ...
    """
    low, high = float(image.min()), float(image.max())
    magnitude = max(abs(low), abs(high))
    if high - low <= MIN_RELATIVE_SPREAD * magnitude:
        value = "all zero (every pixel 0)" if magnitude == 0 else f"constant (every pixel {low:.6g})"
        raise DataError(f"{where} is {value}; {what} must vary (the scaling to [0, 1], PSNR and SSIM divide by "
                        "its range), replace the file or move it out of the folder")



WARNED: set[str] = set()
"""Data folders already warned about in this process (each warning is printed once)."""


def warn_once(key: str, message: str) -> None:
    """Print ``taskloss: warning: <message>`` on stderr, once per ``key`` and process."""
    if key not in WARNED:
        WARNED.add(key)
        print(f"taskloss: warning: {message}", file=sys.stderr)


def warn_identical(ids: list[str], inputs: torch.Tensor, targets: torch.Tensor, where: str, first: str) -> None:
    """Warn once when targets equal their inputs: the network is then asked to learn the identity.

    Args:
        ids: the pairs' ids.
        inputs, targets: (N, 1, S, S) as prepared.
        where: the data folder (the warning's key).
        first: how to name the first such pair's files, ``{id}`` standing for its id.
    """
    same = [name for name, a, b in zip(ids, inputs, targets, strict=True) if torch.equal(a, b)]
    if same:
        warn_once(where, f"{where}: {len(same)} of {len(ids)} targets equal their inputs (first "
                  f"{first.format(id=same[0])}); the network learns nothing for them, check that the targets are the "
                  "images you meant")



def split_groups(groups: list[str], split: FileSplitSpec, what: str, unit: str, advice: str) -> list[str]:
    """The split of every item: its group (subject or file) shuffled with ``split.seed``, validation
    and test ``round(n * share)`` groups each (at least one), by
    :func:`taskloss.data.splits.split_subjects`.

    Args:
        groups: the group of each item.
        split: shares and seed.
        what: where and how many items, for the error (``"pairs/: 12 pairs"``).
        unit: what a group is, for the error ("subject", "file").
        advice: what to do when there are fewer than 3 groups.

    Raises:
        DataError: fewer than 3 groups.
    """
    numbers = {group: n for n, group in enumerate(sorted(set(groups)))}
    if len(numbers) < 3:
        raise DataError(f"{what} of {len(numbers)} {unit}(s); train, val and test need one {unit} each at "
                        f"least: {advice}")
    split_of = split_subjects(numbers.values(), split.seed, split.val, split.test)
    return [split_of[numbers[group]] for group in groups]
