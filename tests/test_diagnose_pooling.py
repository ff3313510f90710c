"""`mimic diagnose pooling` on a tiny random LLaVA-OneVision: f = 1 equals a plain `mimic eval`, pooling
shortens the sequence by f (ceil per image), the pixel control keeps the token count."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import build_demo_folder
from PIL import Image

from mimic.eval.diagnostics.pooling import (
    PoolingSettings,
    pixel_control,
    pool_tokens,
    run_pooling,
    shrink_placeholders,
)
from mimic.eval.predictions import read_predictions
from mimic.eval.runner import EvalSettings, run_eval
from mimic.tiny import save_tiny

CONFIGS = ("counting_balanced",)


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-pool-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=6)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0, num_layers=2)


def test_pool_tokens_by_hand():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    assert torch.equal(pool_tokens(x, 1), x)
    p = pool_tokens(x, 2)
    assert p.shape == (2, 3, 3)
    assert torch.equal(p[:, 0], (x[:, 0] + x[:, 1]) / 2)
    assert torch.equal(p[:, 2], x[:, 4])  # the last window holds one token
    assert pool_tokens(x, 16).shape == (2, 1, 3) and torch.allclose(pool_tokens(x, 16)[:, 0], x.mean(1))


def test_shrink_placeholders_keeps_text_and_left_padding():
    img, pad = 9, 0
    ids = torch.tensor([[pad, pad, 5, img, img, img, img, 6, 7], [5, img, img, img, img, img, img, 6, 7]])
    mask = (ids != pad).long()
    out, m = shrink_placeholders(ids, mask, img, [[2, 2], [3, 3]], [[1, 1], [2, 2]], pad)
    assert out.tolist() == [[pad, pad, 5, img, img, 6, 7], [5, img, img, img, img, 6, 7]]
    assert m.tolist() == [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]]


def test_pixel_control_keeps_size_and_loses_detail():
    g = torch.Generator().manual_seed(0)
    im = Image.fromarray((torch.rand(32, 32, 3, generator=g) * 255).to(torch.uint8).numpy())
    assert pixel_control(im, 1) is im
    blurred = pixel_control(im, 16)
    assert blurred.size == im.size
    import numpy as np

    a, b = torch.from_numpy(np.asarray(im)).float(), torch.from_numpy(np.asarray(blurred)).float()
    assert (a - b).abs().mean() > 10  # noise does not survive a 4x down-and-up sampling


def test_pooling_runs_invariant_and_token_counts(bench, cache, tiny, tmp_path):
    spec = f"hf:{tiny}"
    opts = {"max_new_tokens": 4}
    plain = tmp_path / "plain"
    run_eval(EvalSettings(data=str(bench), model=spec, out=str(plain), configs=list(CONFIGS), limit=3, batch_size=2,
                          progress=False, model_options=opts, cache_dir=cache))
    settings = PoolingSettings(data=str(bench), model=spec, out=str(tmp_path / "pool"), configs=list(CONFIGS),
                               factors=[1, 2, 4], limit=3, batch_size=2, model_options=opts, cache_dir=cache,
                               progress=False, bootstrap=50)
    summary = run_pooling(settings)
    ref = read_predictions(plain / "predictions.jsonl")
    f1 = read_predictions(tmp_path / "pool" / "tokens-f1" / "predictions.jsonl")
    # the invariant: f = 1 through the hook and the placeholder code is exactly a plain eval
    assert [(r["id"], r["output"]) for r in f1] == [(r["id"], r["output"]) for r in ref]
    assert [r["info"]["input_tokens"] for r in f1] == [r["info"]["input_tokens"] for r in ref]
    by_id = {r["id"]: r for r in ref}
    for f in (1, 2, 4):
        for arm in ("tokens", "pixels"):
            recs = read_predictions(tmp_path / "pool" / f"{arm}-f{f}" / "predictions.jsonl")
            assert len(recs) == 3
            for r in recs:
                n, base = r["controls"]["num_images"], by_id[r["id"]]["info"]
                # tiny model: T = 4 grid tokens + 1 newline per image
                want = n * (math.ceil(4 / f) + 1) if arm == "tokens" else 5 * n
                assert r["info"]["image_tokens"] == want
                assert r["info"]["input_tokens"] == base["input_tokens"] - (base["image_tokens"] - want)
    assert summary["factors"] == [1, 2, 4] and set(summary["arms"]) == {"tokens", "pixels"}
    toks = [e["vision_tokens_per_image"] for e in summary["arms"]["tokens"]]
    assert toks == [5, 3, 2]
    assert [e["vision_tokens_per_image"] for e in summary["arms"]["pixels"]] == [5, 5, 5]
    for e in summary["arms"]["tokens"] + summary["arms"]["pixels"]:
        s = e["configs"]["counting_balanced"]
        assert s["n"] == 3 and 0 <= s["score"] <= 1 and s["ci_low"] <= s["score"] <= s["ci_high"]
    on_disk = json.loads((tmp_path / "pool" / "pooling.json").read_text())
    assert on_disk["arms"]["tokens"][0]["configs"] == summary["arms"]["tokens"][0]["configs"]
    assert (tmp_path / "pool" / "pooling.png").stat().st_size > 1000
    # resumable: a rerun generates nothing new and gives the same summary
    again = run_pooling(settings)
    assert again == summary
