"""Export a MIMIC benchmark as a VLMEvalKit custom dataset: one TSV that `build_dataset("<Name>")` reads.

VLMEvalKit finds a custom dataset at `$LMUData/<Name>.tsv` and, with no option columns (A, B, ...), builds it
as a custom VQA dataset. Its columns:

- `index` (a running integer), `question`, `answer`, `category`;
- the row's images as a stringified Python list: `image` holds base64 strings (the default, one
  self-contained file), or `image_path` holds absolute paths (`image_paths=True`: the image files are
  written to a folder beside the TSV);
- every other benchmark column, so VLMEvalKit's per-category scores and any later analysis keep the controls.

`category` is the MIMIC config (`counting_balanced`, `listing`, ...), because VLMEvalKit groups its scores by
that column; the row's own class category (Listing's super-category) moves to `supercategory`. List columns
(target_classes, per_image_counts, ...) are Python list literals, like the image column.

The image bytes are the parquet's stored bytes, never re-encoded, so they round-trip byte for byte.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path

from mimic.atomic import atomic_path
from mimic.errors import ConfigError

__all__ = ["TSV_COLUMNS", "export_vlmevalkit", "image_extension"]

TSV_COLUMNS = ("index", "question", "answer", "category")

_MAGIC = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"GIF8", "gif"), (b"BM", "bmp"))


def image_extension(data: bytes) -> str:
    """The file extension of encoded image bytes (JPEG, PNG, GIF, BMP, WebP), from their signature."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise ValueError(f"unknown image format (first bytes {data[:8]!r})")


def _cell(value):
    # VLMEvalKit reads list cells back with `eval`/`ast.literal_eval`: repr() of a plain list is that literal.
    if isinstance(value, (list, tuple)):
        return repr([_plain(v) for v in value])
    return value


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def export_vlmevalkit(
    data: str,
    out: str | os.PathLike,
    configs: Sequence[str] = (),
    split: str = "test",
    image_paths: bool = False,
    images_dir: str | os.PathLike | None = None,
    cache_dir: str | None = None,
) -> dict:
    """Write the TSV for `configs` of `data` (all of them when empty) to `out`; returns counts and paths.

    image_paths: write the images as files under `images_dir` (default: `<out stem>_images` beside the TSV)
    and list their absolute paths in `image_path`, instead of base64 strings in `image`.
    """
    import pandas as pd
    from datasets import Image, List

    from mimic.eval.data import load_config, resolve_configs

    out = Path(out)
    if out.suffix.lower() != ".tsv":
        raise ConfigError(f"--out {out}: VLMEvalKit reads <Name>.tsv files; give a path ending in .tsv")
    names = resolve_configs(data, list(configs))
    folder = Path(images_dir) if images_dir is not None else out.with_name(out.stem + "_images")
    rows: list[dict] = []
    num_images = 0
    for config in names:
        ds = load_config(data, config, split, cache_dir)
        # The stored bytes, undecoded: base64 of exactly what the parquet holds.
        ds = ds.cast_column("images", List(Image(decode=False)))
        for row in ds:
            blobs = [im["bytes"] for im in row.pop("images")]
            record = {"index": len(rows), "question": row["question"], "answer": row["answer"], "category": config}
            if image_paths:
                paths = []
                for k, blob in enumerate(blobs):
                    path = (folder / config / f"{row['id']}_{k}.{image_extension(blob)}").resolve()
                    if not (path.exists() and path.read_bytes() == blob):
                        with atomic_path(path) as tmp:
                            tmp.write_bytes(blob)
                    paths.append(str(path))
                record["image_path"] = repr(paths)
            else:
                record["image"] = repr([base64.b64encode(b).decode("ascii") for b in blobs])
            num_images += len(blobs)
            for key, value in row.items():
                if key in ("question", "answer", "config"):
                    continue
                record["supercategory" if key == "category" else key] = _cell(value)
            rows.append(record)
    frame = pd.DataFrame(rows)
    with atomic_path(out) as tmp:
        # VLMEvalKit loads with pd.read_csv(path, sep="\t"); pandas quotes cells holding tabs or new lines.
        frame.to_csv(tmp, sep="\t", index=False)
    return {"path": str(out), "rows": len(rows), "images": num_images, "configs": names,
            "images_dir": str(folder) if image_paths else None}
