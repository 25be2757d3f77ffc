"""Exclusive output folders: one taskloss process writes into a folder at a time.

A command that writes into a folder (``study``, ``demo``, ``train``, ``simulate``, ``readers
create``) holds an OS file lock (``fcntl.flock``, exclusive, non-blocking) on :data:`LOCK_FILE`
inside it for its whole run, with its process id written into the file. The kernel drops the lock
when the process ends, however it ends, so ``kill -9`` never leaves a stale lock: the file may stay,
but nobody holds it and the next run takes it. A second process into the same folder is refused at
once with an :class:`~taskloss.errors.InputError` naming the folder and the holder's pid.

Worker processes a command starts (``study run --jobs N``) write under their parent's lock and take
none of their own. Within one process the lock is re-entrant (a command that calls another part
of taskloss that locks the same folder keeps its one lock).

The lock file's name starts with a dot: the checks that refuse a non-empty or foreign folder
ignore it (:func:`is_lock_file`), and it is removed when the lock is released normally. A folder
that its command creates by renaming a finished staging folder into place (``readers create``)
is locked by a sibling file instead, ``.<name>.taskloss.lock`` (:func:`lock_path`).

This module is of the lowest layer (it imports only :mod:`taskloss.errors`).
"""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from taskloss.errors import InputError

__all__ = ["LOCK_FILE", "FolderInUseError", "holder_pid", "is_lock_file", "lock_path", "locked_folder"]

LOCK_FILE = ".taskloss.lock"
"""The lock file inside a locked folder (a dot file: listings and emptiness checks skip it)."""
PID_READ_TRIES = 20
PID_READ_PAUSE_S = 0.005
"""A second process may read the lock file in the instant between the holder's ``flock`` and its
writing of the pid: it re-reads up to :data:`PID_READ_TRIES` times, :data:`PID_READ_PAUSE_S` apart
(at most 0.1 s in all)."""

class FolderInUseError(InputError):
    """Another process holds the folder's lock (the message names the folder and its pid).

    Its own class so that clean-up code never removes what the other process is writing.
    """


_HELD: dict[Path, int] = {}
"""Lock files this process holds, by resolved path: their descriptors."""


def lock_path(folder: Path, inside: bool = True) -> Path:
    """The lock file of ``folder``: :data:`LOCK_FILE` inside it, or (``inside=False``, for a folder
    that must not exist before the command renames a finished folder into place) its sibling
    ``.<name>.taskloss.lock``.

    Examples:
        >>> lock_path(Path("out")).as_posix(), lock_path(Path("studies/s1"), inside=False).as_posix()
        ('out/.taskloss.lock', 'studies/.s1.taskloss.lock')
    """
    folder = Path(folder)
    return folder / LOCK_FILE if inside else folder.parent / f".{folder.name}{LOCK_FILE}"


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is a folder's lock file (which a check of the folder's contents ignores).

    Examples:
        >>> is_lock_file(Path("out/.taskloss.lock")), is_lock_file(Path("out/config.yaml"))
        (True, False)
    """
    return path.name.endswith(LOCK_FILE) and path.name.startswith(".")


def holder_pid(lock: Path) -> int | None:
    """The pid written in the lock file ``lock``, or None (no file, or no pid in it yet).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder, locked_folder(Path(folder)) as lock:
        ...     holder_pid(lock) == os.getpid()
        True
    """
    try:
        text = Path(lock).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def locked_folder(folder: Path, option: str = "--out", inside: bool = True) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` for the block.

    The folder (with ``inside``) or its parent is created when missing; folders created only for
    the lock that are still empty at the end are removed again, so a command refused after taking
    the lock leaves nothing behind.

    Args:
        folder: the output folder.
        option: how the user named it, for the error (``"--out"``, ``"STUDY_DIR"``).
        inside: the lock file inside ``folder`` (else beside it, see :func:`lock_path`).

    Yields:
        The lock file.

    Raises:
        FolderInUseError: another process holds the folder (its pid named), in one line.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     with locked_folder(Path(root) / "out") as lock:
        ...         print(lock.name, lock.exists())
        ...     print(lock.exists(), lock.parent.exists())
        .taskloss.lock True
        False False
    """
    folder = Path(folder)
    path = lock_path(folder, inside)
    key = path.parent.resolve() / path.name
    if key in _HELD:  # re-entrant within this process
        yield path
        return
    created = [f for f in (path.parent, *path.parent.parents) if not f.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = _acquire(path, folder, option)
    _HELD[key] = descriptor
    try:
        yield path
    finally:
        del _HELD[key]
        _release(path, descriptor)
        for made in created:  # deepest first; stops at the first that holds something
            try:
                made.rmdir()
            except OSError:
                break


def _acquire(path: Path, folder: Path, option: str) -> int:
    """Open and lock ``path``; write this pid into it. The file is unlinked on release, so a lock
    taken on a file that was unlinked meanwhile is dropped and taken again on the new file (the
    usual check: the path must still name the locked inode)."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise FolderInUseError(_busy_message(path, folder, option)) from None
        try:
            same = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
            return descriptor
        os.close(descriptor)


def _release(path: Path, descriptor: int) -> None:
    """Unlink the lock file while still holding it (a waiting process then sees a new file), then unlock."""
    try:
        if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
            path.unlink()
    except FileNotFoundError:  # the folder was removed (a failed command cleans up what it made)
        pass
    finally:
        os.close(descriptor)


def _busy_message(path: Path, folder: Path, option: str) -> str:
    pid = None
    for _ in range(PID_READ_TRIES):
        pid = holder_pid(path)
        if pid is not None:
            break
        time.sleep(PID_READ_PAUSE_S)
    holder = f"process {pid}" if pid is not None else "another process"
    return (f"{option} {folder} is in use by taskloss {holder} (lock file {path}); wait for it "
            "to finish or choose another folder (two runs writing one folder would corrupt its logs)")
