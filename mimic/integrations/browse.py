"""A built benchmark as a grouped FiftyOne dataset, to look at in the FiftyOne App (`mimic browse`).

One group per benchmark row and one group slice per image (`image_0`, `image_1`, ...). Every sample of a group
carries the row's fields: row_id, config, task, question, answer, answer_list, target_classes and every control
(num_images, num_query_images, num_distractors, num_concepts, total_instances, category, template_id,
connector_id, ...); each slice also has its own image_index, image_id, is_query (whether the row's question is
about it: `target_positions`) and counts (its per-target-class instance counts).

- Boxes: given the COCO-format annotations the rows were built from (COCO instances JSON, or the synthetic
  world's annotations.json), the target classes' boxes become the `ground_truth` detections of each image.
- A `mimic eval` run folder adds prediction, parsed (as JSON text: a count, a class, a list or per-class
  counts), correct, parse_failed and score to every sample and saves
  the views `wrong_answers` and `parse_failures`.

The images are written once, from the parquet's bytes, to `media_dir` (FiftyOne shows files, not blobs).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from mimic.atomic import atomic_path
from mimic.errors import ConfigError, DataError

__all__ = ["SLICE_PREFIX", "browse_dataset_name", "build_browse_dataset", "launch_app"]

SLICE_PREFIX = "image_"
# Row columns not copied as they are: the images become the samples, the per-image lists per-slice fields.
_PER_IMAGE = ("images", "image_ids", "per_image_counts", "target_positions")


def browse_dataset_name(data: str) -> str:
    key = str(Path(data).resolve()) if os.path.exists(data) else data
    return f"mimic-{Path(key).name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _boxes_by_image(annotations: str | os.PathLike) -> dict[str, tuple[int, int, list[tuple[str, list[float]]]]]:
    """image id -> (width, height, [(class name, [x, y, w, h] in pixels), ...]) of a COCO-format JSON."""
    try:
        data = json.loads(Path(annotations).read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        out = {str(im["id"]): (int(im["width"]), int(im["height"]), []) for im in data["images"]}
        for a in data["annotations"]:
            out[str(a["image_id"])][2].append((names[a["category_id"]], [float(v) for v in a["bbox"]]))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"--annotations {annotations}: not a readable COCO-format instances JSON ({err})") from None
    return out


def _read_run(run: str | os.PathLike) -> dict[str, dict]:
    from mimic.eval.predictions import read_predictions
    from mimic.eval.runner import PREDICTIONS_FILE

    path = Path(run) / PREDICTIONS_FILE
    if not path.exists():
        raise ConfigError(f"--run {run}: no {PREDICTIONS_FILE}; give a `mimic eval` run folder")
    return {r["id"]: r for r in read_predictions(path)}


def _plain(value):
    # FiftyOne stores str/int/float/bool and lists of them; anything else (lists of lists) as JSON text.
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return list(value)
    return json.dumps(value)


def build_browse_dataset(
    data: str,
    configs: Sequence[str] = (),
    split: str = "test",
    name: str | None = None,
    media_dir: str | os.PathLike | None = None,
    annotations: str | os.PathLike | None = None,
    run: str | os.PathLike | None = None,
    cache_dir: str | None = None,
):
    """Build (or rebuild) the persistent grouped FiftyOne dataset of `data`; returns it."""
    from datasets import Image, List

    from mimic.builders.sources.fiftyone import import_fiftyone
    from mimic.builders.sources.synthetic import default_cache_dir
    from mimic.eval.data import load_config, resolve_configs
    from mimic.integrations.vlmevalkit import image_extension

    fo = import_fiftyone()
    names = resolve_configs(data, list(configs))
    boxes = _boxes_by_image(annotations) if annotations is not None else None
    predictions = _read_run(run) if run is not None else None
    name = name or browse_dataset_name(data)
    media = Path(media_dir) if media_dir is not None else default_cache_dir() / "fiftyone-media" / name
    samples = []
    matched = 0
    for config in names:
        ds = load_config(data, config, split, cache_dir).cast_column("images", List(Image(decode=False)))
        for row in ds:
            group = fo.Group()
            fields = {("row_id" if k == "id" else k): _plain(v) for k, v in row.items() if k not in _PER_IMAGE}
            pred = predictions.get(row["id"]) if predictions is not None else None
            if pred is not None:
                matched += 1
                fields.update(prediction=pred["output"], parsed=None if pred["parsed"] is None else json.dumps(pred["parsed"]), correct=bool(pred["correct"]),
                              parse_failed=bool(pred["parse_failed"]), score=float(pred["score"]))
            targets = set(row["target_classes"] or ())
            for k, image in enumerate(row["images"]):
                blob = image["bytes"]
                path = (media / config / f"{row['id']}_{k}.{image_extension(blob)}").resolve()
                if not (path.exists() and path.stat().st_size == len(blob)):
                    with atomic_path(path) as tmp:
                        tmp.write_bytes(blob)
                image_id = str(row["image_ids"][k]) if row.get("image_ids") else None
                sample = fo.Sample(filepath=str(path), group=group.element(f"{SLICE_PREFIX}{k}"), **fields,
                                   image_index=k, image_id=image_id,
                                   is_query=k in (row.get("target_positions") or ()),
                                   counts=list((row.get("per_image_counts") or [[]] * (k + 1))[k] or []))
                if boxes is not None and image_id in boxes:
                    w, h, anns = boxes[image_id]
                    sample["ground_truth"] = fo.Detections(detections=[
                        fo.Detection(label=label, bounding_box=[x / w, y / h, bw / w, bh / h])
                        for label, (x, y, bw, bh) in anns if label in targets])
                samples.append(sample)
    if not samples:
        raise DataError(f"{data}: no rows in configs {', '.join(names)}")
    if predictions is not None and not matched:
        raise ConfigError(f"--run {run}: none of its predictions is a row of {data} (another benchmark?)")
    dataset = fo.Dataset(name, overwrite=True, persistent=True)
    dataset.add_group_field("group", default=f"{SLICE_PREFIX}0")
    dataset.add_samples(samples)
    dataset.info = {"mimic_data": str(data), "mimic_configs": names, "mimic_split": split}
    dataset.save()
    if predictions is not None:
        from fiftyone import ViewField as F

        dataset.save_view("wrong_answers", dataset.match((F("correct") == False) & (F("parse_failed") == False)))  # noqa: E712
        dataset.save_view("parse_failures", dataset.match(F("parse_failed") == True))  # noqa: E712
    return dataset


def launch_app(dataset, port: int = 5151, address: str = "127.0.0.1"):
    """Serve the FiftyOne App for `dataset` on address:port; returns the session (`session.wait()` blocks)."""
    import fiftyone as fo

    return fo.launch_app(dataset, port=port, address=address, remote=True)
