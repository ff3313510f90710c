"""Table 1 of the paper for any generated set: queries, images, instances per query, images per query, words."""

from __future__ import annotations

from collections import defaultdict

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


def _column(rows: list[dict], index: AnnotationIndex | None) -> dict:
    n_img = np.array([r["num_images"] for r in rows]) if rows else np.zeros(0)
    out = {
        "queries": len(rows),
        "images": len({(r["source"], i) for r in rows for i in r["image_ids"]}),
        "instances_per_query": None,
        "min_images": int(n_img.min()) if len(n_img) else 0,
        "max_images": int(n_img.max()) if len(n_img) else 0,
        "median_images": float(np.median(n_img)) if len(n_img) else 0.0,
        "words_per_question": float(np.mean([len(r["question"].split()) for r in rows])) if rows else 0.0,
    }
    if index is not None and rows:
        # The paper counts every annotated instance in the query's images, not only the targets.
        pos = index.image_to_pos
        per_image = np.add.reduceat(index.row_count, index.image_ptr[:-1]) if index.num_rows else None
        empty = np.diff(index.image_ptr) == 0
        if per_image is not None:
            per_image = np.where(empty, 0, per_image)
            out["instances_per_query"] = float(
                np.mean([sum(int(per_image[pos[str(i)]]) for i in r["image_ids"] if str(i) in pos) for r in rows])
            )
    return out


def table1(rows: list[dict], index: AnnotationIndex | None = None) -> dict[str, dict]:
    """Per-config columns plus "overall"; `instances_per_query` needs the index (None otherwise)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["config"]].append(r)
    table = {name: _column(group, index) for name, group in sorted(groups.items())}
    table["overall"] = _column(rows, index)
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
