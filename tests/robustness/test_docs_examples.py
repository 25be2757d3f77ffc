"""The Python examples of README.md and docs/*.md run as written, offline.

Every ```python block runs; the blocks of one file run in order in one namespace (a later block may
use what an earlier one made), in a scratch working folder, with network connections refused (a
block that needs a download fails here as it would for a user offline). A block that cannot run
as written (a signature with its defaults, a sketch inside a training loop, one that needs a
study's results on disk) is preceded by the line ``<!-- not run: <reason> -->``; such blocks are
few and each says why.
"""

import re
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
MOST_NOT_RUN = 6
"""Blocks marked not run, over all files: the mark is for the few that cannot run, not a way out."""


def blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, code, reason not run or None) of every python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        mark = NOT_RUN.fullmatch(before[-1].strip()) if before else None
        found.append((text.count("\n", 0, match.start()) + 1, match.group(1), mark.group(1) if mark else None))
    return found


def _refuse_connections(*_: object, **__: object) -> None:
    raise OSError("the docs examples run offline: no network connection")


@pytest.mark.parametrize("path", [p for p in FILES if blocks(p)], ids=lambda p: p.name)
def test_every_python_example_runs_offline_as_written(path, tmp_path, monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _refuse_connections)
    monkeypatch.setattr(socket, "create_connection", _refuse_connections)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached download counts either
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    for line, code, reason in blocks(path):
        if reason is not None:
            continue
        try:
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
        except Exception as error:
            pytest.fail(f"the example at {path.relative_to(ROOT)}:{line} fails: {type(error).__name__}: {error}")


def test_blocks_marked_not_run_are_few_and_say_why():
    marked = [(path.name, line, reason) for path in FILES for line, _, reason in blocks(path) if reason is not None]
    assert all(reason for _, _, reason in marked), marked
    assert len(marked) <= MOST_NOT_RUN, marked


def test_the_block_finder_sees_marks_and_code(tmp_path):
    path = tmp_path / "sample.md"
    path.write_text("text\n\n<!-- not run: needs files -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n")
    assert blocks(path) == [(4, "x = 1\n", "needs files"), (8, "y = 2\n", None)]
