"""Vision-token pooling against a pixel-space control (paper Fig. 3; Findings 1 and 2).

Two arms, each evaluated at pooling factors f (default 1, 2, 4, 8, 16):

- `tokens`: each image's projected vision tokens are average-pooled in 1-D by f, zero-shot. A forward hook
  on the model's own `multi_modal_projector` replaces its (images, T, d) output with (images, ceil(T/f), d)
  (the last window averages the T mod f tokens it has); the image placeholders in `input_ids` shrink to
  match (ceil(T/f) + 1 newline per image), so the sequence really gets shorter: T + 1 -> ceil(T/f) + 1
  tokens per image. That is "shorter by f up to rounding": exact when f divides T, and never shorter
  than one pooled token plus the newline.
- `pixels` (the control): each image is downsampled by sqrt(f) per side (bicubic, at least 1 pixel) and
  upsampled back to its size before the processor, so the token count stays and information goes.

Every (arm, f) is an ordinary `mimic eval` run in OUT/<arm>-f<f> (`run_eval` with the adapter below), so it
resumes, shows progress and scores exactly like `mimic eval`; f = 1 in the tokens arm goes through the same
hook and placeholder code and gives exactly the predictions of a plain run (tested). pooling.json collects
accuracy with bootstrap intervals and the mean vision-token count per factor; pooling.png draws Fig. 3.

LLaVA-OneVision only, samples with two or more images (one base crop per image, so T is the same for every
image and the newline follows it). Qwen2-VL computes M-RoPE positions from the image grid and InternVL
tiles images; shortening their sequences needs more than this hook, so they get a one-line error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mimic.errors import ConfigError
from mimic.eval.api import Request
from mimic.eval.families import pool_tokens, shrink_placeholders
from mimic.eval.models.hf import HFModel

__all__ = ["ARMS", "PooledHFModel", "PoolingSettings", "pixel_control", "pool_tokens", "run_pooling",
           "shrink_placeholders"]

ARMS = ("tokens", "pixels")
POOLING_FILE = "pooling.json"


def pixel_control(image, factor: int):
    """`image` downsampled by sqrt(factor) per side and upsampled back to its own size (PIL, bicubic)."""
    from PIL import Image

    if factor == 1:
        return image
    s = math.sqrt(factor)
    w, h = image.size
    small = image.resize((max(1, round(w / s)), max(1, round(h / s))), Image.Resampling.BICUBIC)
    return small.resize((w, h), Image.Resampling.BICUBIC)


class PooledHFModel(HFModel):
    """The `hf:` adapter with one arm of the pooling analysis at one factor (see the module docstring)."""

    def __init__(self, target: str | None = None, options=None, arm: str = "tokens", factor: int = 1):
        super().__init__(target, options)
        if arm not in ARMS:
            raise ConfigError(f"pooling arm must be one of {', '.join(ARMS)}, got {arm!r}")
        if factor < 1:
            raise ConfigError(f"pooling factors must be at least 1, got {factor}")
        self.arm, self.factor = arm, factor
        self._pooling = None

    def load(self) -> None:
        if self.model is not None:
            return
        super().load()
        from mimic.eval.diagnostics.attention import family_of

        family = family_of(self, "pooling")
        if self.arm == "tokens" and getattr(self.model, "_mimic_image_masking", None) is not None:
            # the mask derives each image's tokens from the unpooled counts
            raise ConfigError(f"mimic diagnose pooling: hf:{self.target} runs per-image attention masks; the "
                              "tokens arm cannot shorten its images (the pixels arm can: --arms pixels)")
        if self.arm == "tokens":
            self._pooling = family.token_pooling(self.model, self.processor, self.factor)
            self._pooling.attach()

    def identity(self) -> dict:
        return {**super().identity(), "diagnostic": {"analysis": "pooling", "arm": self.arm, "factor": self.factor}}

    def describe(self) -> dict:
        return {**super().describe(), "diagnostic": {"analysis": "pooling", "arm": self.arm, "factor": self.factor}}

    def encode(self, requests: Sequence[Request]):
        self.load()
        few = [r.id for r in requests if len(r.images) < 2]
        if few:
            raise ConfigError(f"mimic diagnose pooling: sample {few[0]} has fewer than 2 images (one image gets "
                              "anyres tiles, which this pooling does not cover); filter with --where num_images=...")
        if self.arm == "pixels":
            requests = [Request(id=r.id, config=r.config, task=r.task, question=r.question, sample=r.sample,
                                images=[pixel_control(im.convert("RGB"), self.factor) for im in r.images])
                        for r in requests]
        batch = super().encode(requests)
        if self.arm == "tokens":
            batch = self._pooling.shorten(batch, self.generation_config.pad_token_id)
        return batch

    def close(self) -> None:
        if self._pooling is not None:
            self._pooling.detach()
            self._pooling = None
        super().close()


@dataclass
class PoolingSettings:
    """The pooling analysis: both arms at every factor, each an eval run under OUT/<arm>-f<factor>."""

    data: str
    model: str
    out: str
    configs: list[str] = field(default_factory=list)
    where: dict[str, list[str]] = field(default_factory=dict)
    factors: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    limit: int | None = None
    batch_size: int = 8
    split: str = "test"
    model_options: dict = field(default_factory=dict)
    cache_dir: str | None = None
    progress: bool = True
    overwrite: bool = False
    bootstrap: int = 1000
    bootstrap_seed: int = 0


def run_pooling(settings: PoolingSettings) -> dict:
    """Run (or resume) every (arm, factor) eval, then write pooling.json and pooling.png."""
    from mimic.atomic import write_json
    from mimic.eval.api import create_model
    from mimic.eval.diagnostics.common import hf_target, run_arm, select_rows

    target = hf_target(settings.model, "pooling")
    bad = [a for a in settings.arms if a not in ARMS]
    if bad or not settings.arms:
        raise ConfigError(f"--arms {bad or '(none)'}: choose from {', '.join(ARMS)}")
    if not settings.factors or min(settings.factors) < 1:
        raise ConfigError(f"--factors {settings.factors}: give factors of at least 1")
    select_rows(settings.data, settings.configs, settings.split, settings.limit, settings.where, settings.cache_dir)
    base = create_model(settings.model, settings.model_options)  # validates the options once, loads nothing
    out = Path(settings.out)
    arms: dict[str, list[dict]] = {}
    for arm in settings.arms:
        for f in sorted(set(settings.factors)):
            run_dir = out / f"{arm}-f{f}"
            adapter = PooledHFModel(target, base.options, arm=arm, factor=f)
            results, records = run_arm(settings, adapter, run_dir, label=f"{arm} f={f}")
            tokens = [r["info"]["image_tokens"] for r in records if "image_tokens" in r.get("info", {})]
            per_config = {name: {"n": s["n"], "metric": s["metric"], "score": s["score"], "ci_low": s["ci_low"],
                                 "ci_high": s["ci_high"]} for name, s in results["configs"].items()}
            arms.setdefault(arm, []).append({
                "factor": f, "run": str(run_dir), "configs": per_config,
                "vision_tokens": sum(tokens) / len(tokens) if tokens else None,
                "vision_tokens_per_image": (sum(tokens) / sum(r["controls"]["num_images"] for r in records)
                                            if tokens else None),
            })
    summary = {"analysis": "pooling", "model": settings.model, "data": settings.data, "where": settings.where,
               "factors": sorted(set(settings.factors)), "arms": arms}
    write_json(out / POOLING_FILE, summary)
    plot_pooling(summary, out / "pooling.png")
    return summary


def plot_pooling(summary: dict, path: Path) -> Path:
    """Fig. 3: score against vision tokens per image, tokens arm (left) and pixel control (right)."""
    from mimic.eval.diagnostics.common import new_figure, save_figure

    arms = [a for a in ARMS if a in summary["arms"]]
    fig = new_figure(4.5 * len(arms), 3.5)
    axes = fig.subplots(1, len(arms), squeeze=False)[0]
    titles = {"tokens": "1-D pooling of vision tokens", "pixels": "control: pixel-space pooling"}
    for ax, arm in zip(axes, arms, strict=True):
        entries = summary["arms"][arm]
        configs = sorted({c for e in entries for c in e["configs"]})
        for config in configs:
            pts = [(e["factor"], e["configs"][config]) for e in entries if config in e["configs"]]
            xs = [f for f, _ in pts]
            ys = [100 * (s["score"] or 0) for _, s in pts]
            lo = [100 * (s["ci_low"] if s["ci_low"] is not None else s["score"] or 0) for _, s in pts]
            hi = [100 * (s["ci_high"] if s["ci_high"] is not None else s["score"] or 0) for _, s in pts]
            ax.plot(xs, ys, marker="o", label=config)
            ax.fill_between(xs, lo, hi, alpha=0.2)
            ax.scatter([xs[0]], [ys[0]], marker="s", s=80, facecolors="none", edgecolors="black", zorder=3)
        ax.set_xscale("log", base=2)
        ax.set_xticks([e["factor"] for e in entries],
                      [f"{e['factor']}\n{e['vision_tokens_per_image']:.0f}" if e["vision_tokens_per_image"] is not None
                       else str(e["factor"]) for e in entries])
        ax.set_xlabel("pooling factor f / vision tokens per image")
        ax.set_ylim(0, 100)
        ax.set_ylabel("score (%)")
        ax.set_title(titles[arm], fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(summary["model"], fontsize=9)
    return save_figure(fig, path)
