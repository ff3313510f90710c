"""The real size: llava-onevision-qwen2-0.5b-ov-hf's exact shapes (894M parameters, random weights, built in code)
with 2 images on the CPU: a masked forward, one LoRA training step through the project's collator, and 4 tokens of
cached generation.

bfloat16: the training recipe's dtype (train_trl/configs/llava_ov_0.5b_masked_lora.yaml), half the memory of
float32 (1.8 GB of weights instead of 3.6), and about 2x faster matmuls on CPUs with AVX512-BF16. LoRA weights stay
float32 (PEFT's adapter dtype), the loss is computed in float32.
"""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image

from mimic.tiny import real_shape_llava_onevision
from mimic.train_trl.collator import MultiImageCollator
from mimic.train_trl.config import LM_LORA_TARGETS, lora_target_regex
from mimic.train_trl.loss import causal_lm_loss
from mimic.train_trl.masking import ImageMaskSpec, dense_image_mask, enable_image_masking

# Peak resident memory this test adds to the process: the peak during the test (Linux VmHWM, reset at its start
# through /proc/self/clear_refs) minus the resident size at its start. Measuring the whole process instead would
# make the figure depend on what earlier tests left loaded (5.2 GB alone, 6.04 GB after the full suite); alone,
# the test adds 4.66 GB. The bound leaves room for allocator noise and stays well under the 8 GB budget.
PEAK_GROWTH_BOUND_GB = 5.5
TOKENS_PER_IMAGE = 730  # 27 x 27 SigLIP grid + 1 image_newline, for each image of a multi-image sample


def _memory_kb() -> dict[str, int]:
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f) if k in ("VmRSS", "VmHWM")}


def _reset_peak_rss() -> int:
    """Reset the process's peak resident size to its current size; return that size in kB."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as e:
        pytest.skip(f"cannot reset the peak resident size through /proc/self/clear_refs ({e}): needs Linux >= 4.0")
    return _memory_kb()["VmRSS"]


def _images():
    g = torch.Generator().manual_seed(0)
    return [Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy())
            for h, w in ((375, 500), (480, 360))]


@pytest.mark.slow
def test_real_shape_masked_forward_lora_step_and_cached_generation():
    from peft import LoraConfig, get_peft_model

    start, rss_at_start_kb = time.perf_counter(), _reset_peak_rss()
    model, proc = real_shape_llava_onevision(seed=0, dtype=torch.bfloat16)
    assert 890e6 < sum(p.numel() for p in model.parameters()) < 900e6
    handle = enable_image_masking(model, ImageMaskSpec(layers=tuple(range(12, 24)), backend="sdpa"))
    images = _images()
    row = {"images": images, "messages": [
        {"role": "user", "content": [{"type": "image"}] * 2 + [{"type": "text", "text": "How many dogs are there?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "There are 3 dogs."}]}]}
    batch = MultiImageCollator(proc, assistant_only_loss=True, mask_spec=handle.spec)([row])
    ids = batch["image_ids"][0]
    assert [int((ids == j).sum()) for j in range(2)] == [TOKENS_PER_IMAGE, TOKENS_PER_IMAGE]

    # 1. one masked forward: the per-image mask reaches the masked layers, and it is the mask by definition
    seen = {}

    def record(module, args, kwargs):
        seen[module.layer_idx] = (kwargs.get("image_block_mask"), kwargs.get("image_block_layers"))

    lm = model.model.language_model
    hooks = [lm.layers[i].self_attn.register_forward_pre_hook(record, with_kwargs=True) for i in (11, 12)]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        out = model(**inputs, logits_to_keep=1)
    for h in hooks:
        h.remove()
    assert handle.mask_builds == 1 and torch.isfinite(out.logits).all()
    block, layers = seen[12]
    assert layers == frozenset(range(12, 24)) and 11 not in layers
    assert torch.equal(block, dense_image_mask(batch["image_ids"], batch["attention_mask"]))

    # 2. one LoRA training step (the recipe's placement: language model only, projector trained, vision frozen)
    model.model.vision_tower.requires_grad_(False)
    # init_lora_weights=False: B starts non-zero, so every A gets a non-zero gradient in this single step
    peft_model = get_peft_model(model, LoraConfig(
        r=128, lora_alpha=256, lora_dropout=0.0, task_type="CAUSAL_LM", init_lora_weights=False,
        target_modules=lora_target_regex(LM_LORA_TARGETS), modules_to_save=["multi_modal_projector"]))
    if hasattr(peft_model, "activation_checkpointing_enable"):  # transformers >= 5.24
        peft_model.activation_checkpointing_enable({"use_reentrant": False})
    else:
        peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    peft_model.enable_input_require_grads()
    peft_model.train()
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2.5e-5)
    loss = causal_lm_loss(peft_model, batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    lora = {n: p for n, p in peft_model.named_parameters() if "lora_A" in n or "lora_B" in n}
    assert len(lora) == 24 * len(LM_LORA_TARGETS) * 2
    no_grad = [n for n, p in lora.items() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not no_grad, f"LoRA matrices without gradient: {no_grad[:5]}"
    vision = [(n, p) for n, p in peft_model.named_parameters() if "vision_tower" in n]
    assert vision and all(not p.requires_grad and p.grad is None for _, p in vision)
    assert any("multi_modal_projector.modules_to_save" in n and p.grad is not None
               for n, p in peft_model.named_parameters())
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    # 3. four tokens of cached generation with the mask on (only the prefill has vision queries)
    peft_model.eval()
    text = proc.apply_chat_template([row["messages"][0]], add_generation_prompt=True, tokenize=False)
    enc = proc(text=[text], images=[images], return_tensors="pt")
    builds = handle.mask_builds
    with torch.no_grad():
        generated = peft_model.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                                        suppress_tokens=[proc.image_token_id])
    assert generated.shape[1] == enc["input_ids"].shape[1] + 4
    assert handle.mask_builds == builds + 1

    peak_kb = _memory_kb()["VmHWM"]
    growth_gb = (peak_kb - rss_at_start_kb) * 1024 / 1e9
    print(f"real-shape test: {time.perf_counter() - start:.0f} s, peak RSS {peak_kb * 1024 / 1e9:.2f} GB, "
          f"{growth_gb:.2f} GB above the {rss_at_start_kb * 1024 / 1e9:.2f} GB at its start")  # shown with -s
    assert growth_gb < PEAK_GROWTH_BOUND_GB, f"the test added {growth_gb:.2f} GB at its peak"
