"""Vision-to-vision attention by layer, split into inter- and intra-image shares (paper Fig. 4 and Fig. 9).

The paper: "the normalized attention scores from each vision token to all other vision tokens in the input
sequence subject to an autoregressive attention masking on a subset of 50 samples". Here, for every layer
of the language model, every head and every vision token of a sample (the query), its attention weights on
the *other* vision tokens it can see (those before it; its own key left out, as "other" says) are
renormalised to sum to 1 and summed by the image of the key. Heads are averaged per query. Per sample and
layer:

- `inter`: the mean over the counted queries of the share that goes to *other* images; `intra` the share
  to the query's own image; inter + intra = 1.
- `matrix[i][j]`: the mean over the counted queries of image i of the share that goes to image j; every
  row sums to 1 and, under the causal mask, the upper triangle is 0.

A query with no other vision token to attend to (the first vision token; under per-image masking the first
token of every image) has no share to split and is not counted. The first image's other tokens can only
see their own image; they are counted like all others, as the paper's "from each vision token" does.
A run averages the samples, each with the same weight (matrices over the samples with the same number of
images).

The reference (`chance_stats`): what uniform attention under the same causal mask and token layout gives,
renormalised the same way, so a raw inter share can be read against it (with 4 LLaVA-OV images of 730
tokens it is about 0.6, not 0).

How: eager attention (the only kernel that returns the weights); a forward hook on each layer's
`self_attn` turns the (1, heads, L, L) weights into the statistics above and drops them, so one layer's
weights are alive at a time and a 10-image sample fits. One sample per forward pass, no generation, the
vocabulary projection on the last position only. Works with per-image masking on
(`enable_image_masking(model, layers, backend="eager")`): the inter share of the masked layers is then
exactly 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mimic.errors import ConfigError

__all__ = ["AttentionSettings", "attention_stats", "balanced_rows", "chance_stats",
           "forward_without_logits", "run_attention", "sample_attention", "summarize_attention"]

logger = logging.getLogger(__name__)

ATTENTION_FILE = "attention.json"
SAMPLES_FILE = "attention_samples.jsonl"
# What `attention_stats` computes; a resume log of another definition is refused, not mixed in.
STATISTIC = "vision queries, other vision keys before them (self excluded), renormalised per head, heads averaged"


def _shares(frac: torch.Tensor, q_img: torch.Tensor, num_images: int) -> dict:
    """inter/intra/matrix of per-query shares. frac: (Q, n) float64, each counted query's share of its vision
    attention per key image (rows sum to 1); q_img: (Q,) the image of each query."""
    onehot = torch.nn.functional.one_hot(q_img, num_images).to(frac)
    own = frac.gather(1, q_img[:, None]).squeeze(1)
    # the other images' shares summed directly (not 1 - own), so that a masked layer gives exactly 0
    other = frac.scatter(1, q_img[:, None], 0.0).sum(1)
    # an image none of whose tokens is counted (a 1-token image under masking) keeps a zero row
    counts = onehot.sum(0).clamp(min=1)
    matrix = (onehot.T @ frac) / counts[:, None]
    return {"inter": float(other.mean()), "intra": float(own.mean()), "matrix": matrix.tolist(),
            "queries": int(len(q_img))}


def attention_stats(weights: torch.Tensor, image_ids: torch.Tensor, num_images: int,
                    chunk: int = 1024) -> dict:
    """Inter/intra shares and the image-by-image matrix of one sample's attention weights at one layer.

    weights: (heads, L, L) softmax attention of one layer (rows = queries), left unchanged. image_ids: (L,)
    long, -1 for text and k for the k-th image's tokens. Per head and vision query, the weights on the
    *other* vision tokens (the query's own key left out, as the paper's "to all other vision tokens") are
    renormalised to 1 and summed per key image; heads are then averaged. A query with no weight on another
    vision token (the first vision token of the sequence; under per-image masking, each image's first
    token) has no share to split and is not counted. Returns {"inter", "intra", "matrix" (num_images x
    num_images), "queries" (how many were counted)}.
    """
    vis_pos = (image_ids >= 0).nonzero().flatten()
    q_img = image_ids[vis_pos]
    # key -> image one-hot over the whole sequence (text rows 0): row chunks of each head are multiplied
    # instead of copying the (V, V) vision block (at 10 LLaVA-OV images it is 7.3k^2 per head)
    keys = torch.zeros(image_ids.shape[0], num_images, dtype=torch.float64, device=weights.device)
    keys[vis_pos] = torch.nn.functional.one_hot(q_img, num_images).to(keys)
    mass = torch.empty(weights.shape[0], len(vis_pos), num_images, dtype=torch.float64, device=weights.device)
    for h in range(weights.shape[0]):
        for start in range(0, len(vis_pos), chunk):
            q = vis_pos[start : start + chunk]
            w = weights[h, q].to(torch.float64)  # a copy: the diagonal is zeroed in it, not in `weights`
            w[torch.arange(len(q), device=w.device), q] = 0.0
            mass[h, start : start + len(q)] = w @ keys
    total = mass.sum(-1, keepdim=True)
    counted = (total > 0).all(0).flatten()
    frac = (mass[:, counted] / total[:, counted]).mean(0)
    return _shares(frac, q_img[counted].to(frac.device), num_images)


def chance_stats(image_ids: torch.Tensor, num_images: int) -> dict:
    """What `attention_stats` gives for uniform attention under the causal mask with this token layout.

    Uniform attention spreads a query's weight evenly over the keys before it; renormalised over the other
    vision tokens, as `attention_stats` does, each query's share of image j is the number of image-j tokens
    before it over the number of vision tokens before it. Counted by cumulative sums, no L x L matrix.
    image_ids: (L,) as for `attention_stats`. Returns the same keys.
    """
    q_img = image_ids[image_ids >= 0]
    onehot = torch.nn.functional.one_hot(q_img, num_images).to(torch.float64)
    before = onehot.cumsum(0) - onehot  # (V, n) vision tokens of each image strictly before the query
    total = before.sum(1)
    counted = total > 0
    return _shares(before[counted] / total[counted, None], q_img[counted], num_images)


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
        forward_without_logits(model, batch)
    finally:
        for h in handles:
            h.remove()
    return [{"layer": i, **stats[i]} for i in sorted(stats)]


def forward_without_logits(model, batch) -> None:
    """One forward pass for its hooks only: the vocabulary projection runs on the last position alone
    (`logits_to_keep=1`), not on all L (at the real shape L x 152k floats, about 1.8 GB of the peak)."""
    with torch.inference_mode():
        model(**batch, use_cache=False, logits_to_keep=1)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def summarize_attention(samples: Sequence[dict]) -> dict:
    """Averages over samples (each sample weighs the same): per layer inter/intra, the matrices per number
    of images, and the uniform-attention reference (`chance_inter`, `chance_matrices`) averaged alike."""
    if not samples:
        return {"samples": 0, "layers": [], "num_images": {}}
    n_layers = len(samples[0]["layers"])
    by_n: dict[int, list[dict]] = {}
    for s in samples:
        by_n.setdefault(int(s["num_images"]), []).append(s)
    common = max(by_n, key=lambda k: (len(by_n[k]), k))

    def mean_matrix(matrices) -> list:
        return torch.tensor(list(matrices), dtype=torch.float64).mean(0).tolist()

    layers = []
    for li in range(n_layers):
        matrices = {str(k): mean_matrix(g["layers"][li]["matrix"] for g in group) for k, group in sorted(by_n.items())}
        layers.append({"layer": samples[0]["layers"][li]["layer"],
                       "inter": _mean(s["layers"][li]["inter"] for s in samples),
                       "intra": _mean(s["layers"][li]["intra"] for s in samples),
                       "matrix": matrices[str(common)], "matrices": matrices})
    return {"samples": len(samples), "num_images": {str(k): len(v) for k, v in sorted(by_n.items())},
            "matrix_num_images": common, "chance_inter": _mean(s["chance"]["inter"] for s in samples),
            "chance_matrices": {str(k): mean_matrix(g["chance"]["matrix"] for g in group)
                                for k, group in sorted(by_n.items())},
            "layers": layers}


def balanced_rows(selections, limit: int, analysis: str) -> tuple[list, dict[str, int]]:
    """Up to `limit` (selection, row index) pairs of rows with two or more images, one config after the
    other in rounds (round-robin), so every config gives the same number of rows (give or take one in the
    last round); when a config runs out, no further round starts, and a warning gives the number used.
    Returns the pairs and the rows used per config."""
    pools = [[(sel, i) for i in sel.indices if int(sel.rows[i].get("num_images") or 0) >= 2] for sel in selections]
    pools = [p for p in pools if p]
    if not pools:
        raise ConfigError(f"mimic diagnose {analysis}: no selected row has two or more images")
    rounds = min(len(p) for p in pools)
    chosen = [p[r] for r in range(rounds) for p in pools][:limit]
    if len(chosen) < limit:
        logger.warning("mimic diagnose %s: --limit %d asks for more rows than the configs give in equal "
                       "numbers; using %d (%s)", analysis, limit, len(chosen),
                       ", ".join(f"{p[0][0].config} {len(p)} rows" for p in pools))
    used: dict[str, int] = {}
    for sel, _ in chosen:
        used[sel.config] = used.get(sel.config, 0) + 1
    return chosen, used


@dataclass
class AttentionSettings:
    """One attention analysis. model: an hf: spec. limit: how many samples (the paper: 50), taken from the
    selected rows in rounds over the configs (`balanced_rows`). heatmap_layers: layers drawn as image-by-image heatmaps (default: first, middle,
    last). model_options: hf adapter options (dtype, device, mask_backend ...)."""

    data: str
    model: str
    out: str
    configs: list[str] = field(default_factory=list)
    where: dict[str, list[str]] = field(default_factory=dict)
    limit: int = 50
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
    from mimic.eval.diagnostics.common import family_of, hf_target, requests_of, select_rows
    from mimic.eval.predictions import PredictionWriter, read_predictions

    hf_target(settings.model, "attention")
    selections = select_rows(settings.data, settings.configs, settings.split, None, settings.where,
                             settings.cache_dir)
    chosen, rows_used = balanced_rows(selections, settings.limit, "attention")
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / SAMPLES_FILE
    identity = {"model": settings.model, "options": settings.model_options, "statistic": STATISTIC}
    if settings.overwrite:
        log.unlink(missing_ok=True)
    done = {r["id"]: r for r in read_predictions(log)}
    for r in done.values():
        if r.get("identity") != identity:
            raise ConfigError(f"{out} holds attention of another model, options or statistic; use another --out or --overwrite")
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
            n = int(ids.max()) + 1
            record = {"id": request.id, "config": sel.config, "num_images": n,
                      "tokens": int(batch["input_ids"].shape[1]), "image_tokens": int((ids >= 0).sum()),
                      "image_token_counts": torch.bincount(ids[0][ids[0] >= 0].cpu(), minlength=n).tolist(),
                      "identity": identity, "chance": chance_stats(ids[0].cpu(), n), "layers": layers}
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
               "statistic": STATISTIC, "configs": sorted(rows_used), "rows_used": rows_used,
               "limit": settings.limit, "where": settings.where, **summarize_attention(samples)}
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
    ax.axhline(100 * summary["chance_inter"], color="C0", linestyle="--", linewidth=1,
               label="inter-image, uniform attention")
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
