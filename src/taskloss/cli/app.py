"""The ``taskloss`` command: the Typer application and its error handling.

Command modules (``taskloss.cli.*``) register themselves on :data:`app`. :func:`main` turns any
:class:`taskloss.errors.TasklossError` or ``OSError`` (a file-system problem) into one line on
stderr and exit status 2, and an
interruption into exit status 130, with no traceback.
"""

import sys

import typer

from taskloss.errors import TasklossError

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


def fail(message: str) -> None:
    """Print ``taskloss: error: <message>`` on stderr and exit with status 2."""
    print(f"taskloss: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def main() -> None:
    """Entry point of the ``taskloss`` console script."""
    try:
        app()
    except TasklossError as error:
        fail(str(error))
    except OSError as error:  # disk full, permission denied, a path that is not a folder, ...
        where = f": {error.filename}" if error.filename else ""
        fail(f"{error.strerror or error}{where}; check the path and its permissions")
    except KeyboardInterrupt:
        print("taskloss: interrupted; finished work is kept, rerun the same command to resume",
              file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
