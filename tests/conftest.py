"""Shared test setup: deterministic, single-threaded-friendly torch on the 2-core CI machine, and the
``taskloss_cli`` fixture (the command-line entry point)."""

import os
import sys
from collections.abc import Callable

import pytest
import torch

from taskloss.cli import main

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``cuda`` on a machine without a CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (benchmarks/gpu_check.py runs these on a GPU)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if session.testscollected == 0:
        print("\nERROR: pytest collected no test; the suite is broken", flush=True)


@pytest.fixture
def taskloss_cli(monkeypatch, capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``taskloss ARGS`` through the real entry point: ``(exit status, stdout, stderr)``.

    The entry point (not typer's CliRunner) is what turns errors into the one-line
    ``taskloss: error:`` message and exit status 2.
    """

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["taskloss", *args])
        try:
            main()
            status = 0
        except SystemExit as exit_info:
            status = exit_info.code or 0
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run
