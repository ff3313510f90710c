"""Per-image attention masks on the tiny LLaVA-OneVision: semantics, layer selection, backends, cache, PEFT, GC."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mimic.tiny import tiny_llava_onevision
from mimic.train_trl.collator import MultiImageCollator, processor_image_token_counts
from mimic.train_trl.masking import (
    ImageMaskSpec,
    dense_image_mask,
    disable_image_masking,
    enable_image_masking,
    image_ids_from_inputs,
    image_token_counts,
    parse_layers,
)


def _images(n, seed=0, sizes=None):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        w, h = sizes[i] if sizes else (20 + 7 * i, 30)
        arr = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()
        out.append(Image.fromarray(arr))
    return out


def _row(images, question="How many?", answer="3"):
    return {"images": images, "messages": [
        {"role": "user", "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]}


@pytest.fixture(scope="module")
def tiny():
    return tiny_llava_onevision(seed=0, num_layers=4)


@pytest.fixture(scope="module")
def batch(tiny):
    _, proc = tiny
    rows = [_row(_images(3)), _row(_images(2, seed=1), "Which one?", "the red"), _row(_images(1, seed=2), "What?")]
    return MultiImageCollator(proc, assistant_only_loss=True)(rows)


def _fresh(layers, backend="sdpa", seed=0, num_layers=4, **kw):
    # built with sdpa everywhere; enable_image_masking switches the text model only (SigLIP keeps sdpa)
    model, proc = tiny_llava_onevision(seed=seed, num_layers=num_layers)
    handle = enable_image_masking(model, layers, backend=backend, **kw) if layers is not None else None
    return model, proc, handle


def test_parse_layers_and_spec_validation():
    assert parse_layers("12-23") == tuple(range(12, 24))
    assert parse_layers("0-2, 7") == (0, 1, 2, 7)
    assert parse_layers("") == () and parse_layers(None) == () and parse_layers([3, 1, 3]) == (1, 3)
    for bad in ("5-2", "a-b", "1,-3"):
        with pytest.raises(ValueError):
            parse_layers(bad)
    with pytest.raises(ValueError, match="backend"):
        ImageMaskSpec(layers=(1,), backend="flash_attention_2")
    assert ImageMaskSpec.from_dict(ImageMaskSpec((3, 1), "eager").to_dict()) == ImageMaskSpec((1, 3), "eager")


def test_model_side_token_counts_match_the_processor(tiny):
    model, proc = tiny
    # single images go through anyres (several aspect ratios), multi-image samples through one crop each
    sizes = [(20, 30), (33, 17), (16, 16), (60, 10), (7, 40), (100, 100)]
    rows = [_row(_images(1, seed=i, sizes=[s])) for i, s in enumerate(sizes)] + [_row(_images(4, seed=9))]
    b = MultiImageCollator(proc)(rows)
    expected = processor_image_token_counts(proc, b)
    assert image_token_counts(model.config, b["image_sizes"], b["batch_num_images"].tolist()) == expected
    assert expected[-1] == [5, 5, 5, 5] and len({c[0] for c in expected[:-1]}) > 1
    assert torch.equal(image_ids_from_inputs(model.config, b["input_ids"], b["image_sizes"], b["batch_num_images"]),
                       b["image_ids"])


def test_masked_layers_zero_cross_image_attention_and_keep_text_causal(batch):
    model, _, _ = _fresh([1, 3], backend="eager")
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    ids, pad = batch["image_ids"], batch["attention_mask"].bool()
    L = ids.shape[1]
    causal = torch.ones(L, L).tril().bool()
    for layer, att in enumerate(out.attentions):
        masked_layer = layer in (1, 3)
        for b in range(2):  # the multi-image samples
            w = att[b]  # (heads, L, L)
            n_img = int(ids[b].max()) + 1
            for j in range(n_img):
                rows = ids[b] == j
                others = (ids[b] != j) & pad[b]
                cross = w[:, rows][:, :, others]
                if masked_layer:
                    assert cross.abs().max() == 0, f"layer {layer}: image {j} attends outside itself"
                    own = w[:, rows][:, :, rows]
                    assert torch.all((own > 0) == causal[rows][:, rows]), "own image must stay visible (causal)"
                elif j > 0:
                    assert cross.max() > 0, f"unmasked layer {layer} must keep cross-image attention"
            text_rows = (ids[b] < 0) & pad[b]
            seen = w[:, text_rows] > 0                                 # (heads, T, L)
            allowed = causal[text_rows] & pad[b][None, :]              # everything before, padding excluded
            assert torch.equal(seen, allowed.expand_as(seen)), f"layer {layer}: text rows are not plain causal"
        # single-image sample: unrestricted (as the official code), its image rows still see the prefix text
        w = att[2]
        rows = batch["image_ids"][2] == 0
        assert w[:, rows][:, :, :6].min() > 0


def test_unmasked_layers_are_identical_to_the_stock_model(batch):
    stock, _, _ = _fresh(None)
    masked, _, handle = _fresh([2, 3])
    with torch.no_grad():
        ref = stock(**{k: v for k, v in batch.items() if k != "image_ids"}, output_hidden_states=True)
        out = masked(**batch, output_hidden_states=True)
    # hidden_states[i] is the input of layer i: layers 0 and 1 are stock, so the inputs of layers 0-2 agree
    for i in range(3):
        assert torch.equal(out.hidden_states[i], ref.hidden_states[i])
    assert not torch.allclose(out.hidden_states[3], ref.hidden_states[3])
    assert handle.mask_builds == 1
    # removing the mask gives the stock model back
    handle.remove()
    with torch.no_grad():
        again = masked(**batch)
    assert torch.equal(again.logits, ref.logits)
    assert masked.config.text_config._attn_implementation == "sdpa"


def test_all_layers_masked_an_image_ignores_other_images_pixels(tiny):
    _, proc = tiny
    collate = MultiImageCollator(proc)
    imgs = _images(3, seed=3)
    changed = [_images(1, seed=99, sizes=[(20, 30)])[0], *imgs[1:]]   # only image 0's pixels differ
    b1, b2 = collate([_row(imgs)]), collate([_row(changed)])
    assert torch.equal(b1["input_ids"], b2["input_ids"])
    ids = b1["image_ids"][0]

    def states(model, b):
        with torch.no_grad():
            return model(**b, output_hidden_states=True).hidden_states[-1][0]

    masked, _, _ = _fresh(list(range(4)))
    h1, h2 = states(masked, b1), states(masked, b2)
    for j in (1, 2):
        assert torch.equal(h1[ids == j], h2[ids == j]), f"image {j} changed when image 0's pixels changed"
    assert not torch.allclose(h1[ids == 0], h2[ids == 0])
    stock, _, _ = _fresh(None)
    s1, s2 = states(stock, b1), states(stock, b2)
    assert not torch.allclose(s1[ids == 2], s2[ids == 2]), "control: the stock model mixes images"


def test_backends_and_the_dense_collator_mask_agree(batch):
    logits = {}
    for backend in ("sdpa", "eager"):
        model, _, _ = _fresh([1, 2], backend=backend)
        with torch.no_grad():
            logits[backend] = model(**batch).logits
    assert torch.allclose(logits["sdpa"], logits["eager"], atol=1e-5)
    model, proc, _ = _fresh([1, 2], backend="sdpa")
    dense = dict(batch)
    dense.pop("image_ids")
    dense["image_attention_mask"] = dense_image_mask(batch["image_ids"], batch["attention_mask"])
    with torch.no_grad():
        assert torch.allclose(model(**dense).logits, logits["sdpa"], atol=1e-6)
        # no image_ids at all: the model derives them from image_sizes / batch_num_images itself
        plain = {k: v for k, v in batch.items() if k != "image_ids"}
        assert torch.allclose(model(**plain).logits, logits["sdpa"], atol=1e-6)


def test_dense_reference_mask_by_hand():
    ids = torch.tensor([[-1, 0, 0, 1, 1, -1, -1]])
    am = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    m = dense_image_mask(ids, am)[0, 0].int()
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0, 0],   # text: causal
        [0, 1, 0, 0, 0, 0, 0],   # image 0, first token: itself only (not the prefix)
        [0, 1, 1, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0],   # image 1: not image 0
        [0, 0, 0, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1, 0],   # text after the images: everything before
        [1, 1, 1, 1, 1, 1, 0],   # padding row; the padding column is never visible
    ])
    assert torch.equal(m, expected)
    bi = dense_image_mask(ids, am, within_image="bidirectional")[0, 0].int()
    assert bi[1, 2] == 1 and bi[3, 4] == 1 and bi[3, 1] == 0


def test_flex_attention_matches_sdpa_with_a_block_mask(batch):
    from torch.nn.attention.flex_attention import BlockMask

    # No global compile settings here: the library scopes its own to each flex call (docs/masking.md).
    dynamic_before = torch._dynamo.config.automatic_dynamic_shapes
    limit_before = torch._dynamo.config.recompile_limit
    ref, _, _ = _fresh([1, 3], backend="sdpa")
    model, _, handle = _fresh([1, 3], backend="flex_attention")
    assert model.config.text_config._attn_implementation == "mimic_image_flex"
    assert model.config.vision_config._attn_implementation == "sdpa"
    seen = []
    lm = model.model.language_model
    hook = lm.layers[1].self_attn.register_forward_pre_hook(
        lambda m, a, kw: seen.append(type(kw.get("image_block_mask"))), with_kwargs=True)
    with torch.no_grad():
        out = model(**batch)
        expected = ref(**batch)
        # a second, shorter sequence length: with torch's automatic dynamic shapes this recompile is the one
        # whose CPU flex kernel fails to build (CppCompileError); the library's scoped settings avoid it
        short = {k: v for k, v in batch.items() if k not in ("image_ids",)}
        short = {**short, "input_ids": batch["input_ids"][:2, :30], "attention_mask": batch["attention_mask"][:2, :30],
                 "labels": batch["labels"][:2, :30], "pixel_values": batch["pixel_values"][:5],
                 "image_sizes": batch["image_sizes"][:5], "batch_num_images": batch["batch_num_images"][:2]}
        assert torch.allclose(model(**short).logits, ref(**short).logits, atol=1e-5)
    hook.remove()
    assert seen[0] is BlockMask
    assert torch.allclose(out.logits, expected.logits, atol=1e-5)
    assert torch._dynamo.config.automatic_dynamic_shapes == dynamic_before
    assert torch._dynamo.config.recompile_limit == limit_before


def test_flex_cached_generation_matches_sdpa_over_several_prompt_lengths(tiny):
    _, proc = tiny
    flex, _, _ = _fresh([2, 3], backend="flex_attention", seed=1)
    sdpa, _, _ = _fresh([2, 3], backend="sdpa", seed=1)
    kw = dict(max_new_tokens=5, min_new_tokens=5, do_sample=False, suppress_tokens=[proc.image_token_id])
    for n in (2, 3, 4):  # three prompt lengths, each decoded token a new key length
        row = _row(_images(n, seed=n), "How many?" * n)
        text = proc.apply_chat_template([row["messages"][0]], add_generation_prompt=True, tokenize=False)
        enc = proc(text=[text], images=[row["images"]], return_tensors="pt")
        assert torch.equal(flex.generate(**enc, **kw), sdpa.generate(**enc, **kw))


def test_flex_cannot_train_on_cpu_and_says_which_backend_to_use(batch):
    from mimic.errors import ConfigError

    model, _, _ = _fresh([1, 3], backend="flex_attention")
    model.train()
    with pytest.raises(ConfigError, match="mask backend 'sdpa'"):
        model(**batch)


def test_a_4d_attention_mask_is_rejected_in_masked_models(batch):
    from mimic.errors import ConfigError

    model, _, _ = _fresh([1, 3])
    four_d = dense_image_mask(batch["image_ids"], batch["attention_mask"])
    with torch.no_grad(), pytest.raises(ConfigError, match=r"attention_mask: .*2D .* got a Tensor of shape"):
        model(**{**batch, "attention_mask": four_d})


def test_one_spec_sets_model_and_dense_collator_mask(batch, tiny):
    _, proc = tiny
    spec = ImageMaskSpec(layers=(1, 2), within_image="bidirectional")
    model, _, _ = _fresh(None)
    assert enable_image_masking(model, spec).spec == spec
    rows = [_row(_images(3)), _row(_images(2, seed=1), "Which one?", "the red")]
    ids_batch = MultiImageCollator(proc)(rows)
    dense_batch = MultiImageCollator(proc, emit_image_ids=False, dense_image_mask=True, mask_spec=spec)(rows)
    with torch.no_grad():
        a, b = model(**ids_batch).logits, model(**dense_batch).logits
    assert torch.allclose(a, b, atol=1e-6)
    causal, _, _ = _fresh([1, 2])
    with torch.no_grad():
        assert not torch.allclose(causal(**ids_batch).logits, a, atol=1e-4), "within_image must matter"


def test_generate_with_kv_cache_equals_full_recomputation(tiny):
    _, proc = tiny
    model, _, handle = _fresh([0, 1, 2, 3], seed=1)
    text = proc.apply_chat_template([_row(_images(3))["messages"][0]], add_generation_prompt=True, tokenize=False)
    enc = proc(text=[text], images=[_images(3)], return_tensors="pt")
    # a random model may emit <image>, which a no-cache re-run would then treat as a placeholder
    kw = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, return_dict_in_generate=True, output_logits=True,
              suppress_tokens=[proc.image_token_id])
    cached = model.generate(**enc, **kw)
    builds_cached = handle.mask_builds
    full = model.generate(**enc, use_cache=False, **kw)
    assert builds_cached == 1, "only the prefill has vision queries; decoding steps use the stock rows"
    assert handle.mask_builds == 1 + 6
    assert torch.equal(cached.sequences, full.sequences)
    for a, b in zip(cached.logits, full.logits, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # (generate refuses unknown kwargs such as image_ids: the model derives them from the vision features)
    disable_image_masking(model)
    plain = model.generate(**enc, **kw)
    assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(cached.logits, plain.logits, strict=True))


def test_peft_and_gradient_checkpointing_keep_the_mask(batch):
    from peft import LoraConfig, get_peft_model

    from mimic.train_trl.config import LM_LORA_TARGETS, lora_target_regex

    masked, _, _ = _fresh([2, 3])
    with torch.no_grad():
        expected = masked(**batch).loss
    model, _, handle = _fresh([2, 3])
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=lora_target_regex(LM_LORA_TARGETS),
                                             modules_to_save=["multi_modal_projector"], task_type="CAUSAL_LM"))
    assert not any("lora" in n for n, _ in model.named_parameters() if "vision_tower" in n)
    assert any("language_model.layers.0.self_attn.q_proj.lora_A" in n for n, _ in model.named_parameters())
    # transformers 5.24 renamed gradient_checkpointing_enable (5.23) to activation_checkpointing_enable
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable({"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model.train()
    builds = handle.mask_builds
    out = model(**batch)
    out.loss.backward()
    # LoRA starts as the identity, so with the mask in place the loss is the masked model's loss
    assert torch.allclose(out.loss.detach(), expected, atol=1e-5)
    assert handle.mask_builds == builds + 1, "the mask is built once per forward, and reused by GC recomputation"
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads)


def test_enable_rejects_bad_layers_and_double_enabling():
    model, _ = tiny_llava_onevision(num_layers=4)
    with pytest.raises(ValueError, match="do not exist"):
        enable_image_masking(model, "2-4")
    handle = enable_image_masking(model, "2-3")
    with pytest.raises(RuntimeError, match="already enabled"):
        enable_image_masking(model, [0])
    handle.remove()
    enable_image_masking(model, [0]).remove()


def test_flex_compile_settings_are_scoped_and_too_many_shapes_warn(monkeypatch, caplog):
    import logging

    from mimic.train_trl import masking

    config = torch._dynamo.config
    before = (config.automatic_dynamic_shapes, config.recompile_limit)
    with masking.flex_compile_settings("cpu"):
        assert config.automatic_dynamic_shapes is False
        assert config.recompile_limit >= masking.FLEX_RECOMPILE_LIMIT
    with masking.flex_compile_settings("cuda"):
        assert config.automatic_dynamic_shapes == before[0]  # GPUs keep dynamic shapes
        assert config.recompile_limit >= masking.FLEX_RECOMPILE_LIMIT
    assert (config.automatic_dynamic_shapes, config.recompile_limit) == before

    monkeypatch.setattr(masking, "FLEX_RECOMPILE_LIMIT", 6)
    monkeypatch.setattr(masking, "_flex_shapes", set())
    monkeypatch.setattr(masking, "_flex_warned", [False])
    caplog.set_level(logging.WARNING, logger="mimic.train_trl.masking")
    for length in (128, 256, 384):
        masking._note_flex_shape("cpu", (1, length, length))
        masking._note_flex_shape("cpu", (1, length, length))  # the same shape again is no new compile
    assert not caplog.records
    masking._note_flex_shape("cuda", (1, 512, 512))  # dynamic shapes on GPU: not counted
    assert not caplog.records
    for length in (512, 640):
        masking._note_flex_shape("cpu", (1, length, length))
    assert len(caplog.records) == 1 and "Pad batches to a multiple of 128" in caplog.records[0].getMessage()
    assert "\n" not in caplog.records[0].getMessage()
