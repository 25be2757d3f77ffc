"""pytest collects the ``>>>`` examples of every module under src/ as tests (``testpaths`` names src).

This plays the part of ``--doctest-modules`` for src/ only: that flag would also collect every file
under tests/ (helper scripts included) as a doctest module. Each module is imported the standard
way before pytest's DoctestModule imports it: under ``--import-mode=importlib`` pytest 9 first
imports the module's parent package and then executes the module's file once more when that
package already imported it, so its classes would exist twice and ``isinstance`` fail in a run
that names a module and its tests (pytest-dev/pytest#12208 added the parent import; discopy#689
describes the duplicate).
"""

import importlib
from pathlib import Path

import pytest
import torch
from _pytest.doctest import DoctestModule

SRC = Path(__file__).parent
NOT_COLLECTED = ("conftest.py", "__main__.py")  # __main__ runs the CLI when imported


def module_name(path: Path) -> str:
    """``src/taskloss/a/b.py`` -> ``taskloss.a.b`` (``a/__init__.py`` -> ``taskloss.a``)."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> DoctestModule | None:
    if file_path.suffix != ".py" or file_path.name in NOT_COLLECTED or SRC not in file_path.parents:
        return None
    module = importlib.import_module(module_name(file_path))
    if Path(module.__file__ or "").resolve() != file_path.resolve():
        raise pytest.UsageError(f"{module.__name__} is imported from {module.__file__}, not {file_path}; "
                                f"put this checkout first on the path (PYTHONPATH={SRC})")
    if parent.config.option.doctestmodules:
        return None  # --doctest-modules collects it already
    return DoctestModule.from_parent(parent, path=file_path)


@pytest.fixture(autouse=True)
def _single_thread() -> object:
    """Examples use tiny tensors: one thread is faster on a shared 2-core machine (see tests/losses/conftest.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
