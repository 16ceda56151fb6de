"""User-facing errors.

Every mistake a user can make (bad option, bad config value, missing or corrupt data file, unsafe
expression, impossible parameter budget, damaged run directory) raises a subclass of `DlprobeError`.
The CLI prints its message on one line and exits with code 2; anything else is a bug and keeps its
traceback.
"""


class DlprobeError(Exception):
    """Base class: the message is complete and meant for the user."""


class ConfigError(DlprobeError):
    """An unknown, missing or invalid configuration value."""


class DatasetError(DlprobeError):
    """A dataset that cannot be found, read or validated (the message names the file)."""


class ExpressionError(DlprobeError):
    """A target-function expression that is malformed or uses something not on the whitelist."""


class BudgetError(DlprobeError):
    """A parameter budget that no architecture of the requested family can meet."""


class RunDirError(DlprobeError):
    """A run directory whose files are damaged or belong to another configuration."""


class UsageError(DlprobeError):
    """A library call (dlprobe.Hessian, dlprobe.surface, ...) whose arguments cannot work: empty data, a loss
    that is not a scalar, a parameter selection that matches nothing, data on another device, a NaN loss."""


class ReportError(DlprobeError):
    """The report cannot be written where it was asked for."""


class ModelError(DlprobeError):
    """A user model (`--model FILE.py:FUNCTION`) that cannot be found, imported, built or used for the task
    (the message names the file)."""


class CheckpointError(DlprobeError):
    """A checkpoint (`dlprobe inspect --checkpoint FILE`) that is missing, damaged, holds pickled objects, or does not
    fit the model (the message names the file and the first mismatching key)."""
