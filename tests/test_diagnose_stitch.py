"""`mimic diagnose stitch` on a tiny random LLaVA-OneVision: every image's pixels sit in its grid cell, the
prompt has one image, both arms are scored side by side with their token counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import build_demo_folder
from PIL import Image

from mimic.eval.diagnostics.stitch import (
    StitchSettings,
    grid_shape,
    run_stitch,
    single_image_question,
    stitch_images,
)
from mimic.eval.predictions import read_predictions
from mimic.tiny import save_tiny

CONFIGS = ("counting_balanced", "listing")


def test_grid_and_cells_keep_every_image():
    assert [grid_shape(n) for n in (1, 2, 3, 4, 5, 10)] == [(1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 4)]
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in
              [(20, 30), (16, 16), (40, 10), (16, 16), (25, 25)]]
    tile = 16
    comp = np.asarray(stitch_images(images, tile))
    assert comp.shape == (2 * tile, 3 * tile, 3)
    for k, im in enumerate(images):
        r, c = divmod(k, 3)
        cell = comp[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
        want = np.asarray(im.resize((tile, tile), Image.Resampling.BICUBIC))
        assert np.array_equal(cell, want), k
    assert not comp[tile:, 2 * tile :].any()  # the empty sixth cell is black


def test_question_for_one_image():
    assert single_image_question("How many cats are there in the images?") == "How many cats are there in the grid image?"
    assert single_image_question("Count the occurrences of dogs in these images.") == (
        "Count the occurrences of dogs in this grid image.")
    assert single_image_question("Which class is repeated in all these images?") == (
        "Which class is repeated in all parts of this grid image?")


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
    for r, m in zip(stitched, multi, strict=True):
        assert r["prompt"].count("<image>") == 1 and "grid image" in r["prompt"]
        assert m["prompt"].count("<image>") == m["controls"]["num_images"]
        # one composite gets anyres patching: more than one base crop, unlike a 5-token single crop
        assert r["info"]["image_tokens"] > 5
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
