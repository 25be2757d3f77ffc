"""Provenance of a run: which taskloss (version, commit), which libraries, which machine.

:func:`provenance` returns a flat dict, ready for a run's config or a report, of the versions and
the machine that produced a result. It never fails: a probe that cannot answer (no git, not a git
checkout, no GPU) gives None. It asks git twice (a few milliseconds) and reads /proc/cpuinfo; it
starts nothing else and needs no network.
"""

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

from taskloss import __version__

GIT_TIMEOUT_S = 5.0
"""Longest wait for one git command (a slow network file system); then the commit is None."""
KEYS = ("taskloss", "git_commit", "git_dirty", "python", "torch", "numpy", "cuda", "platform", "cpu", "gpu",
        "gpu_count")
"""Keys of :func:`provenance`, in order."""


def provenance() -> dict[str, object]:
    """Versions and machine of this process.

    Returns:
        A dict with the :data:`KEYS`: ``taskloss`` (the imported package's version), ``git_commit``
        (the 40-hex commit of the checkout the package is imported from, None when it is not imported
        from a git checkout or git is missing), ``git_dirty`` (whether tracked files differ from that
        commit, as ``git describe --dirty`` counts them: untracked files do not; None without a
        commit), ``python``, ``torch``, ``numpy`` (versions), ``cuda`` (the CUDA version torch was built
        with, None for a CPU build), ``platform`` (``platform.platform()``), ``cpu`` (the processor's
        model name, None when the system does not say), ``gpu`` (the first visible CUDA device's name,
        None without one) and ``gpu_count`` (visible CUDA devices).

    Examples:
        >>> record = provenance()
        >>> tuple(record) == KEYS and record["numpy"] == np.__version__
        True
    """
    commit, dirty = git_state(Path(__file__).resolve().parent)
    gpu, gpu_count = _gpu()
    return {"taskloss": __version__, "git_commit": commit, "git_dirty": dirty, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "cuda": torch.version.cuda,
            "platform": platform.platform(), "cpu": cpu_name(), "gpu": gpu, "gpu_count": gpu_count}


def git_state(folder: Path) -> tuple[str | None, bool | None]:
    """The commit and dirty flag of the git checkout that tracks ``folder``'s ``__init__.py``.

    A package installed into a site-packages folder that happens to lie inside some other git
    repository is not tracked by it, and gets (None, None) rather than that repository's commit.

    Args:
        folder: the package's folder.

    Returns:
        (commit, dirty), or (None, None) when git is missing, fails or times out, or does not track
        ``folder / "__init__.py"``.

    Examples:
        >>> import tempfile
        >>> git_state(Path(tempfile.mkdtemp()))
        (None, None)
    """
    tracked = _git(folder, "ls-files", "--", "__init__.py")
    if not tracked:
        return None, None
    commit = _git(folder, "rev-parse", "--verify", "HEAD")
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    if commit is None or status is None:
        return None, None
    return commit, bool(status)


def _git(folder: Path, *args: str) -> str | None:
    """Stripped stdout of ``git -C folder ARGS``, or None when git is missing, fails or times out."""
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False, env=_git_environment())
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _git_environment() -> dict[str, str]:
    """This process's environment without the variables that would point git at another repository, and
    without taking the index lock (``git status`` would otherwise refresh it, racing another git)."""
    ignored = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")
    return {**{k: v for k, v in os.environ.items() if k not in ignored}, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


def cpu_name() -> str | None:
    """The processor's model name: /proc/cpuinfo's ``model name`` on Linux, else ``platform.processor()``.

    ``platform.processor()`` is empty on most Linux systems (it asks ``uname -p``), hence the file.

    Returns:
        The name, or None when neither says.
    """
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _gpu() -> tuple[str | None, int]:
    """(name of CUDA device 0, number of CUDA devices); (None, 0) without CUDA or when the driver fails."""
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return (torch.cuda.get_device_name(0) if count else None), count
    except (RuntimeError, AssertionError):  # a broken driver; a CPU build asserts in _lazy_init
        return None, 0
