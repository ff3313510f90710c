"""Other names of classes, as data: one table per image source (`tables/<source>.json`).

Each table maps a class name of its source to `synonyms` (the same thing under another name: "sofa" for
couch) and `specific` names (a kind of it: "school bus" for bus). The tables are per source because the
sources disagree: in COCO "a man" is a person and "table" a dining table, while Open Images has classes
of their own for man, table, ball and plant. A row's `source` column picks its table; rows without one
(hand-made samples) use COCO's, the fallback vocabulary.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

from mimic.eval.normalize import normalize_class_name

__all__ = ["DEFAULT_SOURCE", "SOURCES", "Alias", "aliases", "load_table"]

SOURCES: tuple[str, ...] = ("coco", "openimages", "synthetic")
DEFAULT_SOURCE = "coco"
_KINDS = ("synonyms", "specific")


class Alias(NamedTuple):
    name: str  # normalised
    kind: str  # "synonym" | "specific name"


@lru_cache(maxsize=None)
def load_table(source: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """{"synonyms": {class: names}, "specific": {class: names}} of `source`, names normalised."""
    if source not in SOURCES:
        raise ValueError(f"no synonym table for source {source!r}; expected one of {', '.join(SOURCES)}")
    raw = json.loads(resources.files(__package__).joinpath("tables", f"{source}.json").read_text("utf-8"))
    return {
        kind: {
            normalize_class_name(cls): tuple(normalize_class_name(n) for n in names)
            for cls, names in raw.get(kind, {}).items()
        }
        for kind in _KINDS
    }


@lru_cache(maxsize=None)
def _alias_map(source: str) -> dict[str, tuple[Alias, ...]]:
    table = load_table(source)
    out: dict[str, list[Alias]] = {}
    for kind, label in zip(_KINDS, ("synonym", "specific name"), strict=True):
        for cls, names in table[kind].items():
            out.setdefault(cls, []).extend(Alias(n, label) for n in names)
    return {cls: tuple(v) for cls, v in out.items()}


def aliases(class_key: str, source: str | None = None) -> tuple[Alias, ...]:
    """The other names of the normalised class name `class_key` in the table of `source` (default COCO's)."""
    return _alias_map(source if source in SOURCES else DEFAULT_SOURCE).get(class_key, ())
