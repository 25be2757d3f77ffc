"""taskloss.provenance: versions, the checkout's commit and dirty flag (checked against git), None outside git."""

import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import taskloss
from taskloss import provenance as module
from taskloss.provenance import KEYS, git_state, provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_versions_and_machine():
    record = provenance()
    assert tuple(record) == KEYS
    assert record["taskloss"] == taskloss.__version__
    assert (record["python"], record["torch"], record["numpy"]) == (platform.python_version(), torch.__version__,
                                                                    np.__version__)
    assert record["platform"] == platform.platform() and record["cuda"] == torch.version.cuda
    assert record["cpu"] is None or (isinstance(record["cpu"], str) and record["cpu"])
    assert record["gpu_count"] == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert (record["gpu"] is None) == (record["gpu_count"] == 0)


@needs_git
def test_the_commit_is_the_checkout_the_package_is_imported_from():
    package = Path(taskloss.__file__).resolve().parent
    if subprocess.run(["git", "-C", str(package), "ls-files", "--error-unmatch", "__init__.py"],
                      capture_output=True).returncode != 0:
        pytest.skip("taskloss is not imported from a git checkout")
    record = provenance()
    assert record["git_commit"] == _git(package, "rev-parse", "HEAD")
    assert record["git_dirty"] == bool(_git(package, "status", "--porcelain", "--untracked-files=no"))


@needs_git
def test_clean_dirty_untracked_and_outside_git(tmp_path):
    assert git_state(tmp_path) == (None, None)  # not a repository
    _git(tmp_path, "init", "-q")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("x = 1\n")
    assert git_state(package) == (None, None)  # a repository that does not track the package (site-packages)
    _git(tmp_path, "add", "pkg/__init__.py")
    _git(tmp_path, "commit", "-q", "-m", "one")
    commit = _git(tmp_path, "rev-parse", "HEAD")
    assert git_state(package) == (commit, False)
    (package / "new.py").write_text("")
    assert git_state(package) == (commit, False)  # untracked files do not count, as in git describe --dirty
    (package / "__init__.py").write_text("x = 2\n")
    assert git_state(package) == (commit, True)


def test_no_git_on_the_path_gives_none(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable there
    assert git_state(Path(taskloss.__file__).resolve().parent) == (None, None)
    assert provenance()["git_commit"] is None


def test_a_git_that_hangs_or_a_broken_driver_gives_none(monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired("git", module.GIT_TIMEOUT_S)

    def broken():
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(module.subprocess, "run", hang)
    monkeypatch.setattr(module.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(module.torch.cuda, "device_count", broken)
    record = provenance()
    assert (record["git_commit"], record["git_dirty"], record["gpu"], record["gpu_count"]) == (None, None, None, 0)
