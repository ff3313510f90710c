"""Every analysis on every registered model family: the tiny random model of each family (`mimic.tiny`) runs
attention, pooling (both arms), stitching and answer attention end to end through the same entry points as
`mimic diagnose`, and each output records what the model was fed, as the family's own geometry says."""

from __future__ import annotations

import pytest
from conftest import build_demo_folder

from mimic.eval.families import ANALYSES, FAMILIES
from mimic.tiny import save_tiny

CONFIG = "counting_balanced"  # 7 images per row


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-families-bench") / "bench"
    build_demo_folder(world, out, (CONFIG,), num=3)
    return out


@pytest.fixture(scope="module", params=FAMILIES.names())
def tiny(request, tmp_path_factory):
    family = request.param
    return family, f"hf:{save_tiny(tmp_path_factory.mktemp(family) / 'model', seed=0, num_layers=2, family=family)}"


def test_every_family_supports_every_analysis():
    for name, family in FAMILIES.items():
        assert family.analyses == frozenset(ANALYSES), name


def test_attention(tiny, bench, cache, tmp_path):
    from mimic.eval.diagnostics.attention import AttentionSettings, run_attention

    name, spec = tiny
    summary = run_attention(AttentionSettings(data=str(bench), model=spec, out=str(tmp_path / "attn"),
                                              configs=[CONFIG], limit=2, cache_dir=cache, progress=False))
    assert summary["samples"] == 2 and summary["num_images"] == {"7": 2}
    assert len(summary["layers"]) == 2
    for layer in summary["layers"]:
        assert layer["inter"] + layer["intra"] == pytest.approx(1.0)
        assert len(layer["matrix"]) == 7
    assert 0 < summary["chance_inter"] < 1


def test_pooling_both_arms(tiny, bench, cache, tmp_path):
    from mimic.eval.diagnostics.pooling import PoolingSettings, run_pooling

    name, spec = tiny
    summary = run_pooling(PoolingSettings(data=str(bench), model=spec, out=str(tmp_path / "pool"), configs=[CONFIG],
                                          factors=[1, 4], limit=2, batch_size=2, cache_dir=cache, progress=False,
                                          model_options={"max_new_tokens": 2}, bootstrap=0))
    tokens = {e["factor"]: e["vision_tokens_per_image"] for e in summary["arms"]["tokens"]}
    assert tokens[4] < tokens[1] / 2, f"{name}: pooling by 4 must shorten each image's tokens"
    pixels = {e["factor"]: e for e in summary["arms"]["pixels"]}
    assert pixels[1]["vision_tokens_per_image"] == tokens[1], "the control keeps the token count"
    assert pixels[4]["vision_tokens_per_image"] == tokens[1]
    # the tiny encoders see few pixels, so rounding moves `kept` a little off 1/4
    assert pixels[4]["kept"] == pytest.approx(0.25, abs=0.04)


def test_stitch(tiny, bench, cache, tmp_path):
    from mimic.eval.diagnostics.stitch import StitchSettings, run_stitch

    name, spec = tiny
    summary = run_stitch(StitchSettings(data=str(bench), model=spec, out=str(tmp_path / "stitch"), configs=[CONFIG],
                                        limit=2, batch_size=2, cache_dir=cache, progress=False,
                                        model_options={"max_new_tokens": 2}, bootstrap=0))
    assert summary["token_ratio"] > 0
    for s in summary["samples"]:
        assert s["multi_tokens"] > 0 and s["stitched_tokens"] > 0


def test_answer_attention(tiny, bench, cache, tmp_path):
    from mimic.eval.diagnostics.answer_attention import AnswerAttentionSettings, run_answer_attention

    name, spec = tiny
    summary = run_answer_attention(AnswerAttentionSettings(
        data=str(bench), models=[spec], out=str(tmp_path / "ans"), configs=[CONFIG], limit=1, layer=1,
        cache_dir=cache, progress=False, model_options={"max_new_tokens": 3}))
    [entry] = summary["models"][spec].values()
    if entry["mass"] is None:  # the random model ended at once: no answer row to read
        pytest.skip(f"{name}: the tiny model's answer was empty")
    assert len(entry["mass"]) == len(entry["map"]) == len(entry["grid"]) == 7
    for grid, m in zip(entry["grid"], entry["map"], strict=True):
        assert [len(m), len(m[0])] == grid
    assert 0 < sum(entry["mass"]) <= 1 + 1e-9
