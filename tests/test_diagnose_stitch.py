"""`mimic diagnose stitch`: every image letterboxed into its grid cell, the cell sized so that the composite's
vision tokens match the multi-image input's (counted by the real processor), the question unchanged, and
stitch.json recording both arms' token counts per sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import build_demo_folder
from PIL import Image

from mimic.eval.diagnostics.stitch import (
    StitchSettings,
    grid_shape,
    letterbox,
    match_cell,
    match_layout,
    run_stitch,
    stitch_images,
)
from mimic.eval.predictions import read_predictions
from mimic.tiny import save_tiny

CONFIGS = ("counting_balanced", "listing")


def test_grid_and_letterboxed_cells_keep_every_image():
    assert [grid_shape(n) for n in (1, 2, 3, 4, 5, 10)] == [(1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 4)]
    rng = np.random.default_rng(0)
    sizes = [(30, 20), (16, 16), (10, 40), (16, 16), (25, 25)]  # (w, h)
    images = [Image.fromarray(rng.integers(1, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]
    cell = 16
    comp = np.asarray(stitch_images(images, cell))
    assert comp.shape == (2 * cell, 3 * cell, 3)
    for k, (im, (w, h)) in enumerate(zip(images, sizes, strict=True)):
        r, c = divmod(k, 3)
        got = comp[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell]
        assert np.array_equal(got, np.asarray(letterbox(im, cell))), k
        # the image's own pixels (never black here) span a box of its aspect ratio: not squashed to the square
        ys, xs = np.nonzero(got.any(axis=2))
        bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        assert max(bw, bh) == cell and abs(bw / bh - w / h) < 2 / min(bw, bh) + 1e-9, (k, bw, bh)
    assert not comp[cell:, 2 * cell :].any()  # the empty sixth cell is black


def test_match_cell_takes_the_closest_count():
    # a staircase like anyres tiling: the count jumps, so the closest side may lie below the first one reaching it
    def tokens_at(c):
        return 100 * (c // 10)

    assert match_cell(tokens_at, 300, start=16) == (30, 300)
    assert match_cell(tokens_at, 290, start=16) == (30, 300)
    assert match_cell(tokens_at, 240, start=64)[1] == 200  # 200 is 40 away, 300 is 60 away
    capped = match_cell(lambda c: min(500, 10 * c), 10_000, start=16)
    assert capped == (50, 500)  # the processor's cap: the smallest side that reaches it


@pytest.fixture(scope="module")
def real_processor():
    from mimic.tiny import real_shape_processor

    return real_shape_processor()


@pytest.mark.parametrize("n", [4, 7])
def test_real_geometry_matches_the_multi_image_tokens(real_processor, n):
    """The real 0.5B processor (384 px crops, anyres_max_9) on 640x426 images: the matched composite's token
    count is within 2% of the multi-image count, where the paper's fixed 384 px tiles are off by far more."""
    from mimic.eval.families import FAMILIES
    from mimic.tiny import real_shape_config

    family = FAMILIES.get("llava_onevision")
    config = real_shape_config(real_processor.tokenizer)

    class Model:  # the family reads only the config
        pass

    Model.config = config

    def count(images):
        text = "<|im_start|>user " + "<image>" * len(images) + "\nHow many?<|im_end|>"
        batch = real_processor(text=[text], images=[images], return_tensors="pt")
        return sum(family.image_token_counts(Model, real_processor, batch)[0])

    multi = count([Image.new("RGB", (640, 426))] * n)
    assert multi == 730 * n
    best = match_layout(lambda size: count([Image.new("RGB", size)]), n, multi, start=384)
    (rows, cols), (cw, ch) = best["grid"], best["cell"]
    assert best["tokens"] == count([Image.new("RGB", (cols * cw, rows * ch))])
    assert abs(best["tokens"] / multi - 1) < 0.02, best  # measured: 2929 / 2920 and 5089 / 5110
    # the paper's fixed 384 px square tiles in the square grid: off by 27% (4 images) and 44% (7 images)
    rows, cols = grid_shape(n)
    fixed = count([Image.new("RGB", (cols * 384, rows * 384))])
    assert abs(fixed / multi - 1) > 0.25


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-stitch-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=6)
    return out


def test_run_stitch_side_by_side(bench, cache, tmp_path):
    tiny = save_tiny(tmp_path / "model", seed=0, num_layers=2)
    settings = StitchSettings(data=str(bench), model=f"hf:{tiny}", out=str(tmp_path / "stitch"),
                              configs=list(CONFIGS), limit=2, batch_size=2, model_options={"max_new_tokens": 4},
                              cache_dir=cache, progress=False, bootstrap=20)
    summary = run_stitch(settings)
    assert list(summary["configs"]) == list(CONFIGS)
    for c in CONFIGS:
        for arm in ("multi", "stitched"):
            s = summary["configs"][c][arm]
            assert s["n"] == 2 and 0 <= s["score"] <= 1 and s["vision_tokens"] > 0
    stitched = read_predictions(tmp_path / "stitch" / "stitched" / "predictions.jsonl")
    multi = read_predictions(tmp_path / "stitch" / "multi" / "predictions.jsonl")
    assert [r["id"] for r in stitched] == [r["id"] for r in multi]
    by_id = {s["id"]: s for s in summary["samples"]}
    for r, m in zip(stitched, multi, strict=True):
        n = m["controls"]["num_images"]
        # the same question; only the n image placeholders became one
        assert r["prompt"] == m["prompt"].replace("<image>" * n, "<image>")
        fed = by_id[r["id"]]
        assert fed["multi_tokens"] == m["info"]["image_tokens"] == 5 * n  # the tiny model: 5 tokens per image
        assert fed["stitched_tokens"] == r["info"]["image_tokens"]  # recorded from what the model got
        assert fed["token_ratio"] == pytest.approx(r["info"]["image_tokens"] / m["info"]["image_tokens"])
    ratios = [s["token_ratio"] for s in summary["samples"]]
    assert summary["token_ratio"] == pytest.approx(sum(ratios) / len(ratios))
    assert {m["id"] for m in summary["mismatch"]} == {s["id"] for s in summary["samples"]
                                                      if abs(s["token_ratio"] - 1) > 0.1}
    assert summary["table6"].splitlines()[0] == "| model | counting_balanced | listing |"
    assert json.loads((tmp_path / "stitch" / "stitch.json").read_text())["table6"] == summary["table6"]
    assert (tmp_path / "stitch" / "stitch.png").stat().st_size > 1000

    # `mimic report` takes the diagnose folder beside an eval run: Table 4 plus a Diagnostics section
    from mimic.cli import main

    assert main(["report", str(tmp_path / "stitch" / "multi"), str(tmp_path / "stitch"),
                 "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Table 4" in md and "## Diagnostics" in md and summary["table6"] in md
    assert (tmp_path / "report" / "diag1_stitch.png").is_file() and "(diag1_stitch.png)" in md


def test_cli_errors_are_one_line(bench, cache, tmp_path, capsys):
    from mimic.cli import main

    assert main(["diagnose", "pooling", "--data", str(bench), "--model", "random", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "needs an hf:<checkpoint> model" in err
    assert main(["diagnose", "attention", "--data", str(bench), "--model", "hf:x", "--where", "num_images=99",
                 "--cache-dir", cache, "--out", str(tmp_path / "a")]) == 2
    assert "no row of the configs" in capsys.readouterr().err
    assert main(["diagnose", "stitch", "--data", str(bench), "--model", "hf:x", "--where", "num_images",
                 "--out", str(tmp_path / "s")]) == 2
    assert "expected COLUMN=VALUE" in capsys.readouterr().err
