"""Atomic checkpoint files and the random-number state that makes resumption exact."""

import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskloss.errors import DataError


def atomic_write(path: Path, write: Any) -> None:
    """Write a file so that ``path`` holds either its old or its complete new content, never a part.

    ``write(tmp_path)`` writes the new content to a temporary file in the same folder, which is
    flushed to disk and renamed over ``path`` (``os.replace`` is atomic on POSIX).

    Args:
        path: destination file.
        write: callable taking the temporary path and writing the content there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)$")
"""Names of the temporaries of :func:`atomic_write` (and of folders built the same way): ``.<name>.tmp-<pid>``."""


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporaries in ``folder`` left by processes that no longer run (e.g. after kill -9).

    A temporary whose process id belongs to a running process is kept: it may be another rank of
    the same run writing now (a reused id only delays the clean-up to a later call).

    Args:
        folder: the folder to clean (nothing happens when it does not exist).

    Returns:
        The files and folders removed.
    """
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user holds the id
        return True
    return True


def rng_state() -> dict[str, Any]:
    """The state of every random generator a training step may use (python, numpy, torch, CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint file on the CPU, with one clear error when it is missing or corrupt."""
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist; train the run first (taskloss train)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as error:
        raise DataError(f"checkpoint {path} is corrupt or unreadable ({error}); delete it to "
                        "restart the run, or restore it from a copy") from None
