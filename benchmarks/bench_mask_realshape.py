"""Time and peak memory of masked forward passes and LoRA training steps at the real LLaVA-OneVision 0.5B size.

    .venv/bin/python benchmarks/bench_mask_realshape.py                 # the whole table (about 40 min on 2 cores)
    .venv/bin/python benchmarks/bench_mask_realshape.py --only 4        # only the 4-image rows
    .venv/bin/python benchmarks/bench_mask_realshape.py --one sdpa 4 train labels   # one measurement, JSON

The model has the exact shapes of llava-hf/llava-onevision-qwen2-0.5b-ov-hf (894M parameters, random weights
built in code: `mimic.tiny.real_shape_llava_onevision`), in bfloat16 (the training recipe's dtype), with the
per-image mask in layers 12-23. One sample of N images (730 tokens each, a question and a short answer;
4 images: 3,0xx tokens). Every measurement runs in a fresh process, so its peak resident memory (ru_maxrss) is
its own; `model_rss_gb` is the process after building the model, before the measured call. `seconds` is
wall time, `cpu_seconds` the process's CPU time (steadier when other processes share the cores).

Rows (`what`):
- forward: no gradient, the model's loss on the batch. `full` = `model(**batch).loss`, which projects every
  position through the 152K-word LM head and upcasts to fp32 (before); `labels` =
  `mimic.train_trl.loss.causal_lm_loss`, the LM head only where a label exists (after). sdpa and flex_attention
  (flex: the time is that of a second call, after compilation; the first call's is `first_call_s`).
- train: one LoRA step (r=128 on the language model, projector trained, vision frozen, gradient checkpointing
  as in the recipe): forward, backward, AdamW step. `full` and `labels` as above, and `trl` = TRL 1.16's fused
  LM head, what train.py's SFTTrainer runs (on CPU it projects every position in tiles: bounded memory, full
  compute). sdpa only: PyTorch has no flex_attention backward on CPU.
10-image rows use `labels` only: the full logits alone would be 7,4xx x 152,000 x (2 + 4 + 4) bytes (bf16 logits,
their fp32 copy, log-softmax), over the 12 GB a process may use on the shared development machine.
Results: benchmarks/out/bench_mask_realshape.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "out" / "bench_mask_realshape.json"
LAYERS = tuple(range(12, 24))
PLAN = [  # (backend, images, what, how)
    ("sdpa", 4, "forward", "full"), ("sdpa", 4, "forward", "labels"),
    ("flex_attention", 4, "forward", "full"), ("flex_attention", 4, "forward", "labels"),
    ("sdpa", 4, "train", "full"), ("sdpa", 4, "train", "labels"), ("sdpa", 4, "train", "trl"),
    ("sdpa", 10, "forward", "labels"), ("flex_attention", 10, "forward", "labels"),
    ("sdpa", 10, "train", "labels"),
]


def _cpu_s() -> float:
    # CPU seconds of this process: less sensitive than wall time to other processes sharing the cores
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e9


def _batch(proc, spec, images: int):
    from PIL import Image

    from mimic.train_trl.collator import MultiImageCollator

    g = torch.Generator().manual_seed(images)
    pics = [Image.fromarray(torch.randint(0, 256, (300 + 17 * i, 400 - 13 * i, 3), generator=g,
                                          dtype=torch.uint8).numpy()) for i in range(images)]
    row = {"images": pics, "messages": [
        {"role": "user", "content": [{"type": "image"}] * images + [{"type": "text", "text": "How many dogs?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "There are 3 dogs."}]}]}
    return MultiImageCollator(proc, assistant_only_loss=True, mask_spec=spec)([row])


def _loss(model, batch, how: str):
    from mimic.train_trl.loss import causal_lm_loss

    if how == "full":
        return model(**batch).loss
    if how == "labels":
        return causal_lm_loss(model, batch).loss
    out = model(**batch, fused_lm_head=True)  # TRL: what SFTTrainer.compute_loss does
    return -out.log_probs.sum() / out.label_mask.sum().clamp(min=1)


def measure(backend: str, images: int, what: str, how: str) -> dict:
    from mimic.tiny import real_shape_llava_onevision
    from mimic.train_trl.masking import ImageMaskSpec, enable_image_masking

    model, proc = real_shape_llava_onevision(seed=0, dtype=torch.bfloat16)
    if how == "trl":
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer.__init__
    spec = enable_image_masking(model, ImageMaskSpec(layers=LAYERS, backend=backend)).spec
    batch = _batch(proc, spec, images)
    result = {"backend": backend, "images": images, "what": what, "how": how,
              "tokens": int(batch["input_ids"].shape[1]),
              "labelled_tokens": int((batch["labels"] != -100).sum()), "threads": torch.get_num_threads()}
    if what == "forward":
        if backend == "flex_attention":
            t = time.perf_counter()
            with torch.no_grad():
                _loss(model, batch, how)
            result["first_call_s"] = time.perf_counter() - t
        gc.collect()
        result["model_rss_gb"] = _rss_gb()
        t, c = time.perf_counter(), _cpu_s()
        with torch.no_grad():
            loss = _loss(model, batch, how)
        result["seconds"], result["cpu_seconds"] = time.perf_counter() - t, _cpu_s() - c
    else:
        from peft import LoraConfig, get_peft_model

        from mimic.train_trl.config import LM_LORA_TARGETS, lora_target_regex

        model.model.vision_tower.requires_grad_(False)
        model = get_peft_model(model, LoraConfig(
            r=128, lora_alpha=256, lora_dropout=0.05, task_type="CAUSAL_LM",
            target_modules=lora_target_regex(LM_LORA_TARGETS), modules_to_save=["multi_modal_projector"]))
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2.5e-5)
        gc.collect()
        result["model_rss_gb"] = _rss_gb()
        t, c = time.perf_counter(), _cpu_s()
        loss = _loss(model, batch, how)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        result["seconds"], result["cpu_seconds"] = time.perf_counter() - t, _cpu_s() - c
    result["loss"] = float(loss)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=4, metavar=("BACKEND", "IMAGES", "WHAT", "HOW"),
                    help="Run one measurement in this process and print it as JSON.")
    ap.add_argument("--only", type=int, default=None, help="Only the rows with this many images.")
    args = ap.parse_args()
    if args.one:
        backend, images, what, how = args.one
        print(json.dumps(measure(backend, int(images), what, how)))
        return
    rows = []
    for backend, images, what, how in PLAN:
        if args.only is not None and images != args.only:
            continue
        cmd = [sys.executable, __file__, "--one", backend, str(images), what, how]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[2:])} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{backend:<15} {images:>2} images ({row['tokens']} tokens)  {what:<7} {how:<6}  "
              f"{row['seconds']:7.1f} s ({row.get('cpu_seconds', float('nan')):.0f} CPU s)  peak RSS {row['peak_rss_gb']:5.2f} GB (model {row['model_rss_gb']:.2f} GB)"
              + (f"  first call {row['first_call_s']:.1f} s" if "first_call_s" in row else ""), flush=True)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
