"""The InternVL family (`mimic.eval.families.internvl`) on the tiny random InternVL (mimic.tiny: 56 px tiles of
4x4 patches of 14 px, pixel-shuffled to 2x2 = 4 tokens per tile, 1..12 tiles + a thumbnail): token layout,
geometry against what the processor really feeds the encoder, the patch map against planted pixels, token
pooling, and today's attention analysis end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import build_demo_folder
from PIL import Image

from mimic.errors import ConfigError
from mimic.eval.families import FAMILIES
from mimic.eval.models.hf import HFOptions
from mimic.tiny import INTERNVL_TILE, tiny_internvl

FAMILY = FAMILIES.get("internvl")
TILE = INTERNVL_TILE  # 56 px
SIDE = 2  # tokens per tile side
PER_TILE = SIDE * SIDE


@pytest.fixture(scope="module")
def tiny():
    return tiny_internvl(seed=0, num_layers=2, attn_implementation="eager")


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def _batch(processor, rows, options=None):
    """Left-padded processor output of rows of images, each row's images then a question (as the adapter)."""
    texts = []
    for images in rows:
        messages = [{"role": "user", "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": "how many?"}]}]
        texts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    processor.tokenizer.padding_side = "left"
    kwargs = FAMILY.processor_kwargs(options, processor) if options is not None else {}
    return processor(text=texts, images=[list(r) for r in rows], padding=True, return_tensors="pt", **kwargs)


# Tiles per image worked out by hand from got_ocr2's canvas rule (closest aspect among cols x rows <= 12; on a tie
# the larger grid while the image's area exceeds half the grid's): 320x320 ties 1x1/2x2/3x3, 320^2 > 9*56^2/2 ->
# 3x3 + thumbnail = 10 tiles; 640x426 (aspect 1.50) -> 3x2 + thumbnail = 7; 56x56 -> 1x1, no thumbnail = 1.
def test_image_ids_cover_tiles_times_tokens_and_refuse_wrong_rows(tiny):
    model, processor = tiny
    batch = _batch(processor, [[_noise(320, 320), _noise(640, 426, 1)], [_noise(56, 56, 2)]])
    ids = FAMILY.image_ids(model, processor, batch, [2, 1])
    assert FAMILY.image_token_counts(model, processor, batch) == [[10 * PER_TILE, 7 * PER_TILE], [PER_TILE]]
    assert [int((ids[0] == k).sum()) for k in (0, 1)] == [40, 28] and int((ids[1] == 0).sum()) == 4
    assert int((ids[1] == 1).sum()) == 0 and int((ids[1] >= 0).sum()) == 4
    # every image's tokens are exactly the <IMG_CONTEXT> tokens between its <img> and </img>
    token = processor.image_token_id
    assert torch.equal(ids >= 0, batch["input_ids"] == token)
    starts = (batch["input_ids"][0] == processor.start_image_token_id).nonzero().flatten().tolist()
    assert ids[0, starts[0] + 1 : starts[0] + 41].eq(0).all() and ids[0, starts[1] + 1 : starts[1] + 29].eq(1).all()
    with pytest.raises(ConfigError, match=r"\[2, 1\] images per row, the rows have \[1, 1\]"):
        FAMILY.image_ids(model, processor, batch, [1, 1])
    cut = dict(batch)
    cut["input_ids"] = batch["input_ids"].clone()
    cut["input_ids"][0, starts[1] + 29] = token  # its </img> lost: the prompt ends inside the image
    with pytest.raises(ConfigError, match="ends inside an image"):
        FAMILY.image_ids(model, processor, cut, [2, 1])


def _ramps(w: int, h: int) -> Image.Image:
    """Red rises left to right, green top to bottom: which tile holds which part of the image."""
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, np.zeros_like(x)], -1).round().astype(np.uint8))


@pytest.mark.parametrize("max_patches", [None, 4, 1])
@pytest.mark.parametrize("size", [(640, 426), (426, 640), (320, 320), (300, 100), (100, 300), (56, 56), (1000, 60)])
def test_encoder_size_is_the_canvas_the_processor_tiles(tiny, size, max_patches):
    model, processor = tiny
    options = HFOptions(max_patches=max_patches)
    w, h = FAMILY.encoder_size(processor, size, 2, options)
    assert w % TILE == 0 and h % TILE == 0
    cols, rows = w // TILE, h // TILE
    assert cols * rows <= (max_patches or 12)
    pv = _batch(processor, [[_ramps(*size)]], options)["pixel_values"]
    assert pv.shape[0] == cols * rows + (cols * rows > 1), "tiles (and thumbnail) the processor made"
    if cols * rows > 1:
        # tile k sits at row k // cols, column k % cols: red (x) rises along columns, green (y) along rows
        red = pv[: cols * rows, 0].mean((1, 2)).view(rows, cols)
        green = pv[: cols * rows, 1].mean((1, 2)).view(rows, cols)
        assert torch.allclose(red, red[:1].expand_as(red), atol=1e-3) and (red.diff(dim=1) > 0).all()
        assert torch.allclose(green, green[:, :1].expand_as(green), atol=1e-3) and (green.diff(dim=0) > 0).all()
    assert FAMILY.patch_grid(model, processor, size, 2, options).encoder_size == (w, h)


def test_encoder_size_by_hand():
    _, processor = tiny_internvl(seed=0, num_layers=1)
    assert FAMILY.encoder_size(processor, (640, 426), 2) == (3 * TILE, 2 * TILE)  # 1344x896 at 448 px tiles
    assert FAMILY.encoder_size(processor, (426, 640), 3) == (2 * TILE, 3 * TILE)
    assert FAMILY.encoder_size(processor, (640, 426), 2, HFOptions(max_patches=4)) == (2 * TILE, TILE)
    assert FAMILY.encoder_size(processor, (640, 426), 2, HFOptions(max_patches=1)) == (TILE, TILE)
    # the processor's class default crop_to_patches=True wins over the image processor's own False
    assert processor.image_processor.crop_to_patches is False
    assert FAMILY.encoder_size(processor, (320, 320), 1) == (3 * TILE, 3 * TILE)


def _feed_pixels_as_features(model):
    """Hooks that make each token's projected feature the mean pixel (red, normalised) under it: the vision
    tower returns every patch's mean red value, and the projector averages its input channels (the 4 patches
    pixel shuffle put in the token). What a token holds then names the pixels it came from."""
    vt = model.model.vision_tower

    def tower(module, args, kwargs, output):
        pv = kwargs["pixel_values"][:, 0]  # (tiles, H, W), red
        n, p = pv.shape[0], model.config.vision_config.patch_size
        p = p[0] if isinstance(p, (list, tuple)) else p
        means = pv.unfold(1, p, p).unfold(2, p, p).mean((-1, -2)).flatten(1)  # (tiles, patches) raster
        feats = means[..., None].expand(-1, -1, output.last_hidden_state.shape[-1])
        output.last_hidden_state = torch.cat([feats.new_zeros(n, 1, feats.shape[-1]), feats], 1)  # CLS first
        return output

    def projector(module, args, output):
        return args[0].mean(-1, keepdim=True).expand(-1, -1, output.shape[-1])

    return [vt.register_forward_hook(tower, with_kwargs=True),
            model.model.multi_modal_projector.register_forward_hook(projector)]


def _embeds(model, batch) -> torch.Tensor:
    """The language model's input embeddings of a forward pass (image features in place)."""
    got = {}
    handle = model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: got.update(x=kwargs["inputs_embeds"]), with_kwargs=True)
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        handle.remove()
    return got["x"]


def test_patch_grid_maps_planted_pixels_to_their_tokens(tiny):
    model, processor = tiny
    # a 640x426-like image drawn at its own canvas size, 168x112 (3x2 tiles), so the resize keeps every pixel:
    # one distinct red value per token-sized block (28 px), 6 x 4 blocks
    cols, rows, block = 3 * SIDE, 2 * SIDE, TILE // SIDE
    values = (np.arange(rows * cols).reshape(rows, cols) * 10 + 5).astype(np.uint8)
    arr = np.zeros((rows * block, cols * block, 3), np.uint8)
    arr[..., 0] = values.repeat(block, 0).repeat(block, 1)
    image = Image.fromarray(arr)
    other = _noise(56, 56, 3)
    grid = FAMILY.patch_grid(model, processor, image.size, 2)
    assert grid.shape == (rows, cols) and grid.encoder_size == (168, 112)
    # by hand: tile 1 (top row, second column) starts at token 4; token (1, 0) of tile 0 is the third
    assert grid.index[0, 2] == 4 and grid.index[1, 0] == 2 and grid.index[2, 0] == 3 * PER_TILE
    batch = _batch(processor, [[other, image]])
    handles = _feed_pixels_as_features(model)
    try:
        x = _embeds(model, batch)[0, :, 0]
    finally:
        for h in handles:
            h.remove()
    ids = FAMILY.image_ids(model, processor, batch, [2])[0]
    tokens = x[ids == 1]
    assert len(tokens) == 7 * PER_TILE
    mean, std = processor.image_processor.image_mean[0], processor.image_processor.image_std[0]
    expected = (torch.tensor(values, dtype=torch.float32) / 255 - mean) / std
    assert torch.allclose(tokens[grid.index], expected, atol=1e-4)
    # a transposed tile order (column-major) or a grid ignoring tiles would put other blocks there
    assert not torch.allclose(tokens[grid.index.T.reshape(rows, cols)], expected, atol=1e-4)
    # the thumbnail (the whole image in one tile, after the six) is not on the map; its tokens come separately
    thumb = FAMILY.thumbnail_index(model, processor, image.size, 2)
    assert thumb.tolist() == [[24, 25], [26, 27]] and not set(thumb.flatten().tolist()) & set(grid.index.flatten().tolist())
    pv = batch["pixel_values"][1 + 6, 0]  # image 0 is one tile; image 1's seventh tile is its thumbnail
    assert torch.allclose(tokens[thumb], pv.view(SIDE, block, SIDE, block).mean((1, 3)), atol=1e-5)
    assert FAMILY.thumbnail_index(model, processor, other.size, 2) is None


def _generate(model, batch, n: int = 4):
    with torch.no_grad():
        return model.generate(**batch, max_new_tokens=n, do_sample=False, pad_token_id=0)


def test_token_pooling_f1_is_identity_and_f_pools_within_each_tile(tiny):
    model, processor = tiny
    rows = [[_noise(320, 320), _noise(640, 426, 1)], [_noise(56, 56, 2)]]
    pad = processor.tokenizer.pad_token_id
    plain = _batch(processor, rows)
    with torch.no_grad():
        ref = model(**plain).logits
    ref_gen = _generate(model, plain)
    unpooled = {}
    hook = model.model.multi_modal_projector.register_forward_hook(lambda m, a, out: unpooled.update(x=out))
    try:
        _embeds(model, plain)
    finally:
        hook.remove()

    pooling = FAMILY.token_pooling(model, processor, 1)
    pooling.attach()
    try:
        same = pooling.shorten(_batch(processor, rows), pad)
        assert torch.equal(same["input_ids"], plain["input_ids"])
        with torch.no_grad():
            out = model(**same).logits
        gen = _generate(model, same)
    finally:
        pooling.detach()
    assert torch.equal(out, ref) and torch.equal(gen, ref_gen)

    # 4 tokens per tile -> ceil(4/f) per tile: images of 10, 7 and 1 tiles (17 in row 0, 1 in row 1)
    for f, per_tile in ((4, 1), (3, 2)):
        pooling = FAMILY.token_pooling(model, processor, f)
        pooling.attach()
        try:
            short = pooling.shorten(_batch(processor, rows), pad)
            x = _embeds(model, short)
            gen = _generate(model, short)
        finally:
            pooling.detach()
        assert FAMILY.image_token_counts(model, processor, short) == [[10 * per_tile, 7 * per_tile], [per_tile]]
        cut = [17 * (PER_TILE - per_tile), PER_TILE - per_tile]
        assert short["attention_mask"].sum(1).tolist() == (plain["attention_mask"].sum(1) - torch.tensor(cut)).tolist()
        assert short["input_ids"].shape[1] == plain["input_ids"].shape[1] - cut[0]
        # windows inside each tile (f = 3: tokens 0-2 and 3 alone), placed in tile order
        windows = [unpooled["x"][:, :3].mean(1), unpooled["x"][:, 3]] if f == 3 else [unpooled["x"].mean(1)]
        pooled = torch.stack(windows, 1).flatten(0, 1)
        ids = short["input_ids"] == processor.image_token_id
        assert torch.allclose(x[0][ids[0]], pooled[: 17 * per_tile], atol=1e-5)
        assert torch.allclose(x[1][ids[1]], pooled[17 * per_tile :], atol=1e-5)
        assert gen.shape == (2, short["input_ids"].shape[1] + 4)
    # detached: a plain batch runs unpooled again
    with torch.no_grad():
        assert torch.equal(model(**plain).logits, ref)


def test_every_analysis_is_supported_and_the_layers_are_the_text_models(tiny):
    model, processor = tiny
    assert FAMILY.analyses == {"attention", "pooling", "stitch", "answer_attention"}
    for analysis in FAMILY.analyses:
        FAMILY.check(analysis, "tiny")
    assert list(FAMILY.text_layers(model)) == list(model.model.language_model.layers)
    assert FAMILY.stitch_tile(model, processor) == 484


def test_answer_rows_gather_into_the_patch_map(tiny):
    """An attention row over the sequence becomes a (rows, cols) map of an image through image_ids and the grid,
    as answer-attention reads it: its sum is the image's tile tokens, the thumbnail's mass apart."""
    model, processor = tiny
    images = [_noise(320, 320), _noise(640, 426, 1)]
    batch = _batch(processor, [images])
    layers = FAMILY.text_layers(model)
    got = {}
    handle = layers[1].self_attn.register_forward_hook(lambda m, a, out: got.update(w=out[1]))
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        handle.remove()
    row = got["w"][0, :, -1].double().mean(0)  # the last prompt token, heads averaged
    ids = FAMILY.image_ids(model, processor, batch, [2])[0]
    for k, image in enumerate(images):
        tokens = row[ids == k]
        grid = FAMILY.patch_grid(model, processor, image.size, 2)
        thumb = FAMILY.thumbnail_index(model, processor, image.size, 2)
        m = tokens[grid.index]
        assert m.shape == ((6, 6) if k == 0 else (4, 6)) and torch.isfinite(m).all()
        assert float(m.sum() + tokens[thumb].sum()) == pytest.approx(float(tokens.sum()), rel=1e-12)


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("internvl-bench") / "bench"
    build_demo_folder(world, out, ("counting_balanced",), num=4)
    return out


def test_run_attention_on_a_tiny_internvl(bench, cache, tmp_path):
    from mimic.eval.diagnostics.attention import AttentionSettings, run_attention
    from mimic.tiny import save_tiny

    ckpt = save_tiny(tmp_path / "model", seed=0, num_layers=3, family="internvl")
    summary = run_attention(AttentionSettings(data=str(bench), model=f"hf:{ckpt}", out=str(tmp_path / "attn"),
                                              limit=2, progress=False, cache_dir=cache))
    assert [entry["layer"] for entry in summary["layers"]] == [0, 1, 2]
    records = [json.loads(line) for line in (tmp_path / "attn" / "attention_samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for r in records:
        # 320x320 images: 3x3 tiles + thumbnail = 10 tiles x 4 tokens each
        assert r["image_tokens"] == 40 * r["num_images"] and r["num_images"] >= 2
    n = summary["matrix_num_images"]
    assert n == max(r["num_images"] for r in records)
    for entry in summary["layers"]:
        assert all(math.isfinite(v) for v in (entry["inter"], entry["intra"]))
        assert entry["inter"] + entry["intra"] == pytest.approx(1.0, abs=1e-9) and 0 < entry["inter"] < 1
        assert len(entry["matrix"]) == n


def test_run_pooling_on_a_tiny_internvl_f1_is_a_plain_eval(bench, cache, tmp_path):
    from mimic.eval.diagnostics.pooling import PoolingSettings, run_pooling
    from mimic.eval.predictions import read_predictions
    from mimic.eval.runner import EvalSettings, run_eval
    from mimic.tiny import save_tiny

    ckpt = save_tiny(tmp_path / "model", seed=0, num_layers=2, family="internvl")
    common = dict(data=str(bench), model=f"hf:{ckpt}", configs=["counting_balanced"], limit=2, batch_size=2,
                  progress=False, model_options={"max_new_tokens": 3}, cache_dir=cache)
    run_eval(EvalSettings(out=str(tmp_path / "plain"), **common))
    summary = run_pooling(PoolingSettings(out=str(tmp_path / "pool"), factors=[1, 4], arms=["tokens"], bootstrap=10,
                                          **common))
    ref = read_predictions(tmp_path / "plain" / "predictions.jsonl")
    f1 = read_predictions(tmp_path / "pool" / "tokens-f1" / "predictions.jsonl")
    assert [(r["id"], r["output"], r["info"]["input_tokens"]) for r in f1] == \
        [(r["id"], r["output"], r["info"]["input_tokens"]) for r in ref]
    # 320x320 images: 10 tiles of 4 tokens; f = 4 leaves one token per tile
    assert [e["vision_tokens_per_image"] for e in summary["arms"]["tokens"]] == [40, 10]
    for r in read_predictions(tmp_path / "pool" / "tokens-f4" / "predictions.jsonl"):
        assert r["info"]["image_tokens"] == 10 * r["controls"]["num_images"]


def test_real_geometry_448px_tiles_of_256_tokens():
    """The real checkpoints' geometry (448 px tiles, 14 px patches, 256 tokens per tile), no weights: a 640x426
    image goes to a 3x2-tile 1344x896 canvas plus a thumbnail, 7 x 256 = 1792 tokens, a 32 x 48 token map."""
    from types import SimpleNamespace

    from transformers import InternVLConfig
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    _, processor = tiny_internvl(seed=0, num_layers=1)
    processor.image_processor = GotOcr2ImageProcessorPil(size={"height": 448, "width": 448})
    processor.image_seq_length = 256
    model = SimpleNamespace(config=InternVLConfig(vision_config=dict(image_size=[448, 448], patch_size=[14, 14]),
                                                  image_seq_length=256, downsample_ratio=0.5))
    assert FAMILY.encoder_size(processor, (640, 426), 2) == (1344, 896)
    batch = _batch(processor, [[_noise(640, 426)]])
    assert batch["pixel_values"].shape[0] == 7 and FAMILY.image_token_counts(model, processor, batch) == [[1792]]
    grid = FAMILY.patch_grid(model, processor, (640, 426), 2)
    assert grid.shape == (32, 48) and grid.index[0, 16] == 256 and grid.index[16, 0] == 3 * 256
    assert grid.index[1, 0] == 16 and grid.index.max() == 6 * 256 - 1
    assert FAMILY.thumbnail_index(model, processor, (640, 426), 2).shape == (16, 16)
    assert FAMILY.encoder_size(processor, (640, 426), 2, HFOptions(max_patches=6)) == (1344, 896)
    assert FAMILY.encoder_size(processor, (640, 426), 2, HFOptions(max_patches=2)) == (896, 448)
    model.config.image_seq_length = 64  # a processor/config mismatch is refused, not mapped wrongly
    with pytest.raises(ConfigError, match="image_seq_length 64"):
        FAMILY.patch_grid(model, processor, (640, 426), 2)


def test_the_adapter_options_reach_the_geometry(tmp_path):
    from mimic.eval.api import create_model
    from mimic.tiny import save_tiny

    ckpt = save_tiny(tmp_path / "model", seed=0, num_layers=1, family="internvl")
    adapter = create_model(f"hf:{ckpt}", {"max_patches": 4})
    adapter.load()
    assert adapter.family is FAMILY and type(adapter.processor).__name__ == "InternVLProcessorWithoutVideo"
    assert FAMILY.encoder_size(adapter.processor, (640, 426), 2, adapter.options) == (2 * TILE, TILE)
    assert FAMILY.encoder_size(adapter.processor, (640, 426), 2) == (3 * TILE, 2 * TILE)
    grid = FAMILY.patch_grid(adapter.model, adapter.processor, (640, 426), 2, adapter.options)
    assert grid.shape == (SIDE, 2 * SIDE)


def test_run_stitch_on_a_tiny_internvl(bench, cache, tmp_path):
    from mimic.eval.diagnostics.stitch import StitchSettings, run_stitch
    from mimic.eval.predictions import read_predictions
    from mimic.tiny import save_tiny

    ckpt = save_tiny(tmp_path / "model", seed=0, num_layers=2, family="internvl")
    summary = run_stitch(StitchSettings(data=str(bench), model=f"hf:{ckpt}", out=str(tmp_path / "stitch"),
                                        configs=["counting_balanced"], limit=2, batch_size=2, cache_dir=cache,
                                        model_options={"max_new_tokens": 3}, progress=False, bootstrap=10))
    # 7 images of 40 tokens = 280 against one composite: InternVL caps one image at 12 tiles + the thumbnail,
    # 13 x 4 = 52 tokens, so the sizing takes the cap and stitch.json lists the sample as capped
    by_id = {s["id"]: s for s in summary["samples"]}
    for r in read_predictions(tmp_path / "stitch" / "stitched" / "predictions.jsonl"):
        assert r["prompt"].count("<IMG_CONTEXT>") == 1 and r["info"]["image_tokens"] == 52
        assert by_id[r["id"]]["stitched_tokens"] == 52 and by_id[r["id"]]["multi_tokens"] == 280
    assert {m["reason"] for m in summary["mismatch"]} == {"the processor's cap on one image"}
    for r in read_predictions(tmp_path / "stitch" / "multi" / "predictions.jsonl"):
        assert r["info"]["image_tokens"] == 40 * r["controls"]["num_images"]
    assert summary["configs"]["counting_balanced"]["stitched"]["n"] == 2
