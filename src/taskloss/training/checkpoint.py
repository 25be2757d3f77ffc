"""Atomic checkpoint files and the random-number state that makes resumption exact."""

import os
import pickle
import random
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
