"""Attention from the generated answer to each image's patches, at one layer (paper Fig. 5).

For each chosen sample and each model (a base and a fine-tuned one, side by side): the answer is generated
greedily as `mimic eval` does, then one eager forward pass over prompt + answer reads the chosen layer's
attention weights (a forward hook on that layer's `self_attn`; the other layers' weights are dropped as
they come). The rows of the answer tokens, averaged over heads and answer tokens, give per image:

- `mass`: the share of the answer's attention that lands on the image's tokens (over the whole sequence,
  so the images' shares sum to at most 1; the rest goes to text);
- `map`: the attention to each patch of the image's grid (side x side, the newline token left out),
  as a share of the answer's attention, i.e. on the same scale for every image and model.

answer_attention.json holds them per model and sample; answer_attention.png draws each image with its
map on top, one row per (sample, model). LLaVA-OneVision only (its multi-image tokens are one square grid
per image); the others get a one-line error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mimic.errors import ConfigError

__all__ = ["AnswerAttentionSettings", "answer_attention", "run_answer_attention"]

ANSWER_FILE = "answer_attention.json"


def answer_attention(adapter, request, layer: int) -> dict:
    """{"answer", "mass": [per image], "map": [side x side per image]} of one request at `layer`."""
    from mimic.eval.diagnostics.attention import family_of

    model = adapter.model
    family = family_of(adapter, "answer_attention")
    layers = family.text_layers(model)
    if not 0 <= layer < len(layers):
        raise ConfigError(f"--layer {layer}: the model has layers 0-{len(layers) - 1}")
    if len(request.images) < 2:
        raise ConfigError(f"sample {request.id}: answer-attention needs two or more images (one base crop each)")
    batch = adapter.encode([request])
    with torch.inference_mode():
        out = model.generate(**batch, generation_config=adapter.generation_config)
    prompt_len = batch["input_ids"].shape[1]
    new = out[0, prompt_len:]
    new = new[new != adapter.generation_config.pad_token_id]
    answer = adapter.processor.decode(new, skip_special_tokens=True).strip()
    ids = family.image_ids(model, adapter.processor, batch, [len(request.images)])[0]
    full = dict(batch)
    full["input_ids"] = torch.cat([batch["input_ids"], new[None]], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    grabbed: dict = {}

    def hook(module, args, output):
        # the answer tokens' rows only, heads and tokens averaged: (L,)
        grabbed["row"] = output[1][0, :, prompt_len:].double().mean(dim=(0, 1)).cpu()
        return (output[0], None, *output[2:])

    impl = str(model.config.get_text_config()._attn_implementation)
    if "eager" not in impl:
        raise ConfigError(f"answer attention needs eager attention in the language model, it runs {impl!r}")
    handle = layers[layer].self_attn.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            model(**full, use_cache=False)
    finally:
        handle.remove()
    row = grabbed["row"]
    n = int(ids.max()) + 1
    masses, maps = [], []
    for k in range(n):
        tokens = row[: len(ids)][ids.cpu() == k]
        masses.append(float(tokens.sum()))
        grid = tokens[:-1]  # the last token of an image is its newline
        side = math.isqrt(len(grid))
        if side * side != len(grid):
            raise ConfigError(f"sample {request.id}: image {k} has {len(grid)} grid tokens, not a square")
        maps.append(grid.view(side, side).tolist())
    return {"answer": answer, "answer_tokens": len(new), "mass": masses, "map": maps}


@dataclass
class AnswerAttentionSettings:
    """models: hf: specs drawn side by side (e.g. a base and a fine-tuned one). samples: how many of the
    selected rows (in order). layer: the language-model layer (paper: 15)."""

    data: str
    models: list[str]
    out: str
    configs: list[str] = field(default_factory=list)
    where: dict[str, list[str]] = field(default_factory=dict)
    samples: int = 4
    layer: int = 15
    split: str = "test"
    model_options: dict = field(default_factory=dict)
    cache_dir: str | None = None
    progress: bool = True
    overwrite: bool = False


def run_answer_attention(settings: AnswerAttentionSettings) -> dict:
    """Run (or resume: finished (model, sample) pairs are kept in answer_attention.json) and plot."""
    from tqdm.auto import tqdm

    from mimic.atomic import write_json
    from mimic.eval.diagnostics.attention import _load_eager
    from mimic.eval.diagnostics.common import hf_target, requests_of, select_rows

    if not settings.models:
        raise ConfigError("--model: give one or more hf: models")
    for spec in settings.models:
        hf_target(spec, "answer-attention")
    selections = select_rows(settings.data, settings.configs, settings.split, None, settings.where,
                             settings.cache_dir)
    chosen = [(sel, i) for sel in selections for i in sel.indices
              if int(sel.rows[i].get("num_images") or 0) >= 2][: settings.samples]
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ANSWER_FILE
    import json

    old = json.loads(path.read_text()) if path.exists() and not settings.overwrite else {}
    if old and (old.get("layer") != settings.layer or old.get("model_options") != settings.model_options):
        raise ConfigError(f"{out} holds answer attention of another layer or options; use another --out or "
                          "--overwrite")
    results: dict[str, dict] = {m: dict(old.get("models", {}).get(m, {})) for m in settings.models}
    summary = {"analysis": "answer_attention", "layer": settings.layer, "data": settings.data,
               "model_options": settings.model_options, "samples": [sel.rows[i]["id"] for sel, i in chosen],
               "models": results}
    bar = tqdm(total=len(chosen) * len(settings.models), desc="diagnose answer-attention", unit="sample",
               disable=not settings.progress)
    for spec in settings.models:
        pending = [(sel, i) for sel, i in chosen if sel.rows[i]["id"] not in results[spec]]
        bar.update(len(chosen) - len(pending))
        if not pending:
            continue
        adapter = _load_eager(spec, settings.model_options)
        try:
            for sel, i in pending:
                [request] = list(requests_of(sel, [i]))
                results[spec][request.id] = {"config": sel.config, "question": request.question,
                                             "gold": sel.rows[i].get("answer"),
                                             **answer_attention(adapter, request, settings.layer)}
                write_json(path, summary)  # after every sample, so an interruption keeps what is done
                bar.update(1)
        finally:
            adapter.close()
    bar.close()
    write_json(path, summary)
    plot_answer_attention(summary, chosen, out / "answer_attention.png")
    return summary


def plot_answer_attention(summary: dict, chosen, path: Path) -> Path:
    """One row per (sample, model): each image with the answer's attention map over it (shared scale)."""
    import numpy as np

    from mimic.eval.diagnostics.common import new_figure, save_figure

    models = list(summary["models"])
    rows = [(sel, i, m) for sel, i in chosen for m in models]
    width = max(len(summary["models"][m][sel.rows[i]["id"]]["map"]) for sel, i, m in rows)
    fig = new_figure(1.8 * width + 1, 1.9 * len(rows))
    axes = fig.subplots(len(rows), width, squeeze=False)
    vmax = max(max(max(max(r) for r in mp) for mp in summary["models"][m][sel.rows[i]["id"]]["map"])
               for sel, i, m in rows) or 1.0
    for r, (sel, i, m) in enumerate(rows):
        entry = summary["models"][m][sel.rows[i]["id"]]
        images = sel.dataset.select_columns(["images"])[i]["images"]
        for k in range(width):
            ax = axes[r][k]
            ax.set_axis_off()
            if k >= len(entry["map"]):
                continue
            im = images[k].convert("RGB")
            ax.imshow(np.asarray(im), extent=(0, 1, 0, 1))
            ax.imshow(np.asarray(entry["map"][k]), extent=(0, 1, 0, 1), cmap="jet", alpha=0.5, vmin=0, vmax=vmax,
                      interpolation="bilinear")
            ax.set_title(f"img {k + 1}: {100 * entry['mass'][k]:.1f}%", fontsize=7)
        axes[r][0].text(-0.1, 0.5, f"{m.split('/')[-1][:28]}\n{sel.rows[i]['id'][-24:]}\n\"{entry['answer'][:20]}\"",
                        transform=axes[r][0].transAxes, ha="right", va="center", fontsize=6)
    fig.suptitle(f"answer-to-image attention, layer {summary['layer']}", fontsize=9)
    return save_figure(fig, path)
