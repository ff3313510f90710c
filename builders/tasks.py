"""The four MIMIC task generators: Counting, Listing, Common, Odd-One.

Each generator draws one `Draft` (the images and the target classes, before shuffling) for one control
cell, with the sample's rng. A generator returns None when a random attempt fails (the caller retries
with the same rng) and raises `InfeasibleError` when no attempt can succeed with these annotations.
Classes are drawn first, uniformly from the classes that can satisfy the cell (class balance, as in
the paper), then images. The task rules are in ARCHITECTURE.md ("Task specification").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mimic.builders.sampling import ImagePicker
from mimic.errors import InfeasibleError

__all__ = ["Draft", "TASKS", "register_task"]


@dataclass
class Draft:
    images: list[int]  # index positions; query images first, distractors after (shuffled later)
    targets: list[int]  # class positions: counted / listed / common / odd class
    category: str


TaskFn = Callable[[ImagePicker, np.random.Generator, dict, str], "Draft | None"]
TASKS: dict[str, TaskFn] = {}


def register_task(name: str):
    def wrap(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return wrap


def _pick(rng: np.random.Generator, pool: list):
    return pool[int(rng.integers(len(pool)))]


def _category_of(picker: ImagePicker, c: int) -> str:
    idx = picker.index
    return idx.class_category.get(idx.class_names[c], "")


def _composition(rng: np.random.Generator, total: int, parts: int) -> list[int]:
    """A uniformly random ordered composition of `total` into `parts` positive integers."""
    if parts == 1:
        return [total]
    cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
    edges = np.concatenate([[0], cuts, [total]])
    return np.diff(edges).astype(int).tolist()


def _with_enough(picker: ImagePicker, need: int, classes=None) -> list[int]:
    classes = range(picker.index.num_classes) if classes is None else classes
    return [c for c in classes if len(picker.eligible(c)) >= need]


@register_task("counting")
def counting(picker: ImagePicker, rng: np.random.Generator, cell: dict, config: str) -> Draft | None:
    n, k = cell["num_images"], cell.get("concepts") or 1
    s = cell.get("spread") or int(rng.integers(1, n + 1))
    total = cell.get("total_instances")
    if k == 1 and total is not None:
        parts = _composition(rng, total, s)
        need = Counter(parts)
        pool = [
            c for c in range(picker.index.num_classes)
            if all(len(picker.eligible_with_count(c, v)) >= m for v, m in need.items())
        ]
        if not pool:
            raise InfeasibleError(
                f"{config}: no class has eligible images (min_box_frac {picker.min_box_frac}) with the instance "
                f"counts {sorted(parts)} (total {total} over {s} images); classes with any eligible image: "
                f"{len(_with_enough(picker, 1))} of {picker.index.num_classes}"
            )
        c = _pick(rng, pool)
        query: list[int] = []
        for v, m in sorted(need.items()):
            got = picker.draw(rng, picker.eligible_with_count(c, v), m, set(query))
            if got is None:
                return None
            query += got
        targets = [c]
    elif k == 1:
        pool = _with_enough(picker, s)
        if not pool:
            raise InfeasibleError(
                f"{config}: no class has {s} eligible images (min_box_frac {picker.min_box_frac}); the most any "
                f"class has is {max((len(picker.eligible(c)) for c in range(picker.index.num_classes)), default=0)}"
            )
        c = _pick(rng, pool)
        query = picker.draw(rng, picker.eligible(c), s, set())
        if query is None:
            return None
        targets = [c]
    else:
        query_or_none = _multi_concept_query(picker, rng, k, s, config)
        if query_or_none is None:
            return None
        query, targets = query_or_none
    distractors = picker.draw_free(rng, targets, n - len(query), set(query))
    if distractors is None:
        raise InfeasibleError(
            f"{config}: needs {n - len(query)} distractor images free of "
            f"{[picker.index.class_names[c] for c in targets]}, found {len(picker.free_exact(frozenset(targets)))}"
        )
    return Draft(query + distractors, targets, _category_of(picker, targets[0]))


def _multi_concept_query(picker, rng, k: int, s: int, config: str):
    pool = _with_enough(picker, 1)
    if len(pool) < k:
        raise InfeasibleError(
            f"{config}: {k} concepts need {k} classes with eligible images; only {len(pool)} have any"
        )
    targets = [pool[j] for j in rng.choice(len(pool), size=k, replace=False).tolist()]
    target_set = frozenset(targets)

    def compatible(i: int) -> bool:
        # A query image must be eligible for every target class it contains.
        return all(picker.is_eligible(i, t) for t in picker.classes(i) & target_set)

    query: list[int] = []
    covered: set[int] = set()
    for t in targets:
        if t in covered:
            continue
        if len(query) == s:
            return None
        got = picker.draw(rng, picker.eligible(t), 1, set(query), accept=compatible, exact=False)
        if got is None:
            return None
        query += got
        covered |= picker.classes(got[0]) & target_set
    while len(query) < s:
        got = picker.draw(rng, picker.eligible(_pick(rng, targets)), 1, set(query), accept=compatible, exact=False)
        if got is None:
            return None
        query += got
    return query, targets


@register_task("listing")
def listing(picker: ImagePicker, rng: np.random.Generator, cell: dict, config: str) -> Draft | None:
    idx = picker.index
    n = cell["num_images"]
    s = cell.get("spread") or int(rng.integers(1, n + 1))
    m = cell.get("num_answer_classes")
    pool = []
    for name, members in sorted(idx.categories.items()):
        ids = frozenset(idx.class_to_id[x] for x in members)
        if len(ids) >= 2 and len(picker.usable_for_category(name, ids)) >= s:
            pool.append((name, ids))
    if not pool:
        raise InfeasibleError(
            f"{config}: no category (with >= 2 classes) has {s} usable images, i.e. images eligible for every "
            f"class of the category they contain (min_box_frac {picker.min_box_frac}); "
            f"categories: {len(idx.categories)}"
        )
    name, members = _pick(rng, pool)
    query = picker.draw(rng, picker.usable_for_category(name, members), s, set())
    if query is None:
        return None
    answer = sorted(set().union(*(picker.classes(i) & members for i in query)))
    if m is not None and len(answer) != m:
        return None
    distractors = picker.draw_free(rng, members, n - s, set(query))
    if distractors is None:
        raise InfeasibleError(
            f"{config}: needs {n - s} distractor images free of every class of {name!r}, "
            f"found {len(picker.free_exact(members))}"
        )
    return Draft(query + distractors, answer, name)


@register_task("common")
def common(picker: ImagePicker, rng: np.random.Generator, cell: dict, config: str) -> Draft | None:
    n = cell["num_images"]
    pool = _with_enough(picker, n)
    if not pool:
        raise InfeasibleError(f"{config}: no class has {n} eligible images (min_box_frac {picker.min_box_frac})")
    c = _pick(rng, pool)
    images = picker.draw(rng, picker.eligible(c), n, set())
    if images is None:
        return None
    shared = frozenset.intersection(*(picker.classes(i) for i in images))
    if shared != {c}:
        return None
    return Draft(images, [c], _category_of(picker, c))


@register_task("odd_one")
def odd_one(picker: ImagePicker, rng: np.random.Generator, cell: dict, config: str) -> Draft | None:
    n = cell["num_images"]
    scenes = picker.scenes()
    pool = _with_enough(picker, 1)
    # Bases for an odd image that holds nothing but the odd class: single-class scenes with n - 1 images.
    bases = picker.single_class_scenes(n - 1)
    if not pool or not bases:
        raise InfeasibleError(
            f"{config}: needs classes with eligible images ({len(pool)} found) and a class alone in at least "
            f"{n - 1} images ({len(bases)} found)"
        )
    odd = _pick(rng, pool)

    def fits(i: int) -> bool:
        theme = picker.classes(i) - {odd}
        return len(scenes.get(theme, ())) >= n - 1 if theme else (len(bases) > 1 or bases[0] != odd)

    got = picker.draw(rng, picker.eligible(odd), 1, set(), accept=fits, exact=False)
    if got is None:
        return None
    odd_image = got[0]
    # The other images all show exactly the odd image's other classes, so each of those classes is in
    # every image and the odd class is the only one seen once; an odd image with nothing else gets a
    # random single-class scene as the others.
    theme = picker.classes(odd_image) - {odd}
    if not theme:
        theme = frozenset([_pick(rng, [b for b in bases if b != odd])])
    others = picker.draw(rng, scenes[theme], n - 1, {odd_image})
    if others is None:
        return None
    return Draft([odd_image] + others, [odd], _category_of(picker, odd))
