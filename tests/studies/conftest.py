"""The golden per-image numbers of the tiny built-in studies (``golden/tiny_studies.json``).

``golden/make_golden.py`` wrote them with the code before the presets became study files; the
tiny-study tests compare what the current code writes against them, so a refactoring of the
studies cannot change their numbers unnoticed.
"""

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).with_name("golden") / "tiny_studies.json"
PATTERNS = {"mr2xray": ("runs/*/evaluation/test.csv",),
            "csmri": ("results/per_image/*.csv", "results/generalisation/*.csv")}
ADDED = {"csmri": ("results/per_image/recnet_observer.csv", "results/generalisation/recnet_observer.csv"),
         "mr2xray": ("runs/unet-perceptual_imagenet/evaluation/test.csv",)}
"""Files of methods added to the tiny study files after the golden numbers were made (the observer loss's
row, issue 21; the perceptual loss on ImageNet features, issue 18): each added method trains after every
golden run and leaves their numbers as they were."""
ADDED_COLUMNS = {"mr2xray": ("haarpsi",)}
"""Per-image columns added after the golden numbers were made (HaarPSI, issue 18); the golden columns keep
their order and values around them."""
RTOL, ATOL = 1e-4, 1e-6
"""Not bit-exact: float summation order depends on the thread count and the CPU's vector unit. Measured
on this project's 2-core machine, one thread against two (the same code, `make_golden.py` twice): at
most 3.9e-7 apart, 2.1e-5 relative (an SSIM of 4e-3); one thread twice: bit-identical."""


def _read(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {name: [row[name] for row in rows] for name in rows[0]}


@pytest.fixture(scope="session")
def assert_golden() -> Callable[[str, Path], None]:
    """``assert_golden(study, study_dir)``: every golden per-image file of ``study`` exists in
    ``study_dir`` with the same ids, columns and values (within :data:`RTOL`, :data:`ATOL`), and no
    file is new but those of :data:`ADDED`, no column new but those of :data:`ADDED_COLUMNS`."""
    golden = json.loads(GOLDEN.read_text())

    def check(study: str, study_dir: Path) -> None:
        expected = golden[study]
        found = sorted(str(p.relative_to(study_dir)) for pattern in PATTERNS[study] for p in study_dir.glob(pattern))
        assert found == sorted([*expected, *ADDED.get(study, ())])
        for name, columns in expected.items():
            actual = _read(study_dir / name)
            added = ADDED_COLUMNS.get(study, ())
            assert [c for c in actual if c not in added] == list(columns), name
            assert all(c in actual for c in added), name
            assert actual["id"] == columns["id"], name
            for metric in columns.keys() - {"id"}:
                values = np.array([float(v) for v in actual[metric]])
                reference = np.array([float(v) for v in columns[metric]])
                np.testing.assert_allclose(values, reference, rtol=RTOL, atol=ATOL, equal_nan=True,
                                           err_msg=f"{name}, {metric}")

    return check
