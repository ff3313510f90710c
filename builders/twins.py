"""Matched twins of benchmark rows: one base row, shown at several levels of one control.

- position: the query images as one block at the start (`first`), centred among the distractors
  (`middle`: half of them, rounded down, before the block) or at the end (`last`); the distractors keep
  their order. A base row needs at least 2 distractors, so that the three orders differ (with one, middle
  would be first).
- distractors: the query images with k distractors, for each requested k. The twins are nested: level k
  keeps the first k of the row's distractor pool, in the order they were added (the row's own distractors in
  image order, then the ones drawn from the annotations), and every image keeps its place in the sequence.
  Only base rows that can produce every level are used, so that every level holds the same base rows.

Every twin carries its base row's id (`base_id`), the sweep (`sweep_variant`, `sweep_level`: "first",
"middle", "last" or the number of distractors as a string) and, for position, the index of the query block's
first image (`query_start`). Its id is `<base_id>-<level>` (position) or `<base_id>-d<k>` (distractors).

Two sources of base rows share this code: a built benchmark (`mimic diagnose sweep --data`, which can only
drop distractors: rows are image bytes without the annotations) and generated samples (`mimic generate
--variant`, which also draws new distractors from the annotation index, free of every target class by the
generator's own rule (`ImagePicker.draw_free`), with a per-base-row seed from `twin_seed`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from mimic.errors import ConfigError

__all__ = ["POSITIONS", "SWEEP_TASKS", "TWIN_COLUMNS", "VARIANTS", "distractor_levels", "distractor_twin",
           "position_twin", "skip_reason", "twin_features", "twin_seed"]

POSITIONS = ("first", "middle", "last")
VARIANTS = ("position", "distractors")
SWEEP_TASKS = ("counting", "listing")
TWIN_COLUMNS = ("base_id", "sweep_variant", "sweep_level", "query_start")
# Columns an image change touches; every other column of the base row is kept as it is.
_IMAGE_COLUMNS = ("images", "image_ids", "per_image_counts", "file_names")


def twin_features(features):
    """`features` (a row's `datasets.Features`) plus the twin columns."""
    from datasets import Features, Value

    return Features({**features, "base_id": Value("string"), "sweep_variant": Value("string"),
                     "sweep_level": Value("string"), "query_start": Value("int32")})


def twin_seed(seed: int, base_id: str) -> int:
    """The seed of one base row's added distractors: a function of the run's seed and the row alone, so a
    twin does not change when other rows are added, dropped or reordered."""
    digest = hashlib.sha256(f"mimic-twin:{seed}:{base_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def distractor_levels(levels: Sequence[int], max_distractors: int | None) -> list[int]:
    """The distractor counts of a sweep: `levels` (--levels), or 0..max_distractors (--max-distractors)."""
    if levels and max_distractors is not None:
        raise ConfigError("give --levels or --max-distractors, not both")
    if not levels and max_distractors is None:
        raise ConfigError("--variant distractors needs --levels (e.g. 0 1 2 4) or --max-distractors K (0..K): "
                          "every level must hold the same base rows, so the levels are fixed up front")
    out = sorted(set(levels)) if levels else list(range(max_distractors + 1))
    if out[0] < 0:
        raise ConfigError(f"distractor levels must be 0 or more, got {out[0]}")
    if len(out) < 2:
        raise ConfigError(f"a sweep needs at least 2 levels, got {out}")
    return out


def skip_reason(row: dict, variant: str, top: int | None = None) -> str | None:
    """Why `row` cannot be a base row of the sweep (None: it can). `top`: the largest distractor level that
    must come from the row's own distractors (None: distractors can be added)."""
    if row["task"] not in SWEEP_TASKS:
        return f"task {row['task']}: no distractors to move or drop"
    if not row["target_positions"]:
        return "no query images"
    if variant == "position" and row["num_distractors"] < 2:
        return "fewer than 2 distractors: the middle block would be the first or the last"
    if variant == "distractors" and top is not None and row["num_distractors"] < top:
        return f"fewer than {top} distractors (the largest level) and none can be added to a built row"
    return None


def _twin(row: dict, order: Sequence[int], variant: str, level: str, suffix: str) -> dict:
    twin = dict(row)
    for col in _IMAGE_COLUMNS:
        if row.get(col) is not None:
            twin[col] = [row[col][i] for i in order]
    # the query images are the base row's, wherever they went (a count-free image of a Listing category is
    # still a distractor, so positions come from the base row, not from the counts)
    query = set(row["target_positions"])
    twin["target_positions"] = [j for j, i in enumerate(order) if i in query]
    twin["num_images"] = len(order)
    twin["num_query_images"] = len(twin["target_positions"])
    twin["num_distractors"] = len(order) - len(twin["target_positions"])
    twin.update(id=f"{row['id']}{suffix}", base_id=row["id"], sweep_variant=variant, sweep_level=level,
                query_start=twin["target_positions"][0] if variant == "position" else None)
    return twin


def position_twin(row: dict, position: str) -> dict:
    """`row` with its query images as one block at the first, middle or last place (see the module doc)."""
    if position not in POSITIONS:
        raise ConfigError(f"position must be one of {', '.join(POSITIONS)}, got {position!r}")
    q = list(row["target_positions"])
    d = [k for k in range(row["num_images"]) if k not in set(q)]
    before = {"first": 0, "middle": len(d) // 2, "last": len(d)}[position]
    return _twin(row, d[:before] + q + d[before:], "position", position, f"-{position}")


def distractor_twin(row: dict, k: int, pool: Sequence[int] | None = None) -> dict:
    """`row` with its query images and the first k distractors of `pool` (image positions of `row`; default:
    its distractors in image order), every image in its place."""
    q = set(row["target_positions"])
    pool = [i for i in range(row["num_images"]) if i not in q] if pool is None else list(pool)
    if k > len(pool):
        raise ValueError(f"row {row['id']}: {k} distractors asked, {len(pool)} available")
    keep = q | set(pool[:k])
    return _twin(row, sorted(keep), "distractors", str(k), f"-d{k}")
