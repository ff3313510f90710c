"""COCO source: real data against pycocotools, and clear errors for every kind of bad input."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mimic.builders.index import AnnotationIndex
from mimic.builders.sources.coco import read_coco
from mimic.cli import main
from mimic.errors import AnnotationError


def coco_dict():
    return {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 100, "height": 100},
            {"id": 2, "file_name": "2.jpg", "width": 200, "height": 100},
        ],
        "categories": [
            {"id": 5, "name": "dog", "supercategory": "animal"},
            {"id": 3, "name": "cat", "supercategory": "animal"},
            {"id": 9, "name": "cup", "supercategory": "kitchen"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 5, "bbox": [0, 0, 50, 50], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 5, "bbox": [50, 50, 50, 50], "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [10, 10, 20, 10], "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 9, "bbox": [0, 0, 200, 100], "iscrowd": 1},
        ],
    }


def write(tmp_path, data, name="instances.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data))
    return p


def test_reads_counts_sizes_and_readable_categories(tmp_path):
    idx = read_coco(write(tmp_path, coco_dict()), tmp_path)
    assert idx.class_names == ("cat", "dog", "cup")  # category-id order
    assert idx.categories == {"animals": ("cat", "dog"), "kitchenware": ("cup",)}
    dog, cat, cup = idx.class_id("dog"), idx.class_id("cat"), idx.class_id("cup")
    assert idx.count(0, dog) == 2 and idx.count(1, cat) == 1 and idx.count(1, cup) == 0
    assert idx.row_min_box_frac[idx.row(0, dog)] == pytest.approx(0.25)
    assert idx.row_min_box_frac[idx.row(1, cat)] == pytest.approx(200 / 20000)
    assert bool(idx.row_has_crowd[idx.row(1, cup)])
    assert list(idx.widths) == [100, 200] and list(idx.image_ids) == ["1", "2"]


@pytest.mark.parametrize(
    "mutate, field, message",
    [
        (lambda d: d["annotations"][2].update(category_id=77), "annotations[2].category_id", "unknown category id 77"),
        (lambda d: d["annotations"][1].update(image_id=42), "annotations[1].image_id", "unknown image id 42"),
        (lambda d: d["annotations"][0].update(bbox=[60, 0, 50, 50]), "annotations[0].bbox", "outside"),
        (lambda d: d["annotations"][0].update(bbox=[-5, 0, 10, 10]), "annotations[0].bbox", "outside"),
        (lambda d: d["annotations"][3].update(bbox=[0, 0, 1]), "annotations[3].bbox", r"\[x, y, w, h\]"),
        (lambda d: d["annotations"][0].pop("bbox"), "annotations[0].bbox", "missing"),
        (lambda d: d["images"][1].pop("width"), "images[1].width", "missing"),
        (lambda d: d["images"][0].update(height=0), "images[0].width/height", "positive"),
        (lambda d: d.pop("categories"), "categories", "missing"),
        (lambda d: d["images"].append({"id": 1, "file_name": "x.jpg", "width": 1, "height": 1}), "images", "duplicate"),
    ],
)
def test_bad_input_names_file_and_field(tmp_path, mutate, field, message):
    data = coco_dict()
    mutate(data)
    path = write(tmp_path, data, "bad.json")
    with pytest.raises(AnnotationError, match=message) as err:
        read_coco(path)
    assert "bad.json" in str(err.value) and err.value.field == field


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(AnnotationError, match="nope.json.*not found"):
        read_coco(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(AnnotationError, match="broken.json.*malformed JSON"):
        read_coco(broken)


def test_missing_image_files_checked_on_request(tmp_path):
    path = write(tmp_path, coco_dict())
    (tmp_path / "1.jpg").write_bytes(b"x")
    read_coco(path, tmp_path)  # lazy by default
    with pytest.raises(AnnotationError, match="1 image files .* missing.*2.jpg"):
        read_coco(path, tmp_path, check_images=True)


def test_cli_index_writes_parquet_and_nothing_on_error(tmp_path, capsys):
    out = tmp_path / "idx.parquet"
    assert main(["index", "--source", "coco", "--annotations", str(write(tmp_path, coco_dict())), "--out", str(out)]) == 0
    assert AnnotationIndex.load(out).num_images == 2
    assert "classes     3 in 2 categories" in capsys.readouterr().out
    data = coco_dict()
    data["annotations"][0]["category_id"] = 1234
    bad_out = tmp_path / "bad.parquet"
    assert main(["index", "--source", "coco", "--annotations", str(write(tmp_path, data, "b.json")),
                 "--out", str(bad_out)]) == 2
    assert "unknown category id 1234" in capsys.readouterr().err
    assert not bad_out.exists()


@pytest.mark.shared_data
def test_real_coco_counts_match_pycocotools(coco_sample):
    from pycocotools.coco import COCO

    ann_file, images = coco_sample
    idx = read_coco(ann_file, images, check_images=True)
    ref = COCO(str(ann_file))
    cat_name = {c["id"]: c["name"] for c in ref.loadCats(ref.getCatIds())}
    assert set(idx.class_names) == set(cat_name.values())
    assert idx.num_images == len(ref.getImgIds())
    for img_id in ref.getImgIds():
        anns = ref.loadAnns(ref.getAnnIds(imgIds=img_id))
        want = Counter(cat_name[a["category_id"]] for a in anns if not a["iscrowd"])
        crowd = {cat_name[a["category_id"]] for a in anns if a["iscrowd"]}
        i = idx.image_to_pos[str(img_id)]
        got = {idx.class_names[c]: idx.count(i, c) for c in idx.classes_in(i)}
        assert {k: v for k, v in got.items() if v} == dict(want), img_id
        assert {idx.class_names[c] for c in idx.classes_in(i) if idx.row_has_crowd[idx.row(i, c)]} == crowd
        info = ref.loadImgs(img_id)[0]
        assert (idx.widths[i], idx.heights[i]) == (info["width"], info["height"])
    assert idx.categories["animals"][:2] == ("bird", "cat")
