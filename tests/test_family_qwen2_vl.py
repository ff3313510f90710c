"""The Qwen2-VL family (`mimic.eval.families.qwen2_vl`) on the tiny random Qwen2-VL: token layout checked
against the grids, encoder size and patch grid against what the processor feeds the encoder, token pooling
(f = 1 is exactly the plain model, f = 4 shortens and generates), and today's attention and pooling analyses
end to end."""

from __future__ import annotations

import json
import math
from itertools import groupby
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import build_demo_folder
from PIL import Image

from mimic.errors import ConfigError
from mimic.eval.families import ANALYSES, FAMILIES
from mimic.eval.models.hf import HFOptions, chat_messages
from mimic.tiny import tiny_qwen2_vl

FAMILY = FAMILIES.get("qwen2_vl")

# Tiny processor bounds: 56*56 .. 112*112 pixels, sides multiples of 28 (mimic/tiny.py). By hand (smart_resize):
# - A 100x60 (w x h): rounds to 112x56 = 6272 px, in bounds -> grid (h, w) 4x8 patches -> 2x4 = 8 tokens;
# - B 30x90: rounds to 28x84 = 2352 < 3136 -> scaled up by sqrt(3136/2700) and ceiled: 56x112 -> 4x2 = 8 tokens;
# - C 112x112: as is -> 4x4 = 16 tokens.
SIZES = {"A": (100, 60), "B": (30, 90), "C": (112, 112)}
TOKENS = {"A": 8, "B": 8, "C": 16}


@pytest.fixture(scope="module")
def tiny():
    model, processor = tiny_qwen2_vl(seed=0, num_layers=2)
    processor.tokenizer.padding_side = "left"
    return model.eval(), processor


def _image(size, seed=0):
    w, h = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _batch(processor, rows, **kwargs):
    """A left-padded processor output; rows: per row, the SIZES keys of its images."""
    texts = [processor.apply_chat_template(chat_messages("how many?", len(r)), add_generation_prompt=True,
                                           tokenize=False) for r in rows]
    images = [[_image(SIZES[k], seed=i) for i, k in enumerate(r)] for r in rows]
    return processor(text=texts, images=images, padding=True, return_tensors="pt", **kwargs)


def test_supports_every_analysis_and_the_paper_tile(tiny):
    model, processor = tiny
    assert FAMILY.analyses == frozenset(ANALYSES)
    for analysis in ANALYSES:
        FAMILY.check(analysis, "x")
    assert FAMILY.stitch_tile(model, processor) == 484


def test_image_ids_follow_the_grids_and_refuse_rows_that_disagree(tiny):
    model, processor = tiny
    batch = _batch(processor, [["A", "C"], ["B"]])
    assert FAMILY.image_token_counts(model, processor, batch) == [[TOKENS["A"], TOKENS["C"]], [TOKENS["B"]]]
    ids = FAMILY.image_ids(model, processor, batch, [2, 1])
    pad = batch["input_ids"] == processor.image_token_id
    assert torch.equal(ids >= 0, pad)
    assert [(ids[0] == k).sum().item() for k in range(2)] == [8, 16] and (ids[1] == 0).sum().item() == 8
    # each image's tokens sit between its own vision_start and vision_end
    start = processor.tokenizer.convert_tokens_to_ids("<|vision_start|>")
    for k in range(2):
        cols = (ids[0] == k).nonzero().flatten()
        assert batch["input_ids"][0, cols[0] - 1] == start and torch.equal(cols, torch.arange(cols[0], cols[-1] + 1))
    with pytest.raises(ConfigError, match=r"qwen2_vl: the token layout has \[2, 1\] images per row, the rows"):
        FAMILY.image_ids(model, processor, batch, [1, 2])
    # planted: the grids of row 0's images swapped (the totals still match; each run is then the wrong length)
    swapped = dict(batch)
    swapped["image_grid_thw"] = batch["image_grid_thw"][[1, 0, 2]]
    with pytest.raises(ConfigError, match=r"row 0: its image token runs are \[8, 16\] long, the image grids give "
                                          r"\[16, 8\]"):
        FAMILY.image_ids(model, processor, swapped, [2, 1])
    # planted: one grid too many for the rows
    extra = dict(batch)
    extra["image_grid_thw"] = torch.cat([batch["image_grid_thw"], batch["image_grid_thw"][:1]])
    with pytest.raises(ConfigError, match="4 images in the batch, the rows' image tokens hold 3"):
        FAMILY.image_ids(model, processor, extra, [2, 1])


@pytest.mark.parametrize("options", [None, HFOptions(max_pixels=56 * 56), HFOptions(min_pixels=84 * 84)],
                         ids=["default", "max_pixels", "min_pixels"])
def test_encoder_size_is_what_the_processor_feeds_the_encoder(tiny, options):
    model, processor = tiny
    kwargs = FAMILY.processor_kwargs(options, processor) if options is not None else {}
    sizes = [(100, 60), (30, 90), (320, 320), (500, 120), (47, 200), (57, 29)]
    got = []
    for size in sizes:
        fed = processor.image_processor([_image(size)], return_tensors="pt", **kwargs.get("images_kwargs", {}))
        t, h, w = fed["image_grid_thw"][0].tolist()
        got.append(FAMILY.encoder_size(processor, size, 2, options))
        assert got[-1] == (w * 14, h * 14), size
    if options is not None:  # the options change the sizes, so ignoring them would fail above
        assert got != [FAMILY.encoder_size(processor, s, 2) for s in sizes]


def test_encoder_size_with_the_real_pixel_bounds():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    ip = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=28 * 28 * 16384)  # Qwen2-VL-7B-Instruct's
    processor = SimpleNamespace(image_processor=ip)
    # 640x426 (a COCO size) -> multiples of 28 nearest: 644x420, grid 30x46 patches -> 15x23 = 345 tokens
    assert FAMILY.encoder_size(processor, (640, 426), 2) == (644, 420)
    assert ip([_image((640, 426))], return_tensors="pt")["image_grid_thw"].tolist() == [[1, 30, 46]]
    # --max-pixels 256*28*28 (the documented budget): 640x426 -> sqrt scale to 200704 px -> 532x364
    assert FAMILY.encoder_size(processor, (640, 426), 2, HFOptions(max_pixels=256 * 28 * 28)) == (532, 364)


def test_patch_grid_maps_each_28px_block_to_its_token(tiny):
    model, processor = tiny
    rows, cols = 3, 5  # 84x140 px = 11760 <= 112*112: fed as is
    arr = np.zeros((rows * 28, cols * 28, 3), np.uint8)
    for r in range(rows):
        for c in range(cols):
            arr[r * 28 : (r + 1) * 28, c * 28 : (c + 1) * 28] = 10 * (r * cols + c + 1)
    grid = FAMILY.patch_grid(model, processor, (cols * 28, rows * 28), 2)
    assert grid.shape == (rows, cols) and grid.encoder_size == (cols * 28, rows * 28)
    pv = processor.image_processor([Image.fromarray(arr)], return_tensors="pt")["pixel_values"]
    # the merger concatenates 4 consecutive patch rows into a token; channel 0 is the first 2 x 14 x 14 values
    tokens = pv.view(rows * cols, 4, -1)[:, :, : 2 * 14 * 14]
    assert torch.all(tokens.amin((1, 2)) == tokens.amax((1, 2)))  # each token sees one block only
    block_of_token = tokens[:, 0, 0].argsort().argsort()  # the block values rise with r * cols + c
    assert torch.equal(block_of_token[grid.index], torch.arange(rows * cols).view(rows, cols))


def test_pooling_factor_1_is_exactly_the_plain_model(tiny):
    model, processor = tiny
    rows = [["A", "C"], ["B"]]
    pad = processor.tokenizer.pad_token_id
    pooling = FAMILY.token_pooling(model, processor, 1)
    pooling.attach()
    try:
        plain = _batch(processor, rows)
        pooled = pooling.shorten(_batch(processor, rows), pad)
        assert set(pooled) == {"input_ids", "attention_mask", "position_ids", "mm_encoder_outputs"}
        assert torch.equal(pooled["input_ids"], plain["input_ids"])
        assert plain["attention_mask"][1, 0] == 0  # row 1 is left-padded
        with torch.no_grad():
            mask = plain["attention_mask"].bool()
            ref, out = model(**plain).logits, model(**pooled).logits
            assert torch.equal(ref[mask], out[mask])
            want = model.generate(**_batch(processor, rows), max_new_tokens=6, do_sample=False)
            got = model.generate(**pooling.shorten(_batch(processor, rows), pad), max_new_tokens=6, do_sample=False)
        assert torch.equal(want, got)
    finally:
        pooling.detach()


def test_pooling_factor_4_pools_features_and_positions(tiny):
    model, processor = tiny
    rows = [["A", "C"], ["B"]]
    plain = _batch(processor, rows)
    pooled = FAMILY.token_pooling(model, processor, 4).shorten(_batch(processor, rows), processor.tokenizer.pad_token_id)
    image = processor.image_token_id
    # ceil(T / 4) tokens per image: A 8 -> 2, C 16 -> 4, B 8 -> 2
    runs = [[len(list(g)) for is_image, g in groupby(row.tolist(), lambda t: t == image) if is_image]
            for row in pooled["input_ids"]]
    assert runs == [[2, 4], [2]]
    assert pooled["attention_mask"].sum(1).tolist() == (plain["attention_mask"].sum(1) - torch.tensor([18, 6])).tolist()
    with torch.no_grad():
        feats = model.model.get_image_features(plain["pixel_values"], plain["image_grid_thw"]).pooler_output
        positions, _ = model.model.get_rope_index(plain["input_ids"], mm_token_type_ids=plain["mm_token_type_ids"],
                                                  image_grid_thw=plain["image_grid_thw"],
                                                  attention_mask=plain["attention_mask"])
    # features: the mean of each group of 4 tokens in raster order (C: 4x4 merged, so one grid row per token)
    got = pooled["mm_encoder_outputs"]["image"].pooler_output
    assert [len(x) for x in got] == [2, 4, 2]
    assert torch.allclose(got[1], feats[1].view(4, 4, -1).mean(1), atol=1e-6)
    # positions of C (row 0): grid row r of the image at (t, h, w) = (c, c + r, c + col) -> (c, c + r, c + 1)
    cols = (plain["input_ids"][0] == image).nonzero().flatten()[8:]
    c = int(positions[0, 0, cols[0]])
    new_cols = (pooled["input_ids"][0] == image).nonzero().flatten()[2:]
    want = torch.tensor([[c] * 4, [c, c + 1, c + 2, c + 3], [c + 1] * 4])
    assert torch.equal(pooled["position_ids"][1:, 0, new_cols], want)
    # the text keeps its positions (the prompt's tail after the last image); row 0 counts the real tokens
    assert torch.equal(pooled["position_ids"][1:, :, -5:], positions[:, :, -5:])
    m = pooled["attention_mask"]
    assert torch.equal(pooled["position_ids"][0], (m.cumsum(-1) - 1).clamp(min=0) * m)
    with torch.no_grad():
        out = model.generate(**pooled, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, pooled["input_ids"].shape[1] + 4)


def test_answer_attention_pieces_map_onto_each_image_grid(tiny):
    """What the answer-attention analysis needs from the family (today's answer_attention.py still assumes
    LLaVA's square grid plus newline): the answer's attention to each image's tokens, laid out by
    `patch_grid`, covers all of the image's tokens, for images of different shapes."""
    model, processor = tiny
    model.set_attn_implementation({"text_config": "eager", "vision_config": "sdpa"})
    try:
        keys = ["A", "B", "C"]
        batch = _batch(processor, [keys])
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=3, do_sample=False)
        prompt = batch["input_ids"].shape[1]
        ids = FAMILY.image_ids(model, processor, batch, [3])[0]
        full = {**batch, "input_ids": out, "attention_mask": torch.ones_like(out),
                "mm_token_type_ids": torch.cat([batch["mm_token_type_ids"],
                                                torch.zeros_like(out[:, prompt:])], dim=1)}
        grabbed = {}
        layer = FAMILY.text_layers(model)[1]
        handle = layer.self_attn.register_forward_hook(
            lambda mod, args, o: grabbed.update(row=o[1][0, :, prompt:].double().mean((0, 1))))
        try:
            with torch.no_grad():
                model(**full, use_cache=False)
        finally:
            handle.remove()
    finally:
        model.set_attn_implementation("sdpa")
    row = grabbed["row"][:prompt]
    assert torch.isclose(grabbed["row"].sum(), torch.tensor(1.0, dtype=torch.float64))
    for k, key in enumerate(keys):
        grid = FAMILY.patch_grid(model, processor, SIZES[key], 3)
        w, h = grid.encoder_size
        assert grid.shape == (h // 28, w // 28) and grid.index.numel() == TOKENS[key]
        tokens = row[ids == k]
        attention_map = tokens[grid.index]
        assert torch.isfinite(attention_map).all() and attention_map.sum() == pytest.approx(float(tokens.sum()))


# --- today's analyses on a saved tiny Qwen2-VL --------------------------------------------------------------

@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("qwen-family-bench") / "bench"
    build_demo_folder(world, out, ("counting_balanced",), num=3)
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from mimic.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-qwen") / "model", seed=0, num_layers=2, family="qwen2_vl")


def test_run_attention_on_qwen2_vl(bench, cache, saved, tmp_path):
    from mimic.eval.diagnostics.attention import AttentionSettings, run_attention

    summary = run_attention(AttentionSettings(data=str(bench), model=f"hf:{saved}", out=str(tmp_path / "att"),
                                              limit=2, progress=False, cache_dir=cache))
    records = [json.loads(line) for line in (tmp_path / "att" / "attention_samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        # counting_balanced: 7 images of 320x320 -> 112x112 -> 4x4 = 16 tokens each
        assert r["num_images"] == 7 and r["image_tokens"] == 7 * 16
        assert [layer["layer"] for layer in r["layers"]] == [0, 1]
        for layer in r["layers"]:
            assert math.isfinite(layer["inter"]) and layer["inter"] + layer["intra"] == pytest.approx(1.0)
            m = torch.tensor(layer["matrix"])
            assert m.shape == (7, 7) and torch.allclose(m.sum(1), torch.ones(7), atol=1e-5)
    assert len(summary["layers"]) == 2 and summary["matrix_num_images"] == 7


def test_run_pooling_on_qwen2_vl(bench, cache, saved, tmp_path):
    from mimic.eval.diagnostics.pooling import PoolingSettings, run_pooling
    from mimic.eval.predictions import read_predictions
    from mimic.eval.runner import EvalSettings, run_eval

    spec, opts = f"hf:{saved}", {"max_new_tokens": 4}
    run_eval(EvalSettings(data=str(bench), model=spec, out=str(tmp_path / "plain"), configs=["counting_balanced"],
                          limit=3, batch_size=2, progress=False, model_options=opts, cache_dir=cache))
    run_pooling(PoolingSettings(data=str(bench), model=spec, out=str(tmp_path / "pool"), configs=["counting_balanced"],
                                factors=[1, 4], arms=["tokens"], limit=3, batch_size=2, model_options=opts,
                                cache_dir=cache, progress=False, bootstrap=20))
    ref = read_predictions(tmp_path / "plain" / "predictions.jsonl")
    f1 = read_predictions(tmp_path / "pool" / "tokens-f1" / "predictions.jsonl")
    assert [(r["id"], r["output"], r["info"]) for r in f1] == [(r["id"], r["output"], r["info"]) for r in ref]
    by_id = {r["id"]: r["info"] for r in ref}
    for r in read_predictions(tmp_path / "pool" / "tokens-f4" / "predictions.jsonl"):
        n, base = r["controls"]["num_images"], by_id[r["id"]]
        assert r["info"]["image_tokens"] == n * 4  # 16 -> ceil(16 / 4)
        assert r["info"]["input_tokens"] == base["input_tokens"] - n * 12
