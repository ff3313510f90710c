"""The verifier: re-derive every answer and control of a sample from the raw per-instance records.

It shares no code with the generators nor with the index's aggregation: it reads the boxes as they were
read from the source (`AnnotationIndex.instances`: box area, image area, crowd and depiction flags, one
entry per annotation) and applies the task rules (docs/tasks.md) with its own code, so that a bug in the
index's counts or eligibility, in the generators' image picking or in their answer formatting shows up
here instead of verifying itself. What it does share is the input (the source reader, class and category
names, file names) and the paper's question templates, which it renders to check the question text.

Checks per task:

- Counting: every image either eligible for each target class it contains, or free of it; counts,
  total, spread, distractors and positions recomputed.
- Listing: every class of the category present in an image is eligible there ("no class present but
  unusable"); no image holds a class filed deeper under the category than its members (an Open Images
  "sofa bed" under furniture's "couch": neither free of furniture nor nameable by the gold answer); the
  answer is the union of the members shown; distractors are free of the whole category. What lies below a
  category is walked here from the category table itself, not with the generator's `filed_under`.
- Common: the class is eligible in every image and no other class is present in all of them.
- Odd-One: the class is eligible in exactly one image and absent from the rest; every other class
  present anywhere appears in at least half of the images.

Box fractions are compared as float32 (`area / image_area` against `min_box_frac`), the precision the
rule is defined at (docs/tasks.md), so a box at the threshold is judged the same everywhere.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass

import numpy as np

from mimic.builders.configs import get_config
from mimic.builders.index import DEFAULT_MIN_BOX_FRAC, AnnotationIndex
from mimic.builders.sample import Sample
from mimic.builders.templates import render_question, template_family
from mimic.errors import AnnotationError, MimicError

__all__ = ["VerificationError", "check_sample", "verify_sample"]


class VerificationError(MimicError, ValueError):
    def __init__(self, sample_id: str, problems: list[str]):
        self.sample_id, self.problems = sample_id, problems
        super().__init__(f"sample {sample_id}: " + "; ".join(problems))


@dataclass(frozen=True)
class _Box:
    frac: np.float32
    crowd: bool
    depiction: bool


class _RawFacts:
    """Per image, its boxes grouped by class name, straight from the instance records."""

    def __init__(self, index: AnnotationIndex):
        inst = index.instances
        if inst is None:
            raise AnnotationError(
                "<index>", "it has no per-instance records to verify against: build it with a source reader "
                "(read_coco, read_openimages) or `mimic index` from this version"
            )
        self.names = index.class_names
        self.inst = inst
        self.order = np.argsort(inst.image, kind="stable")
        self.starts = np.searchsorted(inst.image[self.order], np.arange(index.num_images + 1))
        self._cache: dict[int, dict[str, list[_Box]]] = {}

    def boxes(self, p: int) -> dict[str, list[_Box]]:
        hit = self._cache.get(p)
        if hit is None:
            inst = self.inst
            hit = {}
            image_area = float(inst.image_area[p])
            for b in self.order[self.starts[p] : self.starts[p + 1]].tolist():
                frac = np.float32(float(inst.area[b]) / image_area) if image_area > 0 else np.float32(0)
                hit.setdefault(self.names[int(inst.cls[b])], []).append(
                    _Box(frac, bool(inst.crowd[b]), bool(inst.depiction[b]))
                )
            self._cache[p] = hit
        return hit

    def count(self, p: int, name: str) -> int:
        return sum(1 for b in self.boxes(p).get(name, ()) if not b.crowd)

    def present(self, p: int, name: str) -> bool:
        return name in self.boxes(p)

    def classes(self, p: int) -> set[str]:
        return set(self.boxes(p))

    def eligible(self, p: int, name: str, min_box_frac: float) -> bool:
        boxes = self.boxes(p).get(name, ())
        threshold = np.float32(min_box_frac)
        return (
            any(not b.crowd for b in boxes)
            and not any(b.crowd or b.depiction for b in boxes)
            and all(b.frac >= threshold for b in boxes)
        )


_FACTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _facts(index: AnnotationIndex) -> _RawFacts:
    hit = _FACTS.get(index)
    if hit is None:
        hit = _FACTS[index] = _RawFacts(index)
    return hit


def _expected_counting_answer(classes: list[str], totals: list[int], multi: bool) -> tuple[str, list[str]]:
    if multi or len(classes) > 1:
        return ", ".join(f"{name}: {total}" for name, total in zip(classes, totals, strict=True)), [
            str(t) for t in totals
        ]
    return str(totals[0]), [str(totals[0])]


def _below(categories: dict[str, tuple[str, ...]], category: str) -> set[str]:
    """The classes under `category` at any depth, its own name included (Open Images names a category by its
    node's class; for a flat source the extra names are simply not classes and never present)."""
    seen = {category}
    todo = [category]
    while todo:
        for child in categories.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def check_sample(index: AnnotationIndex, sample, min_box_frac: float = DEFAULT_MIN_BOX_FRAC) -> list[str]:
    """All the ways `sample` disagrees with the annotations (empty when it verifies)."""
    row = vars(sample) if isinstance(sample, Sample) else sample
    facts = _facts(index)
    problems: list[str] = []
    positions = [index.image_to_pos.get(str(i)) for i in row["image_ids"]]
    if None in positions:
        unknown = [i for i, p in zip(row["image_ids"], positions, strict=True) if p is None]
        return [f"image ids not in the index: {unknown[:3]}"]
    n = len(positions)
    if len(set(positions)) != n:
        problems.append("an image appears twice")
    if row["num_images"] != n:
        problems.append(f"num_images {row['num_images']} != {n} images")
    if list(row["file_names"]) != [str(index.file_names[p]) for p in positions]:
        problems.append("file_names do not match the index")
    names = list(row["target_classes"])
    unknown_cls = [c for c in names if c not in index.class_to_id]
    if unknown_cls:
        return problems + [f"unknown target classes {unknown_cls}"]
    ids = row["image_ids"]

    def eligible(p: int, name: str) -> bool:
        return facts.eligible(p, name, min_box_frac)

    counts = [[facts.count(p, c) for c in names] for p in positions]
    if row["per_image_counts"] != counts:
        problems.append(f"per_image_counts {row['per_image_counts']} != recomputed {counts}")
    if row["total_instances"] != sum(map(sum, counts)):
        problems.append(f"total_instances {row['total_instances']} != {sum(map(sum, counts))}")
    if row["num_concepts"] != len(names):
        problems.append(f"num_concepts {row['num_concepts']} != {len(names)} target classes")

    task = row["task"]
    config = get_config(row["config"])
    if config.task != task:
        problems.append(f"task {task!r} does not match config {config.name!r}")
    if task == "counting":
        free = [not any(facts.present(p, c) for c in names) for p in positions]
        for k, p in enumerate(positions):
            for c in names:
                if facts.present(p, c) and not eligible(p, c):
                    problems.append(f"image {ids[k]} has {c!r} but is not eligible")
        totals = [sum(counts[k][j] for k in range(n)) for j in range(len(names))]
        answer, answer_list = _expected_counting_answer(names, totals, config.multi_format)
        _expect(problems, row, answer=answer, answer_list=answer_list)
        if any(t == 0 for t in totals):
            problems.append("a target class has no instance")
    elif task == "listing":
        members = index.categories.get(row["category"])
        if members is None:
            return problems + [f"unknown category {row['category']!r}"]
        deeper = _below(index.categories, row["category"]) - set(members)
        shown: set[str] = set()
        free = []
        for k, p in enumerate(positions):
            below = sorted(c for c in facts.classes(p) if c in deeper)
            if below:
                problems.append(
                    f"image {ids[k]} holds {below}, filed under {row['category']!r} below its members: it is "
                    "neither free of the category nor a query image whose answer can name it"
                )
            here = [c for c in members if facts.present(p, c)]
            free.append(not here)
            for c in here:
                if not eligible(p, c):
                    problems.append(
                        f"image {ids[k]} holds {c!r} of {row['category']!r} but it is not eligible (small or crowd)"
                    )
            shown.update(here)
        gold = sorted(shown)
        _expect(problems, row, answer=", ".join(gold), answer_list=gold, target_classes=gold)
    elif task in ("common", "odd_one"):
        if len(names) != 1:
            return problems + [f"{task} has one target class, got {names}"]
        (c,) = names
        if task == "common":
            free = [False] * n
            if not all(eligible(p, c) for p in positions):
                problems.append(f"{c!r} is not eligible in every image")
            shared = set.intersection(*(facts.classes(p) for p in positions)) if n else set()
            if shared != {c}:
                problems.append(f"classes present in all images: {sorted(shared)}")
        else:
            holders = [k for k, p in enumerate(positions) if facts.present(p, c)]
            free = [k not in holders for k in range(n)]
            if len(holders) != 1 or not eligible(positions[holders[0]], c):
                problems.append(f"{c!r} must be eligible in exactly one image, found in {len(holders)}")
            seen = Counter(x for p in positions for x in facts.classes(p))
            rare = sorted(x for x, v in seen.items() if x != c and 2 * v < n)
            if rare:
                problems.append(f"other classes present in fewer than half of the images: {rare}")
        _expect(problems, row, answer=c, answer_list=[c])
    else:
        return problems + [f"unknown task {task!r}"]

    query = [k for k in range(n) if not free[k]]
    _expect(problems, row, target_positions=query, num_query_images=len(query), num_distractors=n - len(query))
    family = template_family(task, len(names), config.multi_format)
    try:
        question = render_question(family, row["template_id"], row["connector_id"], names, row["category"])
    except (IndexError, ValueError) as e:
        problems.append(f"template ids do not render: {e}")
    else:
        if question != row["question"]:
            problems.append(f"question does not match template {row['template_id']}/{row['connector_id']}")
    return problems


def _expect(problems: list[str], row: dict, **expected) -> None:
    for key, value in expected.items():
        if row[key] != value:
            problems.append(f"{key} {row[key]!r} != recomputed {value!r}")


def verify_sample(index: AnnotationIndex, sample, min_box_frac: float = DEFAULT_MIN_BOX_FRAC) -> None:
    problems = check_sample(index, sample, min_box_frac)
    if problems:
        sid = sample.id if isinstance(sample, Sample) else sample.get("id", "?")
        raise VerificationError(sid, problems)
