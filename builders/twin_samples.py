"""Sweeps drawn from the annotations (`mimic generate --variant`): twins of generated samples.

Unlike a built benchmark, generated samples come with the annotation index, so a distractor sweep can go
beyond a sample's own distractors: the missing ones are drawn with `ImagePicker.draw_free`, the rule the
generators use (free of every target class; for Listing, of every class filed under the category), with
the base sample's own seed (`twin_seed`) and inserted at seeded places. Every twin is then checked by the
independent verifier (`verify.check_sample`) against the raw annotations, as every generated sample is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from mimic.builders.categories import filed_under
from mimic.builders.index import AnnotationIndex
from mimic.builders.sampling import ImagePicker
from mimic.builders.twins import POSITIONS, distractor_twin, position_twin, skip_reason, twin_seed
from mimic.builders.verify import VerificationError, check_sample

__all__ = ["extend_distractors", "sample_twins"]


def _free_of(index: AnnotationIndex, row: dict) -> frozenset[int]:
    """Classes a distractor of `row` must not hold (the generators' rule, see builders/tasks.py)."""
    if row["task"] == "listing":
        return frozenset(index.class_to_id[c] for c in filed_under(index, row["category"]))
    return frozenset(index.class_to_id[c] for c in row["target_classes"])


def extend_distractors(index: AnnotationIndex, picker: ImagePicker, row: dict, total: int,
                       seed: int) -> tuple[dict, list[int]] | None:
    """(`row` with distractors added up to `total`, the distractor pool in the order they are kept), or None
    when the index has too few free images. The row's own distractors come first in the pool."""
    q = set(row["target_positions"])
    own = [i for i in range(row["num_images"]) if i not in q]
    need = total - len(own)
    if need <= 0:
        return row, own
    rng = np.random.default_rng(seed)
    taken = {index.image_to_pos[str(i)] for i in row["image_ids"]}
    drawn = picker.draw_free(rng, _free_of(index, row), need, taken)
    if drawn is None:
        return None
    # each new image goes to a seeded place; `slots` tracks where every image of the sequence comes from
    slots: list[tuple[str, int]] = [("own", i) for i in range(row["num_images"])]
    for j in range(need):
        slots.insert(int(rng.integers(len(slots) + 1)), ("new", j))
    target_ids = [index.class_to_id[c] for c in row["target_classes"]]
    ext = dict(row)
    image_ids, file_names, counts = [], [], []
    for kind, i in slots:
        if kind == "own":
            image_ids.append(row["image_ids"][i])
            file_names.append(row["file_names"][i])
            counts.append(list(row["per_image_counts"][i]))
        else:
            p = drawn[i]
            image_ids.append(str(index.image_ids[p]))
            file_names.append(str(index.file_names[p]))
            counts.append([index.count(p, c) for c in target_ids])
    where = {slot: k for k, slot in enumerate(slots)}
    ext.update(image_ids=image_ids, file_names=file_names, per_image_counts=counts, num_images=len(slots),
               target_positions=[where[("own", i)] for i in row["target_positions"]])
    ext["num_distractors"] = len(slots) - len(ext["target_positions"])
    pool = [where[("own", i)] for i in own] + [where[("new", j)] for j in range(need)]
    return ext, pool


def sample_twins(index: AnnotationIndex, rows: Sequence[dict], variant: str, levels: Sequence[int] = (),
                 seed: int = 0, min_box_frac: float = 0.05) -> tuple[list[dict], dict]:
    """(verified twins of the generated `rows`, the sweep's summary). Rows that cannot give every level are
    skipped, counted by reason in the summary; each twin must verify (VerificationError otherwise)."""
    picker = ImagePicker.for_index(index, min_box_frac)
    twins: list[dict] = []
    skipped: Counter = Counter()
    skipped_ids: list[str] = []
    used: dict[str, int] = {}
    seeds: dict[str, int] = {}
    for row in rows:
        reason = skip_reason(row, variant)
        made: list[dict] = []
        if reason is None and variant == "position":
            made = [position_twin(row, p) for p in POSITIONS]
        elif reason is None:
            seeds[row["id"]] = twin_seed(seed, row["id"])
            got = extend_distractors(index, picker, row, max(levels), seeds[row["id"]])
            if got is None:
                del seeds[row["id"]]
                reason = f"the annotations have too few images free of the targets for {max(levels)} distractors"
            else:
                ext, pool = got
                made = [distractor_twin(ext, k, pool) for k in levels]
        if reason is not None:
            skipped[reason] += 1
            skipped_ids.append(row["id"])
            continue
        for twin in made:
            problems = check_sample(index, twin, min_box_frac)
            if problems:
                raise VerificationError(twin["id"], problems)
        twins += made
        used[row["config"]] = used.get(row["config"], 0) + 1
    summary = {"analysis": "sweep", "variant": variant,
               "levels": list(POSITIONS) if variant == "position" else [str(k) for k in levels],
               "base_rows": used, "rows": len(twins), "skipped": dict(skipped), "skipped_ids": skipped_ids,
               "seed": seed, "min_box_frac": min_box_frac}
    if variant == "distractors":
        summary["twin_seeds"] = seeds
    return twins, summary
