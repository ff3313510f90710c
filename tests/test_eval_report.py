"""Aggregation and reports on a hand-made predictions file: hand-computed scores, plausible intervals,
breakdown counts, Table 4, and the report files."""

from __future__ import annotations

import json
import re

import pytest

from mimic.eval.aggregate import AggregateSettings
from mimic.eval.predictions import PredictionWriter
from mimic.eval.report import REPORT_FILES, write_report
from mimic.eval.runner import load_results


def _record(i, config, task, correct, score=None, parsed="x", details=None, **controls):
    base = {"num_images": 3, "num_query_images": 1, "num_distractors": 2, "num_concepts": 1,
            "total_instances": 2, "category": "shapes", "template_id": 0, "connector_id": 0}
    return {
        "id": f"{config}-{i:03d}", "config": config, "task": task, "prompt": "q", "output": "a",
        "parsed": parsed, "parse_failed": parsed is None, "correct": correct,
        "score": float(correct) if score is None else score, "answer": "a", "target_classes": ["star"],
        "controls": {**base, **controls}, "details": details or {}, "info": {}, "latency_s": 0.1,
        "batch_latency_s": 0.1,
    }


def _hand_made_run(run_dir):
    records = []
    # Common: 40 samples; 3 images: 15/20 right, 4 images: 5/20 right; two answers unparseable (wrong).
    for i in range(40):
        n = 3 if i < 20 else 4
        correct = (i < 15) or (20 <= i < 25)
        parsed = None if i in (38, 39) else "star"
        records.append(_record(i, "common", "common", correct, parsed=parsed, num_images=n))
    # Listing: tp/fp/fn per sample; F1 = 2tp / (2tp + fp + fn).
    for i, (tp, fp, fn) in enumerate([(2, 0, 0), (1, 1, 1), (0, 1, 2), (1, 0, 1)]):
        f1 = 2 * tp / (2 * tp + fp + fn)
        records.append(_record(i, "listing", "listing", fp == fn == 0, score=f1,
                               details={"tp": tp, "fp": fp, "fn": fn}, num_images=2 + i % 2))
    # Counting (balanced): absolute errors, one unparseable answer.
    for i, err in enumerate([0, 0, 0, 1, 2, None, 0, 3, 0, 1]):
        records.append(_record(i, "counting_balanced", "counting", err == 0, parsed=None if err is None else 2,
                               details={"abs_error": err}, num_images=7, num_query_images=1 + i % 2,
                               total_instances=2 + i % 3))
    # Multi-concept counting: every count must be right; class accuracy counts each class.
    records.append(_record(0, "counting_multiconcept", "counting", False,
                           details={"per_class": {"a": True, "b": False}, "abs_error": 0.5}, num_concepts=2))
    records.append(_record(1, "counting_multiconcept", "counting", True,
                           details={"per_class": {"a": True, "b": True, "c": True}, "abs_error": 0.0},
                           num_concepts=3))
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"identity": {"model": "handmade"}, "created": "2025-01-01"}))
    with PredictionWriter(run_dir / "predictions.jsonl") as w:
        w.write_batch(records)
    return records


@pytest.fixture
def results(tmp_path):
    _hand_made_run(tmp_path / "run")
    return load_results(tmp_path / "run", AggregateSettings(resamples=1000, seed=0))


def test_scores_match_hand_computation(results):
    common = results["configs"]["common"]
    assert common["n"] == 40 and common["score"] == 0.5 and common["metric"] == "accuracy"
    assert common["parse_failures"] == 2 and common["parse_failure_rate"] == 0.05
    listing = results["configs"]["listing"]
    assert listing["metric"] == "micro_f1"
    assert listing["score"] == pytest.approx(8 / 14)  # 2*4 / (2*4 + 2 + 4)
    assert listing["metrics"]["mean_f1"]["value"] == pytest.approx((1 + 0.5 + 0 + 2 / 3) / 4)
    assert listing["metrics"]["accuracy"]["value"] == 0.25
    counting = results["configs"]["counting_balanced"]
    assert counting["score"] == 0.5
    assert counting["metrics"]["mae"]["value"] == pytest.approx(7 / 9)  # the unparsed one is left out
    assert counting["parse_failures"] == 1
    multi = results["configs"]["counting_multiconcept"]
    assert multi["score"] == 0.5 and multi["metrics"]["class_accuracy"]["value"] == pytest.approx(4 / 5)
    assert {c["value"]: (c["n"], c["accuracy"]) for c in multi["per_class"]} == {
        "a": (2, 1.0), "b": (2, 0.5), "c": (1, 1.0)}


def test_intervals_are_plausible_and_seeded(results, tmp_path):
    common = results["configs"]["common"]
    # Binomial p = 0.5, n = 40: the normal 95% half-width is 1.96 * sqrt(.25 / 40) = 0.155.
    assert 0.30 < common["ci_low"] < 0.40 < 0.5 < 0.60 < common["ci_high"] < 0.70
    for cell in (c for s in results["configs"].values() for b in s["breakdowns"] for c in b["cells"]):
        assert 0.0 <= cell["ci_low"] <= cell["score"] <= cell["ci_high"] <= 1.0
    again = load_results(tmp_path / "run", AggregateSettings(resamples=1000, seed=0))
    other = load_results(tmp_path / "run", AggregateSettings(resamples=1000, seed=1))
    assert again["configs"] == results["configs"] and again["table4"] == results["table4"]
    # Another seed moves the intervals (the average's is continuous enough to show it), not the scores.
    assert other["table4"]["average"]["ci_low"] != results["table4"]["average"]["ci_low"]
    assert other["configs"]["common"]["score"] == common["score"]


def test_breakdowns_are_returned_as_data(results):
    common = results["configs"]["common"]
    by_images = next(b for b in common["breakdowns"] if b["column"] == "num_images")
    assert [(c["value"], c["n"], c["score"]) for c in by_images["cells"]] == [(3, 20, 0.75), (4, 20, 0.25)]
    assert by_images["cells"][1]["parse_failure_rate"] == 0.1
    columns = {b["column"] for b in common["breakdowns"]}
    assert {"num_images", "num_query_images", "num_distractors", "num_concepts", "total_instances", "category",
            "template_id", "connector_id", "target_class"} <= columns
    counting = results["configs"]["counting_balanced"]
    cross = next(b for b in counting["cross_breakdowns"] if b["columns"] == ["total_instances", "num_query_images"])
    assert sum(c["n"] for c in cross["cells"]) == 10
    # total_instances = 2 + i % 3, spread = 1 + i % 2: i in {0, 6} -> (2, 1); both have error 0.
    cell = next(c for c in cross["cells"] if c["value"] == [2, 1])
    assert (cell["n"], cell["score"]) == (2, 1.0)
    listing = results["configs"]["listing"]
    by_images = next(b for b in listing["breakdowns"] if b["column"] == "num_images")
    # 2 images: samples 0 and 2 -> tp 2, fp 1, fn 2 -> micro F1 4/7; 3 images: samples 1 and 3 -> 4/7 too.
    assert [(c["value"], c["n"]) for c in by_images["cells"]] == [(2, 2), (3, 2)]
    assert by_images["cells"][0]["score"] == pytest.approx(4 / 7)
    assert by_images["cells"][0]["mean_f1"] == pytest.approx(0.5)


def test_table4_and_report_files(results, tmp_path):
    t4 = results["table4"]
    values = {c["name"]: c["value"] for c in t4["columns"]}
    assert values == {"Common": 0.5, "Counting": 0.5, "Odd-One": None, "Listing": pytest.approx(8 / 14)}
    avg = t4["average"]
    assert avg["value"] == pytest.approx((0.5 + 0.5 + 8 / 14) / 3) and avg["complete"] is False
    assert avg["of"] == ["Common", "Counting", "Listing"]
    assert avg["ci_low"] < avg["value"] < avg["ci_high"]
    assert {c["name"]: c["value"] for c in t4["extra"]} == {"Counting (unbalanced)": None,
                                                            "Counting (multi-concept)": 0.5}

    second = json.loads(json.dumps(results))
    second["label"] = "other"
    paths = write_report([results, second], tmp_path / "report")
    assert sorted(p.name for p in paths.values()) == sorted(REPORT_FILES)
    for name in REPORT_FILES[1:]:
        assert (tmp_path / "report" / name).stat().st_size > 5000
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| Task | handmade | handmade 95% CI | other | other 95% CI |" in md
    ci = f"[{100 * results['configs']['common']['ci_low']:.1f}, {100 * results['configs']['common']['ci_high']:.1f}]"
    assert f"| Common | 50.0 | {ci} | 50.0 | {ci} |" in md
    assert "| Odd-One | \u2014 | \u2014 |" in md
    assert re.search(r"\| Avg\. \| 52\.4\* \| \[", md)  # an average over three tasks is marked
    assert "| Listing | 57.1 |" in md
    assert "| 3 | 20 | 75.0 [" in md and "| 4 | 20 | 25.0 [" in md  # the num_images breakdown of Common
    assert "| parse failures | 2/40 (5.0%) |" in md
    assert "Constant in this config:" in md
