"""Drawing images from the index under the eligibility and freeness rules, in time that does not
grow with the index: rejection sampling from posting lists, exact fallbacks only when rejection stalls.
"""

from __future__ import annotations

import numpy as np

from mimic.builders.index import AnnotationIndex

__all__ = ["ImagePicker"]

# Rejection tries per image wanted before falling back to an exact (O(num_images)) candidate list.
_TRIES_PER_IMAGE = 40


class ImagePicker:
    """Index lookups the generators share, with per-class caches.

    All image arguments and results are index positions (ints).
    """

    @classmethod
    def for_index(cls, index: AnnotationIndex, min_box_frac: float) -> ImagePicker:
        """The picker of `index` at this threshold, shared by every generation run on the same index, so
        its per-class lists and scene groups are built once (`mimic build bench` runs six configs)."""
        key = ("picker", float(min_box_frac))
        picker = index._eligible_cache.get(key)
        if picker is None:
            picker = index._eligible_cache[key] = cls(index, min_box_frac)
        return picker

    def __init__(self, index: AnnotationIndex, min_box_frac: float):
        self.index = index
        self.min_box_frac = float(min_box_frac)
        self._ok_rows = index.eligible_rows(self.min_box_frac)
        self._classes_cache: dict[int, frozenset[int]] = {}
        self._eligible_counts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._with_count: dict[tuple[int, int], np.ndarray] = {}
        self._free_exact: dict[frozenset, np.ndarray] = {}
        self._category_usable: dict[str, np.ndarray] = {}
        self._present: dict[int, np.ndarray] = {}
        self._instances: dict[int, int] = {}
        self._memo: dict = {}
        self._scenes: dict[frozenset[int], np.ndarray] | None = None

    # ---------------------------------------------------------------- per-image facts
    def classes(self, i: int) -> frozenset[int]:
        """Class positions with any annotation in image i."""
        hit = self._classes_cache.get(i)
        if hit is None:
            hit = frozenset(self.index.classes_in(i).tolist())
            self._classes_cache[i] = hit
        return hit

    def is_free(self, i: int, classes) -> bool:
        return self.classes(i).isdisjoint(classes)

    def is_eligible(self, i: int, c: int) -> bool:
        j = self.index.row(i, c)
        return j >= 0 and bool(self._ok_rows[j])

    def memo(self, key, make):
        """`make()` computed once per picker under `key` (pools a generator rebuilds on every attempt)."""
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = make()
        return hit

    def instances(self, i: int) -> int:
        """Non-crowd instances of every class in image i."""
        hit = self._instances.get(i)
        if hit is None:
            hit = self._instances[i] = int(self.index.row_count[self.index.rows_of(i)].sum())
        return hit

    def num_free(self, c: int) -> int:
        return self.index.num_images - len(self.present(c))

    def scenes(self) -> dict[frozenset[int], np.ndarray]:
        """Images grouped by their exact set of classes (built once, O(num_images))."""
        if self._scenes is None:
            idx = self.index
            ptr = idx.image_ptr
            groups: dict[frozenset[int], list[int]] = {}
            cls = idx.row_class.tolist()
            for i in range(idx.num_images):
                groups.setdefault(frozenset(cls[ptr[i] : ptr[i + 1]]), []).append(i)
            self._scenes = {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}
        return self._scenes

    def eligible(self, c: int) -> np.ndarray:
        return self.index.eligible(c, self.min_box_frac)

    def present(self, c: int) -> np.ndarray:
        """Images with any annotation of class c."""
        hit = self._present.get(c)
        if hit is None:
            hit = self._present[c] = self.index.present(c)
        return hit

    def eligible_counts(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(images, counts) of the images eligible for class c."""
        hit = self._eligible_counts.get(c)
        if hit is None:
            order, ptr = self.index._class_rows
            rows = order[ptr[c] : ptr[c + 1]]
            rows = rows[self._ok_rows[rows]]
            hit = (self.index.row_image[rows], self.index.row_count[rows])
            self._eligible_counts[c] = hit
        return hit

    def eligible_with_count(self, c: int, n: int) -> np.ndarray:
        key = (c, n)
        hit = self._with_count.get(key)
        if hit is None:
            imgs, counts = self.eligible_counts(c)
            hit = imgs[counts == n]
            self._with_count[key] = hit
        return hit

    def usable_for_category(
        self, category: str, members: frozenset[int], filed: frozenset[int] = frozenset()
    ) -> np.ndarray:
        """Images containing a class of the category, eligible for every class of it they contain, and
        holding no other class filed under it (`filed`, see `categories.filed_under`): an Open Images
        "sofa bed" box under furniture's member "couch" would be a couch the gold answer cannot name."""
        hit = self._category_usable.get(category)
        if hit is None:
            idx = self.index
            in_cat = np.isin(idx.row_class, np.fromiter(members, dtype=np.int32))
            rows = np.flatnonzero(in_cat)
            imgs = idx.row_image[rows]
            bad = np.unique(imgs[~self._ok_rows[rows]])
            deeper = np.fromiter(filed - members, dtype=np.int32)
            if len(deeper):
                bad = np.union1d(bad, idx.row_image[np.isin(idx.row_class, deeper)])
            hit = np.setdiff1d(np.unique(imgs), bad, assume_unique=True)
            self._category_usable[category] = hit
        return hit

    # ---------------------------------------------------------------- drawing
    def draw(
        self, rng: np.random.Generator, pool: np.ndarray, k: int, taken: set[int], accept=None, exact: bool = True
    ) -> list[int] | None:
        """k distinct images from `pool`, none in `taken`, each passing `accept`; None if impossible.

        With `exact=False` a stalled rejection gives None instead of scanning the whole pool, for callers
        that retry anyway and whose pools can be large.
        """
        out: list[int] = []
        if k <= 0:
            return out
        if len(pool) == 0:
            return None
        chosen = set()
        for _ in range(_TRIES_PER_IMAGE * k):
            i = int(pool[rng.integers(len(pool))])
            if i in taken or i in chosen or (accept is not None and not accept(i)):
                continue
            chosen.add(i)
            out.append(i)
            if len(out) == k:
                return out
        if not exact:
            return None
        # Rejection stalled (a small or mostly unusable pool): decide exactly.
        rest = [int(i) for i in pool if int(i) not in taken and int(i) not in chosen and (accept is None or accept(int(i)))]
        if len(rest) < k - len(out):
            return None
        pick = rng.choice(len(rest), size=k - len(out), replace=False)
        return out + [rest[j] for j in sorted(pick.tolist())]

    def draw_free(self, rng: np.random.Generator, classes, k: int, taken: set[int]) -> list[int] | None:
        """k distinct images free of every class in `classes` (no annotation of them at all)."""
        classes = frozenset(classes)
        out: list[int] = []
        if k <= 0:
            return out
        n = self.index.num_images
        chosen = set()
        for _ in range(_TRIES_PER_IMAGE * k):
            i = int(rng.integers(n))
            if i in taken or i in chosen or not self.is_free(i, classes):
                continue
            chosen.add(i)
            out.append(i)
            if len(out) == k:
                return out
        free = self.free_exact(classes)
        rest = [int(i) for i in free if int(i) not in taken and int(i) not in chosen]
        if len(rest) < k - len(out):
            return None
        pick = rng.choice(len(rest), size=k - len(out), replace=False)
        return out + [rest[j] for j in sorted(pick.tolist())]

    def free_exact(self, classes: frozenset[int]) -> np.ndarray:
        hit = self._free_exact.get(classes)
        if hit is None:
            mask = np.ones(self.index.num_images, dtype=bool)
            for c in classes:
                mask[self.present(c)] = False
            hit = np.flatnonzero(mask)
            self._free_exact[classes] = hit
        return hit
