"""Fixtures of the reader-study tests: results folders as the CS-MRI study writes them, and studies."""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from taskloss.readers import CreatedStudy, create_study

METHODS = (("zero_filled", "Zero-filled"), ("recnet", "RecNet"), ("refined", "RecNet + refinement"))
"""Methods of the default results folder (ground_truth is added as a folder, not in methods.json)."""


def _write_results(
    root: Path,
    methods: tuple[tuple[str, str], ...] = METHODS,
    n_cases: int = 4,
    shape: tuple[int, int] = (13, 11),
    seed: int = 0,
) -> Path:
    """Write a results folder following the contract: methods.json and images/<method>/<case>.npy.

    Images are float32 in [0, 1]; odd, non-square sizes catch transposed width/height.
    """
    rng = np.random.default_rng(seed)
    for key in dict.fromkeys((*(k for k, _ in methods), "ground_truth")):
        folder = root / "images" / key
        folder.mkdir(parents=True)
        for case in range(n_cases):
            np.save(folder / f"slice_{case:03d}.npy", rng.random(shape, dtype=np.float32))
    (root / "methods.json").write_text(json.dumps({"methods": [{"key": k, "label": v} for k, v in methods]}))
    return root


@pytest.fixture
def write_results() -> Callable[..., Path]:
    """The writer of results folders (see ``_write_results``)."""
    return _write_results


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A results folder with 3 methods + ground truth, 4 cases of 13 x 11."""
    return _write_results(tmp_path / "results")


@pytest.fixture
def make_study(tmp_path: Path, results_dir: Path) -> Callable[..., CreatedStudy]:
    """Factory of studies created from ``results_dir`` (3 cases, 2 readers, seed 7 unless told)."""
    counter = iter(range(1000))

    def make(**kwargs: object) -> CreatedStudy:
        options: dict[str, object] = {"reader_names": ["alice", "bob"], "n_cases": 3, "seed": 7}
        options.update(kwargs)
        return create_study(tmp_path / f"study{next(counter)}", results_dir, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def study(make_study: Callable[..., CreatedStudy]) -> CreatedStudy:
    """A study of 3 cases x 4 methods = 12 images, readers alice and bob, scale 1-5."""
    return make_study()
