"""Vision-token pooling against a pixel-space control (paper Fig. 3; Findings 1 and 2).

Two arms, each evaluated at pooling factors f (default 1, 2, 4, 8, 16):

- `tokens`: each image's projected vision tokens are average-pooled in 1-D by f, zero-shot. A forward hook
  on the model's own `multi_modal_projector` replaces its (images, T, d) output with (images, ceil(T/f), d)
  (the last window averages the T mod f tokens it has); the image placeholders in `input_ids` shrink to
  match (ceil(T/f) + 1 newline per image), so the sequence really gets shorter: T + 1 -> ceil(T/f) + 1
  tokens per image. That is "shorter by f up to rounding": exact when f divides T, and never shorter
  than one pooled token plus the newline.
- `pixels` (the control): f times less information *at the resolution the encoder sees*, same tokens. Each
  image is first resized to the size its content reaches the encoder at (`Family.encoder_size`: for LLaVA-OV
  the content of the pad-to-square-then-resize view, 640x426 -> 384x256), downsampled there by sqrt(f) per
  side (bicubic, at least 1 pixel), upsampled back to that size, and this image goes to the processor, whose
  own resize is then the identity (checked per image: the control is a fixed point of `encoder_size`).
  Downsampling the original instead (an earlier version) removes far less than f once the processor shrinks
  the image to the encoder input (about 1.0x, 1.5x, 3x, 6x for f = 2, 4, 8, 16 on a 640x426 COCO image).
  f = 1 hands the original image over untouched, so it is exactly a plain eval too. Every prediction's
  `info["pixel_control"]` holds the sizes actually produced, and pooling.json averages them (`kept`).

Every (arm, f) is an ordinary `mimic eval` run in OUT/<arm>-f<f> (`run_eval` with the adapter below), so it
resumes, shows progress and scores exactly like `mimic eval`; f = 1 in the tokens arm goes through the same
hook and placeholder code and gives exactly the predictions of a plain run (tested). pooling.json collects
accuracy with bootstrap intervals, the mean vision-token count per factor and, for the pixel arm, the
information kept at the encoder; pooling.csv holds the same curves, one row per (arm, factor, config), and
pooling.png draws Fig. 3.

Both arms read the model's family (`mimic.eval.families`): the tokens arm its `token_pooling`, the pixel arm
its `encoder_size`. Families that do not support the pooling analysis yet get a one-line error. Samples
need two or more images (LLaVA-OV tiles an image alone in its sample, anyres).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mimic.errors import ConfigError
from mimic.eval.api import Request
from mimic.eval.families import pool_tokens, shrink_placeholders
from mimic.eval.models.hf import HFModel

logger = logging.getLogger(__name__)

__all__ = ["ARMS", "PooledHFModel", "PoolingSettings", "control_images", "kept_summary", "pixel_control",
           "pool_tokens", "run_pooling", "shrink_placeholders", "write_pooling_csv"]

ARMS = ("tokens", "pixels")
POOLING_FILE = "pooling.json"
CSV_FILE = "pooling.csv"
#: The pixel control's method, part of the pixel runs' identity (see the module docstring).
PIXEL_CONTROL = "encoder-resolution"


def pixel_control(image, factor: int, encoder_size: tuple[int, int]):
    """The control image of `image` at `factor` and the (width, height) it was downsampled to.

    encoder_size: (width, height) at which the image's content reaches the vision encoder. The image is
    resized to that size, downsampled there by sqrt(factor) per side and upsampled back (PIL, bicubic), so it
    carries about 1/factor of the pixels the encoder would have seen. factor 1 returns `image` itself (the
    processor then resizes it to `encoder_size` as in a plain eval)."""
    from PIL import Image

    if factor == 1:
        return image, tuple(encoder_size)
    s = math.sqrt(factor)
    w, h = encoder_size
    small = (max(1, round(w / s)), max(1, round(h / s)))
    down = image.resize((w, h), Image.Resampling.BICUBIC).resize(small, Image.Resampling.BICUBIC)
    return down.resize((w, h), Image.Resampling.BICUBIC), down.size


def control_images(family, processor, images: Sequence, factor: int, options=None) -> tuple[list, dict]:
    """The pixel arm's images for one sample, and what was fed: per image its original, encoder and
    downsampled (width, height). ConfigError when a control image would be resized again by the processor
    (its size must be a fixed point of the family's `encoder_size`), since its `kept` would then be wrong.
    options: the adapter's options (Qwen2-VL's pixel bounds change the encoder size)."""
    n = len(images)
    out, fed = [], {"factor": factor, "sizes": [], "encoder_sizes": [], "control_sizes": []}
    for im in images:
        im = im if im.mode == "RGB" else im.convert("RGB")
        enc = tuple(int(x) for x in family.encoder_size(processor, im.size, n, options))
        control, small = pixel_control(im, factor, enc)
        if factor > 1 and tuple(family.encoder_size(processor, control.size, n, options)) != control.size:
            raise ConfigError(f"mimic diagnose pooling: {family.name} would resize the {control.size[0]}x"
                              f"{control.size[1]} control image again; the pixel control cannot be sized for it")
        out.append(control)
        fed["sizes"].append(list(im.size))
        # f > 1: the size of the image handed over, which the processor leaves as it is (checked above)
        fed["encoder_sizes"].append(list(control.size if factor > 1 else enc))
        fed["control_sizes"].append(list(small))
    return out, fed


def kept_summary(fed: Sequence[dict]) -> dict:
    """Means over every image of `fed` (the `pixel_control` infos of a run's predictions): sides are the
    geometric mean side sqrt(w * h) of each image (non-square images), sizes the mean [w, h], and `kept` the
    mean of (control w * h) / (encoder w * h) = (control_side / encoder_side) ** 2 per image."""
    pairs = [(e, c) for f in fed for e, c in zip(f["encoder_sizes"], f["control_sizes"], strict=True)]
    n = len(pairs)

    def mean(values) -> float:
        return sum(values) / n

    return {
        "encoder_side": mean(math.sqrt(e[0] * e[1]) for e, _ in pairs),
        "control_side": mean(math.sqrt(c[0] * c[1]) for _, c in pairs),
        "kept": mean(c[0] * c[1] / (e[0] * e[1]) for e, c in pairs),
        "encoder_size": [mean(e[0] for e, _ in pairs), mean(e[1] for e, _ in pairs)],
        "control_size": [mean(c[0] for _, c in pairs), mean(c[1] for _, c in pairs)],
        "images": n,
    }


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
        self._fed: list[dict] | None = None  # the pixel arm's sizes of the batch being generated

    def load(self) -> None:
        if self.model is not None:
            return
        super().load()
        from mimic.eval.diagnostics.common import family_of

        family = family_of(self, "pooling")
        if self.arm == "tokens" and getattr(self.model, "_mimic_image_masking", None) is not None:
            # the mask derives each image's tokens from the unpooled counts
            raise ConfigError(f"mimic diagnose pooling: hf:{self.target} runs per-image attention masks; the "
                              "tokens arm cannot shorten its images (the pixels arm can: --arms pixels)")
        if self.arm == "tokens":
            self._pooling = family.token_pooling(self.model, self.processor, self.factor)
            self._pooling.attach()

    def _diagnostic(self) -> dict:
        d = {"analysis": "pooling", "arm": self.arm, "factor": self.factor}
        # runs of the earlier control (the original image down- and upsampled) must not be resumed as this one
        return {**d, "control": PIXEL_CONTROL} if self.arm == "pixels" else d

    def identity(self) -> dict:
        return {**super().identity(), "diagnostic": self._diagnostic()}

    def describe(self) -> dict:
        return {**super().describe(), "diagnostic": self._diagnostic()}

    def encode(self, requests: Sequence[Request]):
        self.load()
        few = [r.id for r in requests if len(r.images) < 2]
        if few:
            raise ConfigError(f"mimic diagnose pooling: sample {few[0]} has fewer than 2 images (one image gets "
                              "anyres tiles, which this pooling does not cover); filter with --where num_images=...")
        if self.arm == "pixels":
            controls = [control_images(self.family, self.processor, r.images, self.factor, self.options) for r in requests]
            self._fed = [fed for _, fed in controls]
            requests = [Request(id=r.id, config=r.config, task=r.task, question=r.question, sample=r.sample,
                                images=images) for r, (images, _) in zip(requests, controls, strict=True)]
        batch = super().encode(requests)
        if self.arm == "tokens":
            batch = self._pooling.shorten(batch, self.generation_config.pad_token_id)
        return batch

    def generate(self, requests: Sequence[Request]):
        self._fed = None
        results = super().generate(requests)
        if self._fed is not None:
            for result, fed in zip(results, self._fed, strict=True):
                result.info["pixel_control"] = fed
        return results

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
    """Run (or resume) every (arm, factor) eval, then write pooling.json, pooling.csv and pooling.png."""
    from mimic.atomic import write_json
    from mimic.eval.api import create_model
    from mimic.eval.diagnostics.common import hf_target, run_arm, select_rows

    target = hf_target(settings.model, "pooling")
    bad = [a for a in settings.arms if a not in ARMS]
    if bad or not settings.arms:
        raise ConfigError(f"--arms {bad or '(none)'}: choose from {', '.join(ARMS)}")
    if not settings.factors or min(settings.factors) < 1:
        raise ConfigError(f"--factors {settings.factors}: give factors of at least 1")
    rows = {sel.config: len(sel.indices) for sel in select_rows(
        settings.data, settings.configs, settings.split, settings.limit, settings.where, settings.cache_dir)}
    short = {c: n for c, n in rows.items() if settings.limit is not None and n < settings.limit}
    for config, n in short.items():
        logger.warning("warning: %s: %d rows match the filter, fewer than --limit %d; all %d used",
                       config, n, settings.limit, n)
    base = create_model(settings.model, settings.model_options)  # validates the options once, loads nothing
    out = Path(settings.out)
    arms: dict[str, list[dict]] = {}
    for arm in settings.arms:
        for f in sorted(set(settings.factors)):
            run_dir = out / f"{arm}-f{f}"
            adapter = PooledHFModel(target, base.options, arm=arm, factor=f)
            results, records = run_arm(settings, adapter, run_dir, label=f"{arm} f={f}")
            arms.setdefault(arm, []).append(_factor_entry(arm, f, run_dir, results, records))
    summary = {"analysis": "pooling", "model": settings.model, "data": settings.data, "configs": settings.configs,
               "where": settings.where, "limit": settings.limit, "rows": rows,
               "factors": sorted(set(settings.factors)), "arms": arms}
    write_json(out / POOLING_FILE, summary)
    write_pooling_csv(summary, out / CSV_FILE)
    plot_pooling(summary, out / "pooling.png")
    return summary


def _factor_entry(arm: str, factor: int, run_dir: Path, results: dict, records: list[dict]) -> dict:
    """pooling.json's entry for one (arm, factor) run, from its scores and what its predictions record."""
    from mimic.errors import DataError

    tokens = [r["info"]["image_tokens"] for r in records if "image_tokens" in r.get("info", {})]
    images = sum(r["controls"]["num_images"] for r in records)
    entry = {
        "factor": factor, "run": str(run_dir), "rows": len(records), "images": images,
        "configs": {name: {k: s[k] for k in ("n", "metric", "score", "ci_low", "ci_high")}
                    for name, s in results["configs"].items()},
        "vision_tokens": sum(tokens) / len(tokens) if tokens else None,
        "vision_tokens_per_image": sum(tokens) / images if tokens else None,
    }
    if arm == "pixels":
        fed = [r.get("info", {}).get("pixel_control") for r in records]
        if any(x is None or x["factor"] != factor for x in fed):
            raise DataError(f"{run_dir}: predictions without this control's image sizes (an older mimic); "
                            "rerun with --overwrite")
        summary = kept_summary(fed)
        if summary.pop("images") != images:
            raise DataError(f"{run_dir}: the recorded image sizes do not cover the rows' {images} images")
        entry.update(summary)
    return entry


CSV_COLUMNS = ("arm", "factor", "config", "n", "metric", "score", "ci_low", "ci_high", "vision_tokens_per_image",
               "kept")


def write_pooling_csv(summary: dict, path: Path) -> Path:
    """The curves of pooling.json as CSV: one row per (arm, factor, config); `kept` is empty for the tokens arm."""
    import csv

    from mimic.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for arm, entries in summary["arms"].items():
            for e in entries:
                for config, s in e["configs"].items():
                    writer.writerow({"arm": arm, "factor": e["factor"], "config": config,
                                     **{k: s[k] for k in ("n", "metric", "score", "ci_low", "ci_high")},
                                     "vision_tokens_per_image": e["vision_tokens_per_image"],
                                     "kept": e.get("kept")})
    return Path(path)


def _positions(summary: dict) -> dict[int, float]:
    """x position of each factor, shared by both panels: the tokens arm's vision tokens per image at that
    factor (the sequence length of the paper's Fig. 3), or the unpooled count over f where the tokens arm did
    not run or its rounded counts coincide (a model with few tokens per image)."""
    measured = {e["factor"]: e["vision_tokens_per_image"] for e in summary["arms"].get("tokens", [])}
    if all(measured.get(f) for f in summary["factors"]) and len(set(measured.values())) == len(measured):
        return {f: measured[f] for f in summary["factors"]}
    counts = [e["vision_tokens_per_image"] for es in summary["arms"].values() for e in es if e["factor"] == 1]
    unpooled = measured.get(1) or next((c for c in counts if c), None) or 1.0
    return {f: unpooled / f for f in summary["factors"]}


def plot_pooling(summary: dict, path: Path) -> Path:
    """Fig. 3: score against vision tokens per image (log axis, the original f = 1 at the right; a square marks
    it, a star the best score of each config): 1-D token pooling (left) and the pixel control at the same
    positions (right), whose ticks carry the information it kept at the encoder."""
    from mimic.eval.diagnostics.common import new_figure, save_figure

    arms = [a for a in ARMS if a in summary["arms"]]
    pos = _positions(summary)
    fig = new_figure(4.5 * len(arms), 3.6)
    axes = fig.subplots(1, len(arms), squeeze=False)[0]
    titles = {"tokens": "1-D pooling of vision tokens", "pixels": "control: pixel-space pooling (same length)"}
    for ax, arm in zip(axes, arms, strict=True):
        entries = summary["arms"][arm]
        for config in sorted({c for e in entries for c in e["configs"]}):
            pts = [(pos[e["factor"]], e["factor"], e["configs"][config]) for e in entries if config in e["configs"]]
            pts = [(x, f, s) for x, f, s in pts if s["score"] is not None]
            if not pts:
                continue
            xs = [x for x, _, _ in pts]
            ys = [100 * s["score"] for _, _, s in pts]
            lo = [100 * (s["ci_low"] if s["ci_low"] is not None else s["score"]) for _, _, s in pts]
            hi = [100 * (s["ci_high"] if s["ci_high"] is not None else s["score"]) for _, _, s in pts]
            (line,) = ax.plot(xs, ys, marker="o", label=config)
            ax.fill_between(xs, lo, hi, alpha=0.2, color=line.get_color())
            for x, f, s in pts:
                if f == 1:
                    ax.scatter([x], [100 * s["score"]], marker="s", s=90, facecolors="none", edgecolors="black",
                               zorder=3)
            best = max(range(len(ys)), key=lambda i: ys[i])
            ax.scatter([xs[best]], [ys[best]], marker="*", s=140, color=line.get_color(), edgecolors="black",
                       zorder=4)
        ax.set_xscale("log", base=2)
        ax.minorticks_off()
        ticks = sorted(entries, key=lambda e: pos[e["factor"]])
        if arm == "pixels":
            labels = [f"f={e['factor']}\nkept {e['kept']:.2g}" for e in ticks]
            ax.set_xlabel("f (placed as on the left) / share of encoder pixels kept")
        else:
            labels = [f"{e['vision_tokens_per_image'] or 0:.0f}\nf={e['factor']}" for e in ticks]
            ax.set_xlabel("vision tokens per image (sequence length)")
        ax.set_xticks([pos[e["factor"]] for e in ticks], labels, fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_ylabel("score (%)")
        ax.set_title(titles[arm], fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(summary["model"], fontsize=9)
    return save_figure(fig, path)
