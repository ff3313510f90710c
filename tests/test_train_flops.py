"""The paper's Eq. 1 reproduces Table 7; the honest estimate counts what the real run does."""

from __future__ import annotations

import pytest

from mimic.train_trl.flops import (
    KNOWN_TEXT_SHAPES,
    TextShape,
    eq1_full,
    eq1_masked,
    estimate_run,
    format_paper_table,
    paper_table7,
    text_shape_of,
)


def test_table7_from_eq1():
    (n05, d05, full05, masked05, gain05), (n15, d15, full15, masked15, gain15) = paper_table7()
    assert (d05, d15) == (896, 1536)
    assert round(full05 / 1e9) == 58 and round(masked05 / 1e9, 1) == 11.2 and round(gain05, 2) == 0.81
    assert round(full15 / 1e9) == 107 and round(masked15 / 1e9, 1) == 26.7 and round(gain15, 2) == 0.75
    table = format_paper_table()
    assert "58.0B" in table and "11.2B" in table and "26.7B" in table


def test_eq1_terms():
    # one image holding every vision token and no text: the mask changes nothing
    assert eq1_masked(0, 100, 1, 8) == pytest.approx(eq1_full(0, 100, 8))
    # the attention term shrinks by the number of images when there is no text
    att_full = eq1_full(0, 1000, 4) - 1000 * 16
    att_masked = eq1_masked(0, 1000, 10, 4) - 1000 * 16
    assert att_masked == pytest.approx(att_full / 10)


def test_honest_estimate_counts_every_layer_with_gqa_and_the_real_mlp():
    shape = KNOWN_TEXT_SHAPES["llava-hf/llava-onevision-qwen2-0.5b-si-hf"]
    none = estimate_run(shape, [], num_images=10, tokens_per_image=730)
    assert none.masked_flops == pytest.approx(none.full_flops, rel=1e-12)
    half = estimate_run(shape, range(12, 24), num_images=10, tokens_per_image=730)
    every = estimate_run(shape, range(24), num_images=10, tokens_per_image=730)
    assert every.masked_flops < half.masked_flops < half.full_flops
    # half the layers masked saves half of what masking all of them saves
    assert half.full_flops - half.masked_flops == pytest.approx((every.full_flops - every.masked_flops) / 2)
    # far below the paper's 81%: the MLP and projections are untouched by the mask
    assert 0.10 < half.gain < 0.20
    # grouped-query attention: fewer KV heads, fewer FLOPs, same attention pairs
    mha = TextShape(896, 4864, 24, 14, 14, 64)
    assert estimate_run(mha, [], 10, 730).full_flops > none.full_flops
    n = 3 + 7300 + 14.4
    assert none.attention_pairs_causal == pytest.approx(n * (n + 1) / 2)


def test_text_shape_from_a_local_checkpoint(tmp_path):
    from mimic.tiny import save_tiny

    shape = text_shape_of(str(save_tiny(tmp_path / "m", num_layers=3)))
    assert shape == TextShape(64, 128, 3, 4, 2, 16)
    assert text_shape_of("llava-hf/llava-onevision-qwen2-0.5b-si-hf").num_layers == 24  # no download
    with pytest.raises(ValueError, match="cannot read the config"):
        text_shape_of(str(tmp_path / "no" / "such" / "folder"))
