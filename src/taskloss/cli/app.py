"""The ``taskloss`` command: the Typer application and its error handling.

Command modules (``taskloss.cli.*``) register themselves on :data:`app`. :func:`main` is the one
place that turns a bad input into one line on stderr, ``taskloss: error: <what>, <where>, <what to
do>``, and exit status 2, with no traceback:

- :class:`taskloss.errors.TasklossError` (raised by the library for anything a user can fix);
- typer's (click's) usage errors (unknown option, a value of the wrong type or out of range);
- pydantic ``ValidationError`` (a setting that a config model rejects), naming the key;
- ``OSError`` (a file-system problem), naming the file;
- ``MemoryError`` and torch's allocation failures (a size too large for this machine).

An interruption exits with status 130. Anything else is a bug in taskloss and keeps its traceback.
"""

import math
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import typer
from pydantic import ValidationError

# Typer 0.29 carries its own copy of click; its exceptions are the ones raised.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from taskloss.errors import InputError, TasklossError
from taskloss.locks import FolderInUseError, is_lock_file, locked_folder

app = typer.Typer(
    name="taskloss",
    help="Task-based losses for medical image computing: run loss-comparison studies, simulate "
    "data, train and evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Task-based losses for medical image computing."""


EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

_ALLOCATION_FAILURES = ("can't allocate memory", "not enough memory", "out of memory")
"""Substrings of the RuntimeError texts of torch's CPU and CUDA allocators."""


def finite(value: float | None) -> float | None:
    """Typer callback of a float option: NaN and infinity are usage errors (typer parses them)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number; give a number such as 8 or 1e5")
    return value


def one_of(*names: str) -> Callable[[str], str]:
    """Typer callback of a string option that takes one of ``names``: anything else is a usage error."""
    def check(value: str) -> str:
        if value not in names:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(names)}")
        return value

    return check


def check_output_folder(path: Path, option: str) -> None:
    """Refuse, before any work, an output folder that cannot be created: it or a folder above it is a file.

    Raises:
        InputError: naming the option and the file in the way.
    """
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise InputError(f"{option} {path}: {folder} is not a folder; choose a folder path")
            return


@contextmanager
def output_folder(path: Path, option: str = "--out") -> Iterator[Path]:
    """Check ``path`` (:func:`check_output_folder`), then hold its exclusive lock for the block.

    A second taskloss process into the same folder is refused at once, naming the holder's pid
    (:func:`taskloss.locks.locked_folder`); the kernel releases the lock when this process ends.

    Yields:
        The lock file inside ``path``.
    """
    check_output_folder(path, option)
    with locked_folder(path, option) as lock:
        yield lock


@contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """Remove the folders this block created under ``folder`` if it fails on a bad input.

    A command that learns only late that its data is bad (a study reads its data after making
    its run folders) then leaves nothing behind. Nothing is removed when ``folder`` existed
    before, or when it holds any file other than run configurations (``config.yaml``) and lock
    files (:mod:`taskloss.locks`): logs and checkpoints of a run that failed while training are
    kept for diagnosis and resumption.
    """
    missing = [f for f in (folder, *folder.parents) if not f.exists()]
    try:
        yield
    except FolderInUseError:  # what is there now is the other process's
        raise
    except (TasklossError, ValidationError, OSError):
        top = missing[-1] if missing else None
        if top is not None and top.is_dir() and all(
                p.is_dir() or p.name == "config.yaml" or is_lock_file(p) for p in top.rglob("*")):
            shutil.rmtree(top, ignore_errors=True)
        raise


def fail(message: str) -> None:
    """Print ``taskloss: error: <message>`` (one line) on stderr and exit with status 2."""
    print(f"taskloss: error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def one_line(message: str) -> str:
    """``message`` with its line breaks and runs of blanks folded to single spaces."""
    return " ".join(message.split())


def main() -> None:
    """Entry point of the ``taskloss`` console script: run the command, report bad input in one line."""
    try:
        status = app(prog_name="taskloss", standalone_mode=False)
    except NoArgsIsHelpError as error:  # `taskloss simulate` alone: show the help
        error.show()
        raise SystemExit(EXIT_USER_ERROR) from None
    except ClickException as error:
        fail(_usage_message(error))
    except typer.Abort:  # end of input at a prompt
        fail("input ended before the command had what it needs; run it again")
    except TasklossError as error:
        fail(str(error))
    except ValidationError as error:
        fail(_validation_message(error))
    except OSError as error:  # disk full, permission denied, a path that is not a folder, ...
        fail(_os_message(error))
    except MemoryError:
        fail(_MEMORY_ADVICE)
    except RuntimeError as error:
        if not _is_allocation_failure(error):
            raise
        fail(_MEMORY_ADVICE)
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    if status == EXIT_INTERRUPTED:
        print("taskloss: interrupted; finished work is kept, rerun the same command to resume",
              file=sys.stderr)
    if isinstance(status, int) and status:
        raise SystemExit(status)


_MEMORY_ADVICE = ("not enough memory for the sizes asked for, in this command; ask for a smaller image "
                  "size or fewer subjects, slices or images per batch")


def _is_allocation_failure(error: RuntimeError) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or any(
        text in str(error).lower() for text in _ALLOCATION_FAILURES)


def _usage_message(error: ClickException) -> str:
    """``<click's message>, in `taskloss <command>`; see `taskloss <command> --help```."""
    context = getattr(error, "ctx", None)
    command = context.command_path if context is not None else "taskloss"
    return f"{error.format_message().rstrip('.')}, in `{command}`; see `{command} --help`"


def _validation_message(error: ValidationError) -> str:
    """Each rejected setting by key: ``<key>: <problem>; ...``, then what to do."""
    problems = "; ".join(f"{'.'.join(str(p) for p in item['loc']) or '(root)'}: {item['msg']}"
                         for item in error.errors())
    return f"invalid setting of {error.title}: {problems}; fix the option or config key named"


def _os_message(error: OSError) -> str:
    where = f": {error.filename}" if error.filename else ""
    return f"{error.strerror or error}{where}; check the path and its permissions"
