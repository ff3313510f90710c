"""Commands that read annotations and render the synthetic world: `mimic index`, `mimic world`."""

from __future__ import annotations

from dataclasses import dataclass

from mimic.cli import check_numbers, command, opt

SOURCES = ["coco", "openimages", "synthetic", "fiftyone"]  # = mimic.builders.reading.SOURCES (tests/test_cli.py)
# Spelled out here rather than read from mimic.builders.configs, so `--help` needs no heavy imports;
# tests/test_cli.py checks that the two agree.
BENCH_CONFIG_NAMES = ["counting_balanced", "counting_unbalanced", "counting_multiconcept", "listing", "common", "odd_one"]
TRAIN_TASK_NAMES = ["counting", "listing", "common", "odd_one"]


@dataclass
class IndexOptions:
    source: str = opt(help="Annotation format to read.", choices=SOURCES)
    out: str = opt(help="Where to write the index (parquet, one row per (image, class)).", metavar="INDEX.parquet")
    annotations: str | None = opt(
        None,
        help="coco/synthetic: the instances JSON; openimages: the box CSV (e.g. oidv6-train-annotations-bbox.csv). "
        "For synthetic, omit it to render the default world into the cache.",
        metavar="PATH",
    )
    images: str | None = opt(None, help="Folder holding the image files named in the annotations.", metavar="DIR")
    oi_classes: str | None = opt(
        None, help="openimages: class-descriptions-boxable.csv (MID,name; no header).", metavar="CSV"
    )
    oi_hierarchy: str | None = opt(
        None, help="openimages: bbox_labels_600_hierarchy.json (gives the Listing categories).", metavar="JSON"
    )
    check_images: bool = opt(False, help="Check now that every image file exists (otherwise checked when read).")
    dataset: str | None = opt(None, help="fiftyone: the name of a persistent FiftyOne dataset with detections.",
                              metavar="NAME")
    label_field: str | None = opt(None, help="fiftyone: its Detections field (default: the only one it has).")
    min_box_frac: float = opt(
        0.05, help="Smallest box, as a fraction of the image area, for an image to be eligible (summary only)."
    )


def load_index(source: str, annotations=None, images=None, oi_classes=None, oi_hierarchy=None, check_images=False,
               dataset=None, label_field=None):
    """`mimic.builders.load_index` for the commands: the arguments are checked first, so errors name flags."""
    from pathlib import Path

    from mimic.builders.reading import load_index as read_index
    from mimic.errors import ConfigError

    is_index = annotations is not None and str(annotations).endswith(".parquet")
    if source == "coco" and annotations is None:
        raise ConfigError("--annotations is required for --source coco")
    if source == "openimages" and not is_index:
        missing = [n for n, v in (("--annotations", annotations), ("--oi-classes", oi_classes),
                                  ("--oi-hierarchy", oi_hierarchy)) if v is None]
        if missing:
            raise ConfigError(f"--source openimages needs {', '.join(missing)}")
    if source == "fiftyone" and dataset is None and not is_index:
        raise ConfigError("--source fiftyone needs --dataset NAME (a FiftyOne dataset) or --annotations INDEX.parquet")
    if dataset is not None and source != "fiftyone":
        raise ConfigError(f"--dataset applies to --source fiftyone, not {source}")
    if images is not None and not Path(images).is_dir():
        raise ConfigError(f"--images {images}: folder not found")
    return read_index(source, annotations, images, oi_classes, oi_hierarchy, check_images=check_images,
                      dataset=dataset, label_field=label_field)


@command("index", IndexOptions)
def run_index(o: IndexOptions) -> int:
    """Read detection annotations into an annotation index and save it as parquet.

    The index holds, per image, its size and, per class, the instance count, the smallest box as a
    fraction of the image area and crowd presence. Generators read it instead of the raw annotations,
    so a large annotation file is parsed once.
    """
    check_numbers(("--min-box-frac", o.min_box_frac, 0, 1))
    index = load_index(o.source, o.annotations, o.images, o.oi_classes, o.oi_hierarchy, o.check_images, o.dataset,
                       o.label_field)
    path = index.save(o.out)
    print(index.format_summary(o.min_box_frac))
    print(f"\nwrote {path}")
    return 0


@dataclass
class WorldOptions:
    out: str = opt(help="Output folder: receives images/*.jpg and annotations.json (COCO format).", metavar="DIR")
    images: int = opt(300, help="Number of scenes to render.")
    seed: int = opt(0, help="Random seed; the same arguments give byte-identical files.")
    image_size: int = opt(320, help="Width and height of each scene in pixels.")


@command("world", WorldOptions)
def run_world(o: WorldOptions) -> int:
    """Render the synthetic world: JPEG scenes of simple objects with COCO-format annotations.

    It needs no download, so every pipeline (generation, datasets, evaluation, training) can run
    on it. Read it back with `mimic index --source synthetic --annotations DIR/annotations.json`.
    """
    from mimic.builders.sources.coco import read_coco
    from mimic.builders.sources.synthetic import render_world
    from mimic.errors import ConfigError

    if o.images < 1:
        raise ConfigError(f"--images must be at least 1, got {o.images}")

    paths = render_world(o.out, num_images=o.images, seed=o.seed, image_size=o.image_size)
    index = read_coco(paths.annotations, paths.images, source="synthetic")
    print(index.format_summary())
    print(f"\nwrote {paths.annotations} and {index.num_images} images under {paths.images}")
    return 0
