"""The simulators of the built-in studies as data sources of a study file.

Each ``data:`` section is the simulator's configuration (every key of the built-in study's
``data:``); the pairs are simulated in memory, deterministically for a section, with the
simulator's split by subject (``seed``, ``val_fraction``, ``test_fraction``: the built-in study's).
The mr2xray simulator's section leaves out its ``data`` folder (a folder of pairs is ``task:
paired``); the csmri simulator's may name one, read as the built-in csmri study reads its
``--data`` (:func:`taskloss.data.csmri.load_csmri_folder`: a ``taskloss simulate csmri`` folder,
its splits and labels kept; fastMRI ``.h5`` files with the built-in study's split by file and no
labels), so that the built-in study's segmentation runs learn from the slices its methods see.
For fastMRI files on their own, ``task: csmri`` is the study-file source (fastMRI's crop, a split
and a mask seed of its own).

``task: mr2xray-simulator`` (:class:`Mr2XraySource`, :func:`read_mr2xray`;
:func:`taskloss.data.mr2xray.simulated_mr2xray`, the one simulation the built-in study uses too):

- input: the MR projection (1, S, S) in [0, 1]; target: the X-ray projection (1, S, S) in [0, 1];
- labels: the projected bone mask (0/1: bone path length along the ray >= ``bone_threshold_mm``),
  the classes of the engine's segmentation network (task term, bone Dice, SIS);
- id ``s<subject:03d>_a<angle:05.1f>``, subject ``s<subject:03d>``.

``task: csmri-simulator`` (:class:`CsmriSource`, :func:`read_csmri`;
:func:`taskloss.data.csmri.csmri_data`), trained as fastMRI files are (``task: csmri``):

- input: the zero-filled magnitude ``|ifft2c(m * fft2c(x))|`` of the slice ``x`` (complex, peak
  magnitude 1) under one fixed mask ``m`` per slice, the one the built-in study uses for that
  slice in validation and test (drawn from ``(seed, MASK_STREAM, slice index)``); target ``|x|``;
- labels: the lesion labels (0/1), the classes of the SIS scorer; none (and a warning) when no
  slice holds a lesion (always for fastMRI files);
- id ``s<subject:03d>_z<slice:03d>``, subject ``s<subject:03d>``.

The built-in csmri study draws a fresh training mask per slice and epoch and trains RecNet on the
complex image with data consistency; a study file trains image -> image networks on magnitudes,
with each slice's one mask by default, for both k-space sources (``docs/studies.md`` says why);
``training_masks: fresh`` draws the built-in study's training masks instead.
"""

from pathlib import Path
from typing import ClassVar, Literal, Self

import torch
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from taskloss.data.csmri import MASK_STREAM, CsmriConfig, csmri_data
from taskloss.data.fields import generator_for
from taskloss.data.kspace import undersample
from taskloss.data.mr2xray import Mr2XrayConfig, simulated_mr2xray
from taskloss.data.sources.pairs import KspaceSpec, PairedData, SourceSpec, split_counts, warn_identical, warn_once


class Mr2XraySource(Mr2XrayConfig, SourceSpec):
    """``task: mr2xray-simulator``: the keys of :class:`~taskloss.data.mr2xray.Mr2XrayConfig` but ``data``."""

    TASK: ClassVar[str] = "mr2xray-simulator"

    @model_validator(mode="after")
    def _simulated(self) -> "Mr2XraySource":
        if self.data is not None:
            raise PydanticCustomError("folder", "task: {task} simulates its data; leave out data.data (a folder "
                                      "of pairs is task: paired)", {"task": self.TASK})
        return self

    @property
    def normalize(self) -> Literal["simulated"]:
        """The scaling: inputs and targets lie in [0, 1] as simulated, so predictions are clipped to
        [0, 1] and data_range is 1."""
        return "simulated"

    def describe(self, data: PairedData) -> str:
        """``Data: N views of K simulated subjects (...), S px; input, target, labels; the split.``"""
        return (f"Data: {len(data.ids)} views of {len(set(data.subjects))} simulated subjects (mr2xray simulator, "
                f"{self.anatomy} anatomy, {self.beam} beam, {self.angles} angles, seed {self.seed}), {self.size} px; "
                "input the MR projection, target the X-ray, labels the projected bone mask (bone path >= "
                f"{self.bone_threshold_mm:g} mm); split by subject: {split_counts(data)} images.")


def read_mr2xray(spec: Mr2XraySource) -> PairedData:
    """Simulate the pairs of ``spec`` (see the module docstring).

    Returns:
        Inputs and targets (N, 1, S, S) float32 in [0, 1], labels (N, 1, S, S) int64 0/1, ids,
        subjects and splits (by subject), N = subjects x angles.
    """
    simulated = simulated_mr2xray(Mr2XrayConfig.model_validate(spec.model_dump()))
    assert simulated.bone is not None  # the simulator always projects the bone mask
    return PairedData(inputs=simulated.inputs, targets=simulated.targets, labels=simulated.bone.long(),
                      ids=simulated.ids, subjects=[f"s{int(s):03d}" for s in simulated.subjects],
                      splits=simulated.splits, by="subject")


class CsmriSource(CsmriConfig, KspaceSpec):
    """``task: csmri-simulator``: the keys of :class:`~taskloss.data.csmri.CsmriConfig` but ``data``."""

    TASK: ClassVar[str] = "csmri-simulator"

    def data_folder(self) -> Path | None:
        """``data``: the folder read instead of simulating (None: simulated)."""
        return self.data

    def with_data_folder(self, folder: Path) -> Self:
        """This section reading ``folder`` (see the module docstring)."""
        return self.model_copy(update={"data": folder})

    @property
    def normalize(self) -> Literal["peak"]:
        """The scaling: slices divided by their peak magnitude, so targets span [0, 1]."""
        return "peak"

    @property
    def masks_seed(self) -> int:
        """``seed``: with ``training_masks: fresh`` the training masks are the built-in study's."""
        return self.seed

    def describe(self, data: PairedData) -> str:
        """``Data: N slices of K simulated subjects (...) (or read from a folder), S px, the mask; input, target,
        labels; the split.``"""
        centre = "default" if self.center_fraction is None else f"{self.center_fraction:g}"
        origin = (f"simulated subjects (csmri simulator, {self.anatomy} anatomy, {self.weighting}, seed {self.seed})"
                  if self.data is None else f"subjects read from {self.data}")
        return (f"Data: {len(data.ids)} slices of {len(set(data.subjects))} {origin}, {self.size} px, {self.mask} "
                f"mask at acceleration {self.acceleration:g} (centre fraction {centre}), {self.masks_note()}; "
                "input the zero-filled magnitude, target the fully sampled magnitude, labels the lesions; "
                f"split by subject: {split_counts(data)} slices.")


def read_csmri(spec: CsmriSource) -> PairedData:
    """Simulate (or read) and undersample the slices of ``spec`` (see the module docstring).

    Returns:
        Inputs and targets (N, 1, S, S) float32, labels (N, 1, S, S) int64 0/1 (or None), the complex
        references (N, 1, S, S) complex64 and masks (N, 1, S, S) bool, ids, subjects and splits
        (by subject), N = subjects x slices.
    """
    simulated = csmri_data(CsmriConfig.model_validate(spec.model_dump(include=set(CsmriConfig.model_fields))))
    shape = tuple(simulated.images.shape[-2:])
    masks = torch.stack([spec.make_mask(generator_for(spec.seed, MASK_STREAM, i), shape)
                         for i in range(len(simulated))])
    zero_filled, _ = undersample(simulated.images, masks)
    labels = simulated.labels.long() if bool(simulated.labels.any()) else None
    if labels is None:
        warn_once(spec.TASK, f"{spec.TASK}: no slice holds a lesion, so the data has no labels (no SIS, no task term "
                  "with network segmentation); add subjects or slices, or raise variation.lesions")
    data = PairedData(inputs=zero_filled.abs().float(), targets=simulated.images.abs().float(),
                      labels=labels, ids=simulated.ids,
                      subjects=[f"s{int(s):03d}" for s in simulated.subjects], splits=simulated.splits,
                      by="subject", references=simulated.images, masks=masks.bool())
    warn_identical(data.ids, data.inputs, data.targets, spec.TASK, "slice {id}, at data.acceleration "
                   f"{spec.acceleration:g}: its mask keeps the whole k-space")
    return data
