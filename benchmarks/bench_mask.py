"""Memory and speed of the per-image attention mask (flex BlockMask) against dense masks.

    .venv/bin/python benchmarks/bench_mask.py [--batch 4 --images 10 --tokens-per-image 730 --reps 3]

Setup (issue 7): B = 4 samples x 10 images x 730 tokens (LLaVA-OV multi-image), 3 text tokens before the
images and 9-30 after, right-padded to a multiple of 128 (L = 7424).

Memory: what the mask path adds, collator side (`image_ids`, B x L int64) plus model side (the mask the
backbone builds once per forward with `create_causal_mask`), against one dense B x L x L bool mask.
  - retained: exact bytes of the tensors kept for the forward;
  - peak: the largest rise of this process's resident memory (sampled every 0.2 ms from /proc/self/statm)
    while the mask is built, with the compile already warm, so transient L x L buffers would show.
Speed: one attention layer of Qwen2-0.5B's shape (14 query heads, 2 KV heads, head dim 64), forward only,
torch.compile'd flex_attention with our BlockMask vs with the causal BlockMask, and sdpa dense causal
(`is_causal=True`) vs sdpa with the dense per-image mask. Median of `--reps` runs after a warm-up.
The theoretical ratio is (key positions each query really sees, masked) / (causal), and at the 128 x 128
block level (what flex computes): (blocks flex visits, masked) / (causal).
Results go to benchmarks/out/bench_mask.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

import torch

from mimic.train_trl.masking import (
    dense_image_mask,
    flex_compile_settings,
    image_mask_functions,
    register_image_attention,
)


def layout(batch: int, images: int, tokens_per_image: int, before: int = 3, after=(14, 20, 9, 30)):
    rows = []
    for b in range(batch):
        ids = [-1] * before
        for j in range(images):
            ids += [j] * tokens_per_image
        ids += [-1] * after[b % len(after)]
        rows.append(ids)
    length = max(map(len, rows))
    length = (length + 127) // 128 * 128
    image_ids = torch.full((batch, length), -1, dtype=torch.long)
    attention_mask = torch.zeros((batch, length), dtype=torch.long)
    for b, ids in enumerate(rows):
        image_ids[b, : len(ids)] = torch.tensor(ids)
        attention_mask[b, : len(ids)] = 1
    return image_ids, attention_mask


class RssPeak:
    """Peak resident-memory rise of this process while the block runs (Linux /proc, 0.2 ms sampling)."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def __enter__(self):
        self.base = self._rss()
        self.peak = self.base
        self._stop = False

        def sample():
            while not self._stop:
                self.peak = max(self.peak, self._rss())
                time.sleep(0.0002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.rise = self.peak - self.base


def block_mask_bytes(bm) -> int:
    from torch.nn.attention.flex_attention import BlockMask

    assert isinstance(bm, BlockMask)
    tensors = [bm.kv_num_blocks, bm.kv_indices, bm.full_kv_num_blocks, bm.full_kv_indices,
               bm.q_num_blocks, bm.q_indices, bm.full_q_num_blocks, bm.full_q_indices]
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def build_mask(config, image_ids, attention_mask):
    """The model side, as the backbone pre-hook does it: create_causal_mask with our mask functions."""
    from transformers.masking_utils import create_causal_mask

    or_fn, and_fn = image_mask_functions(image_ids)
    embeds = torch.empty(image_ids.shape[0], image_ids.shape[1], 1)  # only shape/dtype/device are read
    return create_causal_mask(config=config, inputs_embeds=embeds, attention_mask=attention_mask.bool(),
                              cache=None, or_mask_function=or_fn, and_mask_function=and_fn)


def blocks_visited(bm) -> int:
    full = bm.full_kv_num_blocks.sum() if bm.full_kv_num_blocks is not None else 0
    return int(bm.kv_num_blocks.sum() + full)


def timed(fn, reps):
    fn()  # warm-up (compiles)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    # The library's flex settings (static shapes on CPU, a higher recompile limit; docs/masking.md), for the
    # direct torch.compile calls of this script too; the model path applies them by itself.
    with flex_compile_settings("cpu"):
        run()


def run() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--tokens-per-image", type=int, default=730)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true", help="Memory only.")
    args = ap.parse_args()

    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    from transformers import Qwen2Config

    register_image_attention()
    image_ids, attention_mask = layout(args.batch, args.images, args.tokens_per_image)
    B, L = image_ids.shape
    dense_bytes = B * L * L  # one bool per (sample, query, key)
    config = Qwen2Config(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2)
    config._attn_implementation = "mimic_image_flex"

    report = {"batch": B, "length": L, "images": args.images, "tokens_per_image": args.tokens_per_image,
              "dense_bool_mask_bytes": dense_bytes, "torch": torch.__version__, "device": "cpu",
              "threads": torch.get_num_threads()}

    # ---- memory -------------------------------------------------------------------------------------------
    build_mask(config, image_ids, attention_mask)  # compile create_block_mask for this shape first
    with RssPeak() as flex_peak:
        bm = build_mask(config, image_ids, attention_mask)
    ids_bytes = image_ids.numel() * image_ids.element_size()
    flex_retained = block_mask_bytes(bm) + ids_bytes
    report["flex"] = {"image_ids_bytes": ids_bytes, "block_mask_bytes": block_mask_bytes(bm),
                      "retained_bytes": flex_retained, "retained_fraction_of_dense": flex_retained / dense_bytes,
                      "build_peak_rss_rise_bytes": flex_peak.rise,
                      "peak_fraction_of_dense": (flex_peak.rise + ids_bytes) / dense_bytes}
    config._attn_implementation = "mimic_image_sdpa"
    with RssPeak() as sdpa_peak:
        dense_sdpa = build_mask(config, image_ids, attention_mask)
    report["sdpa_dense"] = {"retained_bytes": dense_sdpa.numel() * dense_sdpa.element_size() + ids_bytes,
                            "build_peak_rss_rise_bytes": sdpa_peak.rise}
    del dense_sdpa
    config._attn_implementation = "mimic_image_eager"
    eager = build_mask(config, image_ids, attention_mask)
    report["eager_dense"] = {"retained_bytes": eager.numel() * eager.element_size() + ids_bytes}
    del eager
    # the uncompiled builder (create_block_mask's default) materialises the mask: shown for contrast
    or_fn, and_fn = image_mask_functions(image_ids)

    def mod(b, h, q, kv):
        return and_fn(b, h, q, kv) & (kv <= q) & attention_mask.bool()[b, kv]

    with RssPeak() as eager_build:
        create_block_mask(mod, B, None, L, L, device="cpu")
    report["flex_uncompiled_build_peak_rss_rise_bytes"] = eager_build.rise

    # block-level and token-level work
    causal_bm = torch.compile(create_block_mask)(lambda b, h, q, kv: (kv <= q) & attention_mask.bool()[b, kv],
                                                 B, None, L, L, device="cpu")
    valid = attention_mask.sum(1).tolist()
    causal_pairs = sum(n * (n + 1) // 2 for n in valid)
    masked_pairs = 0
    for b in range(B):  # real query rows only (padding rows are no work the model needs)
        rows = attention_mask[b].bool()
        masked_pairs += int(dense_image_mask(image_ids[b : b + 1], attention_mask[b : b + 1])[0, 0][rows].sum())
    report["work"] = {"causal_pairs": causal_pairs, "masked_pairs": masked_pairs,
                      "pair_ratio": masked_pairs / causal_pairs,
                      "causal_blocks": blocks_visited(causal_bm), "masked_blocks": blocks_visited(bm),
                      "block_ratio": blocks_visited(bm) / blocks_visited(causal_bm)}

    # ---- speed: one attention layer, Qwen2-0.5B shape -----------------------------------------------------
    if not args.skip_speed:
        g = torch.Generator().manual_seed(0)
        q = torch.randn(B, 14, L, 64, generator=g)
        k = torch.randn(B, 2, L, 64, generator=g)
        v = torch.randn(B, 2, L, 64, generator=g)
        flex = torch.compile(flex_attention, dynamic=False)
        t_flex_masked = timed(lambda: flex(q, k, v, block_mask=bm, enable_gqa=True), args.reps)
        t_flex_causal = timed(lambda: flex(q, k, v, block_mask=causal_bm, enable_gqa=True), args.reps)
        sdpa = torch.nn.functional.scaled_dot_product_attention
        t_sdpa_causal = timed(lambda: sdpa(q, k, v, is_causal=True, enable_gqa=True), args.reps)
        dense = dense_image_mask(image_ids, attention_mask)
        t_sdpa_masked = timed(lambda: sdpa(q, k, v, attn_mask=dense, enable_gqa=True), args.reps)
        report["speed_s"] = {"flex_masked": t_flex_masked, "flex_causal": t_flex_causal,
                             "sdpa_causal": t_sdpa_causal, "sdpa_dense_image_mask": t_sdpa_masked,
                             "speedup_flex_masked_vs_flex_causal": t_flex_causal / t_flex_masked,
                             "speedup_flex_masked_vs_sdpa_causal": t_sdpa_causal / t_flex_masked}

    out = Path(__file__).parent / "out" / "bench_mask.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    mb = 1e6
    f = report["flex"]
    print(f"B={B} x {args.images} images x {args.tokens_per_image} tokens -> L={L} (padded to 128)")
    print(f"dense B x L x L bool mask: {dense_bytes / mb:.1f} MB")
    print(f"flex path retained: image_ids {f['image_ids_bytes'] / mb:.3f} MB + BlockMask "
          f"{f['block_mask_bytes'] / mb:.3f} MB = {f['retained_fraction_of_dense']:.2%} of dense")
    print(f"flex path build peak (RSS rise, warm compile): {f['build_peak_rss_rise_bytes'] / mb:.1f} MB "
          f"-> with image_ids {f['peak_fraction_of_dense']:.2%} of dense")
    print(f"sdpa path: (B,1,L,L) bool {report['sdpa_dense']['retained_bytes'] / mb:.1f} MB; eager path: float32 "
          f"{report['eager_dense']['retained_bytes'] / mb:.1f} MB")
    print(f"uncompiled create_block_mask build peak: {report['flex_uncompiled_build_peak_rss_rise_bytes'] / mb:.1f} MB")
    w = report["work"]
    print(f"work: masked/causal key positions {w['pair_ratio']:.3f}; 128x128 blocks {w['masked_blocks']}/"
          f"{w['causal_blocks']} = {w['block_ratio']:.3f}")
    if "speed_s" in report:
        s = report["speed_s"]
        print(f"one attention layer (14 q / 2 kv heads x 64, forward, {torch.get_num_threads()} threads, median of "
              f"{args.reps}): flex masked {s['flex_masked']:.3f}s, flex causal {s['flex_causal']:.3f}s, "
              f"sdpa causal {s['sdpa_causal']:.3f}s, sdpa dense image mask {s['sdpa_dense_image_mask']:.3f}s")
        print(f"speed-up masked vs causal: flex/flex {s['speedup_flex_masked_vs_flex_causal']:.2f}x, "
              f"vs sdpa causal {s['speedup_flex_masked_vs_sdpa_causal']:.2f}x; theoretical "
              f"{1 / w['pair_ratio']:.2f}x (tokens), {1 / w['block_ratio']:.2f}x (blocks)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
