"""Benchmark fidelity on real COCO: natural Odd-One scenes, catch-all categories, partial grids, the verifier."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import COCO_MINI, SHARED_DATA, need

from mimic.builders.categories import left_out_categories
from mimic.builders.generate import GridReport, generate
from mimic.builders.index import AnnotationIndex
from mimic.builders.stats import table1
from mimic.builders.tasks import TASKS
from mimic.builders.verify import VerificationError, check_sample
from mimic.cli import main
from mimic.errors import InfeasibleError
from mimic.registry import Registry, UnknownNameError

VAL2017_BOXES = SHARED_DATA / "coco-val2017-boxes" / "instances_val2017.boxes.json.gz"
MINI_ANN = COCO_MINI / "annotations" / "instances_val2017.json"
MINI_IMAGES = COCO_MINI / "val2017"


@pytest.fixture(scope="module")
def val2017():
    from mimic.builders.sources.coco import read_coco

    return read_coco(need(VAL2017_BOXES))


@pytest.fixture(scope="module")
def mini():
    from mimic.builders.sources.coco import read_coco

    need(MINI_ANN)
    return read_coco(MINI_ANN, MINI_IMAGES)


@pytest.mark.shared_data
def test_odd_one_at_paper_scale_is_natural_varied_and_verified(val2017):
    index = val2017
    samples = generate(index, "odd_one", scale="paper", seed=0)
    assert len(samples) == 1000
    identical, scenes, odd = 0, Counter(), Counter()
    for s in samples:
        assert check_sample(index, s) == []
        pos = [index.image_to_pos[i] for i in s.image_ids]
        others = [frozenset(index.classes_in(p).tolist()) for k, p in enumerate(pos) if k not in s.target_positions]
        assert len(others) == s.num_images - 1
        identical += len(set(others)) == 1
        scenes[frozenset().union(*others)] += 1
        odd[s.answer] += 1
    assert identical <= 250, identical
    assert scenes.most_common(1)[0][1] <= 100, scenes.most_common(1)
    col = table1([s.to_row() for s in samples], index)["odd_one"]
    assert col["images"] >= 2000
    assert 20.7 * 0.75 <= col["instances_per_query"] <= 20.7 * 1.25
    # Class balance: every class with eligible images is asked, none far above its share of 12.5.
    assert len(odd) == 80 and max(odd.values()) <= 30
    assert {s.source_split for s in samples} == {"val2017"}


@pytest.mark.shared_data
def test_catch_all_categories_are_left_out_of_listing_by_default(val2017):
    assert set(left_out_categories(val2017)) == {"indoor objects", "outdoor objects"}
    asked = {s.category for s in generate(val2017, "listing", num=300, seed=0)}
    assert asked and not asked & {"indoor objects", "outdoor objects"}
    with_them = {s.category for s in generate(val2017, "listing", num=300, seed=0, include_catch_all=True)}
    assert with_them & {"indoor objects", "outdoor objects"}


@pytest.mark.shared_data
def test_verifier_catches_a_planted_eligibility_threshold(monkeypatch):
    from mimic.builders.sources.coco import read_coco

    original = AnnotationIndex._row_ok
    # The generator's path now admits boxes ten times smaller than the rule allows.
    monkeypatch.setattr(AnnotationIndex, "_row_ok", lambda self, frac: original(self, frac / 10))
    index = read_coco(need(VAL2017_BOXES))  # a fresh index: no eligibility cached before the bug
    with pytest.raises(VerificationError, match="not eligible"):
        generate(index, "counting_unbalanced", num=200, seed=0)


@pytest.mark.shared_data
def test_verifier_catches_a_planted_count(monkeypatch, val2017):
    original = AnnotationIndex.count
    monkeypatch.setattr(AnnotationIndex, "count", lambda self, i, c: original(self, i, c) + (original(self, i, c) > 2))
    with pytest.raises(VerificationError, match="per_image_counts"):
        generate(val2017, "counting_unbalanced", num=100, seed=0)


@pytest.mark.shared_data
def test_partial_grid_redistributes_and_records_skipped_cells(mini):
    report = GridReport("counting_balanced")
    samples = generate(mini, "counting_balanced", num=40, seed=0, report=report)
    assert len(samples) == 40 and report.produced == 40 and report.shortfall == 0
    skipped = [c.controls for c in report.skipped]
    assert {"num_images": 7, "total_instances": 4, "spread": 1, "concepts": 1, "distractors": 6} in skipped
    assert all((s.total_instances, s.num_query_images) != (4, 1) for s in samples)
    with pytest.raises(InfeasibleError, match="counting_balanced: controls .*total_instances.*4"):
        generate(mini, "counting_balanced", num=40, seed=0, strict=True)
    # No cell at all: one error naming the config.
    with pytest.raises(InfeasibleError, match="^common: none of its 1 control cells"):
        generate(mini, "common", num=5, overrides={"num_images": 40})


@pytest.mark.shared_data
def test_build_bench_on_coco_mini_builds_the_feasible_cells(tmp_path, capsys):
    need(MINI_ANN)
    out = tmp_path / "bench"
    args = ["build", "bench", "--coco-annotations", str(MINI_ANN), "--coco-images", str(MINI_IMAGES),
            "--out", str(out), "--configs", "counting_balanced", "odd_one", "--num", "24", "--no-progress"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning: counting_balanced: skipped cell" in err
    record = json.loads((out / ".mimic" / "counting_balanced.json").read_text())
    assert record["num_rows"] == 24 and record["parameters"]["grid"]["skipped_cells"]
    assert record["parameters"]["source_split"] == "val2017"
    card = (out / "README.md").read_text()
    assert "## Control cells not built" in card and "`val2017`" in card
    import pyarrow.parquet as pq

    rows = pq.read_table(next((out / "odd_one").glob("*.parquet")), columns=["source", "source_split"]).to_pylist()
    assert rows and all(r == {"source": "coco", "source_split": "val2017"} for r in rows)
    assert main([*args[:-3], "--num", "24", "--strict", "--no-progress", "--out", str(tmp_path / "strict")]) == 2
    assert "counting_balanced" in capsys.readouterr().err


@pytest.mark.shared_data
def test_generate_and_stats_report_skipped_cells(tmp_path, capsys):
    need(MINI_ANN)
    out = tmp_path / "bal.jsonl"
    assert main(["generate", "--config", "counting_balanced", "--source", "coco", "--annotations", str(MINI_ANN),
                 "--num", "20", "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().err.count("warning: counting_balanced: skipped cell") >= 1
    assert main(["stats", str(out)]) == 0
    assert "skipped {" in capsys.readouterr().out


def test_tasks_live_in_the_project_registry():
    assert isinstance(TASKS, Registry)
    assert TASKS.names() == ["counting", "listing", "common", "odd_one"]
    with pytest.raises(UnknownNameError, match="Did you mean 'odd_one'"):
        TASKS.get("odd-one")


@pytest.mark.shared_data
def test_broad_and_mixed_open_images_nodes_are_left_out(tmp_path):
    from mimic.builders.categories import listing_categories
    from mimic.builders.sources.openimages import read_openimages

    sample = need(SHARED_DATA / "openimages-sample")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,"
                     "IsDepiction,IsInside\na,xclick,/m/0k4j,1,0,1,0,1,0,0,0,0,0\n")
    index = read_openimages(boxes, sample / "class-descriptions-boxable.csv", sample / "bbox_labels_600_hierarchy.json")
    out = left_out_categories(index)
    # Mixed levels: the members are mostly categories themselves (a person names the dog, not the mammal).
    assert {"animal", "vehicle", "kitchenware"} <= set(out)
    # Named broad or mixed nodes.
    assert {"tool", "personal care", "bear", "container"} <= set(out)
    kept = listing_categories(index)
    assert {"land vehicle", "fruit", "musical instrument", "bird", "furniture"} <= set(kept)
    assert not set(out) & set(kept)
    assert set(listing_categories(index, include_catch_all=True)) == set(index.categories)


@pytest.mark.shared_data
def test_a_config_with_no_buildable_cell_fails_alone(tmp_path, capsys):
    need(MINI_ANN)
    out = tmp_path / "bench"
    # Boxes covering 70% of the image: no class has three such images, so Common cannot be built at all.
    args = ["build", "bench", "--coco-annotations", str(MINI_ANN), "--coco-images", str(MINI_IMAGES), "--out",
            str(out), "--configs", "common", "listing", "--num", "6", "--min-box-frac", "0.7", "--no-progress"]
    assert main(args) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: common: none of its 6 control cells")
    assert list((out / "listing").glob("*.parquet")) and not list((out / "common").glob("*.parquet"))
    assert "listing" in (out / "README.md").read_text()
