"""Data sources: what ``task:`` of a study file names, each read into the same image pairs.

:data:`SOURCES` maps a task to its typed ``data:`` section and its reader; every reader returns a
:class:`~taskloss.data.sources.pairs.PairedData` (inputs, targets, optional labels, ids, the subject
of each pair, and its split, made by subject), so the study engine (:mod:`taskloss.studies.engine`)
never asks which source it has. Adding a source is one module with a :class:`StrictModel` section
(``TASK`` its task name) and a reader, and one entry here.

- ``paired`` (:mod:`~taskloss.data.sources.folders`): a folder of ``input/``, ``target/`` and
  optional ``labels/`` images.
- ``csmri`` (:mod:`~taskloss.data.sources.fastmri`): fastMRI single-coil k-space, undersampled.
- ``mr2xray-simulator``, ``csmri-simulator`` (:mod:`~taskloss.data.sources.simulated`): the
  simulators of the built-in studies (projected bone masks, lesions as labels).
"""

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from taskloss.data.sources.fastmri import KspaceDataSpec, read_kspace_pairs
from taskloss.data.sources.folders import DataSpec, read_paired
from taskloss.data.sources.pairs import PairedData, PairedDataset, SourceSpec
from taskloss.data.sources.simulated import CsmriSource, Mr2XraySource, read_csmri, read_mr2xray
from taskloss.data.splits import SPLITS, Splits

__all__ = ["SOURCES", "TASKS", "AnyDataSpec", "CsmriSource", "DataSpec", "KspaceDataSpec", "Mr2XraySource",
           "PairedData", "Source", "SourceSpec", "data_spec", "paired_data", "paired_splits"]


@dataclass(frozen=True)
class Source:
    """One data source.

    Attributes:
        spec: its ``data:`` section (a :class:`~taskloss.data.sources.pairs.SourceSpec`, ``TASK`` its task).
        read: reads, checks and splits the data a section names (raises
            :class:`~taskloss.errors.DataError` naming the file and the fix).
    """

    spec: type[SourceSpec]
    read: Callable[[Any], PairedData]


SOURCES: Mapping[str, Source] = MappingProxyType({
    DataSpec.TASK: Source(DataSpec, read_paired),  # image -> image pairs from a folder
    KspaceDataSpec.TASK: Source(KspaceDataSpec, read_kspace_pairs),  # fastMRI k-space undersampled -> image
    Mr2XraySource.TASK: Source(Mr2XraySource, read_mr2xray),  # simulated MR projection -> X-ray, bone labels
    CsmriSource.TASK: Source(CsmriSource, read_csmri),  # simulated k-space undersampled -> image, lesions
})
TASKS = tuple(SOURCES)
"""``task:`` of a study file, the first the default."""
AnyDataSpec = DataSpec | KspaceDataSpec | Mr2XraySource | CsmriSource


def data_spec(task: str | None, value: Any) -> AnyDataSpec:
    """``data:`` validated as the section of ``task`` (None: the default, :data:`TASKS`'s first),
    so a key of another source is an unknown key; a section already typed is validated anew.

    Raises:
        pydantic.ValidationError: naming the bad key under ``data``.
        KeyError: ``task`` is not a source (the study file's ``task`` key is checked first).
    """
    model = SOURCES[task or TASKS[0]].spec
    if isinstance(value, SourceSpec):
        value = value.model_dump()
    return model.model_validate(value)  # type: ignore[return-value]


@functools.lru_cache(maxsize=2)
def _cached(task: str, spec_json: str) -> PairedData:
    source = SOURCES[task]
    return source.read(source.spec.model_validate_json(spec_json))


def paired_data(spec: AnyDataSpec) -> PairedData:
    """The pairs of a ``data:`` section, read once per process and settings (the runs of a study
    share them)."""
    return _cached(spec.TASK, spec.model_dump_json())


def paired_splits(spec: AnyDataSpec) -> Splits:
    """The train, val and test datasets of ``spec`` (items: :class:`~taskloss.data.sources.pairs.PairedDataset`;
    the training split with fresh masks when the section asks for them)."""
    data = paired_data(spec)
    return Splits(*(PairedDataset(data, split, spec.fresh_masks() if split == "train" else None)
                    for split in SPLITS))
