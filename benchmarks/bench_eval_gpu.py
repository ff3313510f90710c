"""Throughput of the hf: adapter on a GPU: samples/s and vision tokens/s at batch sizes 1, 4 and 8.

    .venv/bin/python benchmarks/bench_eval_gpu.py --data BENCH [--model hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf]
        [--configs counting_balanced] [--limit 64] [--batch-sizes 1 4 8] [--dtype auto] [--device auto]

BENCH is a benchmark folder (`mimic build bench` / `mimic build demo`) or Hub id. The same --limit samples of
each config are generated at every batch size, in the runner's length-grouped batches (`plan_batches`),
straight through the adapter (no run folder, no scoring), after one warm-up batch. Reported per batch size:
samples/s, vision tokens/s (image placeholder tokens in the prompts, `info["image_tokens"]`, per second),
all prompt tokens/s, peak GPU memory, and whether the answers equal the batch-1 answers (left padding can
change a few greedy answers in bfloat16; that is the kernel, not the runner).

It runs on CPU too (`--device cpu`, e.g. with a model from `mimic tiny-model`), only to check the script.

Comparing with lmms-eval on the same model and task (same checkpoint, same samples, greedy, same batch size):

1. Pick the samples: `--configs counting_balanced --limit 64` here; in lmms-eval, the MIMIC task of the same
   config (the lmms-eval task exported by this project's lmms-eval integration, or a task YAML over the same
   parquet folder) with `--limit 64`. Both read the rows in the same order.
2. Run lmms-eval with the same transformers checkpoint:
       python -m lmms_eval --model llava_hf \\
           --model_args pretrained=llava-hf/llava-onevision-qwen2-0.5b-ov-hf,dtype=bfloat16,device_map=cuda:0 \\
           --tasks <mimic counting_balanced task> --limit 64 --batch_size 8 --output_path lmms-out
   (and `--batch_size 1`, `4`). lmms-eval's `llava_hf` batches requests and decodes greedily when the task's
   generation_kwargs set do_sample false / temperature 0, as MIMIC's do.
3. Time only generation: run it once with `--limit 1` and subtract that wall time (model loading, dataset
   preparation) from the `--limit 64` run's; samples/s = 63 / difference. This script prints generation only.
4. Vision tokens/s: both use the checkpoint's processor, so the image tokens per sample are the same; multiply
   lmms-eval's samples/s by this script's "vision tok/sample".
5. Multi-GPU: lmms-eval runs one replica per GPU with `accelerate launch --num_processes N -m lmms_eval ...`;
   the counterpart here is `mimic eval --num-processes N` (or `accelerate launch --num_processes N -m
   mimic.eval ...`); compare the wall time of both whole runs on the same samples.
"""

from __future__ import annotations

import argparse
import time

from mimic.eval.api import Request, create_model
from mimic.eval.data import load_config, resolve_configs, row_metadata
from mimic.eval.runner import plan_batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="benchmark folder or Hub id")
    ap.add_argument("--model", default="hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf")
    ap.add_argument("--configs", nargs="*", default=["counting_balanced"])
    ap.add_argument("--limit", type=int, default=64, help="first rows of each config")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--attn-implementation", default=None)
    args = ap.parse_args()
    import torch

    model = create_model(args.model, {"max_new_tokens": args.max_new_tokens, "dtype": args.dtype,
                                      "device": args.device, "attn_implementation": args.attn_implementation})
    samples = []
    for config in resolve_configs(args.data, args.configs):
        ds = load_config(args.data, config)
        rows = row_metadata(ds)[: args.limit]
        images = ds.select_columns(["images"])[: len(rows)]["images"]
        samples += [Request(id=r["id"], config=config, task=r["task"], question=r["question"], images=ims, sample=r)
                    for r, ims in zip(rows, images, strict=True)]
    model.generate(samples[: max(args.batch_sizes)])  # warm-up: loading, kernels, allocator
    info = model.describe()
    print(f"{args.model} ({info.get('dtype')}, {info.get('device')}), {len(samples)} samples of "
          f"{', '.join(args.configs)}")
    print(f"{'batch':>5} {'samples/s':>9} {'vision tok/s':>12} {'prompt tok/s':>12} {'vision tok/sample':>17} "
          f"{'peak GB':>7}  same as batch 1")
    first = None
    cuda = torch.cuda.is_available() and str(info.get("device", "")).startswith("cuda")
    for bs in args.batch_sizes:
        by_config: dict[str, list[int]] = {}
        for k, s in enumerate(samples):
            by_config.setdefault(s.config, []).append(k)
        batches = [[ks[i] for i in b] for ks in by_config.values()
                   for b in plan_batches([samples[k].sample for k in ks], list(range(len(ks))), bs)]
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        answers, vision, prompt = {}, 0, 0
        t0 = time.perf_counter()
        for b in batches:
            for k, gen in zip(b, model.generate([samples[k] for k in b]), strict=True):
                answers[k] = gen.text
                vision += gen.info.get("image_tokens", 0)
                prompt += gen.info.get("input_tokens", 0)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        first = first or answers
        same = sum(answers[k] == first[k] for k in answers)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        print(f"{bs:>5} {len(samples) / seconds:>9.2f} {vision / seconds:>12.0f} {prompt / seconds:>12.0f} "
              f"{vision / len(samples):>17.0f} {peak:>7.1f}  {same}/{len(samples)}")
    model.close()


if __name__ == "__main__":
    main()
