"""Shared fixtures: the real sample data beside the checkout, an HF cache in tmp, small synthetic worlds."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# `datasets` and `huggingface_hub` read their cache locations when first imported, so they are set here,
# before any test module imports them: tests never touch the network nor the user's caches.
_HF_HOME = Path(tempfile.mkdtemp(prefix="mimic-tests-hf-"))
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ["HF_DATASETS_CACHE"] = str(_HF_HOME / "datasets")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COCO_SAMPLE = SHARED_DATA / "coco-sample"
COCO_MINI = SHARED_DATA / "coco-mini"
OPENIMAGES_SAMPLE = SHARED_DATA / "openimages-sample"


def need(path: Path) -> Path:
    """Skip the calling test, saying why, when a shared data folder is absent (as on a user's machine)."""
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (only present beside the dev/CI checkout)")
    return path


@pytest.fixture(autouse=True)
def _fresh_datasets_cache(tmp_path, monkeypatch):
    # `load_dataset` on a local folder keys its cache by the folder's base name: tests that build folders of
    # the same name must not read each other's rows, so every test gets its own arrow cache.
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / ".hf-datasets-cache")


@pytest.fixture(scope="session")
def coco_sample() -> tuple[Path, Path]:
    root = need(COCO_SAMPLE)
    return root / "annotations" / "instances_train2017.json", root / "train2017"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """An explicit arrow cache folder for tests that pass `cache_dir=` (shared within a module)."""
    return str(tmp_path_factory.mktemp("hf-datasets-cache"))


def build_demo_folder(world, out: Path, configs, num: int = 6, seed: int = 0, **materialize_kwargs) -> dict:
    """A Hub-layout benchmark folder of `configs` on the test world, with its card; the build records."""
    from mimic.builders.cards import write_dataset_card
    from mimic.builders.hub_folder import materialize
    from mimic.builders.mimic_demo import MimicDemo

    paths, index = world
    records = {}
    for name in configs:
        b = MimicDemo(config_name=name, annotations=str(paths.annotations), images_dir=str(paths.images),
                      num_samples=num, seed=seed)
        b._index = index
        records[name] = materialize(b, out, progress=False, **materialize_kwargs)
    write_dataset_card(out, pretty_name="test", summary="test build")
    return records


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A small synthetic world (rendered once per session) and its index."""
    from mimic.builders.sources.synthetic import read_synthetic, render_world

    paths = render_world(tmp_path_factory.mktemp("world") / "w", num_images=160, seed=0, show_progress=False)
    return paths, read_synthetic(paths.annotations, paths.images)


# Synthetic world classes that exist in Open Images V7 (real MIDs of class-descriptions-boxable.csv).
OI_MIDS = {
    "apple": "/m/014j1m", "banana": "/m/09qck", "orange": "/m/0cyhj_", "strawberry": "/m/07fbm7",
    "car": "/m/0k4j", "bus": "/m/01bjv", "bicycle": "/m/0199g", "boat": "/m/019jd",
    "cup": "/m/02p5f1q", "umbrella": "/m/0hnnb", "clock": "/m/01x3z",
}


def write_openimages_fixture(world_paths, out: Path, *, drop_images: int = 0) -> dict[str, Path]:
    """The synthetic world in the exact Open Images V7 format: a 13-column box CSV with real class ids,
    JPEGs named <ImageID>.jpg, and the real class list and hierarchy. The last `drop_images` images are
    listed in the CSV but left off the disk."""
    import csv
    import json
    import shutil

    root = need(OPENIMAGES_SAMPLE)
    data = json.loads(Path(world_paths.annotations).read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    images = {im["id"]: im for im in data["images"]}
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for a in sorted(data["annotations"], key=lambda a: a["id"]):
        mid = OI_MIDS.get(names[a["category_id"]])
        if mid is None:
            continue
        im = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        W, H = im["width"], im["height"]
        rows.append([f"{a['image_id']:016x}", "xclick", mid, 1, f"{x / W:.6f}", f"{(x + w) / W:.6f}",
                     f"{y / H:.6f}", f"{(y + h) / H:.6f}", 0, 0, 0, 0, 0])
    listed = sorted({r[0] for r in rows})
    for image_id in listed[: len(listed) - drop_images]:
        src = Path(world_paths.images) / images[int(image_id, 16)]["file_name"]
        shutil.copyfile(src, out / "images" / f"{image_id}.jpg")
    csv_path = out / "boxes.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
                    "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"])
        w.writerows(rows)
    return {"boxes": csv_path, "images": out / "images", "classes": root / "class-descriptions-boxable.csv",
            "hierarchy": root / "bbox_labels_600_hierarchy.json", "listed": listed}


@pytest.fixture(scope="session")
def oi_world(world, tmp_path_factory):
    paths, _ = world
    return write_openimages_fixture(paths, tmp_path_factory.mktemp("oi"), drop_images=3)
