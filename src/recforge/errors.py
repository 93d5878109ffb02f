"""Exceptions with one-line, user-facing messages.

Every error a user can cause by bad input is a :class:`RecforgeError`; the CLI prints its message
on one line and exits with status 2 instead of showing a traceback.
"""


class RecforgeError(Exception):
    """Base class of every error caused by user input or configuration."""


class DataError(RecforgeError, ValueError):
    """Bad or missing data: a file, a column, a value or an id. The message names which."""


class ConfigError(RecforgeError, ValueError):
    """An invalid hyperparameter or option, rejected before any training starts."""


class NotFittedError(RecforgeError, AttributeError):
    """A model was used before ``fit``."""
