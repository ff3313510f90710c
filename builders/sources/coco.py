"""COCO instances JSON (plus an images folder) -> `AnnotationIndex`.

The file is parsed with orjson and reduced with numpy. pycocotools' `COCO()` would do the same
json parse and then build its own Python dict index over every annotation, which this reduction does
not need; the tests check our per-image class counts against pycocotools on real COCO data.
"""

from __future__ import annotations

import gzip
import os
import re
from itertools import chain
from pathlib import Path

import numpy as np
import orjson

from mimic.builders.index import AnnotationIndex
from mimic.errors import AnnotationError

__all__ = ["COCO_SUPERCATEGORY_NAMES", "read_coco", "read_coco_json", "check_image_files", "coco_split"]

# COCO's supercategory ids are terse ("kitchen", "electronic"); Listing questions need readable names.
COCO_SUPERCATEGORY_NAMES = {
    "person": "people",
    "vehicle": "vehicles",
    "outdoor": "outdoor objects",
    "animal": "animals",
    "accessory": "accessories",
    "sports": "sports equipment",
    "kitchen": "kitchenware",
    "food": "food",
    "furniture": "furniture",
    "electronic": "electronics",
    "appliance": "appliances",
    "indoor": "indoor objects",
}

_GZIP_MAGIC = b"\x1f\x8b"
# instances_val2017.json, instances_train2017.boxes.json.gz, ...: the split is the part after "instances_".
_SPLIT_IN_NAME = re.compile(r"instances_([A-Za-z]+\d*)")


def coco_split(annotations: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> str:
    """The COCO split ("val2017", "train2017") named by the annotation file, else by the images folder, else ""."""
    m = _SPLIT_IN_NAME.search(Path(annotations).name)
    if m:
        return m.group(1)
    if images_dir is not None and re.fullmatch(r"(train|val|test)\d{4}", Path(images_dir).name):
        return Path(images_dir).name
    return ""


# Boxes may overshoot the image by rounding; real COCO stays well within one pixel.
_BOX_TOLERANCE_PX = 1.0


def read_coco_json(path: str | os.PathLike) -> dict:
    """Parse a COCO-format JSON file, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(path, "annotation file not found")
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:  # e.g. instances_val2017.boxes.json.gz
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise AnnotationError(path, f"not a readable gzip file: {e}") from e
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise AnnotationError(path, f"malformed JSON: {e}{_non_json_number(raw, e.pos)}") from e
    if not isinstance(data, dict):
        raise AnnotationError(path, "expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise AnnotationError(path, "missing or not a list", field=key)
    return data


def _non_json_number(raw: bytes, pos: int) -> str:
    """A hint when the JSON error is at a NaN or Infinity (Python's json writes them; JSON has no such number)."""
    head = raw[pos : pos + 9].lstrip(b"-")
    for word in (b"NaN", b"Infinity"):
        if head.startswith(word):
            return f" ({word.decode()} at byte {pos} is not a JSON number: write a number, or drop the record)"
    return ""


def _column(path, records: list[dict], section: str, key: str, dtype=None):
    """`[r[key] for r in records]` as an array, or an error naming the first record without the key."""
    try:
        values = [r[key] for r in records]
    except (KeyError, TypeError):
        k = next(k for k, r in enumerate(records) if not isinstance(r, dict) or key not in r)
        raise AnnotationError(path, "missing", field=f"{section}[{k}].{key}") from None
    if dtype is None:
        return values
    if dtype is str:
        k = next((k for k, v in enumerate(values) if not isinstance(v, str)), None)
        if k is not None:
            raise AnnotationError(path, f"bad value {values[k]!r}, expected a string", field=f"{section}[{k}].{key}")
        return values
    # numpy would turn "640" into 640.0 and True into 1: only JSON numbers (integers where `dtype` is one) pass.
    want = (int,) if np.dtype(dtype).kind in "iu" else (int, float)
    k = next((k for k, v in enumerate(values) if not isinstance(v, want) or isinstance(v, bool)), None)
    if k is not None:
        expected = "an integer" if want == (int,) else "a number"
        raise AnnotationError(path, f"bad value {values[k]!r}, expected {expected}", field=f"{section}[{k}].{key}")
    return np.asarray(values, dtype=dtype)


def _crowd_flags(path, anns: list[dict]) -> np.ndarray:
    """`iscrowd` of every annotation (absent: 0), which must be 0 or 1: the string "0" is truthy and would
    make every box a crowd."""
    crowd = [a.get("iscrowd", 0) for a in anns]
    k = next((k for k, v in enumerate(crowd) if type(v) is not int or v not in (0, 1)), None)
    if k is not None:
        raise AnnotationError(path, f"bad value {crowd[k]!r}, expected 0 or 1", field=f"annotations[{k}].iscrowd")
    return np.array(crowd, dtype=bool)


def _positions(path, sorted_ids: np.ndarray, wanted: np.ndarray, what: str, key: str) -> np.ndarray:
    """Positions of `wanted` in `sorted_ids`, or an error naming the first annotation whose id is unknown."""
    pos = np.searchsorted(sorted_ids, wanted)
    clipped = np.minimum(pos, max(len(sorted_ids) - 1, 0))
    bad = np.flatnonzero(sorted_ids[clipped] != wanted) if len(sorted_ids) else np.arange(len(wanted))
    if len(bad):
        k = bad[0]
        raise AnnotationError(path, f"unknown {what} {wanted[k]} ({len(bad)} annotations)", field=f"annotations[{k}].{key}")
    return clipped


def read_coco(
    annotations: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    *,
    source: str = "coco",
    check_images: bool = False,
) -> AnnotationIndex:
    """Read a COCO instances file into an `AnnotationIndex`.

    Args:
        annotations: path to `instances_*.json`.
        images_dir: folder holding the images' `file_name`s (checked only with `check_images`).
        source: recorded in the index ("synthetic" for the rendered world, which is COCO-format).
        check_images: verify now that every image file exists (otherwise readers find out lazily).
    """
    path = Path(annotations)
    data = read_coco_json(path)
    images, anns, cats = data["images"], data["annotations"], data["categories"]

    cat_ids = _column(path, cats, "categories", "id", np.int64)
    cat_names = _column(path, cats, "categories", "name", str)
    supers = [c.get("supercategory") or "" for c in cats]
    k = next((k for k, s in enumerate(supers) if not isinstance(s, str)), None)
    if k is not None:
        raise AnnotationError(path, f"bad value {supers[k]!r}, expected a string", field=f"categories[{k}].supercategory")
    if len(set(cat_ids.tolist())) != len(cat_ids):
        raise AnnotationError(path, "duplicate category ids", field="categories")
    if len(set(cat_names)) != len(cat_names):
        raise AnnotationError(path, "duplicate category names", field="categories")
    # Classes in category-id order: stable across files that list categories in another order.
    order = np.argsort(cat_ids, kind="stable")
    class_names = [str(cat_names[k]) for k in order]
    sorted_cat_ids = cat_ids[order]
    categories: dict[str, list[str]] = {}
    for k in order:
        if supers[k]:
            categories.setdefault(COCO_SUPERCATEGORY_NAMES.get(supers[k], supers[k]), []).append(cat_names[k])

    img_ids = _column(path, images, "images", "id", np.int64)
    file_names = _column(path, images, "images", "file_name", str)
    widths = _column(path, images, "images", "width", np.float64)
    heights = _column(path, images, "images", "height", np.float64)
    bad = np.flatnonzero((widths <= 0) | (heights <= 0))
    if len(bad):
        raise AnnotationError(path, "image size must be positive", field=f"images[{bad[0]}].width/height")
    img_sorter = np.argsort(img_ids, kind="stable")
    if len(img_ids) > 1 and np.any(np.diff(img_ids[img_sorter]) == 0):
        dup = img_ids[img_sorter][np.flatnonzero(np.diff(img_ids[img_sorter]) == 0)[0]]
        raise AnnotationError(path, f"duplicate image id {dup}", field="images")

    ann_img = _column(path, anns, "annotations", "image_id", np.int64)
    ann_cat = _column(path, anns, "annotations", "category_id", np.int64)
    bbox = _column(path, anns, "annotations", "bbox")
    try:
        # fromiter over the flattened lists is several times faster than np.asarray on a list of lists.
        boxes = np.fromiter(chain.from_iterable(bbox), dtype=np.float64, count=4 * len(anns)).reshape(len(anns), 4)
        if any(len(b) != 4 for b in bbox):
            raise ValueError
    except (TypeError, ValueError):
        k = next(k for k, b in enumerate(bbox) if not (isinstance(b, list) and len(b) == 4))
        raise AnnotationError(path, f"bbox must be [x, y, w, h], got {bbox[k]!r}", field=f"annotations[{k}].bbox") from None
    k = next((k for k, b in enumerate(bbox) if any(not isinstance(v, (int, float)) or isinstance(v, bool)
                                                  for v in b)), None)
    if k is not None:
        raise AnnotationError(path, f"bbox must hold 4 numbers, got {bbox[k]!r}", field=f"annotations[{k}].bbox")
    crowd = _crowd_flags(path, anns)

    box_class = _positions(path, sorted_cat_ids, ann_cat, "category id", "category_id")
    box_image = img_sorter[_positions(path, img_ids[img_sorter], ann_img, "image id", "image_id")]

    x, y, w, h = boxes.T
    W, H = widths[box_image], heights[box_image]
    outside = np.flatnonzero(
        (w < 0) | (h < 0) | (x < -_BOX_TOLERANCE_PX) | (y < -_BOX_TOLERANCE_PX)
        | (x + w > W + _BOX_TOLERANCE_PX) | (y + h > H + _BOX_TOLERANCE_PX)
    )
    if len(outside):
        k = outside[0]
        raise AnnotationError(
            path,
            f"box {boxes[k].tolist()} lies outside its {int(W[k])}x{int(H[k])} image "
            f"(image id {ann_img[k]}; {len(outside)} such boxes)",
            field=f"annotations[{k}].bbox",
        )
    frac = (w * h) / (W * H)

    index = AnnotationIndex.from_boxes(
        source=source,
        image_ids=img_ids.tolist(),
        file_names=file_names,
        widths=widths.astype(np.int32),
        heights=heights.astype(np.int32),
        class_names=class_names,
        categories=categories,
        box_image=box_image,
        box_class=box_class,
        box_frac=frac,
        box_crowd=crowd,
        images_dir=images_dir,
        box_area=w * h,
        image_area=widths * heights,
        source_split=coco_split(path, images_dir) if source == "coco" else "",
    )
    if check_images:
        check_image_files(index)
    return index


def check_image_files(index: AnnotationIndex) -> None:
    """Raise an error listing the image files of the index that are not on disk."""
    missing = [str(index.file_names[i]) for i in index.missing_files()]
    if missing:
        raise AnnotationError(
            index.images_dir,
            f"{len(missing)} image files listed in the annotations are missing, e.g. {missing[:3]}",
            field="file_name",
        )
