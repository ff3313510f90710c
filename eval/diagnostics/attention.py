"""Vision-to-vision attention by layer, split into inter- and intra-image mass (paper Fig. 4 and Fig. 9).

For every layer of the language model and every vision token (query) of a sample, the attention it pays to
vision tokens (keys; under the causal mask, so only those before it) is normalised to sum to 1 and split by
the image the key belongs to. Per sample and layer:

- `inter`: the mean over vision queries (and heads) of the fraction that goes to *other* images;
  `intra` = the fraction to the query's own image; inter + intra = 1.
- `matrix[i][j]`: the mean over the queries of image i (and heads) of the fraction that goes to image j;
  every row sums to 1 and, under the causal mask, the upper triangle is 0.

A run averages these over samples (matrices over the samples with the same number of images). Queries of
the first image can only look at their own image under the causal mask; they are counted like all others,
as the paper's "from each vision token" does.

How: eager attention (the only kernel that returns the weights); a forward hook on each layer's
`self_attn` turns the (1, heads, L, L) weights into the statistics above and drops them, so one layer's
weights are alive at a time and a 10-image sample fits. One sample per forward pass, no generation.
Works with per-image masking on (`enable_image_masking(model, layers, backend="eager")`): the inter mass of
the masked layers is then exactly 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mimic.errors import ConfigError

__all__ = ["AttentionSettings", "attention_stats", "family_of", "run_attention", "sample_attention",
           "summarize_attention"]

logger = logging.getLogger(__name__)

ATTENTION_FILE = "attention.json"
SAMPLES_FILE = "attention_samples.jsonl"


def attention_stats(weights: torch.Tensor, image_ids: torch.Tensor, num_images: int) -> dict:
    """Inter/intra fractions and the image-by-image matrix of one sample's attention weights.

    weights: (heads, L, L) softmax attention of one layer (rows = queries). image_ids: (L,) long, -1 for text
    and k for the k-th image's tokens. Returns {"inter", "intra", "matrix" (num_images x num_images)}.
    """
    vis = image_ids >= 0
    q_img = image_ids[vis]
    onehot = torch.nn.functional.one_hot(q_img, num_images).to(torch.float64)  # (V, n)
    # keys -> image one-hot over the whole sequence (text rows 0), so each head's weights are multiplied in
    # place instead of copying the (V, V) vision block: at 10 LLaVA-OV images that block is 7.3k^2 per head
    keys = torch.zeros(image_ids.shape[0], num_images, dtype=torch.float32, device=weights.device)
    keys[vis] = onehot.to(keys)
    mass = torch.stack([(weights[h].float() @ keys)[vis] for h in range(weights.shape[0])]).double()  # (H, V, n)
    total = mass.sum(-1, keepdim=True)
    frac = (mass / total).mean(0)  # (V, n), heads averaged
    own = frac.gather(1, q_img[:, None]).squeeze(1)
    # the other images' fractions summed directly (not 1 - own), so that a masked layer gives exactly 0
    other = frac.scatter(1, q_img[:, None], 0.0).sum(1)
    counts = onehot.sum(0)  # queries per image
    matrix = (onehot.T @ frac) / counts[:, None]
    return {"inter": float(other.mean()), "intra": float(own.mean()), "matrix": matrix.tolist()}


def family_of(adapter, analysis: str):
    """The loaded adapter's `Family`, checked to support `analysis` (one line naming the family otherwise)."""
    if adapter.family is None:
        raise ConfigError(f"mimic diagnose {analysis.replace('_', '-')}: hf:{adapter.target} is a "
                          f"{adapter._model_type!r} model, not one of the known families; its image tokens "
                          "cannot be told apart")
    adapter.family.check(analysis, str(adapter.target))
    return adapter.family


def sample_attention(model, batch, image_ids: torch.Tensor, layers: Sequence[torch.nn.Module]) -> list[dict]:
    """Per layer {"layer", "inter", "intra", "matrix"} for a batch of ONE sample (a processor output).

    The text model must run eager attention (`config.text_config._attn_implementation` "eager", or the
    per-image masking's eager kernel); its weights are read by hooks on each layer's `self_attn`.
    """
    if batch["input_ids"].shape[0] != 1:
        raise ValueError("sample_attention takes one sample at a time")
    impl = str(model.config.get_text_config()._attn_implementation)
    if "eager" not in impl:
        raise ConfigError(f"attention weights need eager attention in the language model, it runs {impl!r}")
    ids = image_ids[0]
    n = int(ids.max()) + 1
    if n < 1:
        raise ConfigError("the sample has no image tokens")
    stats: dict[int, dict] = {}

    def make_hook(i):
        def hook(module, args, output):
            weights = output[1]
            if weights is None:
                raise RuntimeError(f"layer {i} returned no attention weights")
            stats[i] = attention_stats(weights[0], ids.to(weights.device), n)
            # the layer discards the weights anyway; dropping them here frees the L x L tensor now
            return (output[0], None, *output[2:])

        return hook

    handles = [layer.self_attn.register_forward_hook(make_hook(i)) for i, layer in enumerate(layers)]
    try:
        with torch.inference_mode():
            model(**batch, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [{"layer": i, **stats[i]} for i in sorted(stats)]


def summarize_attention(samples: Sequence[dict]) -> dict:
    """Averages over samples: per layer inter/intra, and the matrices per number of images."""
    if not samples:
        return {"samples": 0, "layers": [], "num_images": {}}
    n_layers = len(samples[0]["layers"])
    by_n: dict[int, list[dict]] = {}
    for s in samples:
        by_n.setdefault(int(s["num_images"]), []).append(s)
    common = max(by_n, key=lambda k: (len(by_n[k]), k))
    layers = []
    for li in range(n_layers):
        inter = sum(s["layers"][li]["inter"] for s in samples) / len(samples)
        intra = sum(s["layers"][li]["intra"] for s in samples) / len(samples)
        matrices = {}
        for k, group in sorted(by_n.items()):
            mats = torch.tensor([g["layers"][li]["matrix"] for g in group], dtype=torch.float64)
            matrices[str(k)] = mats.mean(0).tolist()
        layers.append({"layer": samples[0]["layers"][li]["layer"], "inter": inter, "intra": intra,
                       "matrix": matrices[str(common)], "matrices": matrices})
    return {"samples": len(samples), "num_images": {str(k): len(v) for k, v in sorted(by_n.items())},
            "matrix_num_images": common, "layers": layers}


@dataclass
class AttentionSettings:
    """One attention analysis. model: an hf: spec. samples: how many samples (the paper: 50), taken from the
    selected rows in order. heatmap_layers: layers drawn as image-by-image heatmaps (default: first, middle,
    last). model_options: hf adapter options (dtype, device, mask_backend ...)."""

    data: str
    model: str
    out: str
    configs: list[str] = field(default_factory=list)
    where: dict[str, list[str]] = field(default_factory=dict)
    samples: int = 50
    split: str = "test"
    heatmap_layers: list[int] = field(default_factory=list)
    model_options: dict = field(default_factory=dict)
    cache_dir: str | None = None
    progress: bool = True
    overwrite: bool = False


def _load_eager(spec: str, options: dict):
    from mimic.eval.api import create_model
    from mimic.eval.diagnostics.common import hf_target
    from mimic.eval.models.hf import is_training_output

    target = hf_target(spec, "attention")
    opts = dict(options)
    if is_training_output(target):
        # the per-image mask (if any) must run on the eager kernel; load_trained ignores attn_implementation
        from mimic.train_trl.load import read_mask_spec

        if read_mask_spec(target) is not None:
            opts["mask_backend"] = "eager"
    else:
        opts["attn_implementation"] = "eager"
    adapter = create_model(spec, opts)
    adapter.load()
    model = adapter.model
    impl = str(model.config.get_text_config()._attn_implementation)
    if "eager" not in impl:
        vision = getattr(model.config, "vision_config", None)
        model.set_attn_implementation({"text_config": "eager",
                                       **({"vision_config": vision._attn_implementation} if vision else {})})
    return adapter


def run_attention(settings: AttentionSettings) -> dict:
    """Run (or resume) the analysis; writes attention_samples.jsonl, attention.json and the plots."""
    from tqdm.auto import tqdm

    from mimic.atomic import write_json
    from mimic.eval.diagnostics.common import hf_target, requests_of, select_rows
    from mimic.eval.predictions import PredictionWriter, read_predictions

    hf_target(settings.model, "attention")
    selections = select_rows(settings.data, settings.configs, settings.split, None, settings.where,
                             settings.cache_dir)
    chosen = [(sel, i) for sel in selections for i in sel.indices
              if int(sel.rows[i].get("num_images") or 0) >= 2][: settings.samples]
    if not chosen:
        raise ConfigError(f"{settings.data}: no selected row has two or more images")
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / SAMPLES_FILE
    identity = {"model": settings.model, "options": settings.model_options}
    if settings.overwrite:
        log.unlink(missing_ok=True)
    done = {r["id"]: r for r in read_predictions(log)}
    for r in done.values():
        if r.get("identity") != identity:
            raise ConfigError(f"{out} holds attention of another model or options; use another --out or --overwrite")
    pending = [(sel, i) for sel, i in chosen if sel.rows[i]["id"] not in done]
    adapter = _load_eager(settings.model, settings.model_options) if pending else None
    writer = PredictionWriter(log) if pending else None  # drops a line cut off by an interruption
    try:
        bar = tqdm(total=len(pending), desc="diagnose attention", unit="sample", disable=not settings.progress)
        for sel, i in pending:
            [request] = list(requests_of(sel, [i]))
            batch = adapter.encode([request])
            family = family_of(adapter, "attention")
            ids = family.image_ids(adapter.model, adapter.processor, batch, [len(request.images)])
            layers = sample_attention(adapter.model, batch, ids, family.text_layers(adapter.model))
            record = {"id": request.id, "config": sel.config, "num_images": int(ids.max()) + 1,
                      "tokens": int(batch["input_ids"].shape[1]), "image_tokens": int((ids >= 0).sum()),
                      "identity": identity, "layers": layers}
            writer.write_batch([record])
            done[request.id] = record
            bar.update(1)
        bar.close()
    finally:
        if writer is not None:
            writer.close()
        if adapter is not None:
            adapter.close()
    samples = [done[sel.rows[i]["id"]] for sel, i in chosen]
    summary = {"analysis": "attention", "model": settings.model, "data": settings.data,
               "configs": sorted({sel.config for sel, _ in chosen}), "where": settings.where,
               **summarize_attention(samples)}
    n_layers = len(summary["layers"])
    heat = settings.heatmap_layers or sorted({0, n_layers // 2, n_layers - 1})
    bad = [h for h in heat if not 0 <= h < n_layers]
    if bad:
        raise ConfigError(f"--heatmap-layers {bad}: the model has layers 0-{n_layers - 1}")
    summary["heatmap_layers"] = heat
    write_json(out / ATTENTION_FILE, summary)
    plot_attention(summary, out)
    return summary


def plot_attention(summary: dict, out: Path) -> list[Path]:
    """attention_by_layer.png (inter and intra per layer) and attention_heatmaps.png (chosen layers)."""
    from mimic.eval.diagnostics.common import new_figure, save_figure

    layers = summary["layers"]
    xs = [entry["layer"] for entry in layers]
    fig = new_figure(6, 3.5)
    ax = fig.add_subplot()
    ax.plot(xs, [100 * entry["inter"] for entry in layers], marker="o", label="inter-image")
    ax.plot(xs, [100 * entry["intra"] for entry in layers], marker="s", label="intra-image")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("vision-to-vision attention (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{summary['model']} ({summary['samples']} samples)", fontsize=9)
    ax.legend()
    paths = [save_figure(fig, out / "attention_by_layer.png")]
    heat = summary["heatmap_layers"]
    fig = new_figure(3.2 * len(heat), 3.2)
    axes = fig.subplots(1, len(heat), squeeze=False)[0]
    for ax, li in zip(axes, heat, strict=True):
        m = layers[li]["matrix"]
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        ax.set_title(f"layer {layers[li]['layer']}", fontsize=9)
        ax.set_xlabel("key image")
        ax.set_ylabel("query image")
        ticks = range(len(m))
        ax.set_xticks(list(ticks), [str(t + 1) for t in ticks])
        ax.set_yticks(list(ticks), [str(t + 1) for t in ticks])
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    paths.append(save_figure(fig, out / "attention_heatmaps.png"))
    return paths
