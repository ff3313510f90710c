"""Matched position and distractor sweeps: twins by hand, folders from built rows and from the annotations,
verification (a planted bad distractor is caught), and the paired comparison of `mimic report`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import COCO_MINI, build_demo_folder, need

from mimic.builders.twins import distractor_twin, position_twin, skip_reason
from mimic.builders.verify import VerificationError
from mimic.cli import main
from mimic.errors import ConfigError, DataError
from mimic.eval.aggregate import AggregateSettings
from mimic.eval.data import load_config, row_metadata
from mimic.eval.diagnostics.sweeps import _verified, check_twin, run_sweep, write_twin_folders
from mimic.eval.paired import compare_sweeps

CONFIGS = ("counting_unbalanced", "listing")


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-sweep-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=12)
    return out


def _row(n=6, q=(1, 4)):
    counts = [[2] if k in q else [0] for k in range(n)]
    return {"id": "r", "task": "counting", "images": [f"im{k}" for k in range(n)],
            "image_ids": [f"i{k}" for k in range(n)], "per_image_counts": counts, "target_positions": list(q),
            "num_images": n, "num_query_images": len(q), "num_distractors": n - len(q), "answer": "4",
            "answer_list": [], "question": "How many?"}


def test_position_twins_by_hand():
    row = _row()
    first, middle, last = (position_twin(row, p) for p in ("first", "middle", "last"))
    assert first["image_ids"] == ["i1", "i4", "i0", "i2", "i3", "i5"] and first["query_start"] == 0
    assert middle["image_ids"] == ["i0", "i2", "i1", "i4", "i3", "i5"] and middle["query_start"] == 2
    assert last["image_ids"] == ["i0", "i2", "i3", "i5", "i1", "i4"] and last["target_positions"] == [4, 5]
    assert last["images"] == ["im0", "im2", "im3", "im5", "im1", "im4"]
    assert [t["id"] for t in (first, middle, last)] == ["r-first", "r-middle", "r-last"]
    assert {t["base_id"] for t in (first, middle, last)} == {"r"}
    for t in (first, middle, last):
        assert check_twin(row, t) == []
    # two distractors: the middle block has one on each side, not first's order
    two = _row(n=4, q=(0, 3))
    assert position_twin(two, "middle")["image_ids"] == ["i1", "i0", "i3", "i2"]
    # one distractor: middle would be first, so the row is no base row
    assert "fewer than 2 distractors" in skip_reason(_row(n=3, q=(0, 2)), "position")
    assert skip_reason(two, "position") is None


def test_a_twin_with_the_wrong_level_or_a_dropped_query_image_fails():
    row = _row()
    middle = position_twin(row, "middle")
    with pytest.raises(VerificationError, match="not the 'first' block"):
        _verified(row, dict(middle, sweep_level="first"))
    twins = [distractor_twin(row, k) for k in range(5)]
    assert [t["num_distractors"] for t in twins] == [0, 1, 2, 3, 4]
    assert twins[0]["image_ids"] == ["i1", "i4"] and twins[2]["image_ids"] == ["i0", "i1", "i2", "i4"]
    assert [t["sweep_level"] for t in twins] == ["0", "1", "2", "3", "4"]
    assert all(check_twin(row, t) == [] for t in twins)
    with pytest.raises(VerificationError):  # a query image dropped
        _verified(row, dict(twins[1], per_image_counts=[[0], [2], [0]]))
    with pytest.raises(VerificationError, match="sweep_level"):
        _verified(row, dict(twins[1], sweep_level="2"))


def test_sweeps_from_built_rows(bench, cache, tmp_path):
    from mimic.eval.predictions import read_predictions
    from mimic.eval.runner import EvalSettings, run_eval

    summary = run_sweep(str(bench), str(tmp_path / "pos"), "position", configs=list(CONFIGS), limit=3,
                        cache_dir=cache)
    assert summary["base_rows"] == {"counting_unbalanced": 3, "listing": 3}
    assert summary["levels"] == ["first", "middle", "last"]
    src = {r["id"]: r for c in CONFIGS for r in row_metadata(load_config(str(bench), c, cache_dir=cache))}
    orders = {}
    for pos in ("first", "middle", "last"):
        ds = load_config(str(tmp_path / "pos" / pos), "counting_unbalanced", cache_dir=cache)
        assert len(ds) == 3
        for r in ds:
            s = src[r["base_id"]]
            assert r["id"] == f"{r['base_id']}-{pos}" and r["sweep_level"] == pos
            assert r["answer"] == s["answer"] and r["num_images"] == s["num_images"] and s["num_distractors"] >= 2
            assert r["query_start"] == r["target_positions"][0]
            orders[(r["base_id"], pos)] = r["image_ids"]
            src_px = sorted(im.tobytes() for im in load_config(str(bench), "counting_unbalanced", cache_dir=cache)
                            .filter(lambda x, b=r["base_id"]: x["id"] == b)[0]["images"])
            assert sorted(im.tobytes() for im in r["images"]) == src_px  # pixels unchanged
    for base in {b for b, _ in orders}:
        assert len({tuple(orders[(base, p)]) for p in ("first", "middle", "last")}) == 3
    run = run_eval(EvalSettings(data=str(tmp_path / "pos" / "middle"), model="oracle", out=str(tmp_path / "run"),
                                progress=False, cache_dir=cache))
    assert run["configs"]["counting_unbalanced"]["score"] == 1.0
    recs = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert {r["sweep"]["sweep_level"] for r in recs} == {"middle"}
    assert {r["sweep"]["base_id"] for r in recs if r["config"] == "listing"} <= set(src)

    d = run_sweep(str(bench), str(tmp_path / "dis"), "distractors", configs=["counting_unbalanced"],
                  levels=[0, 1, 3], cache_dir=cache)
    rows = row_metadata(load_config(str(tmp_path / "dis"), "counting_unbalanced", cache_dir=cache))
    by_level: dict[str, set] = {}
    for r in rows:
        by_level.setdefault(r["sweep_level"], set()).add(r["base_id"])
        assert r["num_distractors"] == int(r["sweep_level"])
    assert sorted(by_level, key=int) == ["0", "1", "3"]
    assert by_level["0"] == by_level["1"] == by_level["3"]
    assert len(by_level["0"]) == d["base_rows"]["counting_unbalanced"] > 0
    n_source = len(src) // 2
    assert sum(d["skipped"]["counting_unbalanced"].values()) == n_source - len(by_level["0"])
    assert all(src[b]["num_distractors"] >= 3 for b in by_level["0"])
    with pytest.raises(ConfigError, match="--levels"):
        run_sweep(str(bench), str(tmp_path / "x"), "distractors", cache_dir=cache)


def _generate(tmp_path, name, extra):
    return main(["generate", "--config", "counting_unbalanced", "--num", "8", "--no-progress", "--out",
                 str(tmp_path / name), *extra])


def test_generated_distractor_sweep_goes_beyond_the_rows(world, tmp_path, cache):
    from mimic.builders.verify import check_sample
    from mimic.eval.runner import EvalSettings, run_eval

    paths, index = world
    src = ["--source", "synthetic", "--annotations", str(paths.annotations), "--images", str(paths.images),
           "--distractors", "1"]
    assert _generate(tmp_path, "t.jsonl", [*src, "--variant", "distractors", "--levels", "0", "1", "3", "5"]) == 0
    assert _generate(tmp_path, "u.jsonl", [*src, "--variant", "distractors", "--levels", "5", "3", "1", "0"]) == 0
    assert (tmp_path / "t.jsonl").read_bytes() == (tmp_path / "u.jsonl").read_bytes()  # deterministic
    twins = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "t.jsonl.sweep.json").read_text())
    assert summary["levels"] == ["0", "1", "3", "5"] and len(summary["twin_seeds"]) == len(twins) // 4
    for t in twins:
        assert check_sample(index, t) == [] and t["num_distractors"] == int(t["sweep_level"])
    by_base: dict[str, dict] = {}
    for t in twins:
        by_base.setdefault(t["base_id"], {})[t["sweep_level"]] = t
    for levels in by_base.values():
        assert sorted(levels, key=int) == ["0", "1", "3", "5"]
        # the base sample had 1 distractor: levels 3 and 5 hold drawn ones, nested in each other
        assert set(levels["3"]["image_ids"]) < set(levels["5"]["image_ids"])
        assert set(levels["1"]["image_ids"]) < set(levels["3"]["image_ids"])
        assert levels["0"]["answer"] == levels["5"]["answer"]
    out = tmp_path / "folder"
    s = write_twin_folders(str(tmp_path / "t.jsonl"), str(paths.images), str(out))
    assert s["levels"] == ["0", "1", "3", "5"] and s["generated"]["twin_seeds"] == summary["twin_seeds"]
    ds = load_config(str(out), "counting_unbalanced", cache_dir=cache)
    assert len(ds) == len(twins) and {r["base_id"] for r in ds} == set(by_base)
    run = run_eval(EvalSettings(data=str(out), model="oracle", out=str(tmp_path / "run"), progress=False,
                                cache_dir=cache))
    assert run["configs"]["counting_unbalanced"]["score"] == 1.0


def test_planted_bad_distractor_is_caught(world, monkeypatch):
    from mimic.builders.generate import generate
    from mimic.builders.sampling import ImagePicker
    from mimic.builders.twin_samples import sample_twins

    _, index = world
    rows = [s.to_row() for s in generate(index, "counting_unbalanced", num=3, overrides={"distractors": 1})]
    target = index.class_to_id[rows[0]["target_classes"][0]]

    def draw_with_target(self, rng, classes, k, taken):  # the bug: an image holding the target class
        holders = [int(i) for i in self.present(target) if int(i) not in taken]
        return holders[:k]

    monkeypatch.setattr(ImagePicker, "draw_free", draw_with_target)
    with pytest.raises(VerificationError, match="per_image_counts|target_positions"):
        sample_twins(index, rows[:1], "distractors", [0, 1, 3])


def test_generated_sweeps_from_coco_mini(tmp_path):
    root = need(COCO_MINI)
    src = ["--source", "coco", "--annotations", str(root / "annotations" / "instances_val2017.json"),
           "--images", str(root / "val2017")]
    assert _generate(tmp_path, "d.jsonl", [*src, "--distractors", "2", "--variant", "distractors",
                                           "--levels", "0", "2", "6"]) == 0
    assert _generate(tmp_path, "p.jsonl", [*src, "--distractors", "3", "--variant", "position"]) == 0
    d = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert {t["sweep_level"] for t in d} == {"0", "2", "6"} and max(t["num_distractors"] for t in d) == 6
    p = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    starts = {}
    for t in p:
        starts.setdefault(t["base_id"], {})[t["sweep_level"]] = t["query_start"]
    assert all(s["first"] == 0 < s["middle"] < s["last"] for s in starts.values())
    assert main(["diagnose", "sweep", "--twins", str(tmp_path / "p.jsonl"), "--images", str(root / "val2017"),
                 "--out", str(tmp_path / "pos")]) == 0
    for pos in ("first", "middle", "last"):
        rows = row_metadata(load_config(str(tmp_path / "pos" / pos), "counting_unbalanced"))
        assert {r["base_id"] for r in rows} == set(starts) and {r["sweep_level"] for r in rows} == {pos}


def test_cli_refuses_unmatched_options(tmp_path, capsys):
    cases = [
        (["generate", "--config", "counting_unbalanced", "--out", str(tmp_path / "x.jsonl"), "--variant",
          "distractors"], "--levels"),
        (["generate", "--config", "counting_unbalanced", "--out", str(tmp_path / "x.jsonl"), "--variant",
          "position", "--levels", "1", "2"], "first, middle, last"),
        (["diagnose", "sweep", "--data", "a", "--twins", "b", "--out", str(tmp_path)], "one of them"),
    ]
    for argv, says in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.jsonl").exists()


def _rec(base, level, correct, config="counting_unbalanced", variant="distractors"):
    return {"id": f"{base}-{level}", "config": config, "task": "counting", "correct": correct,
            "score": float(correct), "parse_failed": False, "details": {},
            "sweep": {"base_id": base, "sweep_variant": variant, "sweep_level": level, "query_start": None}}


def test_paired_differences_on_a_known_run():
    rng = np.random.default_rng(0)
    right = rng.random(40) < 0.6
    same = [_rec(f"b{i}", lv, bool(right[i])) for i in range(40) for lv in ("0", "4")]
    (e,) = compare_sweeps([("m", same)], AggregateSettings(resamples=500))
    (d,) = e["differences"]
    assert (d["difference"], d["ci_low"], d["ci_high"], d["n_pairs"]) == (0.0, 0.0, 0.0, 40)
    assert e["scores"][0]["ci_low"] < e["scores"][0]["score"] < e["scores"][0]["ci_high"]  # rows do vary
    # 10 of the 40 base rows lose their right answer at 8 distractors: -25 points, and the pairing keeps
    # the interval off 0 although the unpaired intervals of the two levels overlap
    drop = set(np.flatnonzero(right)[:10].tolist())
    worse = same + [_rec(f"b{i}", "8", bool(right[i]) and i not in drop) for i in range(40)]
    worse += [_rec("extra", "0", True)]  # at one level only: left out of every level
    (e,) = compare_sweeps([("m", worse)], AggregateSettings(resamples=500))
    assert e["levels"] == ["0", "4", "8"] and e["n_base_ids"] == 40 and e["unpaired_base_ids"] == 1
    d8 = e["differences"][1]
    assert d8["level"] == "8" and d8["difference"] == pytest.approx(-0.25)
    assert (d8["better"], d8["worse"]) == (0, 10) and d8["ci_high"] < 0 < e["differences"][0]["ci_high"] + 1e-12
    s0, s8 = e["scores"][0], e["scores"][2]
    assert s8["ci_high"] > s0["ci_low"]  # unpaired intervals overlap
    # position levels in their order, models apart
    pos = [_rec(f"b{i}", lv, True, variant="position") for i in range(5) for lv in ("last", "first", "middle")]
    entries = compare_sweeps([("m1", pos), ("m2", pos)], AggregateSettings(resamples=0))
    assert [x["levels"] for x in entries] == [["first", "middle", "last"]] * 2
    assert [x["model"] for x in entries] == ["m1", "m2"] and entries[0]["differences"][0]["ci_low"] is None
    with pytest.raises(DataError, match="two of the runs"):
        compare_sweeps([("m", pos), ("m", pos)])


def test_report_has_the_matched_sweep(bench, cache, tmp_path):
    from mimic.eval.runner import EvalSettings, run_eval

    run_sweep(str(bench), str(tmp_path / "pos"), "position", configs=["counting_unbalanced"], cache_dir=cache)
    runs = []
    for pos in ("first", "middle", "last"):
        run_eval(EvalSettings(data=str(tmp_path / "pos" / pos), model="oracle", out=str(tmp_path / pos),
                              progress=False, cache_dir=cache))
        runs.append(str(tmp_path / pos))
    assert main(["report", *runs, "--out", str(tmp_path / "report")]) == 0
    (e,) = json.loads((tmp_path / "report" / "sweeps.json").read_text())["sweeps"]
    base = {r["base_id"] for r in row_metadata(load_config(str(tmp_path / "pos" / "first"), "counting_unbalanced",
                                                           cache_dir=cache))}
    assert e["levels"] == ["first", "middle", "last"] and e["n_base_ids"] == len(base) > 0
    assert [d["difference"] for d in e["differences"]] == [0.0, 0.0]  # the oracle is right everywhere
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Matched sweeps" in text and (tmp_path / "report" / "sweeps.png").stat().st_size > 0
    assert "not a matched sweep" in text
