"""AnnotationIndex: aggregation, the eligibility / freeness rules, parquet round trip."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mimic.builders.index import AnnotationIndex
from mimic.errors import AnnotationError


def small_index() -> AnnotationIndex:
    # image 0: 2 cats (big), 1 dog (tiny); image 1: cat crowd + 1 cat; image 2: nothing; image 3: 1 dog depiction
    return AnnotationIndex.from_boxes(
        source="test",
        image_ids=["a", "b", "c", "d"],
        file_names=["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
        widths=[100, 100, 100, 100],
        heights=[50, 50, 50, 50],
        class_names=["cat", "dog", "cow"],
        categories={"animals": ["cat", "dog", "cow"]},
        box_image=np.array([0, 0, 0, 1, 1, 3]),
        box_class=np.array([0, 0, 1, 0, 0, 1]),
        box_frac=np.array([0.2, 0.1, 0.01, 0.3, 0.5, 0.4]),
        box_crowd=np.array([0, 0, 0, 1, 0, 0], bool),
        box_depiction=np.array([0, 0, 0, 0, 0, 1], bool),
    )


def test_aggregates_per_image_and_class():
    idx = small_index()
    assert idx.num_rows == 4  # (0,cat) (0,dog) (1,cat) (3,dog)
    assert idx.count(0, 0) == 2 and idx.count(0, 1) == 1
    assert idx.count(1, 0) == 1  # the crowd box is not an instance
    assert idx.count(2, 0) == 0 and idx.count(2, 1) == 0
    assert idx.row_min_box_frac[idx.row(0, 0)] == pytest.approx(0.1)
    assert bool(idx.row_has_crowd[idx.row(1, 0)]) and not idx.row_has_crowd[idx.row(0, 0)]
    assert bool(idx.row_has_depiction[idx.row(3, 1)])
    assert list(idx.classes_in(0)) == [0, 1] and list(idx.classes_in(2)) == []


def test_eligible_and_free_follow_the_rules():
    idx = small_index()
    assert list(idx.eligible(0)) == [0]  # image 1 has a crowd region of cat
    assert list(idx.eligible(1)) == []  # tiny dog in 0, depiction in 3
    assert list(idx.eligible(1, min_box_frac=0.005)) == [0]  # the tiny dog passes a lower threshold
    assert list(idx.free_images(0)) == [2, 3]
    assert list(idx.free_images(2)) == [0, 1, 2, 3]  # no cow anywhere
    # Image 1 is neither eligible for nor free of cat: never used for cat.
    assert not idx.is_eligible(1, 0) and not idx.is_free(1, 0)


def test_parquet_round_trip_keeps_everything(tmp_path):
    idx = small_index()
    path = idx.save(tmp_path / "sub" / "index.parquet")
    table = pq.read_table(path)
    required = {"image_id", "file_name", "width", "height", "class_name", "category", "count", "min_box_frac", "has_crowd"}
    assert required <= set(table.column_names)
    assert table.num_rows == 5  # 4 rows + the empty image "c" as a null-class row
    back = AnnotationIndex.load(path)
    for name in ("row_image", "row_class", "row_count", "row_min_box_frac", "row_has_crowd", "row_has_depiction",
                 "widths", "heights", "image_ids", "file_names"):
        assert np.array_equal(getattr(back, name), getattr(idx, name)), name
    assert back.class_names == idx.class_names and back.categories == idx.categories
    assert list(back.free_images(0)) == [2, 3]
    assert not list(tmp_path.glob("sub/.*tmp"))  # no temporary file left behind


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(AnnotationError, match="missing.parquet"):
        AnnotationIndex.load(tmp_path / "missing.parquet")
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1]}), plain)
    with pytest.raises(AnnotationError, match="plain.parquet.*mimic index"):
        AnnotationIndex.load(plain)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(AnnotationError, match="junk.parquet"):
        AnnotationIndex.load(junk)


def test_summary_counts():
    s = small_index().summary()
    assert s["images"] == 4 and s["images_without_annotations"] == 1
    assert s["per_class"]["cat"] == {"images": 2, "eligible_images": 1, "instances": 3, "category": "animals"}
    assert s["crowd_rows"] == 1 and s["depiction_rows"] == 1


def test_unknown_category_member_is_rejected():
    with pytest.raises(ValueError, match="horse"):
        AnnotationIndex.from_boxes(
            source="t", image_ids=["a"], file_names=["a.jpg"], widths=[1], heights=[1], class_names=["cat"],
            categories={"animals": ["cat", "horse"]}, box_image=np.zeros(0), box_class=np.zeros(0),
            box_frac=np.zeros(0), box_crowd=np.zeros(0, bool),
        )
