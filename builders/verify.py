"""The verifier: recompute a sample's answer and controls from the annotation index and prove the answer unique.

It shares no code with the generators (only index lookups and the question templates), so a
generator bug shows up here rather than being repeated. Checks per task:

- Counting: every image either eligible for each target class it contains, or free of it; counts,
  total, spread, distractors and positions recomputed.
- Listing: every class of the category present in an image is eligible there ("no class present but
  unusable"); the answer is the union of those classes; distractors are free of the whole category.
- Common: the class is eligible in every image and no other class is present in all of them.
- Odd-One: the class is eligible in exactly one image and absent from the rest; every other class
  present anywhere appears in at least half of the images.
"""

from __future__ import annotations

from collections import Counter

from mimic.builders.configs import get_config
from mimic.builders.index import DEFAULT_MIN_BOX_FRAC, AnnotationIndex
from mimic.builders.sample import Sample
from mimic.builders.templates import render_question, template_family
from mimic.errors import MimicError

__all__ = ["VerificationError", "check_sample", "verify_sample", "counting_answer"]


class VerificationError(MimicError, ValueError):
    def __init__(self, sample_id: str, problems: list[str]):
        self.sample_id, self.problems = sample_id, problems
        super().__init__(f"sample {sample_id}: " + "; ".join(problems))


def counting_answer(classes: list[str], totals: list[int], multi_format: bool) -> tuple[str, list[str]]:
    """Canonical counting answer: "3" for one class, "dog: 2, cat: 1" in the multi-concept format
    (always used for several classes)."""
    if multi_format or len(classes) > 1:
        return ", ".join(f"{c}: {t}" for c, t in zip(classes, totals, strict=True)), [str(t) for t in totals]
    (t,) = totals
    return str(t), [str(t)]


def check_sample(index: AnnotationIndex, sample, min_box_frac: float = DEFAULT_MIN_BOX_FRAC) -> list[str]:
    """All the ways `sample` disagrees with the annotations (empty when it verifies)."""
    row = vars(sample) if isinstance(sample, Sample) else sample
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
    unknown_cls = [c for c in row["target_classes"] if c not in index.class_to_id]
    if unknown_cls:
        return problems + [f"unknown target classes {unknown_cls}"]
    targets = [index.class_to_id[c] for c in row["target_classes"]]

    def eligible(p: int, c: int) -> bool:
        return index.is_eligible(p, c, min_box_frac)

    counts = [[index.count(p, c) for c in targets] for p in positions]
    if row["per_image_counts"] != counts:
        problems.append(f"per_image_counts {row['per_image_counts']} != recomputed {counts}")
    if row["total_instances"] != sum(map(sum, counts)):
        problems.append(f"total_instances {row['total_instances']} != {sum(map(sum, counts))}")
    if row["num_concepts"] != len(targets):
        problems.append(f"num_concepts {row['num_concepts']} != {len(targets)} target classes")

    task = row["task"]
    config = get_config(row["config"])
    if config.task != task:
        problems.append(f"task {task!r} does not match config {config.name!r}")
    if task == "counting":
        free = [all(index.is_free(p, c) for c in targets) for p in positions]
        for k, p in enumerate(positions):
            for c in targets:
                if not index.is_free(p, c) and not eligible(p, c):
                    problems.append(f"image {row['image_ids'][k]} has {index.class_names[c]!r} but is not eligible")
        totals = [sum(col) for col in zip(*counts, strict=True)] if counts else [0] * len(targets)
        answer, answer_list = counting_answer(row["target_classes"], totals, config.multi_format)
        _expect(problems, row, answer=answer, answer_list=answer_list)
        if any(t == 0 for t in totals):
            problems.append("a target class has no instance")
    elif task == "listing":
        members = index.categories.get(row["category"])
        if members is None:
            return problems + [f"unknown category {row['category']!r}"]
        member_ids = [index.class_to_id[m] for m in members]
        present: set[int] = set()
        free = []
        for k, p in enumerate(positions):
            here = [c for c in member_ids if not index.is_free(p, c)]
            free.append(not here)
            for c in here:
                if not eligible(p, c):
                    problems.append(
                        f"image {row['image_ids'][k]} holds {index.class_names[c]!r} of {row['category']!r} "
                        "but it is not eligible (small or crowd)"
                    )
            present.update(here)
        gold = sorted(index.class_names[c] for c in present)
        _expect(problems, row, answer=", ".join(gold), answer_list=gold, target_classes=gold)
    elif task == "common":
        (c,) = targets
        free = [False] * n
        if not all(eligible(p, c) for p in positions):
            problems.append(f"{index.class_names[c]!r} is not eligible in every image")
        shared = set.intersection(*(set(index.classes_in(p).tolist()) for p in positions)) if n else set()
        if shared != {c}:
            problems.append(f"classes present in all images: {sorted(index.class_names[x] for x in shared)}")
        _expect(problems, row, answer=index.class_names[c], answer_list=[index.class_names[c]])
    elif task == "odd_one":
        (c,) = targets
        holders = [k for k, p in enumerate(positions) if not index.is_free(p, c)]
        free = [k not in holders for k in range(n)]
        if len(holders) != 1 or not eligible(positions[holders[0]], c):
            problems.append(f"{index.class_names[c]!r} must be eligible in exactly one image, found in {len(holders)}")
        seen = Counter(x for p in positions for x in index.classes_in(p).tolist())
        rare = [index.class_names[x] for x, v in seen.items() if x != c and 2 * v < n]
        if rare:
            problems.append(f"other classes present in fewer than half of the images: {sorted(rare)}")
        _expect(problems, row, answer=index.class_names[c], answer_list=[index.class_names[c]])
    else:
        return problems + [f"unknown task {task!r}"]

    query = [k for k in range(n) if not free[k]]
    _expect(problems, row, target_positions=query, num_query_images=len(query), num_distractors=n - len(query))
    family = template_family(task, len(targets), config.multi_format)
    try:
        question = render_question(family, row["template_id"], row["connector_id"], row["target_classes"], row["category"])
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
