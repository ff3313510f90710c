"""Errors that name the input at fault, so a user can fix the file instead of reading a traceback."""

from __future__ import annotations

__all__ = ["AnnotationError", "ConfigError", "InfeasibleError"]


class AnnotationError(ValueError):
    """Bad annotation input. The message names the file and, where there is one, the field."""

    def __init__(self, path: object, message: str, field: str | None = None):
        self.path = str(path)
        self.field = field
        where = f"{self.path}" + (f" (field {field!r})" if field else "")
        super().__init__(f"{where}: {message}")


class ConfigError(ValueError):
    """A configuration or option with a bad value. The message names the option."""


class InfeasibleError(ValueError):
    """The annotations cannot satisfy the requested controls; the message says which constraint failed."""
