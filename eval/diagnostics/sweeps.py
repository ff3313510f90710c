"""Matched position and distractor sweeps: twin benchmark folders, every level on the same base rows.

Twins come from `mimic.builders.twins` (what a twin is, which rows can be base rows, ids and the twin
columns `base_id`, `sweep_variant`, `sweep_level`, `query_start`). Two sources:

- a built benchmark (`run_sweep`, `mimic diagnose sweep --data`): distractors can only be dropped (rows
  hold image bytes, not annotations), so a base row needs as many distractors as the largest level. Each
  twin is verified against its source row's per-image counts (verified from the annotations at build time).
- twins generated from the annotations (`write_twin_folders`, `mimic diagnose sweep --twins FILE.jsonl`,
  the output of `mimic generate --variant`): verified from the annotations when generated; here only their
  image files are embedded.

`position` writes one benchmark folder per level (OUT/first, OUT/middle, OUT/last), to be evaluated as
three runs; `distractors` writes one folder (OUT) whose rows hold every level. Either way `mimic report`
pairs the predictions by `base_id` ("Matched sweeps"). Counting and Listing rows only. OUT/sweep.json
records the levels, the base rows per config, the rows written and the rows skipped with the reason.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from mimic.builders.twins import (
    POSITIONS,
    SWEEP_TASKS,
    TWIN_COLUMNS,
    VARIANTS,
    distractor_levels,
    distractor_twin,
    position_twin,
    skip_reason,
    twin_features,
)
from mimic.errors import ConfigError, DataError

__all__ = ["check_twin", "run_sweep", "write_twin_folders"]


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
    problems += _level_problems(twin)
    if twin.get("base_id") != source["id"]:
        problems.append(f"base_id {twin.get('base_id')!r} is not the source's id {source['id']!r}")
    return problems


def _level_problems(twin: dict) -> list[str]:
    """The twin's level against its images: a contiguous query block at `query_start` that is first, centred
    or last (position), or `sweep_level` distractors (distractors)."""
    q, n = twin["target_positions"], twin["num_images"]
    if twin.get("sweep_variant") == "position":
        d = n - len(q)
        start = {"first": 0, "middle": d // 2, "last": d}.get(twin.get("sweep_level"))
        if start is None or q != list(range(start, start + len(q))) or twin.get("query_start") != start:
            return [f"query images at {q} are not the {twin.get('sweep_level')!r} block (start {start})"]
    elif twin.get("sweep_variant") == "distractors":
        if str(twin["num_distractors"]) != twin.get("sweep_level"):
            return [f"sweep_level {twin.get('sweep_level')!r} but {twin['num_distractors']} distractors"]
    else:
        return [f"sweep_variant {twin.get('sweep_variant')!r} is not one of {', '.join(VARIANTS)}"]
    return []


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


def _twins_of(row: dict, variant: str, levels: Sequence[int]) -> list[dict]:
    if variant == "position":
        return [position_twin(row, p) for p in POSITIONS]
    return [distractor_twin(row, k) for k in levels]


def _check_levels(twins: Sequence[dict], levels: Sequence[str], where: str) -> None:
    """Every level must hold the same base rows: a sweep that does not is refused, not reported."""
    by_level: dict[str, set] = {lv: set() for lv in levels}
    for t in twins:
        if t["sweep_level"] not in by_level:
            raise DataError(f"{where}: twin {t['id']} has level {t['sweep_level']!r}, not one of {list(levels)}")
        by_level[t["sweep_level"]].add(t["base_id"])
    sets = list(by_level.values())
    if any(s != sets[0] for s in sets):
        sizes = {lv: len(s) for lv, s in by_level.items()}
        raise DataError(f"{where}: the levels hold different base rows ({sizes}); a matched sweep needs the same")


def _write(root: Path, variant: str, tables: dict[str, list[dict]], features: dict, what: str) -> dict:
    """The folders of `variant` from the twins of each config; {folder: {config: rows}}."""
    folders: dict[str, dict[str, list[dict]]] = {}
    for config, twins in tables.items():
        for t in twins:
            name = t["sweep_level"] if variant == "position" else ""
            folders.setdefault(name, {}).setdefault(config, []).append(t)
    for name, per_config in folders.items():
        _write_folder(root / name if name else root, per_config, features,
                      f"MIMIC {variant} sweep{f' ({name})' if name else ''} of {what}")
    return {str(root / n) if n else str(root): {c: len(r) for c, r in t.items()} for n, t in folders.items()}


def run_sweep(data: str, out: str, variant: str, configs: Sequence[str] = (), where: dict | None = None,
              limit: int | None = None, levels: Sequence[int] = (), max_distractors: int | None = None,
              split: str = "test", cache_dir: str | None = None) -> dict:
    """Write the twin folder(s) of `variant` from a built benchmark; returns sweep.json's content."""
    from mimic.atomic import write_json
    from mimic.eval.diagnostics.common import select_rows

    if variant not in VARIANTS:
        raise ConfigError(f"--variant must be position or distractors, got {variant!r}")
    ks = distractor_levels(levels, max_distractors) if variant == "distractors" else []
    names = list(POSITIONS) if variant == "position" else [str(k) for k in ks]
    selections = [s for s in select_rows(data, configs, split, None, where or {}, cache_dir)
                  if s.rows[s.indices[0]]["task"] in SWEEP_TASKS]
    if not selections:
        raise ConfigError(f"{data}: no Counting or Listing rows selected; the sweeps move and drop distractors")
    tables: dict[str, list[dict]] = {}
    features, used, skipped = {}, {}, {}
    for sel in selections:
        usable, reasons = [], Counter()
        for i in sel.indices:
            reason = skip_reason(sel.rows[i], variant, top=ks[-1] if ks else None)
            if reason is None:
                usable.append(i)
            else:
                reasons[reason] += 1
        usable = usable[:limit]
        skipped[sel.config] = dict(reasons)
        if not usable:
            continue
        features[sel.config] = twin_features(sel.dataset.features)
        # image bytes as they are: decoding and re-encoding a JPEG would change the twins' pixels
        raw = copy.deepcopy(sel.dataset.features["images"])
        raw.feature.decode = False
        for row in sel.dataset.select(usable).cast_column("images", raw):
            tables.setdefault(sel.config, []).extend(_verified(row, t) for t in _twins_of(row, variant, ks))
        used[sel.config] = len(usable)
    if not tables:
        raise ConfigError(f"{data}: no row can give every level {names} ({skipped}); lower the levels")
    for config, twins in tables.items():
        _check_levels(twins, names, f"{data} {config}")
    root = Path(out)
    rows = _write(root, variant, tables, features, data)
    summary = {"analysis": "sweep", "variant": variant, "data": data, "where": where or {}, "levels": names,
               "base_rows": used, "skipped": skipped, "folders": list(rows), "rows": rows}
    write_json(root / "sweep.json", summary)
    return summary


def write_twin_folders(twins_file: str, images: str, out: str) -> dict:
    """Write the twin folder(s) of a `mimic generate --variant` file, embedding the images of `images`."""
    from mimic.atomic import write_json
    from mimic.builders.generate import read_jsonl
    from mimic.builders.mimic_bench import BENCH_FEATURES
    from mimic.builders.rows import ImageBytes, check_rows

    if not Path(images).is_dir():
        raise ConfigError(f"--images {images}: folder not found")
    rows = read_jsonl(twins_file)
    if not rows:
        raise DataError(f"{twins_file}: no twins")
    check_rows(rows, twins_file)
    missing = [c for c in TWIN_COLUMNS if c not in rows[0]]
    variants = {r.get("sweep_variant") for r in rows}
    if missing or len(variants) != 1 or not variants <= set(VARIANTS):
        raise DataError(f"{twins_file}: not twins of one sweep (missing {missing}, variants {sorted(map(str, variants))}); "
                        "write them with `mimic generate --variant position|distractors`")
    (variant,) = variants
    levels = list(dict.fromkeys(r["sweep_level"] for r in rows))
    if variant == "distractors":
        levels.sort(key=int)
    read = ImageBytes(images)
    features = twin_features(BENCH_FEATURES)
    tables: dict[str, list[dict]] = {}
    for r in rows:
        row = {c: r.get(c) for c in features if c != "images"}
        row["images"] = [{"bytes": read(name, r["id"]), "path": name} for name in r["file_names"]]
        tables.setdefault(r["config"], []).append(row)
    for config, twins in tables.items():
        _check_levels(twins, levels, f"{twins_file} {config}")
    root = Path(out)
    written = _write(root, variant, tables, {c: features for c in tables}, twins_file)
    summary = {"analysis": "sweep", "variant": variant, "twins": twins_file, "levels": levels,
               "base_rows": {c: len({t["base_id"] for t in ts}) for c, ts in tables.items()},
               "skipped": {}, "folders": list(written), "rows": written}
    generated = Path(str(twins_file) + ".sweep.json")
    if generated.is_file():  # what `mimic generate` skipped, and the seeds of the added distractors
        import json

        summary["generated"] = json.loads(generated.read_text())
    write_json(root / "sweep.json", summary)
    return summary
