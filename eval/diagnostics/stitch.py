"""Multi-image input against one stitched composite of the same images (paper appendix, Table 6).

The stitched arm resizes each of a sample's images to tile x tile (the paper: 384 for LLaVA-OV, the size of
its one base crop, so the token budget matches; 484 for Qwen2-VL and InternVL2) and pastes them row by row
into a grid of ceil(sqrt(n)) columns (empty cells black). The prompt becomes a single-image prompt: one
image in the chat template (no separators between images) and the question's "these images" turned into
"this grid image". The multi-image arm is a plain `mimic eval` of the same samples. Both are ordinary eval
runs (OUT/multi, OUT/stitched: resumable, progress, scoring as `mimic eval`); stitch.json sets their
scores side by side per config with the mean vision-token count of each arm, so the match can be checked,
and stitch.png draws them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mimic.errors import ConfigError
from mimic.eval.api import Request
from mimic.eval.models.hf import HFModel

__all__ = ["StitchSettings", "StitchedHFModel", "grid_shape", "run_stitch", "single_image_question", "stitch_images"]

STITCH_FILE = "stitch.json"
_PLURAL = re.compile(r"\b(all )?(these|the given|the provided|the) images\b")


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of the grid for n images: ceil(sqrt(n)) columns, as many rows as needed."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def stitch_images(images: Sequence, tile: int):
    """One RGB composite: image k resized to tile x tile at row k // cols, column k % cols."""
    from PIL import Image

    rows, cols = grid_shape(len(images))
    canvas = Image.new("RGB", (cols * tile, rows * tile))
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        canvas.paste(im.convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC), (c * tile, r * tile))
    return canvas


def single_image_question(question: str) -> str:
    """The question worded for one composite image ("in these images" -> "in this grid image")."""

    def repl(m: re.Match) -> str:
        det = {"these": "this", "the given": "the given", "the provided": "the provided", "the": "the"}[m.group(2)]
        return ("all parts of " if m.group(1) else "") + f"{det} grid image"

    return _PLURAL.sub(repl, question)


class StitchedHFModel(HFModel):
    """The `hf:` adapter fed one stitched composite per sample and a single-image prompt."""

    def __init__(self, target: str | None = None, options=None, tile: int | None = None):
        super().__init__(target, options)
        self.tile = tile

    def load(self) -> None:
        if self.model is not None:
            return
        super().load()
        if self.tile is None:
            from mimic.eval.diagnostics.attention import family_of

            self.tile = family_of(self, "stitch").stitch_tile(self.model, self.processor)

    def _stitched(self, request: Request) -> Request:
        self.load()
        return Request(id=request.id, config=request.config, task=request.task,
                       question=single_image_question(request.question),
                       images=[stitch_images(request.images, self.tile)] if request.images else [],
                       sample={**request.sample, "num_images": 1, "stitched": True})

    def render(self, request: Request) -> str:
        # the runner records the prompt of the original request; encode renders the stitched one
        if not request.sample.get("stitched"):
            request = self._stitched(request)
        return super().render(request)

    def encode(self, requests: Sequence[Request]):
        return super().encode([self._stitched(r) for r in requests])

    def identity(self) -> dict:
        return {**super().identity(), "diagnostic": {"analysis": "stitch", "tile": self.tile}}

    def describe(self) -> dict:
        return {**super().describe(), "diagnostic": {"analysis": "stitch", "tile": self.tile}}


@dataclass
class StitchSettings:
    data: str
    model: str
    out: str
    configs: list[str] = field(default_factory=list)
    where: dict[str, list[str]] = field(default_factory=dict)
    tile_size: int | None = None
    limit: int | None = None
    batch_size: int = 8
    split: str = "test"
    model_options: dict = field(default_factory=dict)
    cache_dir: str | None = None
    progress: bool = True
    overwrite: bool = False
    bootstrap: int = 1000
    bootstrap_seed: int = 0


def _arm_summary(results: dict, records: list[dict]) -> dict:
    out = {}
    for name, s in results["configs"].items():
        recs = [r for r in records if r["config"] == name]
        toks = [r["info"]["image_tokens"] for r in recs if "image_tokens" in r.get("info", {})]
        out[name] = {"n": s["n"], "metric": s["metric"], "score": s["score"], "ci_low": s["ci_low"],
                     "ci_high": s["ci_high"], "vision_tokens": sum(toks) / len(toks) if toks else None}
    return out


def run_stitch(settings: StitchSettings) -> dict:
    """Run (or resume) both arms, then write stitch.json and stitch.png."""
    from mimic.atomic import write_json
    from mimic.eval.api import create_model
    from mimic.eval.diagnostics.common import hf_target, run_arm, select_rows
    from mimic.eval.report import format_pct

    target = hf_target(settings.model, "stitch")
    if settings.tile_size is not None and settings.tile_size < 1:
        raise ConfigError(f"--tile-size must be positive, got {settings.tile_size}")
    select_rows(settings.data, settings.configs, settings.split, settings.limit, settings.where, settings.cache_dir)
    base = create_model(settings.model, settings.model_options)
    out = Path(settings.out)
    arms = {}
    for arm, adapter in (("multi", HFModel(target, base.options)),
                         ("stitched", StitchedHFModel(target, base.options, tile=settings.tile_size))):
        arms[arm] = _arm_summary(*run_arm(settings, adapter, out / arm, label=arm))
    configs = list(arms["multi"])
    table = {c: {"multi": arms["multi"][c], "stitched": arms["stitched"].get(c)} for c in configs}
    header = "| model | " + " | ".join(configs) + " |"
    lines = [header, "|" + "---|" * (len(configs) + 1)]
    for arm, name in (("multi", settings.model), ("stitched", f"{settings.model} (stitched)")):
        cells = [format_pct(table[c][arm]["score"]) if table[c][arm] else "\u2014" for c in configs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    summary = {"analysis": "stitch", "model": settings.model, "data": settings.data, "where": settings.where,
               "configs": table, "table6": "\n".join(lines)}
    write_json(out / STITCH_FILE, summary)
    plot_stitch(summary, out / "stitch.png")
    return summary


def plot_stitch(summary: dict, path: Path) -> Path:
    """Table 6 as grouped bars: multi-image vs stitched score per config, intervals as whiskers."""
    from mimic.eval.diagnostics.common import new_figure, save_figure

    configs = list(summary["configs"])
    fig = new_figure(max(4.0, 1.6 * len(configs)), 3.5)
    ax = fig.add_subplot()
    for k, arm in enumerate(("multi", "stitched")):
        xs, ys, err = [], [], [[], []]
        for i, c in enumerate(configs):
            s = summary["configs"][c][arm]
            if not s or s["score"] is None:
                continue
            xs.append(i + (k - 0.5) * 0.38)
            ys.append(100 * s["score"])
            err[0].append(100 * (s["score"] - (s["ci_low"] if s["ci_low"] is not None else s["score"])))
            err[1].append(100 * ((s["ci_high"] if s["ci_high"] is not None else s["score"]) - s["score"]))
        ax.bar(xs, ys, width=0.38, yerr=err, capsize=3, label="multi-image" if arm == "multi" else "stitched")
        # the arm's mean vision tokens above its bar, so the matched budget can be read off the plot
        toks = [summary["configs"][c][arm]["vision_tokens"] for c in configs
                if summary["configs"][c][arm] and summary["configs"][c][arm]["score"] is not None]
        for x, y, t in zip(xs, ys, toks, strict=True):
            if t is not None:
                ax.text(x, y + 2, f"{t:.0f} tok", ha="center", fontsize=6, rotation=90)
    ax.set_xticks(range(len(configs)), configs, rotation=20, fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("score (%)")
    ax.set_title(f"{summary['model']}: multi-image vs stitched", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
