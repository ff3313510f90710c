"""The four MIMIC task generators: Counting, Listing, Common, Odd-One.

Each generator draws one `Draft` (the images and the target classes, before shuffling) for one control
cell, with the sample's rng. A generator returns None when a random attempt fails (the caller retries
with the same rng) and raises `InfeasibleError` when no attempt can succeed with these annotations.
Classes are drawn first, uniformly from the classes that can satisfy the cell (class balance, as in
the paper), then images. The task rules are written down in docs/tasks.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mimic.builders.categories import filed_under, listing_categories
from mimic.builders.sampling import ImagePicker
from mimic.errors import InfeasibleError
from mimic.registry import Registry

__all__ = ["Draft", "TASKS", "TaskFn"]


@dataclass
class Draft:
    images: list[int]  # index positions; query images first, distractors after (shuffled later)
    targets: list[int]  # class positions: counted / listed / common / odd class
    category: str


TaskFn = Callable[[ImagePicker, np.random.Generator, dict, str], "Draft | None"]
# The question generators by task name; a config's `task` picks one.
TASKS: Registry[TaskFn] = Registry("task")


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


@TASKS.register("counting")
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


@TASKS.register("listing")
def listing(picker: ImagePicker, rng: np.random.Generator, cell: dict, config: str) -> Draft | None:
    idx = picker.index
    n = cell["num_images"]
    s = cell.get("spread") or int(rng.integers(1, n + 1))
    m = cell.get("num_answer_classes")
    include_catch_all = bool(cell.get("include_catch_all"))

    def categories_with_room() -> list[tuple[str, frozenset[int], frozenset[int]]]:
        pool = []
        for name, members in sorted(listing_categories(idx, include_catch_all).items()):
            ids = frozenset(idx.class_to_id[x] for x in members)
            filed = frozenset(idx.class_to_id[x] for x in filed_under(idx, name))
            if len(ids) >= 2 and len(picker.usable_for_category(name, ids, filed)) >= s:
                pool.append((name, ids, filed))
        return pool

    # The same for every sample of a spread: built once per picker, not on every draw.
    pool = picker.memo(("listing_pool", include_catch_all, s), categories_with_room)
    if not pool:
        raise InfeasibleError(
            f"{config}: no category (with >= 2 classes) has {s} usable images, i.e. images eligible for every "
            f"class of the category they contain and holding no deeper class filed under it "
            f"(min_box_frac {picker.min_box_frac}); categories: {len(idx.categories)}"
        )
    name, members, filed = _pick(rng, pool)
    query = picker.draw(rng, picker.usable_for_category(name, members, filed), s, set())
    if query is None:
        return None
    answer = sorted(set().union(*(picker.classes(i) & members for i in query)))
    if m is not None and len(answer) != m:
        return None
    # Free of the whole category: no member and nothing filed deeper under it (Open Images boxes are not
    # expanded up the tree, so a "sofa bed" image has no "couch" box but is not free of furniture).
    distractors = picker.draw_free(rng, filed, n - s, set(query))
    if distractors is None:
        raise InfeasibleError(
            f"{config}: needs {n - s} distractor images free of every class filed under {name!r}, "
            f"found {len(picker.free_exact(filed))}"
        )
    return Draft(query + distractors, answer, name)


@TASKS.register("common")
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


# Odd-One: candidate odd images tried per odd class before the attempt is given up (the class is kept, so
# classes whose images are hard to complete are not under-drawn).
_ODD_IMAGE_TRIES = 20
# Random images drawn per other-image slot before the exact search over the scene groups.
_ODD_SLOT_TRIES = 12
# Fitting images compared per slot, and how often the less crowded one is taken (else the first found).
_ODD_SLOT_CHOICES = 2
_ODD_PREFER_QUIET = 0.5
# Largest class universe whose sub-scenes are enumerated exactly (2^12 lookups at most).
_ODD_EXACT_MAX_CLASSES = 12


@TASKS.register("odd_one")
def odd_one(picker: ImagePicker, rng: np.random.Generator, cell: dict, config: str) -> Draft | None:
    """One image eligible for the odd class; n - 1 natural images free of it, each drawn from the images
    showing a class that still needs images, so that every other class ends up in at least half of the n
    images (the rule), while the other images keep their own, varied, extra classes."""
    n = cell["num_images"]
    need = (n + 1) // 2  # every class other than the odd one must be in at least this many images
    pool = picker.memo(
        ("odd_one_pool", n),
        lambda: [c for c in range(picker.index.num_classes) if len(picker.eligible(c)) and picker.num_free(c) >= n - 1],
    )
    if not pool:
        raise InfeasibleError(
            f"{config}: no class has an eligible image (min_box_frac {picker.min_box_frac}) and {n - 1} images "
            "free of it"
        )
    odd = _pick(rng, pool)
    eligible = picker.eligible(odd)
    for _ in range(_ODD_IMAGE_TRIES):
        # Of three eligible images, the one with the fewest classes: crowded scenes (a dining table with a
        # dozen classes) rarely have n - 1 companions sharing every class, so they would starve their odd
        # classes, and they pull the instances per query far above the paper's 20.7.
        picks = (int(eligible[int(u * len(eligible))]) for u in rng.random(3).tolist())
        odd_image = min(picks, key=lambda i: len(picker.classes(i)))
        others = _odd_one_others(picker, rng, odd, odd_image, n, need)
        if others is not None:
            return Draft([odd_image] + others, [odd], _category_of(picker, odd))
    return None


def _odd_one_others(picker: ImagePicker, rng, odd: int, odd_image: int, n: int, need: int) -> list[int] | None:
    counts = Counter(picker.classes(odd_image) - {odd})
    chosen: list[int] = []
    taken = {odd_image}
    num_images = picker.index.num_images
    for slot in range(n - 1):
        left = n - 2 - slot  # slots still open after this one
        # After adding this slot's image, every class must still be able to reach `need` with the slots left:
        # the classes short by more than `left` must be in it, and once `need - 1 > left` it may bring no
        # new class (a new class would stay short).
        if any(need - v > left + 1 for v in counts.values()):
            return None
        must = frozenset(x for x, v in counts.items() if need - v > left)
        known = frozenset(counts)
        closed = need - 1 > left
        # The last image would make every other image show one identical class set: a sample a model can
        # solve by spotting the image that looks different. Take such an image only when nothing else fits.
        sets = {picker.classes(i) for i in chosen}
        same = next(iter(sets)) if left == 0 and len(sets) == 1 else None

        def fits(i: int, must=must, known=known, closed=closed) -> bool:
            here = picker.classes(i)
            return bool(here) and i not in taken and odd not in here and must <= here and (not closed or here <= known)

        def varied(i: int, fits=fits, same=same) -> bool:
            return fits(i) and picker.classes(i) != same

        short = [x for x, v in counts.items() if v < need]
        hubs = short or list(counts)
        got = None
        found: list[int] = []
        draws = rng.random((_ODD_SLOT_TRIES, 2)).tolist()  # one numpy call for the slot's random draws
        for u, w in draws:
            if hubs:
                present = picker.present(hubs[int(u * len(hubs))])
                i = int(present[int(w * len(present))])
            else:  # the odd image holds only the odd class: the first other image sets the scene
                i = int(w * num_images)
            if varied(i):
                found.append(i)
                if len(found) == _ODD_SLOT_CHOICES:
                    break
        if found:
            # The less crowded of two fitting images, half of the time: posting lists favour busy scenes (a
            # class is more likely to be in an image with many objects), which would push the instances per
            # query far above the paper's.
            got = min(found, key=picker.instances) if rng.random() < _ODD_PREFER_QUIET else found[0]
        if got is None:
            got = _odd_one_exact(picker, rng, counts, short, varied)
        if got is None and same is not None:
            got = _odd_one_exact(picker, rng, counts, short, fits)
        if got is None:
            return None
        chosen.append(got)
        taken.add(got)
        counts.update(picker.classes(got))
    return chosen


def _odd_one_exact(picker: ImagePicker, rng, counts: Counter, short: list[int], fits) -> int | None:
    """An image made only of classes already in the sample and showing every short one, if any exists
    (the scene groups of the subsets of the sample's classes; the last slots usually need this)."""
    universe = sorted(counts)
    if not universe or len(universe) > _ODD_EXACT_MAX_CLASSES:
        return None
    must = frozenset(short)
    rest = [x for x in universe if x not in must]
    scenes = picker.scenes()
    found: list[np.ndarray] = []
    for mask in range(1 << len(rest)):
        key = must | frozenset(rest[j] for j in range(len(rest)) if mask >> j & 1)
        if key and key in scenes:
            found.append(scenes[key])
    if not found:
        return None
    candidates = np.concatenate(found)
    for _ in range(2):  # a couple of random picks first: the candidates are usually all valid
        i = int(candidates[rng.integers(len(candidates))])
        if fits(i):
            return i
    valid = [int(i) for i in candidates if fits(int(i))]
    return valid[int(rng.integers(len(valid)))] if valid else None
