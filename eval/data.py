"""Benchmark data for evaluation: configs of a Hub-layout folder or Hub dataset, rows without images, the
control columns and the class vocabulary the scorer recognises.
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any

from mimic.builders.hub_folder import card_data_files, load_split, split_names
from mimic.errors import ConfigError, DataError
from mimic.eval.normalize import COCO_CLASSES

__all__ = [
    "CONTROL_COLUMNS",
    "EVAL_COLUMNS",
    "config_splits",
    "answer_vocabulary",
    "config_names",
    "load_config",
    "resolve_configs",
    "row_metadata",
]

# What the runner and the scorer read from every row: checked up front, so a dataset that is not a MIMIC
# benchmark is refused with the missing column's name instead of failing halfway through a run.
EVAL_COLUMNS: tuple[str, ...] = ("id", "task", "config", "question", "answer", "answer_list", "target_classes",
                                 "images")

# The controls a row records (docs/design.md, "Rows"); every one gets a breakdown in the results.
CONTROL_COLUMNS: tuple[str, ...] = (
    "num_images",
    "num_query_images",
    "num_distractors",
    "num_concepts",
    "total_instances",
    "category",
    "template_id",
    "connector_id",
)


def _check_local(data: str) -> None:
    """A local folder must hold parquet files; anything else gets an error that says what was found."""
    if os.path.isdir(data):
        found: list[str] = []
        for folder, dirs, files in os.walk(data):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # build records, caches, .git
            for name in sorted(files):
                if name.endswith(".parquet"):
                    return  # stop at the first one: the folder may be large
                if not name.startswith(".") and len(found) < 3:
                    found.append(os.path.relpath(os.path.join(folder, name), data))
        raise DataError(f"{data}: no parquet files (found: {', '.join(found) or 'nothing'}); a MIMIC dataset folder "
                        "holds README.md and <config>/<split>-*.parquet, as `mimic build` writes them")
    if os.path.exists(data):
        raise DataError(f"{data}: not a folder; a MIMIC dataset is a folder (README.md + <config>/*.parquet) or a Hub id")
    if glob.has_magic(data):
        # No Hub id holds * ? [ ]: this is a path, and paths are literal (never a pattern over folders).
        raise DataError(f"{data}: no such folder (paths are taken literally, not as patterns)")
    if data.startswith((".", "/", "~")) or data.count("/") > 1:
        # Not a Hub id ("org/name"): a path that is not there.
        raise DataError(f"{data}: no such folder")


def config_names(data: str) -> list[str]:
    """The configs of a dataset folder or Hub id, in card order."""
    from datasets import get_dataset_config_names

    _check_local(data)
    card = card_data_files(data) if os.path.isdir(data) else None
    if card is not None:
        return list(card)  # read with the folder's path taken literally (`card_data_files`)
    try:
        return list(get_dataset_config_names(data))
    except (FileNotFoundError, ConnectionError, ValueError) as err:
        where = "a readable dataset folder" if os.path.isdir(data) else "a local folder, and the Hub cannot serve it"
        raise DataError(f"{data}: not {where} ({err})") from None


def resolve_configs(data: str, wanted: Sequence[str] | None) -> list[str]:
    """`wanted` checked against the data's configs (all of them when empty), in the data's order."""
    available = config_names(data)
    if not wanted:
        return available
    for name in wanted:
        if name not in available:
            close = difflib.get_close_matches(name, available, n=2, cutoff=0.5)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"config {name!r} is not in {data}.{hint} Available: {', '.join(available)}")
    return [c for c in available if c in set(wanted)]


def load_config(data: str, config: str, split: str = "test", cache_dir: str | None = None,
                columns: Sequence[str] = EVAL_COLUMNS):
    """The `datasets.Dataset` of one config (images decoded lazily, on access); see `load_split`.

    `columns` are checked before any row is read (DataError naming the file that lacks one).
    """
    _check_local(data)
    try:
        return load_split(data, config, split, cache_dir, columns=columns)
    except (FileNotFoundError, ConnectionError) as err:
        raise DataError(f"{data}: config {config!r} split {split!r} cannot be loaded ({err})") from None


def config_splits(data: str, config: str) -> list[str]:
    """The splits of one config of a dataset folder or Hub id."""
    try:
        return split_names(data, config)
    except (FileNotFoundError, ConnectionError) as err:
        raise DataError(f"{data}: config {config!r} cannot be read ({err})") from None


def row_metadata(dataset) -> list[dict]:
    """Every row of `dataset` as a dict without the `images` column (cheap: no image is decoded)."""
    cols = [c for c in dataset.column_names if c != "images"]
    return dataset.select_columns(cols).to_list()


def _source_vocabulary(source: str) -> tuple[str, ...]:
    if source == "coco":
        return COCO_CLASSES
    if source == "synthetic":
        from mimic.builders.sources.synthetic import CLASSES

        return tuple(CLASSES)
    return ()  # Open Images: the classes the rows name (its 600-class list is not needed to score)


def answer_vocabulary(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The class names the scorer recognises in answers to these rows (`candidate_classes`).

    The source's full class list (COCO's 80, the synthetic world's 16) plus every class the rows name, so
    that naming a wrong but real class is a wrong answer, not a parse failure. It depends only on the
    rows given (a whole config), never on which of them were evaluated.
    """
    names: dict[str, None] = {}
    for source in sorted({str(r.get("source") or "") for r in rows}):
        names.update(dict.fromkeys(_source_vocabulary(source)))
    for r in rows:
        names.update(dict.fromkeys(str(c) for c in r.get("target_classes") or ()))
        if r.get("task") == "listing":
            names.update(dict.fromkeys(str(c) for c in r.get("answer_list") or ()))
    return tuple(names)
