"""One entry point from annotations of any supported source to an `AnnotationIndex`.

The dataset builders and the CLI both read annotations through `load_index`; its errors name this
function's parameters (the CLI checks its own flags first, so its users read flag names).
"""

from __future__ import annotations

import os
from pathlib import Path

from mimic.builders.index import AnnotationIndex
from mimic.errors import AnnotationError, ConfigError

__all__ = ["SOURCES", "load_index"]

SOURCES = ("coco", "openimages", "synthetic", "fiftyone")


def load_index(
    source: str,
    annotations: str | os.PathLike | None = None,
    images_dir: str | os.PathLike | None = None,
    oi_classes: str | os.PathLike | None = None,
    oi_hierarchy: str | os.PathLike | None = None,
    *,
    check_images: bool = False,
    dataset: str | None = None,
    label_field: str | None = None,
) -> AnnotationIndex:
    """Read annotations into an `AnnotationIndex`.

    Args:
        source: "coco", "openimages", "synthetic" or "fiftyone".
        annotations: coco/synthetic: the instances JSON; openimages: the box CSV; any source: an index
            written by `AnnotationIndex.save` (`.parquet`). Synthetic without it renders the default world.
        images_dir: the folder the annotated images are in. For a saved index it replaces the recorded one.
        oi_classes, oi_hierarchy: openimages: class-descriptions-boxable.csv and the hierarchy JSON.
        check_images: check now that every image file exists (otherwise checked when read).
        dataset, label_field: fiftyone: the FiftyOne dataset's name and its Detections field (default: its only one).

    Raises:
        ConfigError: a missing or unknown argument (the message names the parameter).
        AnnotationError: an unreadable file, or an `images_dir` that is not a folder (the message names it).
    """
    if source not in SOURCES:
        raise ConfigError(f"load_index: unknown source {source!r}; choose from {', '.join(SOURCES)}")
    if images_dir is not None and not Path(images_dir).is_dir():
        # Checked first: otherwise the first image read would report one missing file, not the folder.
        raise AnnotationError(images_dir, "images folder not found", field="images_dir")
    if annotations is not None and str(annotations).endswith(".parquet"):
        index = AnnotationIndex.load(annotations)
        if images_dir is not None:
            index.images_dir = str(images_dir)
        if check_images:
            absent = index.missing_files()
            if len(absent):
                examples = index.file_names[absent[:3]].tolist()
                raise AnnotationError(index.images_dir, f"{len(absent)} image files listed in {annotations} are "
                                      f"missing, e.g. {examples}")
        return index
    if source == "coco":
        from mimic.builders.sources.coco import read_coco

        if annotations is None:
            raise ConfigError("load_index: source 'coco' needs annotations= (the instances JSON or a saved index)")
        return read_coco(annotations, images_dir, check_images=check_images)
    if source == "fiftyone":
        from mimic.builders.sources.fiftyone import read_fiftyone

        if dataset is None:
            raise ConfigError("load_index: source 'fiftyone' needs dataset= (a FiftyOne dataset name) or a saved index")
        return read_fiftyone(dataset, label_field, check_images=check_images)
    if source == "synthetic":
        from mimic.builders.sources.synthetic import read_synthetic

        return read_synthetic(annotations, images_dir, check_images=check_images)
    from mimic.builders.sources.openimages import read_openimages

    missing_args = [n for n, v in (("annotations", annotations), ("oi_classes", oi_classes),
                                   ("oi_hierarchy", oi_hierarchy)) if v is None]
    if missing_args:
        raise ConfigError(f"load_index: source 'openimages' needs {', '.join(f'{n}=' for n in missing_args)}")
    return read_openimages(annotations, oi_classes, oi_hierarchy, images_dir=images_dir, check_images=check_images)
