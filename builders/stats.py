"""Table 1 of the paper for any generated set: queries, images, instances per query, images per query, words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from mimic.builders.index import AnnotationIndex

__all__ = ["table1", "format_table1", "TABLE1_ROWS"]

TABLE1_ROWS = (
    ("queries", "Queries"),
    ("images", "Images"),
    ("instances_per_query", "Obj. inst. per query"),
    ("min_images", "Min img per query"),
    ("max_images", "Max img per query"),
    ("median_images", "Median img per query"),
    ("words_per_question", "Avg words per question"),
)


class _Column:
    """One Table 1 column, accumulated row by row (the rows themselves are not kept)."""

    def __init__(self, index: AnnotationIndex | None):
        self.num_images: list[int] = []
        self.images: set[tuple] = set()
        self.words: list[int] = []
        self.instances: list[int] = []
        self.index = index
        if index is not None and index.num_rows:
            # The paper counts every annotated instance in the query's images, not only the targets.
            per_image = np.add.reduceat(index.row_count, index.image_ptr[:-1])
            self.per_image = np.where(np.diff(index.image_ptr) == 0, 0, per_image)
        else:
            self.per_image = None

    def add(self, r) -> None:
        self.num_images.append(r["num_images"])
        self.images.update((r["source"], i) for i in r["image_ids"])
        self.words.append(len(r["question"].split()))
        if self.per_image is not None:
            pos = self.index.image_to_pos
            self.instances.append(sum(int(self.per_image[pos[str(i)]]) for i in r["image_ids"] if str(i) in pos))

    def result(self) -> dict:
        n_img = np.array(self.num_images) if self.num_images else np.zeros(0)
        rows = len(self.num_images)
        return {
            "queries": rows,
            "images": len(self.images),
            "instances_per_query": float(np.mean(self.instances)) if self.index is not None and rows
            and self.per_image is not None else None,
            "min_images": int(n_img.min()) if len(n_img) else 0,
            "max_images": int(n_img.max()) if len(n_img) else 0,
            "median_images": float(np.median(n_img)) if len(n_img) else 0.0,
            "words_per_question": float(np.mean(self.words)) if rows else 0.0,
        }


def table1(rows: Iterable[Mapping], index: AnnotationIndex | None = None) -> dict[str, dict]:
    """Per-config columns plus "overall"; `instances_per_query` needs the index (None otherwise).

    `rows` (dicts with num_images, source, image_ids, question, config) are read once, in one pass, and not
    kept: a generator over a spooled training set keeps memory flat."""
    groups: dict[str, _Column] = {}
    overall = _Column(index)
    for r in rows:
        if r["config"] not in groups:
            groups[r["config"]] = _Column(index)
        groups[r["config"]].add(r)
        overall.add(r)
    table = {name: col.result() for name, col in sorted(groups.items())}
    table["overall"] = overall.result()
    return table


def format_table1(table: dict[str, dict]) -> str:
    """A markdown table in the layout of the paper's Table 1 (configs as columns)."""
    names = list(table)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label in TABLE1_ROWS:
        cells = []
        for n in names:
            v = table[n][key]
            cells.append("n/a" if v is None else (f"{v:,}" if isinstance(v, int) else f"{v:.1f}"))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
