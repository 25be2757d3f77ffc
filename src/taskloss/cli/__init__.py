"""Command-line interface. Importing this package registers every command on the app."""

import taskloss.cli.readers  # noqa: F401  (registers the command)
import taskloss.cli.simulate as _simulate  # noqa: F401  (registers the command)
from taskloss.cli import compare, demo, observe, runs, study  # noqa: F401  (register the commands)
from taskloss.cli.app import app, main

__all__ = ["app", "main"]
