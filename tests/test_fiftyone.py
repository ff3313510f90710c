"""FiftyOne: a detection dataset as an annotation source (the real coco-mini images loaded into FiftyOne),
`mimic browse` (grouped dataset, App on 127.0.0.1, a headless screenshot) and `mimic fetch` up to the download."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import COCO_MINI, need

from mimic.cli import main

pytest.importorskip("fiftyone", reason="FiftyOne is installed by `make setup` (the fiftyone extra)")


@pytest.fixture(scope="session", autouse=True)
def fiftyone_db(tmp_path_factory):
    # A database of the tests' own, out of ~/.fiftyone; mongod exits with its last client.
    os.environ["FIFTYONE_DATABASE_DIR"] = str(tmp_path_factory.mktemp("fiftyone-db"))
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    from mimic.builders.sources.fiftyone import import_fiftyone

    return import_fiftyone()


@pytest.fixture(scope="module")
def coco_mini_in_fiftyone(fiftyone_db):
    root = need(COCO_MINI)
    fo = fiftyone_db
    ds = fo.Dataset.from_dir(dataset_type=fo.types.COCODetectionDataset, data_path=str(root / "val2017"),
                             labels_path=str(root / "annotations" / "instances_val2017.json"),
                             label_types=["detections"], label_field="ground_truth", include_id=True,
                             name="coco-mini-test", overwrite=True, persistent=True)
    return ds, root


def test_fiftyone_dataset_indexes_like_the_coco_reader(coco_mini_in_fiftyone, tmp_path, capsys):
    from mimic.builders.index import AnnotationIndex
    from mimic.builders.reading import load_index

    ds, root = coco_mini_in_fiftyone
    coco = load_index("coco", root / "annotations" / "instances_val2017.json", root / "val2017")
    assert main(["index", "--source", "fiftyone", "--dataset", ds.name, "--out", str(tmp_path / "fo.parquet")]) == 0
    assert "wrote" in capsys.readouterr().out
    fo_index = AnnotationIndex.load(tmp_path / "fo.parquet")
    assert fo_index.source == "fiftyone" and fo_index.num_images == coco.num_images == 79
    assert fo_index.class_names == coco.class_names  # COCO's 80, in its order, from dataset.info
    assert fo_index.categories == coco.categories
    # Per (image, class): the same instance counts, crowd flags and smallest boxes as the COCO reader.
    def rows(index):
        return {(str(index.image_ids[i]), index.class_names[c]): (int(n), bool(crowd), float(frac))
                for i, c, n, crowd, frac in zip(index.row_image, index.row_class, index.row_count,
                                                 index.row_has_crowd, index.row_min_box_frac, strict=True)}
    ours, theirs = rows(fo_index), rows(coco)
    assert ours.keys() == theirs.keys() and len(ours) > 200
    for key, (n, crowd, frac) in theirs.items():
        assert ours[key][:2] == (n, crowd), key
        assert ours[key][2] == pytest.approx(frac, rel=1e-3, abs=1e-6), key
    assert int(fo_index.row_has_crowd.sum()) > 0
    # Every image resolves to the real file.
    assert not len(fo_index.missing_files())
    assert fo_index.image_path(0).exists() and np.all(fo_index.widths > 0)


def test_fiftyone_source_errors_are_one_line(fiftyone_db, tmp_path, capsys):
    assert main(["index", "--source", "fiftyone", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--dataset NAME" in capsys.readouterr().err
    assert main(["index", "--source", "fiftyone", "--dataset", "no-such-dataset", "--out",
                 str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "no such FiftyOne dataset" in err and err.count("\n") == 1
