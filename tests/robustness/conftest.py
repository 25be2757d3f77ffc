"""Shared pieces of the robustness suite: the CLI run in-process, file-tree snapshots, a case tally.

Every generated case runs ``taskloss.cli.main`` in this process (no interpreter start-up), in a
scratch working folder, with stdout and stderr captured. ``assert_refused`` is the promise the
suite checks: exit status 2, exactly one line on stderr starting ``taskloss: error: ``, no
traceback. ``snapshot`` hashes every file under a folder so a test can check that a refused
command changed nothing that existed before.
"""

import contextlib
import hashlib
import io
import sys
import traceback
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, settings

from taskloss.cli import main

settings.register_profile(
    "robustness", max_examples=25, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("robustness")
"""Bounded and reproducible: the same examples on every run (no example database), no deadline
(the 2-core CI machine is shared), a few dozen examples per property; a test sets its own
``max_examples`` with ``@settings(max_examples=N)``, which keeps the rest of this profile."""

TALLY: Counter[str] = Counter()
"""Generated cases run, per test module (reported at the end of the session)."""


def robust(max_examples: int = 25) -> settings:
    """The suite's hypothesis settings with another number of examples."""
    return settings(settings.get_profile("robustness"), max_examples=max_examples)


def invoke(args: list[str], cwd: Path) -> tuple[int | str | None, str, str]:
    """Run ``taskloss ARGS`` in this process from ``cwd``: (exit status, stdout, stderr).

    An exception that escapes ``main`` is returned as status ``"traceback"`` with its traceback as
    stderr, so the assertion shows it.
    """
    TALLY[Path(sys._getframe(1).f_code.co_filename).stem] += 1
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), mock.patch.object(sys, "argv", ["taskloss", *args]), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            status: int | str | None = 0
        except SystemExit as error:
            status = error.code
        except BaseException:  # the suite reports any escape as a failure
            status = "traceback"
            err.write(traceback.format_exc())
    return status, out.getvalue(), err.getvalue()


def assert_refused(result: tuple[int | str | None, str, str], args: list[str]) -> str:
    """Exit 2, one line on stderr starting ``taskloss: error: ``, no traceback; returns that line."""
    status, _, err = result
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("taskloss: error: "), (
        f"taskloss {' '.join(args)!r} gave status {status!r} and stderr:\n{err}")
    assert "Traceback" not in err
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (folders as ``<dir>``)."""
    tree = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        tree[key] = "<dir>" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return tree


def assert_unchanged(before: dict[str, str], folder: Path) -> None:
    """Every file and folder in ``before`` still exists under ``folder`` with the same content."""
    after = snapshot(folder)
    changed = [key for key, digest in before.items() if after.get(key) != digest]
    assert not changed, f"a refused command changed or removed {changed}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY:
        parts = ", ".join(f"{name} {count}" for name, count in sorted(TALLY.items()))
        terminalreporter.write_line(f"robustness: {sum(TALLY.values())} generated cases run ({parts})")


class Kit:
    """The helpers above as one fixture (test modules cannot import a conftest under importlib mode)."""

    robust = staticmethod(robust)
    invoke = staticmethod(invoke)
    assert_refused = staticmethod(assert_refused)
    snapshot = staticmethod(snapshot)
    assert_unchanged = staticmethod(assert_unchanged)

    @staticmethod
    def count(name: str) -> None:
        """Count one generated case of the test module ``name`` that does not go through invoke."""
        TALLY[name] += 1


@pytest.fixture(scope="session")
def kit() -> Kit:
    """The robustness helpers."""
    return Kit()


@pytest.fixture(scope="module")
def reader_study(tmp_path_factory: pytest.TempPathFactory):
    """A reader study (2 readers, 2 cases x 2 methods + ground truth) and its results folder."""
    import json

    import numpy as np

    from taskloss.readers import create_study

    root = tmp_path_factory.mktemp("reader_study")
    rng = np.random.default_rng(0)
    for key in ("zero_filled", "recnet", "ground_truth"):
        (root / "results" / "images" / key).mkdir(parents=True)
        for case in range(2):
            np.save(root / "results" / "images" / key / f"slice_{case:03d}.npy", rng.random((9, 7), np.float32))
    methods = [{"key": "zero_filled", "label": "Zero-filled"}, {"key": "recnet", "label": "RecNet"}]
    (root / "results" / "methods.json").write_text(json.dumps({"methods": methods}))
    return create_study(root / "study", root / "results", reader_names=["alice", "bob"], seed=3)
