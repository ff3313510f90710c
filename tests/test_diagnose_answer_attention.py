"""`mimic diagnose answer-attention`: the rows that chose the answer, maps over the image's own area (checked
against the processor's pixels), and a run on two tiny random LLaVA-OneVisions (shapes, shares, resume, plot)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import build_demo_folder

from mimic.errors import ConfigError
from mimic.eval.diagnostics.answer_attention import (
    AnswerAttentionSettings,
    answer_rows,
    answer_tokens,
    image_map,
    run_answer_attention,
)
from mimic.eval.families import FAMILIES
from mimic.tiny import save_tiny, tiny_llava_onevision


def _batch(processor, images):
    messages = [{"role": "user", "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": "q?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=[images], return_tensors="pt")


def test_answer_tokens_stop_before_the_end_of_sequence():
    assert answer_tokens(torch.tensor([5, 6, 2, 0, 0]), 2).tolist() == [5, 6]
    assert answer_tokens(torch.tensor([5, 9, 6, 2]), [2, 9]).tolist() == [5]
    assert answer_tokens(torch.tensor([5, 6, 7]), 2).tolist() == [5, 6, 7]  # budget reached, no eos
    assert answer_tokens(torch.tensor([2, 0]), 2).tolist() == []


@pytest.mark.parametrize("forced", [[65], [65, 66, 67]])
def test_the_rows_are_those_that_chose_the_answer(forced):
    from PIL import Image

    model, processor = tiny_llava_onevision(seed=0, num_layers=3, attn_implementation="eager")
    g = torch.Generator().manual_seed(0)
    images = [Image.fromarray((torch.rand(16, 16, 3, generator=g) * 255).to(torch.uint8).numpy()) for _ in range(2)]
    batch = _batch(processor, images)
    P, n = batch["input_ids"].shape[1], len(forced)
    layer = 1
    calls: list[int] = []
    handle = model.get_output_embeddings().register_forward_hook(lambda m, a, out: calls.append(out.shape[1]))
    try:
        rows = answer_rows(model, batch, torch.tensor(forced), FAMILIES.get("llava_onevision").text_layers(model)[layer])
    finally:
        handle.remove()
    assert calls == [1]  # no logits over the sequence
    # directly: the full attention of prompt + answer; the token at P + t is chosen by row P + t - 1
    ids = torch.cat([batch["input_ids"], torch.tensor([forced])], dim=1)
    with torch.inference_mode():
        att = model(**{**batch, "input_ids": ids, "attention_mask": torch.ones_like(ids)},
                    output_attentions=True).attentions[layer][0].double().mean(0)
    assert rows.shape == (n, P)
    assert torch.allclose(rows, att[P - 1 : P - 1 + n, :P], atol=1e-6)
    # and not the rows of the answer tokens themselves (one behind)
    assert not torch.allclose(rows[-1], att[P - 1 + n, :P], atol=1e-3)


def test_a_hot_patch_lands_where_it_is_on_a_non_square_image():
    """A 640x426 image with a bright spot through the real 0.5B processor: the patch that holds the spot in
    the pixels the encoder gets is made the only hot token; the map over the image's own area must put it
    where the spot is in the image, and its rows/columns must be exactly the patches whose centre pixel is
    image, not padding."""
    from types import SimpleNamespace

    from PIL import Image

    from mimic.tiny import REAL_PATCH_SIZE, real_shape_config, real_shape_processor

    processor = real_shape_processor()
    model = SimpleNamespace(config=real_shape_config(processor.tokenizer))
    w, h, x, y = 640, 426, 500, 380
    image = Image.new("RGB", (w, h), (0, 0, 255))
    image.paste((255, 255, 255), (x - 12, y - 12, x + 12, y + 12))
    pixels = _batch(processor, [image, image])["pixel_values"][0, 0]  # the encoder's input of image 0
    side, ps = 27, REAL_PATCH_SIZE
    patches = pixels[:, : side * ps, : side * ps].reshape(3, side, ps, side, ps)
    white = (patches > 0.9).all(0).float().sum((1, 3))  # (side, side) white pixels per patch
    pr, pc = divmod(int(white.argmax()), side)
    tokens = torch.zeros(side * side + 1, dtype=torch.float64)  # 729 patches, then the newline
    tokens[pr * side + pc] = 1.0
    grid = FAMILIES.get("llava_onevision").patch_grid(model, processor, (w, h), 2)
    assert grid.shape == (18, 27)  # 426 / 640 of 27 rows
    # the kept rows/columns are the patches whose centre pixel shows the image (blue), not the grey padding
    centres = pixels[:, ps // 2 :: ps, ps // 2 :: ps][:, :side, :side]
    is_image = centres[2] > 0.9
    kept = torch.zeros(side, side, dtype=torch.bool)
    kept.view(-1)[grid.index.flatten()] = True
    assert torch.equal(kept, is_image | (white > 0))
    cropped = image_map(tokens, grid.index)
    rows, cols = cropped.shape
    r, c = divmod(int(cropped.argmax()), cols)
    assert float(cropped.sum()) == 1.0
    # within one cell of the spot's place in the image; the uncropped 27 x 27 map stretched over the image
    # would put it (pr + 0.5) / 27 of the way down, several cells off
    assert abs((r + 0.5) / rows - y / h) < 1 / rows and abs((c + 0.5) / cols - x / w) < 1 / cols
    assert abs((pr + 0.5) / side - y / h) > 2 / side


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-answer-bench") / "bench"
    build_demo_folder(world, out, ("counting_balanced",), num=4)
    return out


def test_answer_attention_two_models(bench, cache, tmp_path):
    a = save_tiny(tmp_path / "a", seed=0, num_layers=3)
    b = save_tiny(tmp_path / "b", seed=1, num_layers=3)
    settings = AnswerAttentionSettings(data=str(bench), models=[f"hf:{a}", f"hf:{b}"], out=str(tmp_path / "ans"),
                                       limit=2, layer=2, model_options={"max_new_tokens": 3}, cache_dir=cache,
                                       progress=False)
    summary = run_answer_attention(settings)
    assert list(summary["models"]) == [f"hf:{a}", f"hf:{b}"] and len(summary["samples"]) == 2
    for per_sample in summary["models"].values():
        assert list(per_sample) == summary["samples"]
        for e in per_sample.values():
            n = 7  # counting_balanced: 7 images
            assert len(e["mass"]) == n and len(e["map"]) == n
            assert len(e["image_size"]) == n and len(e["grid"]) == n
            assert all(list(torch.tensor(m).shape) == g for m, g in zip(e["map"], e["grid"], strict=True))
            assert all(1 <= g[0] <= 2 and 1 <= g[1] <= 2 for g in e["grid"])  # tiny: at most (16 / 8)^2 patches
            assert 0 < sum(e["mass"]) <= 1 + 1e-9
            # each map is its image's share without the newline token
            assert all(sum(map(sum, m)) < s + 1e-12 for m, s in zip(e["map"], e["mass"], strict=True))
            assert e["answer_tokens"] >= 1
    # the two random models attend differently
    first = summary["samples"][0]
    assert summary["models"][f"hf:{a}"][first]["mass"] != summary["models"][f"hf:{b}"][first]["mass"]
    assert (tmp_path / "ans" / "answer_attention.png").stat().st_size > 1000
    assert json.loads((tmp_path / "ans" / "answer_attention.json").read_text()) == json.loads(json.dumps(summary))
    # resume: nothing to redo, same numbers
    assert run_answer_attention(settings) == summary
    assert summary["layer_index"] == "0-based" and summary["rows_used"] == {"counting_balanced": 2}
    with pytest.raises(ConfigError, match="layers 0-2"):
        run_answer_attention(AnswerAttentionSettings(**{**vars(settings), "layer": 15, "out": str(tmp_path / "x")}))


def test_generation_runs_sdpa_and_the_weights_pass_eager(bench, cache, tmp_path, monkeypatch):
    """Eager generation over a long prompt costs minutes and returns weights nobody reads: the answer is
    generated with sdpa, the rows that chose it come from one eager pass, and the model is left eager."""
    from mimic.eval.diagnostics.answer_attention import answer_attention
    from mimic.eval.diagnostics.attention import _load_eager
    from mimic.eval.diagnostics.common import requests_of, select_rows

    model_dir = save_tiny(tmp_path / "m", seed=0, num_layers=2)
    adapter = _load_eager(f"hf:{model_dir}", {"max_new_tokens": 3})
    kernels = {}
    generate = adapter.model.generate

    def spy_generate(*args, **kwargs):
        kernels["generate"] = adapter.model.config.get_text_config()._attn_implementation
        return generate(*args, **kwargs)

    monkeypatch.setattr(adapter.model, "generate", spy_generate)
    [sel] = select_rows(str(bench), ["counting_balanced"], "test", 1, {}, cache)
    [request] = list(requests_of(sel, sel.indices[:1]))
    entry = answer_attention(adapter, request, 1)
    assert kernels["generate"] == "sdpa"
    assert adapter.model.config.get_text_config()._attn_implementation == "eager"
    if entry["answer_tokens"]:
        assert entry["mass"] is not None and 0 < sum(entry["mass"]) <= 1 + 1e-9
    adapter.close()
