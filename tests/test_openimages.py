"""Open Images source: box CSVs in the official format with the real class list and hierarchy.

The real metadata (class list, hierarchy, the 9-row example CSV) lives in ../shared/data/openimages-sample;
tests that need it are skipped, saying why, when that folder is absent. Box CSVs are written here.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from mimic.builders.index import AnnotationIndex
from mimic.builders.sources.openimages import (
    BOX_COLUMNS,
    class_names_from_descriptions,
    missing_images,
    read_class_descriptions,
    read_hierarchy,
    read_openimages,
)
from mimic.cli import main
from mimic.errors import AnnotationError

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openimages-sample"
ROOT_MID = "/m/0bl9f"
# Real MIDs (class-descriptions-boxable.csv).
CAR, BUS, TORTOISE, TREE, BIRD, DOG = "/m/0k4j", "/m/01bjv", "/m/011k07", "/m/07j7r", "/m/015p6", "/m/0bt9lr"


@pytest.fixture(scope="module")
def meta() -> tuple[Path, Path]:
    if not SAMPLE.is_dir():
        pytest.skip(
            f"real Open Images metadata not found at {SAMPLE} (only present beside the dev/CI checkout)"
        )
    return SAMPLE / "class-descriptions-boxable.csv", SAMPLE / "bbox_labels_600_hierarchy.json"


def box_row(image, mid, x0, x1, y0, y1, group=0, depiction=0, source="xclick", occluded=0):
    return [image, source, mid, "1", f"{x0:.6f}", f"{x1:.6f}", f"{y0:.6f}", f"{y1:.6f}",
            str(occluded), "0", str(group), str(depiction), "0"]  # fmt: skip


def write_boxes(path: Path, rows, header=BOX_COLUMNS) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def random_rows(mids, n_images=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_images):
        image = f"{rng.integers(2**63):016x}"
        for _box in range(int(rng.integers(1, 12))):
            mid = mids[int(rng.integers(len(mids)))]
            x0, y0 = rng.random(2) * 0.8
            w, h = rng.random(2) * 0.2 + 1e-3
            rows.append(box_row(image, mid, x0, x0 + w, y0, y0 + h, group=int(rng.random() < 0.1),
                                depiction=int(rng.random() < 0.1), source=str(rng.choice(["xclick", "activemil"])),
                                occluded=int(rng.integers(-1, 2))))  # fmt: skip
    rng.shuffle(rows)  # the reader must not rely on the file's order
    return rows


def recompute(csv_path: Path, names: dict[str, str]) -> dict[tuple[str, str], dict]:
    """Plain Python: (image id, class name) -> count of non-crowd boxes, smallest fraction, flags."""
    out: dict = defaultdict(lambda: {"count": 0, "min": float("inf"), "crowd": False, "depiction": False})
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            e = out[(r["ImageID"], names[r["LabelName"]])]
            crowd = r["IsGroupOf"] == "1"
            e["count"] += 0 if crowd else 1
            frac = (float(r["XMax"]) - float(r["XMin"])) * (float(r["YMax"]) - float(r["YMin"]))
            e["min"] = min(e["min"], frac)
            e["crowd"] |= crowd
            e["depiction"] |= r["IsDepiction"] == "1"
    return dict(out)


def index_rows(idx: AnnotationIndex) -> dict[tuple[str, str], dict]:
    out = {}
    for i in range(idx.num_images):
        for j in range(*idx.rows_of(i).indices(idx.num_rows)):
            out[(idx.image_ids[i], idx.class_names[idx.row_class[j]])] = {
                "count": int(idx.row_count[j]),
                "min": float(idx.row_min_box_frac[j]),
                "crowd": bool(idx.row_has_crowd[j]),
                "depiction": bool(idx.row_has_depiction[j]),
            }
    return out


def assert_same_rows(got: dict, want: dict):
    assert got.keys() == want.keys()
    for key, w in want.items():
        g = got[key]
        assert (g["count"], g["crowd"], g["depiction"]) == (w["count"], w["crowd"], w["depiction"]), key
        assert g["min"] == pytest.approx(w["min"], rel=1e-6, abs=1e-7), key


# ---------------------------------------------------------------------------------------------- real metadata
@pytest.mark.shared_data
def test_real_example_csv(meta):
    classes, hierarchy = meta
    idx = read_openimages(SAMPLE / "annotations-bbox-example.csv", classes, hierarchy)
    assert idx.source == "openimages" and idx.num_classes == 601
    assert idx.class_names[:3] == ("tortoise", "container", "magpie")  # class-file order, lower-cased
    assert list(idx.image_ids) == ["000026e7ee790996", "000062a39995e348", "0000c64e1253d68f"]
    assert list(idx.file_names) == [f"{i}.jpg" for i in idx.image_ids]
    assert list(idx.widths) == [0, 0, 0] and list(idx.heights) == [0, 0, 0]
    tree, car, vehicle = idx.class_id("tree"), idx.class_id("car"), idx.class_id("vehicle")
    assert idx.count(0, tree) == 0 and bool(idx.row_has_crowd[idx.row(0, tree)])  # three group-of boxes
    assert idx.count(2, car) == 3 and not idx.is_free(2, vehicle) and idx.is_free(2, tree)
    names = class_names_from_descriptions(read_class_descriptions(classes))
    assert_same_rows(index_rows(idx), recompute(SAMPLE / "annotations-bbox-example.csv", names))


@pytest.mark.shared_data
def test_counts_and_flags_match_plain_python(meta, tmp_path):
    classes, hierarchy = meta
    descriptions = read_class_descriptions(classes)
    mids = list(descriptions)[::7]
    csv_path = write_boxes(tmp_path / "boxes.csv", random_rows(mids, seed=1))
    idx = read_openimages(csv_path, classes, hierarchy)
    names = class_names_from_descriptions(descriptions)
    want = recompute(csv_path, names)
    assert_same_rows(index_rows(idx), want)
    assert list(idx.image_ids) == sorted({k[0] for k in want})
    assert idx.row_has_crowd.any() and idx.row_has_depiction.any() and (idx.row_count == 0).any()


@pytest.mark.shared_data
def test_min_box_frac_and_eligibility(meta, tmp_path):
    classes, hierarchy = meta
    rows = [
        box_row("a", CAR, 0.0, 0.3, 0.0, 0.4),  # 0.12
        box_row("a", CAR, 0.5, 0.6, 0.5, 0.7),  # 0.02: the smallest car decides
        box_row("a", BUS, 0.0, 1.0, 0.0, 1.0),  # whole image
        box_row("b", CAR, 0.1, 0.5, 0.1, 0.5),  # 0.16
        box_row("b", BUS, 0.1, 0.5, 0.1, 0.5, group=1),  # crowd: never eligible
        box_row("c", CAR, 0.1, 0.5, 0.1, 0.5, depiction=1),  # a depiction: not eligible
    ]
    idx = read_openimages(write_boxes(tmp_path / "b.csv", rows), classes, hierarchy)
    car, bus = idx.class_id("car"), idx.class_id("bus")
    assert idx.row_min_box_frac[idx.row(0, car)] == pytest.approx(0.02)
    assert idx.row_min_box_frac[idx.row(0, bus)] == pytest.approx(1.0)
    assert list(idx.eligible(car, 0.05)) == [1]
    assert list(idx.eligible(car, 0.01)) == [0, 1]
    assert list(idx.eligible(bus, 0.05)) == [0]
    assert idx.count(1, bus) == 0 and bool(idx.row_has_crowd[idx.row(1, bus)])
    assert bool(idx.row_has_depiction[idx.row(2, car)]) and idx.count(2, car) == 1


@pytest.mark.shared_data
def test_categories_from_the_real_hierarchy(meta, tmp_path):
    classes, hierarchy = meta
    idx = read_openimages(
        write_boxes(tmp_path / "b.csv", [box_row("a", CAR, 0, 1, 0, 1)]), classes, hierarchy
    )
    cats = idx.categories
    assert len(cats) == 76  # the 77 nodes with subcategories, less the root "Entity"
    assert "entity" not in cats and "entity" not in idx.class_names
    assert cats["vehicle"] == ("land vehicle", "watercraft", "aircraft")
    assert set(cats["animal"]) == {"bird", "invertebrate", "mammal", "reptile", "fish", "shellfish"}
    assert {"car", "bus", "bicycle", "motorcycle", "truck"} <= set(cats["land vehicle"])
    assert cats["turtle"] == ("tortoise", "sea turtle")
    assert cats["person"] == ("man", "woman", "boy", "girl")  # its Part "human body" is not a subcategory
    assert "human body" not in cats  # only Parts below it
    assert cats["ball"] == (
        "football",
        "cricket ball",
        "volleyball",
        "tennis ball",
        "rugby ball",
    )  # listed twice
    for members in cats.values():
        assert len(set(members)) == len(members) and all(m in idx.class_to_id for m in members)
    assert idx.class_category["car"] == "land vehicle"


@pytest.mark.shared_data
def test_read_hierarchy_parents_children_parts(meta):
    classes, hierarchy = meta
    descriptions = read_class_descriptions(classes)
    h = read_hierarchy(hierarchy, descriptions)
    assert h.root == ROOT_MID and h.nodes[0] == ROOT_MID and len(h.nodes) == 602
    assert set(h.nodes) - {ROOT_MID} == set(descriptions)
    assert h.parents[TORTOISE] == ("/m/09dzg",)  # Turtle
    teddy = next(m for m, n in descriptions.items() if n == "Teddy bear")
    assert {descriptions[p] for p in h.parents[teddy]} == {"Toy", "Bear"}
    assert h.parents["/m/07yv9"] == (ROOT_MID,)  # Vehicle is a top-level class
    human_body = next(m for m, n in descriptions.items() if n == "Human body")
    assert descriptions[h.part_of[human_body][0]] == "Person" and human_body not in h.children
    assert "Human eye" in {descriptions[m] for m in h.parts[human_body]}


@pytest.mark.shared_data
def test_class_descriptions_real(meta):
    classes, _ = meta
    d = read_class_descriptions(classes)
    assert len(d) == 601 and d[TORTOISE] == "Tortoise" and ROOT_MID not in d
    names = class_names_from_descriptions(d)
    assert len(set(names.values())) == 601 and names[TORTOISE] == "tortoise"


# ---------------------------------------------------------------------------------------------- formats
@pytest.mark.shared_data
def test_unsorted_input_extra_and_optional_columns(meta, tmp_path):
    classes, hierarchy = meta
    rows = random_rows([CAR, BUS, TREE, BIRD], n_images=12, seed=3)
    base = read_openimages(write_boxes(tmp_path / "a.csv", sorted(rows)), classes, hierarchy)
    shuffled = read_openimages(write_boxes(tmp_path / "b.csv", rows), classes, hierarchy)
    assert index_rows(base) == index_rows(shuffled)
    # The oidv6 train file adds XClick columns; the index needs neither Source nor Confidence.
    extra = [*BOX_COLUMNS, "XClick1X"]
    wide = read_openimages(
        write_boxes(tmp_path / "c.csv", [r + ["-1"] for r in rows], extra), classes, hierarchy
    )
    assert index_rows(wide) == index_rows(base)
    keep = [k for k, c in enumerate(BOX_COLUMNS) if c not in ("Source", "Confidence", "IsInside")]
    narrow = write_boxes(
        tmp_path / "d.csv", [[r[k] for k in keep] for r in rows], [BOX_COLUMNS[k] for k in keep]
    )
    assert index_rows(read_openimages(narrow, classes, hierarchy)) == index_rows(base)


def test_duplicate_display_names_are_disambiguated(tmp_path):
    cls = tmp_path / "classes.csv"
    cls.write_text("/m/a,Bat\n/m/b,bat\n/m/c,Ball\n/m/d,Sports equipment\n")
    names = class_names_from_descriptions(read_class_descriptions(cls))
    assert names == {"/m/a": "bat (/m/a)", "/m/b": "bat (/m/b)", "/m/c": "ball", "/m/d": "sports equipment"}
    hier = tmp_path / "h.json"
    hier.write_text(json.dumps({"LabelName": "/m/root", "Subcategory": [
        {"LabelName": "/m/d", "Subcategory": [{"LabelName": "/m/a"}, {"LabelName": "/m/c"}],
         "Part": [{"LabelName": "/m/b"}]}]}))  # fmt: skip
    idx = read_openimages(write_boxes(tmp_path / "b.csv", [box_row("x", "/m/b", 0, 1, 0, 1)]), cls, hier)
    assert idx.class_names == ("bat (/m/a)", "bat (/m/b)", "ball", "sports equipment")
    assert idx.categories == {"sports equipment": ("bat (/m/a)", "ball")}
    assert idx.count(0, idx.class_id("bat (/m/b)")) == 1


# ---------------------------------------------------------------------------------------------- errors
GOOD = [box_row("img1", CAR, 0.1, 0.2, 0.1, 0.2), box_row("img1", BUS, 0.1, 0.5, 0.2, 0.6),
        box_row("img2", CAR, 0.0, 1.0, 0.0, 1.0), box_row("img3", TREE, 0.3, 0.4, 0.3, 0.9)]  # fmt: skip


def with_cell(row_no: int, column: str, value: str):
    rows = [list(r) for r in GOOD]
    rows[row_no - 1][BOX_COLUMNS.index(column)] = value
    return rows


@pytest.mark.parametrize(
    "rows, field, words",
    [
        (with_cell(3, "YMin", "abc"), "YMin", ["row 3", "'abc'"]),
        (with_cell(2, "XMax", ""), "XMax", ["row 2", "malformed"]),
        (with_cell(4, "IsGroupOf", "yes"), "IsGroupOf", ["row 4", "'yes'"]),
        (with_cell(2, "IsDepiction", "2"), "IsDepiction", ["row 2", "not 0, 1 or -1"]),
        (with_cell(2, "XMax", "1.2"), "XMax", ["row 2", "outside [0, 1]"]),
        (with_cell(4, "YMin", "-0.1"), "YMin", ["row 4", "outside [0, 1]"]),
        (with_cell(1, "XMin", "nan"), "XMin", ["row 1", "outside [0, 1]"]),
        (with_cell(1, "XMin", "0.9"), "XMin", ["row 1", "XMax = 0.2"]),
        (with_cell(4, "YMin", "0.95"), "YMin", ["row 4", "YMax = 0.9"]),
        (
            with_cell(2, "LabelName", "/m/nonexistent"),
            "LabelName",
            ["'/m/nonexistent'", "1 rows", "row 2", "class-descriptions-boxable.csv"],
        ),
        (with_cell(1, "ImageID", ""), "ImageID", ["row 1", "empty ImageID"]),
    ],
)
@pytest.mark.shared_data
def test_box_csv_errors_name_file_field_and_row(meta, tmp_path, rows, field, words):
    classes, hierarchy = meta
    path = write_boxes(tmp_path / "bad.csv", rows)
    with pytest.raises(AnnotationError) as e:
        read_openimages(path, classes, hierarchy)
    assert e.value.path == str(path) and e.value.field == field
    msg = str(e.value)
    assert str(path) in msg and repr(field) in msg
    for w in words:
        assert w in msg


@pytest.mark.shared_data
def test_unknown_labels_are_counted(meta, tmp_path):
    classes, hierarchy = meta
    rows = GOOD + [box_row("img9", "/m/zzz", 0, 1, 0, 1), box_row("img9", "/m/yyy", 0, 1, 0, 1)]
    with pytest.raises(
        AnnotationError, match=r"2 rows have a LabelName .* \(2 distinct unknown labels\)"
    ) as e:
        read_openimages(write_boxes(tmp_path / "b.csv", rows), classes, hierarchy)
    assert e.value.field == "LabelName" and "'/m/zzz'" in str(e.value)


@pytest.mark.shared_data
def test_missing_columns_are_named(meta, tmp_path):
    classes, hierarchy = meta
    keep = [k for k, c in enumerate(BOX_COLUMNS) if c not in ("XMax", "IsGroupOf")]
    path = write_boxes(
        tmp_path / "b.csv", [[r[k] for k in keep] for r in GOOD], [BOX_COLUMNS[k] for k in keep]
    )
    with pytest.raises(AnnotationError) as e:
        read_openimages(path, classes, hierarchy)
    assert str(path) in str(e.value) and "XMax" in e.value.field and "IsGroupOf" in e.value.field
    assert "missing columns ['XMax', 'IsGroupOf']" in str(e.value)


@pytest.mark.shared_data
def test_ragged_row_is_located(meta, tmp_path):
    classes, hierarchy = meta
    path = write_boxes(tmp_path / "b.csv", GOOD[:2] + [GOOD[2][:-1]] + GOOD[3:])
    with pytest.raises(AnnotationError, match=r"row 3 \(line 4\).*Expected 13 columns, got 12") as e:
        read_openimages(path, classes, hierarchy)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "not found"),
        ("", "empty file"),
        ("\n", "empty file"),
        (",".join(BOX_COLUMNS) + "\n", "no box rows"),
    ],
)
@pytest.mark.shared_data
def test_missing_and_empty_box_files(meta, tmp_path, content, words):
    classes, hierarchy = meta
    path = tmp_path / "boxes.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AnnotationError, match=words) as e:
        read_openimages(path, classes, hierarchy)
    assert e.value.path == str(path)


@pytest.mark.shared_data
def test_hierarchy_with_unknown_mid(meta, tmp_path):
    classes, hierarchy = meta
    tree = json.loads(hierarchy.read_text())
    tree["Subcategory"][3]["Subcategory"].append({"LabelName": "/m/not_a_class"})
    bad = tmp_path / "hierarchy.json"
    bad.write_text(json.dumps(tree))
    with pytest.raises(AnnotationError) as e:
        read_openimages(write_boxes(tmp_path / "b.csv", GOOD), classes, bad)
    assert e.value.path == str(bad) and e.value.field == "LabelName"
    assert "/m/not_a_class" in str(e.value) and "Subcategory[3].Subcategory[6].LabelName" in str(e.value)


@pytest.mark.parametrize(
    "content, field, words",
    [
        (None, None, "not found"),
        ("", None, "empty file"),
        ("{not json", None, "malformed JSON"),
        ('{"Subcategory": []}', "LabelName", "root"),
        ('{"LabelName": "/m/r", "Subcategory": {"LabelName": "/m/a"}}', "Subcategory", "list"),
        (
            '{"LabelName": "/m/r", "Subcategory": [{"Label": "/m/a"}]}',
            "Subcategory[0].LabelName",
            "no LabelName",
        ),
    ],
)
def test_bad_hierarchy_files(tmp_path, content, field, words):
    path = tmp_path / "h.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AnnotationError, match=words) as e:
        read_hierarchy(path, ["/m/a"])
    assert e.value.path == str(path) and e.value.field == field


@pytest.mark.parametrize(
    "content, field, words",
    [
        (None, None, "not found"),
        ("", None, "empty file"),
        ("/m/a,Apple\n/m/a,Other\n", "MID", "line 2: duplicate MID /m/a"),
        ("/m/a,Apple\n/m/b\n", "MID", "line 2: expected 2 fields"),
        ("/m/a,\n", "name", "empty display name"),
    ],
)
def test_bad_class_descriptions(tmp_path, content, field, words):
    path = tmp_path / "classes.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AnnotationError, match=words) as e:
        read_class_descriptions(path)
    assert e.value.path == str(path) and e.value.field == field


def test_class_descriptions_tolerate_a_header(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text('LabelName,DisplayName\n/m/a,Apple\n/m/b,"Kitchen, dining"\n')
    assert read_class_descriptions(path) == {"/m/a": "Apple", "/m/b": "Kitchen, dining"}


# ---------------------------------------------------------------------------------------------- images
@pytest.mark.shared_data
def test_images_check_missing_and_sizes(meta, tmp_path):
    from PIL import Image

    classes, hierarchy = meta
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 24), "red").save(images / "img1.jpg")
    Image.new("RGB", (20, 40), "blue").save(images / "img3.jpg")
    csv_path = write_boxes(tmp_path / "b.csv", GOOD)
    idx = read_openimages(csv_path, classes, hierarchy, images_dir=images)
    assert missing_images(idx) == ["img2"]
    assert list(idx.widths) == [32, 0, 20] and list(idx.heights) == [24, 0, 40]
    assert idx.image_path(0) == images / "img1.jpg"
    no_sizes = read_openimages(csv_path, classes, hierarchy, images_dir=images, image_sizes=False)
    assert list(no_sizes.widths) == [0, 0, 0]
    with pytest.raises(AnnotationError, match=r"1 of 3 images .* missing, e\.g\. \['img2\.jpg'\]") as e:
        read_openimages(csv_path, classes, hierarchy, images_dir=images, check_images=True)
    assert e.value.path == str(images) and e.value.field == "ImageID"
    Image.new("RGB", (8, 8)).save(images / "img2.jpg")
    assert read_openimages(csv_path, classes, hierarchy, images_dir=images, check_images=True).num_images == 3
    with pytest.raises(AnnotationError, match="images folder not found"):
        read_openimages(csv_path, classes, hierarchy, images_dir=tmp_path / "nope", check_images=True)
    with pytest.raises(AnnotationError, match="no images folder"):
        missing_images(read_openimages(csv_path, classes, hierarchy))


# ---------------------------------------------------------------------------------------------- save, CLI
@pytest.mark.shared_data
def test_save_load_round_trip(meta, tmp_path):
    classes, hierarchy = meta
    idx = read_openimages(write_boxes(tmp_path / "b.csv", random_rows([CAR, BUS, DOG, TORTOISE], seed=5)),
                          classes, hierarchy)  # fmt: skip
    back = AnnotationIndex.load(idx.save(tmp_path / "oi.parquet"))
    assert back.source == "openimages"
    assert back.class_names == idx.class_names and back.categories == idx.categories
    assert list(back.image_ids) == list(idx.image_ids) and list(back.file_names) == list(idx.file_names)
    for name in ("widths", "heights", "row_image", "row_class", "row_count", "row_min_box_frac",
                 "row_has_crowd", "row_has_depiction"):  # fmt: skip
        np.testing.assert_array_equal(getattr(back, name), getattr(idx, name), err_msg=name)


@pytest.mark.shared_data
def test_cli_index(meta, tmp_path, capsys):
    classes, hierarchy = meta
    csv_path = write_boxes(tmp_path / "b.csv", GOOD)
    out = tmp_path / "out" / "oi.parquet"
    argv = ["index", "--source", "openimages", "--annotations", str(csv_path),
            "--oi-classes", str(classes), "--oi-hierarchy", str(hierarchy), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "openimages" in capsys.readouterr().out
    idx = AnnotationIndex.load(out)
    assert idx.num_images == 3 and idx.count(0, idx.class_id("car")) == 1
    bad = write_boxes(tmp_path / "bad.csv", with_cell(2, "XMax", "7"))
    argv[argv.index(str(csv_path))] = str(bad)
    assert main(argv) == 2
    assert "XMax" in capsys.readouterr().err
