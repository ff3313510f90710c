"""Multi-image input against one stitched composite of the same images (paper appendix, Table 6).

The paper builds "a single composite image by stitching multiple images together in a grid format, ensuring
that the total number of vision tokens remains similar to that of the multi-image input"; what changes is
that the prompt holds no image separators and the encoder sees parts of several images at once.

The stitched arm pastes a sample's images row by row into a near-square grid of cells, each image
letterboxed into its cell (scaled to fit, aspect ratio kept, centred on black; empty cells black). The layout
(grid, cell shape, cell size) is chosen so that the composite gets as many vision tokens as the multi-image
input: both counts come from the model's own processor (the family's `image_token_counts` on a real processor
output), the multi-image one for the sample's images, the composite's for each candidate size (a search over
near-square grids, a few cell shapes and the cell's scale, cached by composite size), and the closest is
taken, the square grid of square cells first on ties. Where the processor caps a single image (LLaVA-OV's anyres_max_9,
Qwen2-VL's max_pixels, InternVL's max_patches) the count cannot reach the multi-image one; the sample is then
listed under `mismatch` with its ratio instead of being hidden. `--tile-size` fixes the cell side instead (the
paper's caption names 384 px for LLaVA-OV and 484 px for Qwen2-VL and InternVL2).

The question text is the multi-image arm's, unchanged: only the image placeholders differ (one image in the
chat template instead of n). Both arms are ordinary eval runs (OUT/multi, OUT/stitched: resumable, progress,
scoring as `mimic eval`); every stitched prediction records what was fed (`info["stitch"]`: both arms' vision
tokens, the cell, the grid and the composite's size), and stitch.json sets the arms side by side per config
with `token_ratio` = stitched / multi-image tokens, per sample and averaged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mimic.errors import ConfigError, DataError
from mimic.eval.api import Request
from mimic.eval.models.hf import HFModel

__all__ = ["StitchSettings", "StitchedHFModel", "grid_shape", "layouts", "letterbox", "match_cell", "match_layout",
           "run_stitch", "stitch_images"]

STITCH_FILE = "stitch.json"
# a stitched sample whose token count is further than this from the multi-image one is listed under `mismatch`
MISMATCH = 0.10
# the longest composite side tried: beyond it every family's processor caps a single image anyway
MAX_SIDE = 4096


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of the grid for n images: ceil(sqrt(n)) columns, as many rows as needed."""
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _cell_size(cell: int | tuple[int, int]) -> tuple[int, int]:
    return (cell, cell) if isinstance(cell, int) else (int(cell[0]), int(cell[1]))


def letterbox(image, cell: int | tuple[int, int]):
    """`image` scaled to fit a cell (a side, or (width, height)) with its aspect ratio kept (bicubic), centred
    on black."""
    from PIL import Image

    cw, ch = _cell_size(cell)
    w, h = image.size
    scale = min(cw / w, ch / h)
    size = (max(1, min(cw, round(w * scale))), max(1, min(ch, round(h * scale))))
    canvas = Image.new("RGB", (cw, ch))
    canvas.paste(image.convert("RGB").resize(size, Image.Resampling.BICUBIC), ((cw - size[0]) // 2, (ch - size[1]) // 2))
    return canvas


def stitch_images(images: Sequence, cell: int | tuple[int, int], grid: tuple[int, int] | None = None):
    """One RGB composite: image k letterboxed into the cell at row k // cols, column k % cols of `grid`
    ((rows, cols); default `grid_shape`)."""
    from PIL import Image

    rows, cols = grid or grid_shape(len(images))
    if rows * cols < len(images):
        raise ValueError(f"a {rows}x{cols} grid cannot hold {len(images)} images")
    cw, ch = _cell_size(cell)
    canvas = Image.new("RGB", (cols * cw, rows * ch))
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        canvas.paste(letterbox(im, (cw, ch)), (c * cw, r * ch))
    return canvas


# cell shapes (width : height) tried besides the square: the composite's aspect ratio moves the token count of
# processors that tile (LLaVA-OV's anyres grid, InternVL's canvas), whose counts move in coarse steps otherwise
CELL_ASPECTS = ((1, 1), (4, 3), (3, 4), (3, 2), (2, 3))


def layouts(n: int) -> list[tuple[int, int]]:
    """Near-square grids (rows, cols) for n images with no empty row, the `grid_shape` one first."""
    out = [grid_shape(n)]
    for rows in (math.floor(math.sqrt(n)), math.ceil(math.sqrt(n))):
        cols = math.ceil(n / rows)
        for shape in ((rows, cols), (cols, rows)):
            r, c = shape
            if r * c >= n and (r - 1) * c < n and shape not in out:
                out.append(shape)
    return out


def match_layout(tokens_at: Callable[[tuple[int, int]], int], n: int, target: int, start: int) -> dict:
    """The grid and cell whose composite's token count is closest to `target`: over `layouts(n)` and
    `CELL_ASPECTS`, each scaled by `match_cell`; ties go to the earlier layout and aspect (the square grid of
    square cells first). tokens_at((width, height)): the composite's vision tokens at that size."""
    best = None
    for rows, cols in layouts(n):
        for aw, ah in CELL_ASPECTS:
            def cell_of(side: int, aw=aw, ah=ah) -> tuple[int, int]:
                return max(1, round(side * aw / max(aw, ah))), max(1, round(side * ah / max(aw, ah)))

            def at(side: int, rows=rows, cols=cols, cell_of=cell_of) -> int:
                cw, ch = cell_of(side)
                return tokens_at((cols * cw, rows * ch))

            side, tokens = match_cell(at, target, start, largest=MAX_SIDE // max(rows, cols))
            if best is None or abs(tokens - target) < abs(best["tokens"] - target):
                best = {"grid": [rows, cols], "cell": list(cell_of(side)), "tokens": tokens}
    return best


def match_cell(tokens_at: Callable[[int], int], target: int, start: int, largest: int = MAX_SIDE) -> tuple[int, int]:
    """(cell side, its token count) whose count is closest to `target` (ties: the smaller side).

    tokens_at(cell): the composite's vision tokens at that cell side, non-decreasing up to the processor's
    rounding. A doubling then a bisection find the smallest side reaching `target`; its neighbours are compared,
    since the count moves in steps. largest: the largest side tried."""
    hi = max(1, min(start, largest))
    while tokens_at(hi) < target and hi < largest:
        hi = min(largest, hi * 2)
    # capped below the target: aim at the cap's count, so the smallest side reaching it is taken, not a huge one
    goal = min(target, tokens_at(hi))
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if tokens_at(mid) >= goal:
            hi = mid
        else:
            lo = mid + 1
    if goal < target:
        return hi, tokens_at(hi)
    candidates = range(max(1, hi - 4), min(largest, hi + 4) + 1)
    best = min(candidates, key=lambda c: (abs(tokens_at(c) - target), c))
    return best, tokens_at(best)


class StitchedHFModel(HFModel):
    """The `hf:` adapter fed one stitched composite per sample (see the module docstring).

    tile: a fixed cell side; None sizes the cell per sample to match the multi-image token count."""

    def __init__(self, target: str | None = None, options=None, tile: int | None = None):
        super().__init__(target, options)
        self.tile = tile
        self._counts: dict[tuple[int, int], int] = {}
        self._layouts: dict[tuple[int, int], dict] = {}
        self._fed: list[dict] | None = None

    def load(self) -> None:
        if self.model is not None:
            return
        super().load()
        from mimic.eval.diagnostics.common import family_of

        self._start = self.tile or family_of(self, "stitch").stitch_tile(self.model, self.processor)

    def _image_tokens(self, request: Request, images: Sequence) -> int:
        """Vision tokens the processor gives `images` in `request`'s prompt (the family's own count)."""
        text = HFModel.render(self, Request(id=request.id, config=request.config, task=request.task,
                                            question=request.question, images=images, sample=request.sample))
        batch = self.processor(text=[text], images=[[im.convert("RGB") for im in images]], return_tensors="pt",
                               **self._processor_kwargs())
        return sum(self.family.image_token_counts(self.model, self.processor, batch)[0])

    def _composite_tokens(self, request: Request, size: tuple[int, int]) -> int:
        # the count depends on the composite's size only, so a blank canvas stands in for it and is cached
        if size not in self._counts:
            from PIL import Image

            self._counts[size] = self._image_tokens(request, [Image.new("RGB", size)])
        return self._counts[size]

    def _stitched(self, request: Request) -> tuple[Request, dict]:
        self.load()
        n = len(request.images)
        multi = self._image_tokens(request, request.images)
        key = (n, multi)
        if self.tile is not None:
            rows, cols = grid_shape(n)
            layout = {"grid": [rows, cols], "cell": [self.tile, self.tile],
                      "tokens": self._composite_tokens(request, (cols * self.tile, rows * self.tile))}
        elif key in self._layouts:
            layout = self._layouts[key]
        else:
            layout = self._layouts[key] = match_layout(lambda size: self._composite_tokens(request, size), n, multi,
                                                       self._start)
        (rows, cols), (cw, ch) = layout["grid"], layout["cell"]
        stitched = Request(id=request.id, config=request.config, task=request.task, question=request.question,
                           images=[stitch_images(request.images, (cw, ch), (rows, cols))],
                           sample={**request.sample, "stitched": True})
        fed = {"multi_tokens": multi, "stitched_tokens": layout["tokens"], "cell": [cw, ch], "grid": [rows, cols],
               "composite_size": [cols * cw, rows * ch], "num_images": n}
        return stitched, fed

    def render(self, request: Request) -> str:
        # the runner records the prompt of the original request; encode renders the stitched one
        if not request.sample.get("stitched"):
            request = self._stitched(request)[0]
        return super().render(request)

    def encode(self, requests: Sequence[Request]):
        pairs = [self._stitched(r) for r in requests]
        batch = super().encode([r for r, _ in pairs])
        # what the model really got, not the search's estimate
        fed_tokens = [sum(c) for c in self.family.image_token_counts(self.model, self.processor, batch)]
        for (_, fed), got in zip(pairs, fed_tokens, strict=True):
            if got != fed["stitched_tokens"]:
                raise DataError(f"stitch: the composite got {got} vision tokens, its size predicted "
                                f"{fed['stitched_tokens']}")
        self._fed = [fed for _, fed in pairs]
        return batch

    def generate(self, requests: Sequence[Request]):
        self._fed = None
        results = super().generate(requests)
        for result, fed in zip(results, self._fed or [], strict=True):
            result.info["stitch"] = fed
        return results

    def _diagnostic(self) -> dict:
        # "matched": runs of the earlier stitching (squashed tiles, reworded question) are not resumed as this one
        return {"analysis": "stitch", "tile": self.tile, "sizing": "fixed" if self.tile else "matched",
                "letterbox": True}

    def identity(self) -> dict:
        return {**super().identity(), "diagnostic": self._diagnostic()}

    def describe(self) -> dict:
        return {**super().describe(), "diagnostic": self._diagnostic()}


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


def _samples(multi: list[dict], stitched: list[dict]) -> list[dict]:
    """Per sample what each arm was fed, checked: the multi-image count the sizing aimed at must be the one
    the multi-image run really fed, sample by sample."""
    fed_multi = {r["id"]: r.get("info", {}).get("image_tokens") for r in multi}
    out = []
    for r in stitched:
        info = r.get("info", {}).get("stitch")
        if info is None:
            raise DataError(f"stitch: prediction {r['id']} records no stitch sizes (a run of an earlier version? "
                            "rerun with --overwrite)")
        if fed_multi.get(r["id"]) != info["multi_tokens"]:
            raise DataError(f"stitch: sample {r['id']}: the multi-image run fed {fed_multi.get(r['id'])} vision "
                            f"tokens, the sizing counted {info['multi_tokens']}")
        out.append({"id": r["id"], "config": r["config"], **info,
                    "token_ratio": info["stitched_tokens"] / info["multi_tokens"]})
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
    arms, records = {}, {}
    for arm, adapter in (("multi", HFModel(target, base.options)),
                         ("stitched", StitchedHFModel(target, base.options, tile=settings.tile_size))):
        results, records[arm] = run_arm(settings, adapter, out / arm, label=arm)
        arms[arm] = _arm_summary(results, records[arm])
    samples = _samples(records["multi"], records["stitched"])
    configs = list(arms["multi"])
    table = {c: {"multi": arms["multi"][c], "stitched": arms["stitched"].get(c)} for c in configs}
    for c in configs:
        ratios = [s["token_ratio"] for s in samples if s["config"] == c]
        table[c]["token_ratio"] = sum(ratios) / len(ratios) if ratios else None
    header = "| model | " + " | ".join(configs) + " |"
    lines = [header, "|" + "---|" * (len(configs) + 1)]
    for arm, name in (("multi", settings.model), ("stitched", f"{settings.model} (stitched)")):
        cells = [format_pct(table[c][arm]["score"]) if table[c][arm] else "\u2014" for c in configs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    mismatch = [{"id": s["id"], "token_ratio": s["token_ratio"], "multi_tokens": s["multi_tokens"],
                 "stitched_tokens": s["stitched_tokens"],
                 "reason": ("fixed --tile-size" if settings.tile_size else
                            "the processor's cap on one image" if s["stitched_tokens"] < s["multi_tokens"] else
                            "the processor's token steps")}
                for s in samples if abs(s["token_ratio"] - 1) > MISMATCH]
    summary = {"analysis": "stitch", "model": settings.model, "data": settings.data, "where": settings.where,
               "sizing": f"fixed cell {settings.tile_size} px" if settings.tile_size else
               "cell sized per sample to match the multi-image vision tokens",
               "token_ratio": sum(s["token_ratio"] for s in samples) / len(samples) if samples else None,
               "mismatch_threshold": MISMATCH, "mismatch": mismatch,
               "configs": table, "samples": samples, "table6": "\n".join(lines)}
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
