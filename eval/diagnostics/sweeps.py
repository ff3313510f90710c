"""Matched position and distractor sweeps: twin benchmark folders built from a benchmark's own rows.

- `position`: for every row with query images and distractors, the query images are moved as one block to
  the first, middle or last positions (distractors keep their order), as Visual Haystacks does. Each
  position is its own benchmark folder (OUT/first, OUT/middle, OUT/last) with the same ids, so three
  `mimic eval` runs and one `mimic report` set them side by side, with every breakdown.
- `distractors`: for every row with K distractors, twins keeping the same query images and the first
  k = 0..K of its distractors (`--max-distractors` caps K), ids `<id>-d<k>`, in one folder: the report's
  `num_distractors` breakdown is the sweep.

Twins keep every column; the ones an image change touches are recomputed (`images`, `image_ids`,
`per_image_counts`, `target_positions`, `num_images`, `num_distractors`). Each twin is verified against its
source row's per-image counts (themselves verified from the annotations when the benchmark was built): the
query images keep all target instances, every dropped or moved distractor held none, the totals and answer
are unchanged, and the controls agree with the images. Counting and Listing rows only (Common and Odd-One
have no distractors to move or drop).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from mimic.errors import ConfigError

__all__ = ["POSITIONS", "check_twin", "distractor_twins", "position_twin", "run_sweep"]

POSITIONS = ("first", "middle", "last")
SWEEP_TASKS = ("counting", "listing")


def _reorder(row: dict, order: Sequence[int], suffix: str) -> dict:
    twin = dict(row)
    for col in ("images", "image_ids", "per_image_counts", "file_names"):
        if col in row and row[col] is not None:
            twin[col] = [row[col][i] for i in order]
    counts = twin["per_image_counts"]
    twin["target_positions"] = [k for k, c in enumerate(counts) if any(v > 0 for v in c)]
    twin["num_images"] = len(order)
    twin["num_distractors"] = len(order) - len(twin["target_positions"])
    twin["id"] = f"{row['id']}{suffix}"
    return twin


def position_twin(row: dict, position: str) -> dict:
    """`row` with its query images as one block at the first, middle or last positions."""
    q = list(row["target_positions"])
    d = [k for k in range(row["num_images"]) if k not in set(q)]
    order = {"first": q + d, "middle": d[: len(d) // 2] + q + d[len(d) // 2 :], "last": d + q}[position]
    return _reorder(row, order, "")


def distractor_twins(row: dict, max_k: int | None = None) -> list[dict]:
    """Twins of `row` keeping its query images and its first k distractors, k = 0..K (in image order)."""
    q = set(row["target_positions"])
    d = [k for k in range(row["num_images"]) if k not in q]
    top = len(d) if max_k is None else min(max_k, len(d))
    keep_sets = [q | set(d[:k]) for k in range(top + 1)]
    return [_reorder(row, sorted(keep), f"-d{k}") for k, keep in enumerate(keep_sets)]


def check_twin(source: dict, twin: dict) -> list[str]:
    """Problems of `twin` against the verified `source` row (empty: the twin is sound)."""
    problems = []
    src_counts = source["per_image_counts"]
    by_id = {}
    for img_id, c in zip(source["image_ids"], src_counts, strict=True):
        by_id.setdefault(img_id, []).append(c)
    for img_id, c in zip(twin["image_ids"], twin["per_image_counts"], strict=True):
        if c not in by_id.get(img_id, []):
            problems.append(f"image {img_id}: counts {c} are not the source's")
    q_src = [src_counts[k] for k in source["target_positions"]]
    q_twin = [twin["per_image_counts"][k] for k in twin["target_positions"]]
    if sorted(map(tuple, q_src)) != sorted(map(tuple, q_twin)):
        problems.append("the query images differ from the source's")
    totals = [sum(col) for col in zip(*twin["per_image_counts"], strict=True)]
    if totals != [sum(col) for col in zip(*src_counts, strict=True)]:
        problems.append(f"per-class totals {totals} differ from the source's")
    if (twin["answer"], twin["answer_list"], twin["question"]) != (source["answer"], source["answer_list"],
                                                                   source["question"]):
        problems.append("the answer or question changed")
    n = len(twin["images"])
    if not (n == twin["num_images"] == len(twin["image_ids"]) == len(twin["per_image_counts"])):
        problems.append("num_images disagrees with the images")
    if twin["num_distractors"] != n - len(twin["target_positions"]):
        problems.append("num_distractors disagrees with the images")
    if twin["num_query_images"] != len(twin["target_positions"]):
        problems.append("num_query_images disagrees with the query images")
    return problems


def _verified(source: dict, twin: dict) -> dict:
    from mimic.builders.verify import VerificationError

    problems = check_twin(source, twin)
    if problems:
        raise VerificationError(twin["id"], problems)
    return twin


def _write_folder(out: Path, tables: dict[str, list[dict]], features: dict, title: str) -> None:
    from datasets import Dataset

    from mimic.atomic import atomic_path

    configs = []
    for config, rows in tables.items():
        folder = out / config
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "test-00000-of-00001.parquet"
        with atomic_path(path) as tmp:
            Dataset.from_list(rows, features=features[config]).to_parquet(str(tmp))
        configs.append(f"- config_name: {config}\n  data_files:\n  - split: test\n    path: {config}/test-*")
    card = "---\nconfigs:\n" + "\n".join(configs) + f"\n---\n\n# {title}\n"
    with atomic_path(out / "README.md") as tmp:
        Path(tmp).write_text(card, encoding="utf-8")


def run_sweep(data: str, out: str, variant: str, configs: Sequence[str] = (), where: dict | None = None,
              limit: int | None = None, max_distractors: int | None = None, split: str = "test",
              cache_dir: str | None = None) -> dict:
    """Write the twin folder(s) of `variant` ("position" or "distractors"); returns sweep.json's content."""
    from mimic.atomic import write_json
    from mimic.eval.diagnostics.common import select_rows

    if variant not in ("position", "distractors"):
        raise ConfigError(f"--variant must be position or distractors, got {variant!r}")
    if max_distractors is not None and max_distractors < 0:
        raise ConfigError(f"--max-distractors must be 0 or more, got {max_distractors}")
    selections = [s for s in select_rows(data, configs, split, None, where or {}, cache_dir)
                  if s.rows[s.indices[0]]["task"] in SWEEP_TASKS]
    if not selections:
        raise ConfigError(f"{data}: no Counting or Listing rows selected; the sweeps move and drop distractors")
    folders: dict[str, dict[str, list[dict]]] = {}
    features, counts = {}, {}
    for sel in selections:
        usable = [i for i in sel.indices if sel.rows[i]["num_distractors"] > 0 and sel.rows[i]["target_positions"]]
        usable = usable[:limit]
        features[sel.config] = sel.dataset.features
        # image bytes as they are: decoding and re-encoding a JPEG would change the twins' pixels
        raw = copy.deepcopy(sel.dataset.features["images"])
        raw.feature.decode = False
        full = sel.dataset.select(usable).cast_column("images", raw)
        for row in full:
            if variant == "position":
                for pos in POSITIONS:
                    folders.setdefault(pos, {}).setdefault(sel.config, []).append(
                        _verified(row, position_twin(row, pos)))
            else:
                folders.setdefault("", {}).setdefault(sel.config, []).extend(
                    _verified(row, t) for t in distractor_twins(row, max_distractors))
        counts[sel.config] = len(usable)
    root = Path(out)
    for name, tables in folders.items():
        _write_folder(root / name if name else root, tables, features,
                      f"MIMIC {variant} sweep{f' ({name})' if name else ''} of {data}")
    summary = {"analysis": "sweep", "variant": variant, "data": data, "where": where or {},
               "source_rows": counts, "folders": [str(root / n) if n else str(root) for n in folders],
               "rows": {n or variant: {c: len(r) for c, r in t.items()} for n, t in folders.items()}}
    write_json(root / "sweep.json", summary)
    return summary
