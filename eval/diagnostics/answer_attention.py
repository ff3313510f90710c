"""Attention from the generated answer to each image's patches, at one layer (paper Fig. 5).

For each chosen sample and each model (a base and a fine-tuned one, side by side): the answer is generated
greedily as `mimic eval` does, then one eager forward pass over the prompt and the answer reads the chosen
layer's attention weights (a forward hook on that layer's `self_attn`; the other layers' weights are dropped
as they come). The rows used are the ones that *produce* the answer: answer token t is chosen by the query
at position t - 1, so for an answer of n tokens after a prompt of P tokens the rows P-1 .. P+n-2; the
end-of-sequence token that closes the answer is not part of it, and the row that chose it is left out.
Averaged over heads and those rows, per image:

- `mass`: the share of the answer's attention that lands on the image's tokens (over the whole sequence,
  so the images' shares sum to at most 1; the rest goes to text);
- `map`: the share on each patch of the image, over the image's own area: the family's `patch_grid` drops
  the patch rows/columns the processor's square padding added (LLaVA-OV pads each image to a square before
  patching), so the map lies on the image as the encoder saw it. `grid` [rows, cols] is the map's shape,
  `image_size` [w, h] the image's.

`layer` is a 0-based index into the language model's layers, as the paper's own layer numbers are (Table 5
masks "layers 12-23" of LLaVA-OV 0.5B's 24); its "15th layer" is read as index 15.

answer_attention.json holds them per model and sample; answer_attention.png draws each image with its
map on top, one row per (sample, model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mimic.errors import ConfigError

__all__ = ["AnswerAttentionSettings", "answer_attention", "answer_rows", "answer_tokens", "image_map",
           "run_answer_attention"]

ANSWER_FILE = "answer_attention.json"
# Which attention rows make the answer's attention; a resume file of another definition is refused.
ROWS = "the rows that chose the answer tokens (P-1 .. P+n-2), end-of-sequence step left out; maps cropped to the image"


# processor outputs that hold one value per prompt token, 0 for text
PER_TOKEN_TEXT_KEYS = ("mm_token_type_ids", "token_type_ids")


@contextlib.contextmanager
def _generation_kernel(model, impl: str):
    """Generate with sdpa, the weights pass stays eager: eager generation over a 7,400-token prompt costs
    minutes on a CPU and returns weights nobody reads. A model with per-image masks keeps its masking kernel
    (the mask is applied by it), so it generates as it is."""
    if impl != "eager" or getattr(model, "_mimic_image_masking", None) is not None:
        yield
        return
    model.set_attn_implementation({"text_config": "sdpa"})
    try:
        yield
    finally:
        model.set_attn_implementation({"text_config": "eager"})


def answer_tokens(generated: torch.Tensor, eos_token_id: int | Sequence[int] | None) -> torch.Tensor:
    """The answer's tokens among `generated` (the new tokens of one sample): those before the first
    end-of-sequence token (all of them when generation stopped at its token budget)."""
    eos = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    stop = torch.isin(generated, torch.tensor(eos, dtype=generated.dtype, device=generated.device)).nonzero()
    return generated[: int(stop[0])] if len(stop) else generated


def answer_rows(model, batch, answer: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
    """(n, P) float64: for each of the n answer tokens, the attention of the row that chose it (the
    position before it) on the P prompt tokens, heads averaged. batch: one sample's processor output (P
    tokens, no padding); answer: (n,) token ids, n >= 1; layer: a decoder layer (eager attention)."""
    from mimic.eval.diagnostics.attention import forward_without_logits

    prompt_len, n = batch["input_ids"].shape[1], len(answer)
    if n < 1:
        raise ValueError("answer_rows needs at least one answer token")
    full = dict(batch)
    # the last answer token is chosen by the row before it: it never needs to be an input itself
    full["input_ids"] = torch.cat([batch["input_ids"], answer[None, : n - 1].to(batch["input_ids"])], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    for key in PER_TOKEN_TEXT_KEYS:
        # per-token type ids (Qwen2-VL's mm_token_type_ids place the images for M-RoPE): answer tokens are text
        if key in batch:
            full[key] = torch.cat([batch[key], batch[key].new_zeros(1, n - 1)], dim=1)
    grabbed: dict = {}

    def hook(module, args, output):
        grabbed["rows"] = output[1][0, :, prompt_len - 1 : prompt_len - 1 + n, :prompt_len].double().mean(0).cpu()
        return (output[0], None, *output[2:])

    handle = layer.self_attn.register_forward_hook(hook)
    try:
        forward_without_logits(model, full)
    finally:
        handle.remove()
    return grabbed["rows"]


def image_map(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """An image's attention over its own area: `tokens` (T,) its tokens' values in sequence order, `index`
    (rows, cols) the position of each patch's token among them (`PatchGrid.index`, padding cropped)."""
    if int(index.max()) >= len(tokens):
        raise ConfigError(f"the patch grid names token {int(index.max())} of an image with {len(tokens)} tokens")
    return tokens[index]


def answer_attention(adapter, request, layer: int) -> dict:
    """{"answer", "answer_tokens", "mass": [per image], "map": [rows x cols per image], "image_size": [[w, h]
    per image], "grid": [[rows, cols] per image]} of one request at `layer` (0-based)."""
    from mimic.eval.diagnostics.common import family_of

    model = adapter.model
    family = family_of(adapter, "answer_attention")
    layers = family.text_layers(model)
    if not 0 <= layer < len(layers):
        raise ConfigError(f"--layer {layer}: the model has layers 0-{len(layers) - 1} (0-based)")
    if len(request.images) < 2:
        raise ConfigError(f"sample {request.id}: answer-attention needs two or more images (one base crop each)")
    impl = str(model.config.get_text_config()._attn_implementation)
    if "eager" not in impl:
        raise ConfigError(f"answer attention needs eager attention in the language model, it runs {impl!r}")
    batch = adapter.encode([request])
    with torch.inference_mode(), _generation_kernel(model, impl):
        out = model.generate(**batch, generation_config=adapter.generation_config)
    prompt_len = batch["input_ids"].shape[1]
    new = answer_tokens(out[0, prompt_len:], adapter.generation_config.eos_token_id)
    answer = adapter.processor.decode(new, skip_special_tokens=True).strip()
    sizes = [list(im.size) for im in request.images]
    entry = {"answer": answer, "answer_tokens": len(new), "image_size": sizes}
    if len(new) == 0:  # only the end-of-sequence token: no row chose an answer token
        return {**entry, "mass": None, "map": None, "grid": None}
    ids = family.image_ids(model, adapter.processor, batch, [len(request.images)])[0].cpu()
    row = answer_rows(model, batch, new, layers[layer]).mean(0)
    masses, maps, grids = [], [], []
    for k, size in enumerate(sizes):
        tokens = row[ids == k]
        masses.append(float(tokens.sum()))
        grid = family.patch_grid(model, adapter.processor, tuple(size), len(sizes), adapter.options)
        maps.append(image_map(tokens, grid.index).tolist())
        grids.append(list(grid.shape))
    return {**entry, "mass": masses, "map": maps, "grid": grids}


@dataclass
class AnswerAttentionSettings:
    """models: hf: specs drawn side by side (e.g. a base and a fine-tuned one). limit: how many of the
    selected rows (in rounds over the configs, `balanced_rows`). layer: the language-model layer, 0-based
    (paper: 15)."""

    data: str
    models: list[str]
    out: str
    configs: list[str] = field(default_factory=list)
    where: dict[str, list[str]] = field(default_factory=dict)
    limit: int = 4
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
    from mimic.eval.diagnostics.attention import _load_eager, balanced_rows
    from mimic.eval.diagnostics.common import hf_target, requests_of, select_rows

    if not settings.models:
        raise ConfigError("--model: give one or more hf: models")
    for spec in settings.models:
        hf_target(spec, "answer-attention")
    selections = select_rows(settings.data, settings.configs, settings.split, None, settings.where,
                             settings.cache_dir)
    chosen, rows_used = balanced_rows(selections, settings.limit, "answer-attention")
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ANSWER_FILE
    import json

    old = json.loads(path.read_text()) if path.exists() and not settings.overwrite else {}
    if old and (old.get("layer") != settings.layer or old.get("model_options") != settings.model_options
                or old.get("rows") != ROWS):
        raise ConfigError(f"{out} holds answer attention of another layer, options or definition; use another "
                          "--out or --overwrite")
    results: dict[str, dict] = {m: dict(old.get("models", {}).get(m, {})) for m in settings.models}
    summary = {"analysis": "answer_attention", "layer": settings.layer, "layer_index": "0-based", "rows": ROWS,
               "data": settings.data, "model_options": settings.model_options, "rows_used": rows_used,
               "samples": [sel.rows[i]["id"] for sel, i in chosen], "models": results}
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
    """One row per (sample, model): each image at its own aspect ratio with the answer's attention map over
    it (the map covers the image's own area, so both share one extent; one colour scale for all)."""
    import numpy as np

    from mimic.eval.diagnostics.common import new_figure, save_figure

    models = list(summary["models"])
    rows = [(sel, i, m) for sel, i in chosen for m in models]
    entries = [summary["models"][m][sel.rows[i]["id"]] for sel, i, m in rows]
    width = max(len(e["image_size"]) for e in entries)
    fig = new_figure(1.8 * width + 1, 1.9 * len(rows))
    axes = fig.subplots(len(rows), width, squeeze=False)
    vmax = max((v for e in entries if e["map"] for mp in e["map"] for r in mp for v in r), default=0.0) or 1.0
    for r, ((sel, i, m), entry) in enumerate(zip(rows, entries, strict=True)):
        images = sel.dataset.select_columns(["images"])[i]["images"]
        for k in range(width):
            ax = axes[r][k]
            ax.set_axis_off()
            if k >= len(entry["image_size"]):
                continue
            w, h = entry["image_size"][k]
            ax.imshow(np.asarray(images[k].convert("RGB")), extent=(0, w, h, 0))
            if entry["map"] is None:
                continue
            ax.imshow(np.asarray(entry["map"][k]), extent=(0, w, h, 0), cmap="jet", alpha=0.5, vmin=0, vmax=vmax,
                      interpolation="bilinear")
            ax.set_title(f"img {k + 1}: {100 * entry['mass'][k]:.1f}%", fontsize=7)
        axes[r][0].text(-0.1, 0.5, f"{m.split('/')[-1][:28]}\n{sel.rows[i]['id'][-24:]}\n\"{entry['answer'][:20]}\"",
                        transform=axes[r][0].transAxes, ha="right", va="center", fontsize=6)
    fig.suptitle(f"answer-to-image attention, layer {summary['layer']} (0-based)", fontsize=9)
    return save_figure(fig, path)
