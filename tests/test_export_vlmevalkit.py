"""`mimic export vlmevalkit`: the TSV parsed the way VLMEvalKit parses it, images byte for byte."""

from __future__ import annotations

import ast
import base64
import glob

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import build_demo_folder

from mimic.cli import main

CONFIGS = ["counting_balanced", "listing", "odd_one"]


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("vlm") / "bench"
    build_demo_folder(world, out, CONFIGS, num=6)
    return out


def _parquet_rows(bench):
    rows = {}
    for config in CONFIGS:
        for path in sorted(glob.glob(str(bench / config / "*.parquet"))):
            for r in pq.read_table(path).to_pylist():
                rows[r["id"]] = r
    return rows


def _to_list(cell):
    # VLMEvalKit's `toliststr`: a cell that looks like a list literal is evaluated, anything else is one item.
    s = str(cell)
    return ast.literal_eval(s) if s.startswith("[") and s.endswith("]") else [s]


def test_base64_tsv_parses_like_vlmevalkit_and_images_round_trip(bench, tmp_path, capsys):
    out = tmp_path / "MIMIC_demo.tsv"
    assert main(["export", "vlmevalkit", str(bench), "--out", str(out)]) == 0
    assert "18 rows" in capsys.readouterr().out
    frame = pd.read_csv(out, sep="\t")
    assert list(frame.columns[:4]) == ["index", "question", "answer", "category"]
    assert "image" in frame.columns and "image_path" not in frame.columns
    # No option columns: VLMEvalKit would build a multiple-choice dataset instead of a custom VQA one.
    assert not {"A", "B", "C", "D"} & set(frame.columns)
    assert frame["index"].tolist() == list(range(18))
    rows = _parquet_rows(bench)
    assert sorted(frame["id"]) == sorted(rows)
    multi = 0
    for rec in frame.to_dict("records"):
        gold = rows[rec["id"]]
        assert rec["question"] == gold["question"]
        assert str(rec["answer"]) == gold["answer"]
        assert rec["category"] == gold["config"]
        images = _to_list(rec["image"])
        assert [base64.b64decode(b) for b in images] == [im["bytes"] for im in gold["images"]]
        multi += len(images) > 1
        # The controls survive, list columns as Python literals.
        assert rec["num_images"] == gold["num_images"] == len(images)
        assert ast.literal_eval(rec["target_classes"]) == gold["target_classes"]
        assert ast.literal_eval(rec["per_image_counts"]) == gold["per_image_counts"]
        assert rec["supercategory"] == gold["category"] or (pd.isna(rec["supercategory"]) and not gold["category"])
    assert multi > 0


def test_image_paths_variant_points_at_identical_files(bench, tmp_path):
    out = tmp_path / "sub" / "MIMIC_paths.tsv"
    assert main(["export", "vlmevalkit", str(bench), "--out", str(out), "--image-paths",
                 "--configs", "listing"]) == 0
    frame = pd.read_csv(out, sep="\t")
    assert "image_path" in frame.columns and "image" not in frame.columns
    assert set(frame["category"]) == {"listing"}
    rows = _parquet_rows(bench)
    for rec in frame.to_dict("records"):
        paths = _to_list(rec["image_path"])
        assert all(p.startswith("/") and p.endswith(".jpg") for p in paths)
        assert [open(p, "rb").read() for p in paths] == [im["bytes"] for im in rows[rec["id"]]["images"]]
        assert all("MIMIC_paths_images" in p for p in paths)
    # A second export over the same folder rewrites nothing and gives the same file.
    before = out.read_bytes()
    assert main(["export", "vlmevalkit", str(bench), "--out", str(out), "--image-paths", "--configs", "listing"]) == 0
    assert out.read_bytes() == before


def test_bad_out_and_config_are_one_line_errors(bench, tmp_path, capsys):
    assert main(["export", "vlmevalkit", str(bench), "--out", str(tmp_path / "x.csv")]) == 2
    assert "a path ending in .tsv" in capsys.readouterr().err
    assert main(["export", "vlmevalkit", str(bench), "--out", str(tmp_path / "x.tsv"), "--configs", "lisitng"]) == 2
    err = capsys.readouterr().err
    assert "lisitng" in err and "listing" in err and err.count("\n") == 1
    assert not (tmp_path / "x.tsv").exists()
