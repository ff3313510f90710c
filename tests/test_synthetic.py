"""The synthetic world: determinism, COCO format, scene statistics, caching and atomic writes."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mimic.builders.sources import synthetic
from mimic.builders.sources.synthetic import (
    CATEGORIES,
    CLASSES,
    DEFAULT_WORLD_IMAGES,
    WORLD_VERSION,
    WorldPaths,
    read_synthetic,
    render_world,
)
from mimic.errors import ConfigError

N = 40


def _render(root: Path, **kw) -> WorldPaths:
    kw.setdefault("num_images", N)
    kw.setdefault("show_progress", False)
    return render_world(root, **kw)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> WorldPaths:
    return _render(tmp_path_factory.mktemp("synthetic") / "world")


@pytest.fixture(scope="module")
def coco_data(small_world) -> dict:
    return json.loads(small_world.annotations.read_text())


# ------------------------------------------------------------------ determinism
def test_same_arguments_give_identical_bytes(small_world, tmp_path):
    again = _render(tmp_path / "again")
    first, second = _files(small_world.root), _files(again.root)
    assert len(first) == N + 1
    assert first.keys() == second.keys()
    assert all(first[k] == second[k] for k in first)


def test_another_seed_gives_another_world(small_world, tmp_path):
    other = _render(tmp_path / "other", seed=1)
    first, second = _files(small_world.root), _files(other.root)
    assert first["annotations.json"] != second["annotations.json"]
    assert sum(first[k] != second[k] for k in first) > N // 2


def test_paths_and_layout(small_world):
    assert small_world.annotations == small_world.root / "annotations.json"
    assert small_world.images == small_world.root / "images"
    assert len(list(small_world.images.glob("*.jpg"))) == N
    # Nothing left behind beside the world: the temporary folder was renamed into place.
    assert [p.name for p in small_world.root.parent.iterdir()] == ["world"]


# ------------------------------------------------------------------ COCO format and classes
def test_classes_and_categories(coco_data):
    assert len(CLASSES) >= 12 and len(set(CLASSES)) == len(CLASSES)
    assert len(CATEGORIES) >= 3
    assert sorted(c for members in CATEGORIES.values() for c in members) == sorted(CLASSES)
    cats = coco_data["categories"]
    assert [c["name"] for c in cats] == list(CLASSES)
    assert [c["id"] for c in cats] == list(range(1, len(CLASSES) + 1))
    for c in cats:
        assert c["name"] in CATEGORIES[c["supercategory"]]
    # Supercategories are the readable plural names Listing questions use.
    assert {"fruit", "vehicles", "household objects"} <= set(CATEGORIES)


def test_coco_fields(coco_data):
    assert {"info", "licenses", "categories", "images", "annotations"} <= coco_data.keys()
    assert coco_data["info"]["mimic_world"] == {
        "world_version": WORLD_VERSION, "num_images": N, "seed": 0, "image_size": 320, "small_object_rate": 0.0,
    }
    for im in coco_data["images"]:
        assert {"id", "file_name", "width", "height"} <= im.keys()
    ids = [a["id"] for a in coco_data["annotations"]]
    assert len(set(ids)) == len(ids)
    for a in coco_data["annotations"]:
        x, y, w, h = a["bbox"]
        assert a["iscrowd"] == 0
        assert a["area"] == w * h
        assert a["segmentation"] == [[x, y, x + w, y, x + w, y + h, x, y + h]]


def test_index_matches_pycocotools(small_world):
    from pycocotools.coco import COCO

    index = read_synthetic(small_world.annotations)
    assert index.source == "synthetic"
    assert Path(index.images_dir) == small_world.images
    coco = COCO(str(small_world.annotations))
    assert index.num_images == len(coco.getImgIds()) == N
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    for image_id in coco.getImgIds():
        i = index.image_to_pos[str(image_id)]
        expected = Counter(names[a["category_id"]] for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])))
        got = {index.class_names[c]: index.count(i, int(c)) for c in index.classes_in(i)}
        assert got == dict(expected), image_id
    assert set(index.categories) == set(CATEGORIES)


# ------------------------------------------------------------------ scene statistics
def test_boxes_inside_and_large_enough(coco_data, small_world):
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco_data["images"]}
    for a in coco_data["annotations"]:
        x, y, w, h = a["bbox"]
        W, H = sizes[a["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= W and y + h <= H
        assert w * h >= 0.05 * W * H
    # So every image is eligible for every class it shows.
    index = read_synthetic(small_world.annotations)
    assert index.eligible_rows(0.05).all()


def test_small_objects_when_asked(tmp_path):
    paths = _render(tmp_path / "small", small_object_rate=0.5)
    data = json.loads(paths.annotations.read_text())
    small = [a for a in data["annotations"] if a["area"] < 0.05 * 320 * 320]
    assert len(small) >= 5
    index = read_synthetic(paths.annotations)
    assert not index.eligible_rows(0.05).all()
    # The tiny extras come on top of the same scenes: the large objects are unchanged.
    plain = json.loads(_render(tmp_path / "plain").annotations.read_text())
    large = [a["bbox"] for a in data["annotations"] if a["area"] >= 0.05 * 320 * 320]
    assert large == [a["bbox"] for a in plain["annotations"]]


def test_scene_statistics(coco_data):
    per_image = Counter()
    rows = Counter()
    for a in coco_data["annotations"]:
        rows[(a["image_id"], a["category_id"])] += 1
    for image_id, _ in rows:
        per_image[image_id] += 1
    assert len(per_image) == N  # no empty scene
    assert set(per_image.values()) <= {1, 2, 3}
    assert Counter(per_image.values()).most_common(1)[0][0] in (1, 2)
    counts = Counter(rows.values())
    assert set(counts) <= {1, 2, 3, 4, 5}
    for k in (1, 2, 3, 4):
        assert counts[k] >= 1, f"no (image, class) with {k} instances"


def test_objects_barely_overlap(coco_data):
    by_image: dict[int, list] = {}
    for a in coco_data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a["bbox"])
    for boxes in by_image.values():
        for j, (x, y, w, h) in enumerate(boxes):
            for px, py, pw, ph in boxes[:j]:
                iw = min(x + w, px + pw) - max(x, px)
                ih = min(y + h, py + ph) - max(y, py)
                if iw > 0 and ih > 0:
                    assert iw * ih <= 0.1 * min(w * h, pw * ph)


def test_images_decode_with_stated_size(coco_data, small_world):
    for im in coco_data["images"]:
        with Image.open(small_world.images / im["file_name"]) as img:
            assert img.format == "JPEG"
            assert img.mode == "RGB"
            assert img.size == (im["width"], im["height"]) == (320, 320)
            img.load()


def test_object_layers_are_cropped_to_their_pixels():
    # Boxes are the layer sizes, so a layer whose drawn pixels touch all four edges means a tight box.
    rng = random.Random(0)
    for obj in synthetic._REGISTRY:
        for _ in range(3):
            layer = synthetic._render_object(obj, 90, 70, rng)
            alpha = np.asarray(layer.getchannel("A"))
            assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any(), obj.name


def test_every_box_holds_its_outline(coco_data, small_world):
    # Backgrounds are light and every object has a dark silhouette outline, so each box must hold dark pixels.
    dark = {}
    for im in coco_data["images"]:
        with Image.open(small_world.images / im["file_name"]) as img:
            dark[im["id"]] = np.asarray(img.convert("L")) < 90
    for a in coco_data["annotations"]:
        x, y, w, h = a["bbox"]
        assert dark[a["image_id"]][y : y + h, x : x + w].any(), a


def test_image_size_is_respected(tmp_path):
    paths = _render(tmp_path / "big", num_images=3, image_size=200)
    data = json.loads(paths.annotations.read_text())
    assert {(im["width"], im["height"]) for im in data["images"]} == {(200, 200)}
    for a in data["annotations"]:
        x, y, w, h = a["bbox"]
        assert x + w <= 200 and y + h <= 200 and w * h >= 0.05 * 200 * 200


# ------------------------------------------------------------------ caching and atomic writes
def test_rerender_is_a_noop(small_world, monkeypatch):
    before = {p: p.stat().st_mtime_ns for p in small_world.root.rglob("*")}

    def fail(*a, **k):
        raise AssertionError("re-rendered an existing world")

    monkeypatch.setattr(synthetic, "_render_scene", fail)
    assert _render(small_world.root) == small_world
    assert {p: p.stat().st_mtime_ns for p in small_world.root.rglob("*")} == before


@pytest.mark.parametrize("change", [{"seed": 1}, {"num_images": N + 1}, {"image_size": 256}, {"small_object_rate": 0.1}])
def test_conflicting_arguments_raise(small_world, change):
    with pytest.raises(ConfigError, match=str(small_world.root)):
        _render(small_world.root, **change)


def test_foreign_folder_raises(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="stuff"):
        _render(tmp_path / "stuff")
    assert (tmp_path / "stuff" / "notes.txt").read_text() == "mine"


def test_empty_folder_is_filled(tmp_path):
    (tmp_path / "empty").mkdir()
    paths = _render(tmp_path / "empty", num_images=2)
    assert paths.annotations.is_file()


def test_failed_render_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    real = synthetic._render_scene

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*a, **k)

    monkeypatch.setattr(synthetic, "_render_scene", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        _render(tmp_path / "w", num_images=5)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "bad", [{"num_images": 0}, {"seed": 1.5}, {"image_size": 16}, {"small_object_rate": 1.5}]
)
def test_bad_arguments(tmp_path, bad):
    with pytest.raises(ConfigError):
        _render(tmp_path / "w", **bad)


def test_read_synthetic_renders_default_world_into_cache(tmp_path):
    index = read_synthetic(None, cache_dir=tmp_path)
    root = tmp_path / f"world-v{WORLD_VERSION}-n{DEFAULT_WORLD_IMAGES}-s0"
    assert (root / "annotations.json").is_file()
    assert index.num_images == DEFAULT_WORLD_IMAGES
    assert index.source == "synthetic"
    assert Path(index.images_dir) == root / "images"
    # Balanced classes, each absent from most images.
    present = np.bincount(index.row_class, minlength=index.num_classes)
    assert present.min() >= 0.6 * present.max()
    assert (present < 0.5 * index.num_images).all()
    # The second call reads the cache.
    assert read_synthetic(cache_dir=tmp_path).num_images == DEFAULT_WORLD_IMAGES
    # A folder works as well as its annotations file, and images default to the folder beside it.
    assert read_synthetic(root, check_images=True).num_images == DEFAULT_WORLD_IMAGES


def test_default_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert synthetic.default_cache_dir() == tmp_path / "mimic"
    assert synthetic.default_world_dir() == tmp_path / "mimic" / f"world-v{WORLD_VERSION}-n{DEFAULT_WORLD_IMAGES}-s0"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert synthetic.default_cache_dir() == Path.home() / ".cache" / "mimic"


def test_cli_world(tmp_path, capsys):
    from mimic.cli import main

    d = tmp_path / "cli-world"
    assert main(["world", "--out", str(d), "--images", "12"]) == 0
    assert (d / "annotations.json").is_file()
    assert len(list((d / "images").glob("*.jpg"))) == 12
    assert "synthetic" in capsys.readouterr().out
