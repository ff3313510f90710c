"""`mimic diagnose ...`: the paper's controlled analyses (`mimic.eval.diagnostics`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from mimic.cli import command, opt
from mimic.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["AttentionOptions", "PoolingOptions", "StitchOptions"]

_DTYPES = ["auto", "float32", "bfloat16", "float16"]


@dataclass
class _Common:
    data: str = opt(help="Benchmark: a Hub-layout folder (mimic build ...) or a Hub dataset id.", metavar="DIR_OR_ID")
    model: str = opt(help="Model spec: hf:<model id or path> (LLaVA-OneVision; Qwen2-VL/InternVL where the "
                     "analysis allows).", metavar="SPEC")
    out: str = opt(help="Output folder: the analysis's JSON file and plots (rerun to resume).", metavar="DIR")
    configs: list[str] = opt([], help="Configs to use (default: the analysis's paper setting, else every config).")
    where: list[str] = opt([], help="Control filter, COLUMN=VALUE[,VALUE...] (repeatable in one flag), e.g. "
                           "num_images=10 num_query_images=3; only matching rows are used.")
    split: str = opt("test", help="Dataset split.")
    overwrite: bool = opt(False, help="Discard earlier results in --out instead of resuming.")
    cache_dir: str | None = opt(None, help="Where `datasets` caches the data as arrow files.", metavar="DIR")
    dtype: str | None = opt(None, help="Weights dtype; auto = bfloat16 on CUDA when supported, float32 on CPU.",
                            choices=_DTYPES)
    device: str | None = opt(None, help="Device (auto, cpu, cuda, cuda:1, ...).")
    revision: str | None = opt(None, help="Hub revision of the checkpoint.")
    progress: bool = opt(True, help="Show a progress bar.")


@dataclass
class _Scored(_Common):
    limit: int | None = opt(None, help="Use only the first N matching rows of each config.")
    batch_size: int = opt(8, help="Samples per generate call.")
    max_new_tokens: int | None = opt(None, help="Most tokens per answer (default 64).")
    attn_implementation: str | None = opt(None, help="Attention kernel (sdpa, eager, flash_attention_2).")
    bootstrap: int = opt(1000, help="Bootstrap resamples per confidence interval (0: none).")
    bootstrap_seed: int = opt(0, help="Seed of the bootstrap resamples.")


def _options(o) -> dict:
    keys = ("dtype", "device", "revision", "max_new_tokens", "attn_implementation")
    return {k: getattr(o, k) for k in keys if getattr(o, k, None) is not None}


def _where(o, default: dict | None = None) -> dict:
    from mimic.eval.diagnostics.common import parse_where

    return parse_where(o.where) if o.where else dict(default or {})


def _check_scored(o: _Scored) -> None:
    for flag, value in (("--limit", o.limit), ("--batch-size", o.batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if o.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be 0 (no intervals) or more, got {o.bootstrap}")


# The paper's Fig. 3 setting: counting with 3 query images among 10.
POOLING_CONFIGS = ["counting_unbalanced"]
POOLING_WHERE = {"num_query_images": ["3"], "num_images": ["10"]}


@dataclass
class PoolingOptions(_Scored):
    factors: list[int] = opt([1, 2, 4, 8, 16], help="Pooling factors f.")
    arms: list[str] = opt(["tokens", "pixels"], help="tokens: 1-D pooling of vision tokens (shorter sequence); "
                          "pixels: the control (down- and upsampling by sqrt(f) per side, same length).")


@command("diagnose pooling", PoolingOptions, lock="out")
def run_pooling_command(o: PoolingOptions) -> int:
    """Fig. 3: accuracy as vision tokens are pooled by f, against a pixel-space control of the same f.

    Every (arm, f) is an eval run under OUT/<arm>-f<f> (resumable); OUT/pooling.json holds accuracy with
    bootstrap intervals, the vision tokens per factor and the pixel control's `kept` share of the encoder's
    pixels, OUT/pooling.csv the same curves, OUT/pooling.png the plot. Default rows: the paper's setting,
    counting_unbalanced rows with 3 query images among 10; --configs changes the configs (the row filter
    stays), --where replaces the filter (and, without --configs, uses every config). Example:

      mimic diagnose pooling --data bench --model hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf --out diag/pooling
    """
    from mimic.eval.diagnostics.pooling import CSV_FILE, POOLING_FILE, PoolingSettings, run_pooling

    _check_scored(o)
    configs = o.configs or (POOLING_CONFIGS if not o.where else [])
    where = _where(o, POOLING_WHERE)
    shown = " ".join(f"{k}={','.join(v)}" for k, v in where.items()) or "(none)"
    print(f"rows: configs {' '.join(configs) or '(all)'}; filter {shown}"
          f"{'' if o.where else ' (the paper default; --where replaces it)'}"
          f"{f'; first {o.limit} per config' if o.limit else ''}")
    summary = run_pooling(PoolingSettings(
        data=o.data, model=o.model, out=o.out, configs=configs, where=where, factors=o.factors, arms=o.arms,
        limit=o.limit, batch_size=o.batch_size, split=o.split, model_options=_options(o), cache_dir=o.cache_dir,
        progress=o.progress, overwrite=o.overwrite, bootstrap=o.bootstrap, bootstrap_seed=o.bootstrap_seed))
    for arm, entries in summary["arms"].items():
        for e in entries:
            scores = ", ".join(f"{c} {100 * s['score']:.1f}" for c, s in e["configs"].items() if s["score"] is not None)
            kept = f"  kept {e['kept']:.3f}" if "kept" in e else ""
            print(f"{arm:<7} f={e['factor']:<3} tokens/image {e['vision_tokens_per_image']:.0f}{kept}  {scores}")
    print(f"\nwrote {', '.join(os.path.join(o.out, n) for n in (POOLING_FILE, CSV_FILE, 'pooling.png'))}")
    return 0


# The paper's Fig. 4 setting (Fig. 9: --where num_images=6). The default configs are those with rows of both
# 4 and 6 images, so that the two runs draw from the same tasks in the same proportions.
ATTENTION_CONFIGS = ["listing", "common", "odd_one"]
ATTENTION_WHERE = {"num_images": ["4"]}


def _default_configs(data: str, paper: list[str]) -> list[str]:
    """The paper's default configs that `data` holds (a warning names the missing ones); all missing: an error."""
    from mimic.eval.data import config_names

    available = config_names(data)
    present = [c for c in paper if c in available]
    if not present:
        raise ConfigError(f"{data} holds none of the default configs {', '.join(paper)}; choose with --configs "
                          f"(available: {', '.join(available)})")
    if len(present) < len(paper):
        logger.warning("%s lacks the default configs %s; using %s", data,
                       ", ".join(c for c in paper if c not in present), ", ".join(present))
    return present


def _check_limit(limit: int) -> None:
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")


@dataclass
class AttentionOptions(_Common):
    limit: int = opt(50, help="Samples to average over (the paper: 50), taken in rounds over the configs so each "
                     "gives as many; fewer (with a warning) when a config runs out.")
    heatmap_layers: list[int] = opt([], help="Layers drawn as image-by-image heatmaps (default: first, middle, "
                                    "last).")


@command("diagnose attention", AttentionOptions, lock="out")
def run_attention_command(o: AttentionOptions) -> int:
    """Fig. 4/9: vision-to-vision attention per layer, split into inter- and intra-image shares.

    Eager attention, one sample per forward pass; OUT/attention_samples.jsonl grows by one line per sample
    (resumable), OUT/attention.json holds per layer `layer`, `inter`, `intra` and the image-by-image matrix,
    `chance_inter` (uniform attention under the same causal mask and layout) and `rows_used` per config;
    OUT/attention_by_layer.png and OUT/attention_heatmaps.png plot them. Default data: rows with 4 images
    (the paper's Fig. 4; --where num_images=6 gives Fig. 9) of listing, common and odd_one (the configs with
    rows of both sizes); --configs changes the configs and keeps the 4 images, --where changes the rows.
    Example:

      mimic diagnose attention --data bench --model hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf --out diag/attn
    """
    from mimic.eval.diagnostics.attention import AttentionSettings, run_attention

    _check_limit(o.limit)
    configs = o.configs or _default_configs(o.data, ATTENTION_CONFIGS)
    summary = run_attention(AttentionSettings(
        data=o.data, model=o.model, out=o.out, configs=configs,
        where=_where(o, ATTENTION_WHERE), limit=o.limit, split=o.split, heatmap_layers=o.heatmap_layers,
        model_options=_options(o), cache_dir=o.cache_dir, progress=o.progress, overwrite=o.overwrite))
    print(f"uniform-attention inter share (chance): {100 * summary['chance_inter']:.1f}")
    print("layer  inter  intra")
    for e in summary["layers"]:
        print(f"{e['layer']:>5}  {100 * e['inter']:5.1f}  {100 * e['intra']:5.1f}")
    used = ", ".join(f"{c} {n}" for c, n in summary["rows_used"].items())
    print(f"\nwrote {os.path.join(o.out, 'attention.json')} and plots beside it ({summary['samples']} samples: {used})")
    return 0


@dataclass
class StitchOptions(_Scored):
    tile_size: int | None = opt(None, help="Fix the side of each image's cell in the composite (the paper's "
                                "caption: 384 for LLaVA-OV, 484 for Qwen2-VL and InternVL). Default: sized per "
                                "sample so the composite gets as many vision tokens as the multi-image input.")


@command("diagnose stitch", StitchOptions, lock="out")
def run_stitch_command(o: StitchOptions) -> int:
    """Table 6: each sample's images stitched into one grid composite vs the multi-image input.

    Each image is letterboxed into its cell; the cell is sized so the composite's vision tokens match the
    multi-image input's as closely as the processor allows; the question text is unchanged. Two eval runs
    (OUT/multi, OUT/stitched; resumable); OUT/stitch.json sets their scores side by side per config with both
    arms' vision tokens per sample and token_ratio (stitched / multi-image), listing the samples the processor
    could not match; OUT/stitch.png plots them. Example:

      mimic diagnose stitch --data bench --model hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf --out diag/stitch
    """
    from mimic.eval.diagnostics.stitch import StitchSettings, run_stitch

    _check_scored(o)
    summary = run_stitch(StitchSettings(
        data=o.data, model=o.model, out=o.out, configs=o.configs, where=_where(o), tile_size=o.tile_size,
        limit=o.limit, batch_size=o.batch_size, split=o.split, model_options=_options(o), cache_dir=o.cache_dir,
        progress=o.progress, overwrite=o.overwrite, bootstrap=o.bootstrap, bootstrap_seed=o.bootstrap_seed))
    print(summary["table6"])
    print(f"\nvision tokens stitched / multi-image: {summary['token_ratio']:.3f} (mean over samples); "
          f"{len(summary['mismatch'])} samples off by more than {100 * summary['mismatch_threshold']:.0f}%")
    print(f"\nwrote {os.path.join(o.out, 'stitch.json')}, {os.path.join(o.out, 'stitch.png')}")
    return 0


@dataclass
class AnswerAttentionOptions:
    data: str = opt(help="Benchmark: a Hub-layout folder (mimic build ...) or a Hub dataset id.", metavar="DIR_OR_ID")
    model: list[str] = opt(help="One or more hf: models drawn side by side (e.g. a base and a fine-tuned one).",
                           metavar="SPEC")
    out: str = opt(help="Output folder: answer_attention.json and answer_attention.png (rerun to resume).",
                   metavar="DIR")
    configs: list[str] = opt([], help="Configs to take samples from (default: every config).")
    where: list[str] = opt([], help="Control filter, COLUMN=VALUE[,VALUE...]; only matching rows are used.")
    limit: int = opt(4, help="How many samples (matching rows with 2+ images, in rounds over the configs).")
    layer: int = opt(15, help="Language-model layer whose attention is drawn, 0-based as the paper's layer numbers "
                     "(its 'the 15th layer': 15).")
    split: str = opt("test", help="Dataset split.")
    max_new_tokens: int | None = opt(None, help="Most tokens per answer (default 64).")
    overwrite: bool = opt(False, help="Discard earlier results in --out instead of resuming.")
    cache_dir: str | None = opt(None, help="Where `datasets` caches the data as arrow files.", metavar="DIR")
    dtype: str | None = opt(None, help="Weights dtype; auto = bfloat16 on CUDA when supported, float32 on CPU.",
                            choices=_DTYPES)
    device: str | None = opt(None, help="Device (auto, cpu, cuda, cuda:1, ...).")
    revision: str | None = opt(None, help="Hub revision of the checkpoints.")
    progress: bool = opt(True, help="Show a progress bar.")


@command("diagnose answer-attention", AnswerAttentionOptions, lock="out")
def run_answer_attention_command(o: AnswerAttentionOptions) -> int:
    """Fig. 5: attention from the generated answer to each image's patches at one layer, models side by side.

    Example (a base model and a fine-tuned one):

      mimic diagnose answer-attention --data bench --model hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf \\
          hf:runs/masked-lora --configs counting_balanced --limit 4 --layer 15 --out diag/answer
    """
    from mimic.eval.diagnostics.answer_attention import AnswerAttentionSettings, run_answer_attention

    _check_limit(o.limit)
    summary = run_answer_attention(AnswerAttentionSettings(
        data=o.data, models=o.model, out=o.out, configs=o.configs, where=_where(o), limit=o.limit,
        layer=o.layer, split=o.split, model_options=_options(o), cache_dir=o.cache_dir, progress=o.progress,
        overwrite=o.overwrite))
    for spec, per_sample in summary["models"].items():
        for sid, e in per_sample.items():
            shares = " ".join(f"{100 * m:.1f}" for m in e["mass"]) if e["mass"] else "(empty answer)"
            print(f"{spec}  {sid}  answer {e['answer']!r}  image shares % {shares}")
    print(f"\nwrote {os.path.join(o.out, 'answer_attention.json')}, {os.path.join(o.out, 'answer_attention.png')}")
    return 0


@dataclass
class SweepOptions:
    out: str = opt(help="Output folder: the twin benchmark folder(s) and sweep.json.", metavar="DIR")
    data: str | None = opt(None, help="Benchmark to take the base rows from: a Hub-layout folder (mimic build ...) "
                           "or a Hub dataset id (distractors can only be dropped).", metavar="DIR_OR_ID")
    twins: str | None = opt(None, help="Instead of --data: twins written by `mimic generate --variant` (JSON Lines), "
                            "made into folders with the image files of --images.", metavar="FILE.jsonl")
    images: str | None = opt(None, help="With --twins: the images folder of their annotations.", metavar="DIR")
    variant: str | None = opt(None, help="With --data: position (query block first/middle/last: OUT/first, "
                              "OUT/middle, OUT/last) or distractors (every level in one folder).",
                              choices=["position", "distractors"])
    configs: list[str] = opt([], help="Configs to sweep (default: every Counting and Listing config).")
    where: list[str] = opt([], help="Control filter, COLUMN=VALUE[,VALUE...]; only matching rows are used.")
    limit: int | None = opt(None, help="Use only the first N base rows of each config.")
    levels: list[int] = opt([], help="distractors: the numbers of distractors (e.g. 0 1 2 4); only rows that can "
                            "give every level are used.")
    max_distractors: int | None = opt(None, help="distractors: levels 0..K (instead of --levels).")
    split: str = opt("test", help="Dataset split.")
    cache_dir: str | None = opt(None, help="Where `datasets` caches the data as arrow files.", metavar="DIR")


@command("diagnose sweep", SweepOptions, lock="out")
def run_sweep_command(o: SweepOptions) -> int:
    """Matched controls: twin benchmark folders, every level on the same base rows (docs/diagnostics.md).

    From a built benchmark (--data, --variant): the query block moved, or distractors dropped; every twin is
    verified against its source row. From the annotations: `mimic generate --variant` writes verified twins
    (distractors can be added there), and --twins makes them into folders. Evaluate the folders with
    `mimic eval`; `mimic report` over the runs pairs the levels by base row ("Matched sweeps"). Example:

      mimic diagnose sweep --data bench --variant position --configs counting_unbalanced --out sweeps/position
      for p in first middle last; do mimic eval --data sweeps/position/$p --model hf:M --out runs/pos-$p; done
      mimic report runs/pos-first runs/pos-middle runs/pos-last --out report
    """
    from mimic.eval.diagnostics.sweeps import run_sweep, write_twin_folders

    if o.limit is not None and o.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {o.limit}")
    if (o.data is None) == (o.twins is None):
        raise ConfigError("give --data (a built benchmark) or --twins (from `mimic generate --variant`), one of them")
    if o.twins is not None:
        extra = [f for f, v in (("--variant", o.variant), ("--levels", o.levels), ("--max-distractors",
                 o.max_distractors), ("--configs", o.configs), ("--where", o.where), ("--limit", o.limit)) if v]
        if extra or o.images is None:
            raise ConfigError("--twins takes --images and --out only (the sweep was fixed by `mimic generate`)"
                              + (f"; got {', '.join(extra)}" if extra else "; --images is missing"))
        summary = write_twin_folders(o.twins, o.images, o.out)
    else:
        if o.variant is None:
            raise ConfigError("--data needs --variant position or distractors")
        summary = run_sweep(o.data, o.out, o.variant, configs=o.configs, where=_where(o), limit=o.limit,
                            levels=o.levels, max_distractors=o.max_distractors, split=o.split, cache_dir=o.cache_dir)
    print(f"levels {', '.join(summary['levels'])}; base rows " +
          ", ".join(f"{c} {n}" for c, n in summary["base_rows"].items()))
    for config, reasons in summary["skipped"].items():
        for reason, n in reasons.items():
            print(f"skipped {n} {config} rows: {reason}")
    print(f"\nwrote {', '.join(summary['folders'])} and {os.path.join(o.out, 'sweep.json')}")
    return 0
