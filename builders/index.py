"""The annotation index: per image its size, per (image, class) the instance statistics the tasks need.

Every source (COCO, Open Images, the synthetic world) reduces its boxes to one `AnnotationIndex`.
Storage is columnar (numpy), one row per (image, class), sorted by image then class, with a CSR
pointer per image, so that the questions the generators ask are array lookups:

- `eligible(c)`: images with at least one non-crowd instance of c, every box of c at least
  `min_box_frac` of the image area, and no crowd (or depiction) region of c;
- `is_free(i, c)` / `free_images(c)`: images with no annotation of c at all.

`save` / `load` round-trip through parquet (one row per (image, class), images without any
annotation kept as rows with a null class) so a large annotation file is parsed once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mimic.atomic import atomic_path
from mimic.errors import AnnotationError

__all__ = ["AnnotationIndex", "DEFAULT_MIN_BOX_FRAC", "INDEX_FORMAT_VERSION", "InstanceRecords"]

DEFAULT_MIN_BOX_FRAC = 0.05
# 2: the per-instance records travel with the index (list columns), for the verifier.
INDEX_FORMAT_VERSION = 2
_META_KEY = b"mimic.index"


@dataclass(eq=False)
class InstanceRecords:
    """Every annotation as it was read, one entry per box, kept beside the aggregated rows.

    The generators never read these: they serve the verifier (`mimic.builders.verify`), which re-derives
    counts, eligibility and freeness from them with its own code, so a bug in the index's aggregation or
    in the generators' lookups cannot verify itself.

    Attributes:
        image, cls: (B,) int32 image and class positions of each box.
        area: (B,) float64 box width x height, in the units of `image_area` (pixels for COCO; for Open
            Images, whose CSV is normalised, fractions of a 1 x 1 image).
        image_area: (I,) float64 area of each image in the same units.
        crowd, depiction: (B,) bool flags (COCO iscrowd / Open Images IsGroupOf; IsDepiction).
    """

    image: np.ndarray
    cls: np.ndarray
    area: np.ndarray
    image_area: np.ndarray
    crowd: np.ndarray
    depiction: np.ndarray

    def subset(self, keep: np.ndarray) -> InstanceRecords:
        new_pos = np.cumsum(keep, dtype=np.int64) - 1
        rows = keep[self.image]
        return InstanceRecords(
            image=new_pos[self.image[rows]].astype(np.int32), cls=self.cls[rows], area=self.area[rows],
            image_area=self.image_area[keep], crowd=self.crowd[rows], depiction=self.depiction[rows],
        )


@dataclass(eq=False)
class AnnotationIndex:
    """Per-(image, class) statistics of a detection dataset.

    Images are addressed by position `i` (0..num_images-1) and classes by position `c`; `image_ids[i]`
    and `class_names[c]` give the source's names. Rows are sorted by (image, class).

    Attributes:
        source: "coco", "openimages" or "synthetic".
        image_ids: (I,) object array of str, the source's image ids.
        file_names: (I,) object array of str, relative to `images_dir`.
        widths, heights: (I,) int32, pixels (0 where the source does not say, e.g. Open Images CSVs).
        class_names: the C class names, in a stable order.
        categories: category name -> class names (COCO supercategories, Open Images parents).
        row_image, row_class: (R,) int32 image and class positions of each row.
        row_count: (R,) int32 non-crowd instances of the class in the image.
        row_min_box_frac: (R,) float32 smallest box (crowd boxes included) / image area.
        row_has_crowd: (R,) bool, a crowd (COCO iscrowd, Open Images IsGroupOf) region of the class.
        row_has_depiction: (R,) bool, a depiction (Open Images IsDepiction) of the class.
        images_dir: folder the file names are relative to, if known.
        source_split: the source's split the annotations come from ("val2017", "train2017", "train"), or "".
        instances: the per-box records (see `InstanceRecords`), read by the verifier only.
    """

    source: str
    image_ids: np.ndarray
    file_names: np.ndarray
    widths: np.ndarray
    heights: np.ndarray
    class_names: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]
    row_image: np.ndarray
    row_class: np.ndarray
    row_count: np.ndarray
    row_min_box_frac: np.ndarray
    row_has_crowd: np.ndarray
    row_has_depiction: np.ndarray
    images_dir: str | None = None
    source_split: str = ""
    instances: InstanceRecords | None = None
    _eligible_cache: dict = field(default_factory=dict, repr=False)  # derived lookups, built on first use
    _row_maps: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_boxes(
        cls,
        *,
        source: str,
        image_ids,
        file_names,
        widths,
        heights,
        class_names,
        categories: dict[str, tuple[str, ...]] | dict[str, list[str]],
        box_image: np.ndarray,
        box_class: np.ndarray,
        box_frac: np.ndarray,
        box_crowd: np.ndarray,
        box_depiction: np.ndarray | None = None,
        images_dir: str | os.PathLike | None = None,
        box_area: np.ndarray | None = None,
        image_area: np.ndarray | None = None,
        source_split: str = "",
    ) -> AnnotationIndex:
        """Aggregate per-box arrays (image position, class position, area fraction, flags) into rows.

        `box_area` and `image_area` (same units) are the raw sizes kept for the verifier; without them the
        box fractions stand for areas of a 1 x 1 image.
        """
        n_img, n_cls = len(image_ids), len(class_names)
        box_image = np.asarray(box_image, dtype=np.int64)
        box_class = np.asarray(box_class, dtype=np.int64)
        box_frac = np.asarray(box_frac, dtype=np.float32)
        box_crowd = np.asarray(box_crowd, dtype=bool)
        box_depiction = (
            np.zeros(len(box_image), dtype=bool) if box_depiction is None else np.asarray(box_depiction, bool)
        )
        # One sort by the combined key, then run-length reductions: no Python loop over boxes.
        key = box_image * n_cls + box_class
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        row_key = key[starts]
        not_crowd = (~box_crowd[order]).astype(np.int32)
        row_count = np.add.reduceat(not_crowd, starts) if len(key) else np.zeros(0, np.int32)
        row_min = np.minimum.reduceat(box_frac[order], starts) if len(key) else np.zeros(0, np.float32)
        row_crowd = np.logical_or.reduceat(box_crowd[order], starts) if len(key) else np.zeros(0, bool)
        row_dep = np.logical_or.reduceat(box_depiction[order], starts) if len(key) else np.zeros(0, bool)
        instances = InstanceRecords(
            image=box_image.astype(np.int32),
            cls=box_class.astype(np.int32),
            area=np.asarray(box_frac if box_area is None else box_area, dtype=np.float64),
            image_area=np.ones(n_img) if image_area is None else np.asarray(image_area, dtype=np.float64).reshape(n_img),
            crowd=box_crowd,
            depiction=box_depiction,
        )
        return cls(
            source=source,
            image_ids=_obj_array(image_ids),
            file_names=_obj_array(file_names),
            widths=np.asarray(widths, dtype=np.int32).reshape(n_img),
            heights=np.asarray(heights, dtype=np.int32).reshape(n_img),
            class_names=tuple(class_names),
            categories={k: tuple(v) for k, v in categories.items()},
            row_image=(row_key // n_cls).astype(np.int32) if n_cls else np.zeros(0, np.int32),
            row_class=(row_key % n_cls).astype(np.int32) if n_cls else np.zeros(0, np.int32),
            row_count=row_count.astype(np.int32),
            row_min_box_frac=row_min.astype(np.float32),
            row_has_crowd=row_crowd.astype(bool),
            row_has_depiction=row_dep.astype(bool),
            images_dir=None if images_dir is None else str(images_dir),
            source_split=source_split,
            instances=instances,
        )

    def __post_init__(self):
        known = set(self.class_names)
        for cat, members in self.categories.items():
            unknown = [m for m in members if m not in known]
            if unknown:
                raise ValueError(f"category {cat!r} lists classes absent from the index: {unknown[:5]}")

    # ------------------------------------------------------------------ sizes and lookups
    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_rows(self) -> int:
        return len(self.row_image)

    @cached_property
    def image_ptr(self) -> np.ndarray:
        """(I+1,) CSR pointer: rows of image i are `image_ptr[i]:image_ptr[i+1]`."""
        return np.searchsorted(self.row_image, np.arange(self.num_images + 1), side="left").astype(np.int64)

    @cached_property
    def class_to_id(self) -> dict[str, int]:
        return {name: c for c, name in enumerate(self.class_names)}

    @cached_property
    def image_to_pos(self) -> dict[str, int]:
        return {str(iid): i for i, iid in enumerate(self.image_ids)}

    @cached_property
    def class_category(self) -> dict[str, str]:
        """Class name -> its first category (a class may sit under several Open Images parents)."""
        out: dict[str, str] = {}
        for cat, members in self.categories.items():
            for m in members:
                out.setdefault(m, cat)
        return out

    @cached_property
    def _class_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows grouped by class: (order, ptr) with rows of class c at `order[ptr[c]:ptr[c+1]]`."""
        order = np.argsort(self.row_class, kind="stable")
        ptr = np.searchsorted(self.row_class[order], np.arange(self.num_classes + 1), side="left")
        return order, ptr

    def class_id(self, name: str) -> int:
        try:
            return self.class_to_id[name]
        except KeyError:
            raise KeyError(f"unknown class {name!r}; known classes: {', '.join(self.class_names[:20])}...") from None

    def rows_of(self, i: int) -> slice:
        return slice(int(self.image_ptr[i]), int(self.image_ptr[i + 1]))

    def classes_in(self, i: int) -> np.ndarray:
        """Class positions with any annotation in image i (sorted)."""
        return self.row_class[self.rows_of(i)]

    def row(self, i: int, c: int) -> int:
        """Row position of (image i, class c), or -1 when image i has no annotation of c."""
        # Per-image dicts, built on first use: generators and the verifier ask about the same few
        # images many times, and a dict lookup is far cheaper than a numpy call.
        rows = self._row_maps.get(i)
        if rows is None:
            lo, hi = int(self.image_ptr[i]), int(self.image_ptr[i + 1])
            rows = self._row_maps[i] = dict(zip(self.row_class[lo:hi].tolist(), range(lo, hi), strict=True))
        return rows.get(c, -1)

    def count(self, i: int, c: int) -> int:
        """Non-crowd instances of class c in image i (0 when absent)."""
        j = self.row(i, c)
        return 0 if j < 0 else int(self.row_count[j])

    def is_free(self, i: int, c: int) -> bool:
        """Image i has no annotation of class c, of any size or kind."""
        return self.row(i, c) < 0

    def is_eligible(self, i: int, c: int, min_box_frac: float = DEFAULT_MIN_BOX_FRAC) -> bool:
        j = self.row(i, c)
        return j >= 0 and bool(self.eligible_rows(min_box_frac)[j])

    def _row_ok(self, min_box_frac: float) -> np.ndarray:
        return (
            (self.row_count > 0)
            & (self.row_min_box_frac >= np.float32(min_box_frac))
            & ~self.row_has_crowd
            & ~self.row_has_depiction
        )

    def eligible_rows(self, min_box_frac: float = DEFAULT_MIN_BOX_FRAC) -> np.ndarray:
        """(R,) bool: row usable for its class (the eligibility rule)."""
        key = ("rows", float(min_box_frac))
        if key not in self._eligible_cache:
            self._eligible_cache[key] = self._row_ok(min_box_frac)
        return self._eligible_cache[key]

    def eligible(self, c: int, min_box_frac: float = DEFAULT_MIN_BOX_FRAC) -> np.ndarray:
        """Sorted image positions eligible for class c."""
        key = ("class", int(c), float(min_box_frac))
        hit = self._eligible_cache.get(key)
        if hit is None:
            order, ptr = self._class_rows
            rows = order[ptr[c] : ptr[c + 1]]
            hit = np.sort(self.row_image[rows[self.eligible_rows(min_box_frac)[rows]]])
            self._eligible_cache[key] = hit
        return hit

    def present(self, c: int) -> np.ndarray:
        """Sorted image positions with any annotation of class c."""
        order, ptr = self._class_rows
        return np.sort(self.row_image[order[ptr[c] : ptr[c + 1]]])

    def free_images(self, c: int) -> np.ndarray:
        """Sorted image positions free of class c (no annotation of it at all)."""
        mask = np.ones(self.num_images, dtype=bool)
        mask[self.present(c)] = False
        return np.flatnonzero(mask)

    def subset(self, keep) -> AnnotationIndex:
        """The index restricted to the images where `keep` (a (num_images,) bool array) is True."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.num_images,):
            raise ValueError(f"keep must have shape ({self.num_images},), got {keep.shape}")
        new_pos = np.cumsum(keep, dtype=np.int64) - 1
        rows = keep[self.row_image]
        return AnnotationIndex(
            source=self.source,
            image_ids=self.image_ids[keep],
            file_names=self.file_names[keep],
            widths=self.widths[keep],
            heights=self.heights[keep],
            class_names=self.class_names,
            categories=dict(self.categories),
            row_image=new_pos[self.row_image[rows]].astype(np.int32),
            row_class=self.row_class[rows],
            row_count=self.row_count[rows],
            row_min_box_frac=self.row_min_box_frac[rows],
            row_has_crowd=self.row_has_crowd[rows],
            row_has_depiction=self.row_has_depiction[rows],
            images_dir=self.images_dir,
            source_split=self.source_split,
            instances=None if self.instances is None else self.instances.subset(keep),
        )

    # ------------------------------------------------------------------ summary
    def summary(self, min_box_frac: float = DEFAULT_MIN_BOX_FRAC) -> dict:
        """Counts a user wants to see after indexing: sizes, instances, eligibility per class."""
        ok = self.eligible_rows(min_box_frac)
        per_class_present = np.bincount(self.row_class, minlength=self.num_classes)
        per_class_eligible = np.bincount(self.row_class[ok], minlength=self.num_classes)
        per_class_instances = np.bincount(self.row_class, weights=self.row_count, minlength=self.num_classes)
        return {
            "source": self.source,
            "source_split": self.source_split,
            "images": self.num_images,
            "images_without_annotations": int(np.sum(np.diff(self.image_ptr) == 0)),
            "classes": self.num_classes,
            "categories": len(self.categories),
            "rows": self.num_rows,
            "instances": int(self.row_count.sum()),
            "crowd_rows": int(self.row_has_crowd.sum()),
            "depiction_rows": int(self.row_has_depiction.sum()),
            "min_box_frac": float(min_box_frac),
            "per_class": {
                name: {
                    "images": int(per_class_present[c]),
                    "eligible_images": int(per_class_eligible[c]),
                    "instances": int(per_class_instances[c]),
                    "category": self.class_category.get(name),
                }
                for c, name in enumerate(self.class_names)
            },
        }

    def format_summary(self, min_box_frac: float = DEFAULT_MIN_BOX_FRAC, max_classes: int = 20) -> str:
        s = self.summary(min_box_frac)
        lines = [
            f"source      {s['source']}" + (f" ({self.source_split})" if self.source_split else ""),
            f"images      {s['images']:,} ({s['images_without_annotations']:,} without annotations)",
            f"classes     {s['classes']:,} in {s['categories']:,} categories",
            f"instances   {s['instances']:,} non-crowd over {s['rows']:,} (image, class) rows",
            f"crowd rows  {s['crowd_rows']:,}; depiction rows {s['depiction_rows']:,}",
            f"eligibility min_box_frac = {s['min_box_frac']}",
            "",
            f"{'class':<24} {'category':<20} {'images':>8} {'eligible':>9} {'instances':>10}",
        ]
        ranked = sorted(s["per_class"].items(), key=lambda kv: -kv[1]["images"])
        for name, row in ranked[:max_classes]:
            lines.append(
                f"{name[:24]:<24} {str(row['category'])[:20]:<20} {row['images']:>8,} "
                f"{row['eligible_images']:>9,} {row['instances']:>10,}"
            )
        if len(ranked) > max_classes:
            lines.append(f"... and {len(ranked) - max_classes} more classes")
        return "\n".join(lines)

    # ------------------------------------------------------------------ parquet
    def to_table(self) -> pa.Table:
        """One row per (image, class); images with no annotation appear once with a null class."""
        n_per_image = np.diff(self.image_ptr)
        empty = np.flatnonzero(n_per_image == 0)
        # Interleave the placeholder rows of empty images so the table stays sorted by image.
        img = np.concatenate([self.row_image.astype(np.int64), empty])
        cls_ = np.concatenate([self.row_class.astype(np.int64), np.full(len(empty), -1)])
        order = np.lexsort((cls_, img))
        img, cls_ = img[order], cls_[order]
        is_row = cls_ >= 0
        # Real rows keep their relative order under the lexsort, so they map back to 0..R-1 in sequence.
        src = np.full(len(img), -1, dtype=np.int64)
        src[is_row] = np.arange(self.num_rows)

        def take(a, fill):
            out = np.full(len(img), fill, dtype=a.dtype)
            out[is_row] = a[src[is_row]]
            return out

        class_dict = pa.array(list(self.class_names), type=pa.string())
        cat_of_class = [self.class_category.get(n) for n in self.class_names]
        class_col = pa.DictionaryArray.from_arrays(
            pa.array(np.where(is_row, cls_, 0).astype(np.int32), mask=~is_row), class_dict
        )
        cat_names = sorted({c for c in cat_of_class if c is not None})
        cat_pos = {c: k for k, c in enumerate(cat_names)}
        cat_idx = np.array([cat_pos.get(c, -1) for c in cat_of_class] or [0], dtype=np.int32)
        row_cat = np.where(is_row, cat_idx[np.where(is_row, cls_, 0)], -1)
        cat_col = pa.DictionaryArray.from_arrays(
            pa.array(np.maximum(row_cat, 0).astype(np.int32), mask=row_cat < 0),
            pa.array(cat_names, type=pa.string()),
        )
        columns = {
                "image_id": pa.array(self.image_ids[img].tolist(), type=pa.string()),
                "file_name": pa.array(self.file_names[img].tolist(), type=pa.string()),
                "width": pa.array(self.widths[img]),
                "height": pa.array(self.heights[img]),
                "class_name": class_col,
                "category": cat_col,
                "count": pa.array(take(self.row_count, 0)),
                "min_box_frac": pa.array(take(self.row_min_box_frac, np.float32(np.nan))),
                "has_crowd": pa.array(take(self.row_has_crowd, False)),
                "has_depiction": pa.array(take(self.row_has_depiction, False)),
        }
        if self.instances is not None:
            columns.update(self._instance_columns(img, is_row, src))
        table = pa.table(columns)
        meta = {
            "format_version": INDEX_FORMAT_VERSION,
            "source": self.source,
            "class_names": list(self.class_names),
            "categories": {k: list(v) for k, v in self.categories.items()},
            "images_dir": self.images_dir,
            "source_split": self.source_split,
        }
        return table.replace_schema_metadata({_META_KEY: json.dumps(meta, sort_keys=True).encode()})

    def _instance_columns(self, img: np.ndarray, is_row: np.ndarray, src: np.ndarray) -> dict:
        """The per-box records as list columns of the table rows: the boxes of (image, class) on its row."""
        inst = self.instances
        key = inst.image.astype(np.int64) * max(self.num_classes, 1) + inst.cls
        order = np.argsort(key, kind="stable")
        per_row = np.zeros(len(img), dtype=np.int64)
        # Rows are the distinct (image, class) keys in sorted order, so the boxes' runs line up with them.
        runs = np.diff(np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1], True])) if len(key) else []
        if len(runs) != self.num_rows:
            raise ValueError(f"instance records ({len(runs)} (image, class) groups) do not match {self.num_rows} rows")
        per_row[np.flatnonzero(is_row)] = np.asarray(runs, dtype=np.int64)[src[is_row]]
        offsets = pa.array(np.r_[0, np.cumsum(per_row)].astype(np.int32))
        return {
            "box_area": pa.ListArray.from_arrays(offsets, pa.array(inst.area[order])),
            "box_crowd": pa.ListArray.from_arrays(offsets, pa.array(inst.crowd[order])),
            "box_depiction": pa.ListArray.from_arrays(offsets, pa.array(inst.depiction[order])),
            "image_area": pa.array(inst.image_area[img]),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index as parquet, atomically (a temporary file renamed into place)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            pq.write_table(self.to_table(), tmp, compression="zstd")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> AnnotationIndex:
        """Read an index written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise AnnotationError(path, "index file not found")
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise AnnotationError(path, f"not a readable parquet file ({e})") from e
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise AnnotationError(path, "parquet file has no mimic index metadata; write it with `mimic index`")
        meta = json.loads(raw)
        if meta.get("format_version") != INDEX_FORMAT_VERSION:
            raise AnnotationError(
                path, f"index format {meta.get('format_version')} != {INDEX_FORMAT_VERSION} (written by another "
                "version of mimic): run `mimic index` on the annotations again"
            )
        missing = {"image_id", "file_name", "width", "height", "class_name", "count"} - set(table.column_names)
        if missing:
            raise AnnotationError(path, f"missing columns {sorted(missing)}", field=sorted(missing)[0])
        class_names = tuple(meta["class_names"])

        image_col = table.column("image_id").combine_chunks()
        n = len(image_col)
        if n:
            changed = pc.not_equal(image_col.slice(1), image_col.slice(0, n - 1))
            starts = np.flatnonzero(np.r_[True, changed.to_numpy(zero_copy_only=False)])
        else:
            starts = np.zeros(0, np.int64)
        first = np.zeros(n, dtype=np.int32)
        first[starts] = 1
        row_image = np.cumsum(first, dtype=np.int32) - 1

        cls_col = table.column("class_name").combine_chunks()
        if not pa.types.is_dictionary(cls_col.type):
            cls_col = cls_col.dictionary_encode()
        # Remap the stored dictionary to the index's class order.
        lookup = {name: c for c, name in enumerate(class_names)}
        remap = np.array([lookup[s] for s in cls_col.dictionary.to_pylist()] or [0], dtype=np.int32)
        idx = cls_col.indices.to_numpy(zero_copy_only=False)
        valid = cls_col.is_valid().to_numpy(zero_copy_only=False)
        row_class = np.where(valid, remap[np.where(valid, idx, 0).astype(np.int64)], -1)

        def col(name, dtype, default):
            if name not in table.column_names:
                return np.full(n, default, dtype=dtype)
            return table.column(name).to_numpy().astype(dtype, copy=False)

        keep = valid
        instances = None
        if {"box_area", "box_crowd", "box_depiction", "image_area"} <= set(table.column_names):
            areas = table.column("box_area").combine_chunks()
            lengths = pc.list_value_length(areas).to_numpy(zero_copy_only=False)
            lengths = np.nan_to_num(lengths.astype(np.float64)).astype(np.int64)
            instances = InstanceRecords(
                image=np.repeat(row_image, lengths).astype(np.int32),
                cls=np.repeat(row_class, lengths).astype(np.int32),
                area=pc.list_flatten(areas).to_numpy(zero_copy_only=False).astype(np.float64),
                image_area=col("image_area", np.float64, 1.0)[starts],
                crowd=pc.list_flatten(table.column("box_crowd").combine_chunks()).to_numpy(zero_copy_only=False).astype(bool),
                depiction=pc.list_flatten(table.column("box_depiction").combine_chunks())
                .to_numpy(zero_copy_only=False).astype(bool),
            )
        return cls(
            source=meta["source"],
            image_ids=_obj_array(image_col.take(pa.array(starts)).to_pylist()),
            file_names=_obj_array(table.column("file_name").take(pa.array(starts)).to_pylist()),
            widths=col("width", np.int32, 0)[starts],
            heights=col("height", np.int32, 0)[starts],
            class_names=class_names,
            categories={k: tuple(v) for k, v in meta["categories"].items()},
            row_image=row_image[keep],
            row_class=row_class[keep].astype(np.int32),
            row_count=col("count", np.int32, 0)[keep],
            row_min_box_frac=col("min_box_frac", np.float32, np.nan)[keep],
            row_has_crowd=col("has_crowd", bool, False)[keep],
            row_has_depiction=col("has_depiction", bool, False)[keep],
            images_dir=meta.get("images_dir"),
            source_split=meta.get("source_split") or "",
            instances=instances,
        )

    def missing_files(self) -> np.ndarray:
        """Positions of the images whose file is not in `images_dir`.

        Raises `AnnotationError` when there is no images folder to look in (none recorded, or not a
        folder): that is a wrong path, not missing images.
        """
        if self.images_dir is None:
            raise AnnotationError("<index>", "the index has no images folder; pass --images when indexing")
        root = Path(self.images_dir)
        if not root.is_dir():
            raise AnnotationError(root, "images folder not found")
        # One directory listing and a vectorised membership test: Open Images folders hold 1.7M files.
        with os.scandir(root) as it:
            present = pa.array([e.name for e in it], type=pa.string())
        names = pa.array(self.file_names.tolist(), type=pa.string())
        absent = np.flatnonzero(~pc.is_in(names, value_set=present).to_numpy(zero_copy_only=False))
        # File names with a folder part are not in the listing of `root`: look them up one by one.
        return np.array(
            [i for i in absent if not ("/" in self.file_names[i] and (root / self.file_names[i]).is_file())],
            dtype=np.int64,
        )

    def image_path(self, i: int) -> Path:
        if self.images_dir is None:
            raise ValueError("this index does not know its images folder; pass --images when indexing")
        return Path(self.images_dir) / str(self.file_names[i])


def _obj_array(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = [str(v) for v in values]
    return out
