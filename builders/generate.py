"""Generate a benchmark config from an annotation index: draft, shuffle, phrase, verify.

Sample number k of a config gets its own rng, seeded from (seed, config, k), and its controls from
cell `k % len(cells)` (or the next cell that can be built, when the annotations cannot meet that one), so
the output depends only on (annotations, config, overrides, seed). Every sample is re-checked by the
independent verifier.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from mimic.atomic import atomic_path
from mimic.builders.configs import BenchConfig, get_config, resolve_cells
from mimic.builders.index import AnnotationIndex
from mimic.builders.sample import Sample, sample_id
from mimic.builders.sampling import ImagePicker
from mimic.builders.tasks import TASKS
from mimic.builders.templates import (
    CONNECTOR_TEMPLATES,
    TASK_TEMPLATES,
    counting_answer,
    render_question,
    template_family,
)
from mimic.builders.verify import verify_sample
from mimic.errors import AnnotationError, InfeasibleError

__all__ = ["GridReport", "SkippedCell", "generate", "iter_samples", "sample_seed", "write_json", "write_jsonl", "read_jsonl", "MAX_ATTEMPTS"]

# Random attempts per sample before the controls are declared infeasible for these annotations.
MAX_ATTEMPTS = 200


def sample_seed(seed: int, config: str, number: int) -> int:
    """A 63-bit seed for one sample, stable across Python versions and platforms."""
    digest = hashlib.sha256(f"mimic:{seed}:{config}:{number}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class SkippedCell:
    """A control cell that could not be built (or stopped yielding new samples) from these annotations."""

    config: str
    controls: dict
    reason: str
    produced: int  # samples built in this cell before it was given up (0: infeasible from the start)

    def line(self) -> str:
        made = f" after {self.produced} sample(s)" if self.produced else ""
        return f"{self.config}: skipped cell {self.controls}{made}: {self.reason}"

    def to_dict(self) -> dict:
        return {"controls": self.controls, "reason": self.reason, "produced": self.produced}


@dataclass
class GridReport:
    """What a generation run built of its config's grid: filled in while the samples are drawn."""

    config: str
    requested: int = 0
    produced: int = 0
    cells: int = 0
    skipped: list[SkippedCell] = field(default_factory=list)

    @property
    def shortfall(self) -> int:
        return self.requested - self.produced

    def to_dict(self) -> dict:
        return {"requested": self.requested, "produced": self.produced, "cells": self.cells,
                "skipped_cells": [c.to_dict() for c in self.skipped], "shortfall": self.shortfall}


def iter_samples(
    index: AnnotationIndex,
    config: str | BenchConfig,
    *,
    num: int | None = None,
    scale: str = "small",
    seed: int = 0,
    overrides: dict | None = None,
    min_box_frac: float | None = None,
    verify: bool = True,
    strict: bool = False,
    include_catch_all: bool = False,
    report: GridReport | None = None,
) -> Iterator[Sample]:
    """Yield samples `0..num-1` of a config (see `generate`).

    Partial grids: a cell that cannot be built is given up (recorded in `report`), and its samples go to
    the next cell that can (redistribution, so the requested size is kept); only when every cell is given
    up before `num` samples is there a shortfall, and with no sample at all an `InfeasibleError`.
    With `strict`, the first cell that cannot be built raises instead.
    """
    cfg = get_config(config) if isinstance(config, str) else config
    cells = resolve_cells(cfg, overrides)
    if cfg.task == "listing":
        cells = tuple(dict(c, include_catch_all=include_catch_all) for c in cells)
    num = cfg.num_samples(scale) if num is None else num
    frac = cfg.min_box_frac if min_box_frac is None else min_box_frac
    picker = ImagePicker.for_index(index, frac)
    make = TASKS.get(cfg.task)
    report = GridReport(cfg.name) if report is None else report
    report.requested, report.cells = num, len(cells)
    alive = [True] * len(cells)
    made = [0] * len(cells)
    seen: set[tuple] = set()
    for number in range(num):
        own_seed = sample_seed(seed, cfg.name, number)
        start = number % len(cells)
        draft = None
        for j in [(start + d) % len(cells) for d in range(len(cells))]:
            if not alive[j]:
                continue
            # A sample moved to another cell starts that cell's draw afresh: its output depends only on
            # (seed, config, number) and which cells were given up before it.
            rng = np.random.default_rng(own_seed)
            draft, reason = _draw(make, picker, rng, cells[j], cfg.name, seen, index)
            if draft is not None:
                made[j] += 1
                break
            shown = _shown(cells[j])
            if strict:
                raise InfeasibleError(f"{cfg.name}: controls {shown}: {reason} (sample {number})")
            alive[j] = False
            report.skipped.append(SkippedCell(cfg.name, shown, reason, made[j]))
        if draft is None:
            if report.produced == 0:
                reasons = list(dict.fromkeys(c.reason for c in report.skipped))
                more = f" (and {len(reasons) - 2} other reasons)" if len(reasons) > 2 else ""
                raise InfeasibleError(
                    f"{cfg.name}: none of its {len(cells)} control cells can be built from these annotations: "
                    + "; ".join(reasons[:2]) + more
                )
            return  # every cell is spent: a shortfall, recorded in the report
        sample = _finalize(index, cfg, draft, rng, number, own_seed)
        if verify:
            verify_sample(index, sample, frac)
        report.produced += 1
        yield sample


# An InfeasibleError raised this many times for one sample ends its attempts early: the task says the
# cell cannot be met (it may depend on a random choice, e.g. how a total splits over images, hence not once).
_INFEASIBLE_REPEATS = 10


def _draw(make, picker, rng, cell: dict, config: str, seen: set, index: AnnotationIndex):
    """(draft, None) or (None, the reason no sample could be drawn) after up to MAX_ATTEMPTS attempts."""
    infeasible = 0
    reason = None
    for _attempt in range(MAX_ATTEMPTS):
        try:
            draft = make(picker, rng, cell, config)
        except InfeasibleError as e:
            reason = str(e).removeprefix(f"{config}: ")
            infeasible += 1
            if infeasible >= _INFEASIBLE_REPEATS:
                return None, reason
            continue
        if draft is None:
            continue
        # Within one run, the same images and targets twice would be a wasted query.
        key = (tuple(sorted(draft.images)), tuple(draft.targets))
        if key not in seen:
            seen.add(key)
            return draft, None
    return None, reason or (
        f"no new valid sample in {MAX_ATTEMPTS} random attempts; the annotations have {index.num_images} images "
        f"and {index.num_classes} classes"
    )


def _shown(cell: dict) -> dict:
    return {k: v for k, v in cell.items() if v is not None and k != "include_catch_all"}


def generate(index: AnnotationIndex, config: str | BenchConfig, **kwargs) -> list[Sample]:
    """Generate `num` samples (default: the config's size at `scale`) with every control recorded.

    Args:
        index: the annotation index.
        config: a config name (`counting_balanced`, `counting_unbalanced`, `counting_multiconcept`, `listing`,
            `common`, `odd_one`) or a `BenchConfig`.
        num: number of samples; default the config's size at `scale` ("small" or "paper").
        seed: base seed; the same (index, config, overrides, seed) give the same samples.
        overrides: control values replacing the config's (`num_images`, `spread`, `distractors`, `concepts`,
            `total_instances`, `num_answer_classes`).
        min_box_frac: eligibility threshold (default 0.05).
        verify: re-check every sample with the verifier (on by default).
        strict: raise as soon as one control cell cannot be built (default: build the others, see
            `iter_samples`, and record the skipped cells in `report`).
        include_catch_all: let Listing ask about catch-all categories (COCO's indoor / outdoor objects).
        report: a `GridReport` to fill with the sizes and the skipped cells.

    Raises:
        InfeasibleError: no cell of the config can be built (or, with `strict`, one cannot); the message says
            which constraint failed.
        ConfigError: unknown config or inconsistent controls.
    """
    return list(iter_samples(index, config, **kwargs))


def _finalize(index: AnnotationIndex, cfg: BenchConfig, draft, rng: np.random.Generator, number: int, seed: int) -> Sample:
    order = rng.permutation(len(draft.images)).tolist()
    positions = [draft.images[j] for j in order]
    names = [index.class_names[c] for c in draft.targets]
    if cfg.task == "listing":
        names = sorted(names)
    target_ids = [index.class_to_id[c] for c in names]
    counts = [[index.count(p, c) for c in target_ids] for p in positions]
    if cfg.task == "odd_one":
        query = [k for k, row in enumerate(counts) if row[0] > 0]
    elif cfg.task == "common":
        query = list(range(len(positions)))
    else:
        relevant = draft_classes(index, cfg, draft)
        query = [k for k, p in enumerate(positions) if any(not index.is_free(p, c) for c in relevant)]
    totals = [sum(col) for col in zip(*counts, strict=True)]
    if cfg.task == "counting":
        answer, answer_list = counting_answer(names, totals, cfg.multi_format)
    elif cfg.task == "listing":
        answer, answer_list = ", ".join(names), list(names)
    else:
        answer, answer_list = names[0], [names[0]]
    family = template_family(cfg.task, len(names), cfg.multi_format)
    template_id = int(rng.integers(len(TASK_TEMPLATES[family])))
    connector_id = int(rng.integers(len(CONNECTOR_TEMPLATES[family])))
    question = render_question(family, template_id, connector_id, names, draft.category)
    image_ids = [str(index.image_ids[p]) for p in positions]
    return Sample(
        id=sample_id(cfg.name, number, image_ids, question),
        task=cfg.task,
        config=cfg.name,
        image_ids=image_ids,
        file_names=[str(index.file_names[p]) for p in positions],
        question=question,
        answer=answer,
        answer_list=answer_list,
        target_classes=names,
        category=draft.category,
        num_images=len(positions),
        num_query_images=len(query),
        num_distractors=len(positions) - len(query),
        num_concepts=len(names),
        total_instances=int(sum(totals)),
        per_image_counts=counts,
        target_positions=query,
        template_id=template_id,
        connector_id=connector_id,
        seed=seed,
        source=index.source,
        source_split=index.source_split,
    )


def draft_classes(index: AnnotationIndex, cfg: BenchConfig, draft) -> list[int]:
    """Classes whose presence makes an image a query image: the targets, or the whole Listing category."""
    if cfg.task == "listing":
        return [index.class_to_id[m] for m in index.categories[draft.category]]
    return list(draft.targets)


# ---------------------------------------------------------------------------- JSONL
def write_jsonl(samples, path: str | os.PathLike) -> Path:
    """Write samples (or row dicts) one per line, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for s in samples:
            row = s.to_row() if isinstance(s, Sample) else s
            f.write(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")
    return Path(path)


def write_json(value, path: str | os.PathLike) -> Path:
    """Write one JSON document, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2))
    return Path(path)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if path.is_dir():
        raise AnnotationError(path, "is a folder, not a JSON Lines file written by `mimic generate`")
    if not path.is_file():
        raise AnnotationError(path, "file not found")
    rows = []
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError as e:
                raise AnnotationError(path, f"line {line_no} is not valid JSON ({e})") from e
    return rows
