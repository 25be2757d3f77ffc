"""Fixtures of the command tests."""

import sys
from collections.abc import Callable

import pytest

from taskloss.cli import main


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
