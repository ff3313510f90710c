"""Benchmark configs: which task, which controls, how many queries at each scale.

A config is a grid of control cells; sample number k is drawn in cell `k % len(cells)`, so every
cell gets the same share of queries and a sample's controls follow from its number alone (cells the
annotations cannot meet are skipped and their samples redistributed: `generate.iter_samples`). A control
left as None in a cell is drawn by the sample's rng within its allowed range. User overrides replace
the matching control in every cell (and derived ones are recomputed), so "spread 3, 10 distractors,
k = 2" yields exactly that.

The paper shapes (Table 1): Counting balanced 5,000 queries of 7 images with totals of 2-4 instances
spread over 1..T images; Counting unbalanced 5,800 with 2-35 images and 1-7 query images; Common
(3-8 images), Odd-One (4-6) and Listing (2-8) 1,000 each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mimic.builders.index import DEFAULT_MIN_BOX_FRAC
from mimic.errors import ConfigError

__all__ = ["BenchConfig", "CONFIGS", "CONTROL_NAMES", "TRAIN_CONFIGS", "get_config", "resolve_cells", "train_configs", "SCALES"]

SCALES = ("small", "paper")

# Controls a user can set; not every task uses every control.
CONTROL_NAMES = ("num_images", "spread", "distractors", "concepts", "total_instances", "num_answer_classes")
_TASK_CONTROLS = {
    "counting": {"num_images", "spread", "distractors", "concepts", "total_instances"},
    "listing": {"num_images", "spread", "distractors", "num_answer_classes"},
    "common": {"num_images"},
    "odd_one": {"num_images"},
}
# Hard limits of each task's construction, checked after overrides.
_NUM_IMAGES_RANGE = {"counting": (1, 64), "listing": (1, 64), "common": (2, 64), "odd_one": (3, 64)}


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark config: a task, its control grid and its sizes."""

    name: str
    task: str
    cells: tuple[dict, ...]
    paper_num: int
    small_num: int
    description: str
    min_box_frac: float = DEFAULT_MIN_BOX_FRAC
    multi_format: bool = False  # counting answers as "class: n" (the multi-concept config)
    notes: dict = field(default_factory=dict)

    def num_samples(self, scale: str) -> int:
        if scale not in SCALES:
            raise ConfigError(f"unknown scale {scale!r}; choose from {SCALES}")
        return self.paper_num if scale == "paper" else self.small_num


_UNBALANCED_TOTALS = (2, 3, 5, 7, 10, 15, 20, 25, 30, 35)

CONFIGS: dict[str, BenchConfig] = {
    c.name: c
    for c in [
        BenchConfig(
            name="counting_balanced",
            task="counting",
            cells=tuple(
                {"num_images": 7, "total_instances": t, "spread": s, "concepts": 1}
                for t in (2, 3, 4)
                for s in range(1, t + 1)
            ),
            paper_num=5000,
            small_num=90,
            description="Count one class over 7 images; the total (2-4) is fixed while its spread over images varies.",
        ),
        BenchConfig(
            name="counting_unbalanced",
            task="counting",
            cells=tuple(
                {"num_images": n, "spread": s, "concepts": 1, "total_instances": None}
                for n in _UNBALANCED_TOTALS
                for s in range(1, min(7, n) + 1)
            ),
            paper_num=5800,
            small_num=118,
            description="Count one class over 2-35 images with 1-7 query images and natural instance counts.",
        ),
        BenchConfig(
            name="counting_multiconcept",
            task="counting",
            cells=tuple({"num_images": 6, "concepts": k, "spread": k, "total_instances": None} for k in (1, 2, 3, 4)),
            paper_num=1000,
            small_num=40,
            description="Count k = 1..4 classes at once over 6 images; every count must be right.",
            multi_format=True,
        ),
        BenchConfig(
            name="listing",
            task="listing",
            cells=tuple(
                {"num_images": n, "spread": None, "num_answer_classes": None} for n in range(2, 9)
            ),
            paper_num=1000,
            small_num=42,
            description="List every class of a category visible in 2-8 images.",
        ),
        BenchConfig(
            name="common",
            task="common",
            cells=tuple({"num_images": n} for n in range(3, 9)),
            paper_num=1000,
            small_num=42,
            description="Name the one class present in all 3-8 images.",
        ),
        BenchConfig(
            name="odd_one",
            task="odd_one",
            cells=tuple({"num_images": n} for n in range(4, 7)),
            paper_num=1000,
            small_num=42,
            description="Name the one class present in only one of 4-6 images.",
        ),
    ]
}


def train_configs(max_images: int = 10) -> dict[str, BenchConfig]:
    """The training set's configs (paper, appendix A.2 and Table 9): about 50K samples per task, 2 to
    `max_images` images, several concepts; the builder adds turns and lettered options on top."""
    if max_images < 3:
        raise ConfigError(f"max_images must be at least 3 (Odd-One needs 3 images), got {max_images}")
    top = max_images
    return {
        c.name: c
        for c in [
            BenchConfig(
                name="train_counting",
                task="counting",
                cells=tuple(
                    {"num_images": n, "spread": s, "concepts": k, "total_instances": None}
                    for n in range(2, top + 1)
                    for s in range(1, min(n, 4) + 1)
                    for k in range(1, min(s, 3) + 1)
                ),
                paper_num=50_000,
                small_num=60,
                description=f"Count one to three classes over 2-{top} images (one turn per class).",
            ),
            BenchConfig(
                name="train_listing",
                task="listing",
                cells=tuple({"num_images": n, "spread": None, "num_answer_classes": None} for n in range(2, min(8, top) + 1)),
                paper_num=50_000,
                small_num=40,
                description=f"List the classes of a category visible in 2-{min(8, top)} images.",
            ),
            BenchConfig(
                name="train_common",
                task="common",
                cells=tuple({"num_images": n} for n in range(2, min(8, top) + 1)),
                paper_num=50_000,
                small_num=40,
                description=f"Name the class present in all of 2-{min(8, top)} images.",
            ),
            BenchConfig(
                name="train_odd_one",
                task="odd_one",
                cells=tuple({"num_images": n} for n in range(3, min(8, top) + 1)),
                paper_num=50_000,
                small_num=40,
                description=f"Name the class present in only one of 3-{min(8, top)} images.",
            ),
        ]
    }


TRAIN_CONFIGS = train_configs()


def get_config(name: str) -> BenchConfig:
    """A benchmark config (or a training config, `train_<task>`) by name."""
    hit = CONFIGS.get(name) or TRAIN_CONFIGS.get(name)
    if hit is not None:
        return hit
    import difflib

    known = [*CONFIGS, *TRAIN_CONFIGS]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown config {name!r}.{hint} Available: {', '.join(known)}")


def resolve_cells(config: BenchConfig, overrides: dict | None = None) -> tuple[dict, ...]:
    """The config's cells with user overrides applied and derived controls made consistent.

    Counting and Listing tie three controls: num_images = spread + distractors. Whatever the user sets
    wins; the remaining one is derived. Cells the overrides make impossible are dropped (the overrides
    select part of the grid); unknown or inapplicable controls, or overrides no cell can satisfy, raise
    ConfigError.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    allowed = _TASK_CONTROLS[config.task]
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise ConfigError(
            f"config {config.name!r} (task {config.task}) has no control {', '.join(bad)}; "
            f"its controls are: {', '.join(sorted(allowed))}"
        )
    out, seen, errors = [], set(), []
    for base in config.cells:
        cell = dict(base)
        cell.setdefault("distractors", None)
        given = set(overrides)
        cell.update(overrides)
        if "spread" in allowed:
            n, s, d = cell.get("num_images"), cell.get("spread"), cell.get("distractors")
            if {"num_images", "spread", "distractors"} <= given and n != s + d:
                raise ConfigError(f"--num-images {n} != --spread {s} + --distractors {d}")
            if "distractors" in given and "num_images" not in given:
                if s is None:
                    raise ConfigError("--distractors needs --spread or --num-images for this config")
                cell["num_images"] = s + d
            elif "distractors" in given and "spread" not in given:
                cell["spread"] = n - d
            elif s is not None and n is not None:
                cell["distractors"] = n - s
        try:
            _validate_cell(config, cell)
        except ConfigError as e:
            # The overrides select part of the grid ("total 2" keeps the spreads 1 and 2 of the balanced
            # grid); only when no cell is left are they inconsistent.
            errors.append(e)
            continue
        key = tuple(sorted((k, v) for k, v in cell.items()))
        if key not in seen:
            seen.add(key)
            out.append(cell)
    if not out:
        raise errors[0]
    return tuple(out)


def _validate_cell(config: BenchConfig, cell: dict) -> None:
    n, s, d = cell.get("num_images"), cell.get("spread"), cell.get("distractors")
    lo, hi = _NUM_IMAGES_RANGE[config.task]
    if n is not None and not lo <= n <= hi:
        raise ConfigError(f"{config.name}: num_images must be in {lo}..{hi}, got {n}")
    if s is not None and s < 1:
        raise ConfigError(f"{config.name}: spread must be at least 1, got {s}")
    if s is not None and n is not None and s > n:
        raise ConfigError(f"{config.name}: spread {s} exceeds num_images {n}")
    if d is not None and d < 0:
        raise ConfigError(f"{config.name}: distractors must be >= 0, got {d}")
    k = cell.get("concepts")
    if k is not None and not 1 <= k <= 8:
        raise ConfigError(f"{config.name}: concepts must be in 1..8, got {k}")
    if k is not None and s is not None and k > 1 and s < 1:
        raise ConfigError(f"{config.name}: {k} concepts need at least one query image")
    t = cell.get("total_instances")
    if t is not None and (k or 1) > 1:
        raise ConfigError(f"{config.name}: total_instances applies to single-concept counting, not {k} concepts")
    if t is not None and s is not None and t < s:
        raise ConfigError(f"{config.name}: total_instances {t} cannot spread over {s} images (each needs >= 1)")
    m = cell.get("num_answer_classes")
    if m is not None and m < 1:
        raise ConfigError(f"{config.name}: num_answer_classes must be >= 1, got {m}")
