"""Exceptions that taskloss raises for problems a user can fix.

Every user-facing error derives from :class:`TasklossError`; its message names the problem and the
fix in one line. The command line catches these, prints the message and exits non-zero without a
traceback. The subclasses also derive from the matching built-in exception, so code that catches
``ValueError`` or ``FileNotFoundError`` keeps working.
"""


class TasklossError(Exception):
    """Base class of the errors a user can fix (bad input, missing file, bad config)."""


class InputError(TasklossError, ValueError):
    """A tensor or argument has the wrong shape, dtype, range or value."""


class ConfigError(TasklossError, ValueError):
    """A configuration file or option is invalid (unknown key, wrong type, bad value)."""


class DataError(TasklossError, ValueError):
    """A data file or folder is missing, corrupt, or does not match what was expected."""


class MissingWeightsError(TasklossError, FileNotFoundError):
    """Pretrained network weights are not available locally and cannot be downloaded."""


class TrainingError(TasklossError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN or infinite)."""


class DataRangeWarning(UserWarning):
    """A metric's ``data_range`` is far narrower than the spread of the target images."""
