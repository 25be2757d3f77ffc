"""Subject-level train/val/test splits and the index and config files of a dataset folder.

A dataset folder written by ``taskloss simulate`` holds ``config.json`` (the generating settings and
seed) and ``index.csv`` (one row per sample: ``id``, ``subject``, the dataset's own columns and
``split``). A user's folder may hold an ``index.csv`` too (``id`` and ``subject`` at least) to group
slices or views of one subject; splits are always by subject, never by sample.
"""

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils.data import Dataset

from taskloss.data.fields import generator_for
from taskloss.errors import DataError, InputError

SPLITS = ("train", "val", "test")


class Splits(NamedTuple):
    """The train, validation and test datasets of one configuration."""

    train: Dataset
    val: Dataset
    test: Dataset


INDEX_FILE = "index.csv"
GENERATOR_SETTINGS_FILE = "config.json"
"""A simulated dataset folder's generating settings (the dataset kind, the taskloss version, the config)."""


def split_subjects(
    subjects: Iterable[int], seed: int, val_fraction: float = 0.2, test_fraction: float = 0.2
) -> dict[int, str]:
    """Assign every subject to ``"train"``, ``"val"`` or ``"test"`` by a seeded shuffle.

    Validation and test get ``round(n * fraction)`` subjects each, at least one; train gets the
    rest, at least one.

    Args:
        subjects: subject ids (duplicates are ignored).
        seed: seed of the shuffle.
        val_fraction: share of subjects for validation, in (0, 1).
        test_fraction: share of subjects for testing, in (0, 1).

    Returns:
        Split name of every subject.
    """
    unique = sorted(set(subjects))
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, got "
                         f"{val_fraction} and {test_fraction}")
    if len(unique) < 3:
        raise InputError(f"need at least 3 subjects to split into train, val and test by subject, got "
                         f"{len(unique)}; simulate or bring more subjects")
    n_val = max(1, round(len(unique) * val_fraction))
    n_test = max(1, round(len(unique) * test_fraction))
    if n_val + n_test >= len(unique):
        n_val = n_test = 1
    order = torch.randperm(len(unique), generator=generator_for(seed, 0x5B17)).tolist()
    names = ["val"] * n_val + ["test"] * n_test + ["train"] * (len(unique) - n_val - n_test)
    return {unique[i]: name for i, name in zip(order, names, strict=True)}


def simulate_subjects(
    count: int, simulate: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulate subjects ``0 .. count - 1`` and concatenate their two outputs (e.g. input and target).

    Args:
        count: number of subjects.
        simulate: ``simulate(subject) -> (first, second)``, each (n, ...) for that subject's n samples.
        progress: called with the number of subjects done after each subject.

    Returns:
        The two outputs of all subjects, concatenated along the first axis in subject order.
    """
    firsts, seconds = [], []
    for subject in range(count):
        first, second = simulate(subject)
        firsts.append(first)
        seconds.append(second)
        if progress is not None:
            progress(subject + 1)
    return torch.cat(firsts), torch.cat(seconds)


def check_subjects(subjects: int, data: Path | None) -> None:
    """A simulated dataset needs >= 3 subjects (train, val and test get one each at least).

    Raises:
        ValueError: otherwise (a config's validator: it becomes the config's error).
    """
    if data is None and subjects < 3:
        raise ValueError(f"subjects must be >= 3 (train, val and test get one each at least), got {subjects}")


def write_index(folder: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``index.csv`` with the columns of the first row."""
    with (folder / INDEX_FILE).open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_index(folder: Path, required: Sequence[str] = ("id", "subject")) -> list[dict[str, str]] | None:
    """Rows of ``folder/index.csv`` as strings, or ``None`` when the folder has none."""
    path = folder / INDEX_FILE
    if not path.is_file():
        return None
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path} lacks the column(s) {missing}; it needs at least {list(required)}")
    for row in rows:
        try:
            int(row["subject"])
        except ValueError:
            raise DataError(f"{path}: subject {row['subject']!r} of {row['id']!r} is not an "
                            "integer; give every row an integer subject") from None
    return rows


def write_config(folder: Path, kind: str, settings: dict[str, Any]) -> None:
    """Write ``config.json``: the dataset kind, the taskloss version and the generating settings."""
    from taskloss import __version__

    text = json.dumps({"kind": kind, "taskloss": __version__, "settings": settings}, indent=2,
                      default=str)
    (folder / GENERATOR_SETTINGS_FILE).write_text(text + "\n")


def read_config(folder: Path) -> dict[str, Any] | None:
    """The contents of ``folder/config.json``, or ``None`` when the folder has none."""
    path = folder / GENERATOR_SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON ({error}); delete it or rewrite the folder with "
                        "taskloss simulate") from None


def subject_of(name: str) -> str | None:
    """The subject of a file stem or image id, the part before the last underscore (None without one):
    ``s003_a045.0`` -> ``s003``, ``file_z012`` -> ``file``."""
    prefix, sep, _ = name.rpartition("_")
    return prefix if sep and prefix else None
