"""benchmarks/bench_diagnostics.py (what `make gpu-check` runs) at the tiny size on the CPU: a row per analysis,
each run through the analysis's own code, with its time, memory and the sequence length the model was fed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import COCO_MINI, need

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_diagnostics.py"


def test_bench_diagnostics_measures_every_analysis_on_the_tiny_model(tmp_path):
    out = tmp_path / "figures.json"
    cmd = [sys.executable, str(SCRIPT), "--size", "tiny", "--device", "cpu", "--num-images", "4",
           "--pooling", "tokens:1", "tokens:4", "--coco", str(need(COCO_MINI)), "--work", str(tmp_path / "work"),
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = {r["key"]: r for r in data["rows"]}
    assert sorted(rows) == ["answer-attention layer 2", "attention 4 images", "pooling tokens f=1",
                            "pooling tokens f=4", "stitch both arms"]
    for r in rows.values():
        assert r["seconds_per_sample"] > 0 and r["peak_rss_gb"] > 0 and r["model_rss_gb"] > 0, r
        assert r["peak_rss_gb"] >= r["model_rss_gb"] and r["weights_gb"] > 0 and r["model_loads"] >= 1 and r["tokens"] > 0, r
        assert r["device"] == "cpu" and r["peak_gpu_gb"] is None
    assert rows["attention 4 images"]["images"] == 4 and rows["pooling tokens f=1"]["images"] == 10
    assert rows["stitch both arms"]["model_loads"] == 2  # one per arm
    # the tokens the model was fed, not the prompt's: the tiny model's 10 images of 4 grid tokens + 1 newline
    # pool at f=4 to 1 + 1, so the sequence is 30 tokens shorter
    assert rows["pooling tokens f=1"]["tokens"] - rows["pooling tokens f=4"]["tokens"] == 30
    assert "| attention 4 images | 4 (" in done.stdout

    # a second run keeps the rows it does not measure again
    done = subprocess.run([*cmd[:2], "--size", "tiny", "--device", "cpu", "--analyses", "stitch", "--coco",
                           str(COCO_MINI), "--work", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    again = {r["key"]: r for r in json.loads(out.read_text())["rows"]}
    assert sorted(again) == sorted(rows)
    assert again["attention 4 images"] == rows["attention 4 images"]
    assert again["stitch both arms"]["seconds"] != rows["stitch both arms"]["seconds"]  # measured anew
