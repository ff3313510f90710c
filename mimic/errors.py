"""Errors that name the input at fault, so a user can fix the file instead of reading a traceback."""

from __future__ import annotations

__all__ = ["MimicError", "AnnotationError", "ConfigError", "DataError", "InfeasibleError"]


class MimicError(Exception):
    """Base of every error a user can cause with bad input (a file, a field, an option, a folder).

    The CLI catches this base and prints its message on one line with exit code 2; any other exception is a
    bug and keeps its traceback. Subclasses must make the message name the file, field or option at fault.
    """


class AnnotationError(MimicError, ValueError):
    """Bad annotation input. The message names the file and, where there is one, the field."""

    def __init__(self, path: object, message: str, field: str | None = None):
        self.path = str(path)
        self.field = field
        where = f"{self.path}" + (f" (field {field!r})" if field else "")
        super().__init__(f"{where}: {message}")


class ConfigError(MimicError, ValueError):
    """A configuration or option with a bad value. The message names the option."""


class InfeasibleError(MimicError, ValueError):
    """The annotations cannot satisfy the requested controls; the message says which constraint failed."""


class DataError(MimicError, ValueError):
    """A dataset folder, shard or row that is not what was expected (missing columns, unreadable files).

    The message names the folder or file and, where there is one, the column.
    """
