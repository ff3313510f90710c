"""Position and distractor sweeps: twin folders that load and evaluate like any benchmark, verified twins."""

from __future__ import annotations

import pytest
from conftest import build_demo_folder

from mimic.builders.verify import VerificationError
from mimic.eval.data import load_config, row_metadata
from mimic.eval.diagnostics.sweeps import _verified, check_twin, distractor_twins, position_twin, run_sweep

CONFIGS = ("counting_unbalanced", "listing")


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-sweep-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=12)
    return out


def _row(n=6, q=(1, 4)):
    counts = [[2] if k in q else [0] for k in range(n)]
    return {"id": "r", "images": [f"im{k}" for k in range(n)], "image_ids": [f"i{k}" for k in range(n)],
            "per_image_counts": counts, "target_positions": list(q), "num_images": n, "num_query_images": len(q),
            "num_distractors": n - len(q), "answer": "4", "answer_list": [], "question": "How many?"}


def test_position_twins_by_hand():
    row = _row()
    assert position_twin(row, "first")["image_ids"] == ["i1", "i4", "i0", "i2", "i3", "i5"]
    assert position_twin(row, "middle")["image_ids"] == ["i0", "i2", "i1", "i4", "i3", "i5"]
    last = position_twin(row, "last")
    assert last["image_ids"] == ["i0", "i2", "i3", "i5", "i1", "i4"] and last["target_positions"] == [4, 5]
    assert last["images"] == ["im0", "im2", "im3", "im5", "im1", "im4"]
    for pos in ("first", "middle", "last"):
        assert check_twin(row, position_twin(row, pos)) == []


def test_distractor_twins_and_a_bad_twin():
    row = _row()
    twins = distractor_twins(row)
    assert [t["num_distractors"] for t in twins] == [0, 1, 2, 3, 4]
    assert twins[0]["image_ids"] == ["i1", "i4"] and twins[2]["image_ids"] == ["i0", "i1", "i2", "i4"]
    assert [t["id"] for t in twins[:2]] == ["r-d0", "r-d1"] and len(distractor_twins(row, 2)) == 3
    assert all(check_twin(row, t) == [] for t in twins)
    bad = dict(twins[1], per_image_counts=[[0], [2], [0]])  # a query image dropped
    with pytest.raises(VerificationError):
        _verified(row, bad)


def test_sweep_folders_load_and_evaluate(bench, cache, tmp_path):
    from mimic.eval.runner import EvalSettings, run_eval

    summary = run_sweep(str(bench), str(tmp_path / "pos"), "position", configs=list(CONFIGS), limit=3,
                        cache_dir=cache)
    assert summary["source_rows"] == {"counting_unbalanced": 3, "listing": 3}
    src = {r["id"]: r for c in CONFIGS for r in row_metadata(load_config(str(bench), c, cache_dir=cache))}
    src_images = {}
    for c in CONFIGS:
        ds = load_config(str(bench), c, cache_dir=cache)
        for r in ds:
            src_images[r["id"]] = r["images"]
    for pos in ("first", "middle", "last"):
        ds = load_config(str(tmp_path / "pos" / pos), "counting_unbalanced", cache_dir=cache)
        assert len(ds) == 3
        for r in ds:
            s = src[r["id"]]
            assert r["answer"] == s["answer"] and r["num_images"] == s["num_images"]
            q = len(r["target_positions"])
            want = {"first": list(range(q)), "last": list(range(r["num_images"] - q, r["num_images"]))}
            if pos in want:
                assert r["target_positions"] == want[pos]
            # pixels unchanged: every twin image is one of the source's images, byte for byte decoded alike
            src_px = [im.tobytes() for im in src_images[r["id"]]]
            assert sorted(im.tobytes() for im in r["images"]) == sorted(src_px)
    run = run_eval(EvalSettings(data=str(tmp_path / "pos" / "last"), model="oracle", out=str(tmp_path / "run"),
                                progress=False, cache_dir=cache))
    assert run["configs"]["counting_unbalanced"]["score"] == 1.0

    d = run_sweep(str(bench), str(tmp_path / "dis"), "distractors", configs=["counting_unbalanced"], limit=2,
                  max_distractors=3, cache_dir=cache)
    rows = row_metadata(load_config(str(tmp_path / "dis"), "counting_unbalanced", cache_dir=cache))
    assert len(rows) == d["rows"]["distractors"]["counting_unbalanced"]
    by_source: dict[str, list[int]] = {}
    for r in rows:
        by_source.setdefault(r["id"].rsplit("-d", 1)[0], []).append(r["num_distractors"])
    assert all(ks == list(range(len(ks))) and len(ks) <= 4 for ks in by_source.values())
