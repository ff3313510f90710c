"""A small name -> object registry filled by decorators, with helpful errors for unknown names.

Every set of named, pluggable things lives in one: the CLI's commands (`mimic.cli.COMMANDS`), model adapters
(`mimic.eval.api.MODELS`), metrics (`mimic.eval.metrics.METRICS`), task generators and answer scorers, in the
manner of lm-evaluation-harness's `lm_eval/api/registry.py`: code registers with a decorator, users pick by
name, and a typo gets "did you mean ...?" plus the list of what exists (docs/design.md, "Registries").
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from mimic.errors import ConfigError

__all__ = ["Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(ConfigError, KeyError):
    """A name that is not registered. A ConfigError, so the CLI reports it as a usage error (exit 2)."""

    def __str__(self) -> str:  # KeyError would repr() the message and show it in quotes
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Registered objects of one kind (`kind` names it in error messages), in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under `name`; a name can be taken only once."""

        def wrap(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._items[name]!r})")
            self._items[name] = obj
            return obj

        return wrap

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._items, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(self._items) or '(none)'}"

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
