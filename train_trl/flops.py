"""FLOPs of full vs per-image masked attention: the paper's Eq. 1 (Table 7) and an honest per-model estimate.

Paper, appendix (Eq. 1): one layer with full self-attention costs O((N_t+N_v)^2 d + (N_t+N_v) d^2); with the
mask, vision tokens attend only inside their image (n_i = N_v / M tokens each), text tokens see everything:
    FLOPs ~ (N_t (N_t+N_v) + sum_i n_i^2) d + (N_t+N_v) d^2
The printed Eq. 1 writes the second (MLP) term as (N_t+N_v) d; Table 7's numbers (58B -> 11.2B at d=896,
107B -> 26.7B at d=1536, with N_t=17.4, N_v=7592, M=10.4) come out only with (N_t+N_v) d^2, the MLP term of
the unmasked formula, so that is the term used here (with d instead, the masked 0.5B figure would be 5.1B).

That is an order-of-magnitude count for one layer with every layer masked and MHA-sized projections. The
honest estimate (`estimate_run`) counts every decoder layer of the real model with multiply-adds as 2 FLOPs:
q/k/v/o projections with grouped-query attention (k and v have num_key_value_heads heads), the real MLP
(three d x intermediate matrices), and attention scores + weighted values over the key positions each query
really sees: the causal triangle in unmasked layers, and in masked layers the causal text rows plus each
image's own (causal or full) block. The vision tower and the LM head are the same in both variants and are
left out, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KNOWN_TEXT_SHAPES",
    "PAPER_TABLE7",
    "RunEstimate",
    "TextShape",
    "eq1_full",
    "eq1_masked",
    "estimate_run",
    "format_paper_table",
    "format_run_estimate",
    "paper_table7",
    "text_shape_of",
]

# Appendix "Efficiency and FLOPs Analysis": MIMIC averages, LLaVA-OV's 730 tokens per image.
PAPER_N_TEXT = 17.4
PAPER_IMAGES = 10.4
PAPER_TOKENS_PER_IMAGE = 730
PAPER_N_VISION = PAPER_IMAGES * PAPER_TOKENS_PER_IMAGE  # 7592
PAPER_TABLE7 = (("LLaVA-OV-0.5B", 896), ("LLaVA-OV-1.5B", 1536))


def eq1_full(n_text: float, n_vision: float, d: int) -> float:
    """Eq. 1's baseline: (N_t+N_v)^2 d + (N_t+N_v) d^2."""
    n = n_text + n_vision
    return n * n * d + n * d * d


def eq1_masked(n_text: float, n_vision: float, images: float, d: int) -> float:
    """Eq. 1 with uniform image blocks n_i = N_v / M: (N_t (N_t+N_v) + M (N_v/M)^2) d + (N_t+N_v) d^2."""
    n = n_text + n_vision
    per_image = n_vision / images
    return (n_text * n + images * per_image**2) * d + n * d * d


def paper_table7(n_text: float = PAPER_N_TEXT, n_vision: float = PAPER_N_VISION, images: float = PAPER_IMAGES):
    """Rows (model, d, full FLOPs, masked FLOPs, gain) of Table 7, computed from Eq. 1."""
    rows = []
    for name, d in PAPER_TABLE7:
        full, masked = eq1_full(n_text, n_vision, d), eq1_masked(n_text, n_vision, images, d)
        rows.append((name, d, full, masked, 1 - masked / full))
    return rows


def _b(x: float) -> str:
    return f"{x / 1e9:.1f}B"


def format_paper_table(rows=None) -> str:
    rows = paper_table7() if rows is None else rows
    lines = [
        f"Eq. 1 with N_t = {PAPER_N_TEXT}, N_v = {PAPER_N_VISION:g} ({PAPER_IMAGES} images x "
        f"{PAPER_TOKENS_PER_IMAGE} tokens), M = {PAPER_IMAGES} (paper Table 7)",
        f"{'model':<16}{'d':>6}{'full':>10}{'masked':>10}{'gain':>8}",
    ]
    for name, d, full, masked, gain in rows:
        lines.append(f"{name:<16}{d:>6}{_b(full):>10}{_b(masked):>10}{gain:>8.0%}")
    return "\n".join(lines)


@dataclass(frozen=True)
class TextShape:
    """The language model's dimensions that set its FLOPs."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


# Published text configs (config.json of the Qwen2 models inside the llava-hf LLaVA-OneVision checkpoints), so
# the paper's models can be estimated without a download.
KNOWN_TEXT_SHAPES = {
    "llava-hf/llava-onevision-qwen2-0.5b-si-hf": TextShape(896, 4864, 24, 14, 2, 64),
    "llava-hf/llava-onevision-qwen2-0.5b-ov-hf": TextShape(896, 4864, 24, 14, 2, 64),
    "llava-hf/llava-onevision-qwen2-7b-si-hf": TextShape(3584, 18944, 28, 28, 4, 128),
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": TextShape(3584, 18944, 28, 28, 4, 128),
}


def text_shape_of(model: str):
    """`TextShape` of a checkpoint: a local folder's config, a model of `KNOWN_TEXT_SHAPES` (no download),
    else the config of a Hub id."""
    from transformers import AutoConfig

    if not Path(model).exists() and model in KNOWN_TEXT_SHAPES:
        return KNOWN_TEXT_SHAPES[model]
    try:
        cfg = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the config of {model!r} ({err}); pass a local folder") from err
    t = cfg.get_text_config()
    heads = t.num_attention_heads
    return TextShape(
        hidden_size=t.hidden_size, intermediate_size=t.intermediate_size, num_layers=t.num_hidden_layers,
        num_heads=heads, num_kv_heads=getattr(t, "num_key_value_heads", None) or heads,
        head_dim=getattr(t, "head_dim", None) or t.hidden_size // heads,
    )


def _causal_pairs(n: float) -> float:
    return n * (n + 1) / 2


@dataclass(frozen=True)
class RunEstimate:
    shape: TextShape
    masked_layers: tuple[int, ...]
    tokens: float
    full_flops: float  # every layer stock (causal)
    masked_flops: float  # masked_layers with the per-image mask
    attention_pairs_causal: float
    attention_pairs_masked: float

    @property
    def gain(self) -> float:
        return 1 - self.masked_flops / self.full_flops


def estimate_run(
    shape: TextShape,
    masked_layers: Sequence[int],
    num_images: float = PAPER_IMAGES,
    tokens_per_image: float = PAPER_TOKENS_PER_IMAGE,
    text_before: float = 3,
    text_after: float = 14.4,
    within_image: str = "causal",
) -> RunEstimate:
    """Forward FLOPs of the decoder stack for one sample laid out as text_before, `num_images` images of
    `tokens_per_image` tokens each (a fractional count is an average, as the paper's 10.4), text_after.

    Defaults follow the paper's averages: 17.4 text tokens, 3 of them ("<|im_start|>user ") before the images
    as the llava-hf chat template renders them. Training costs about 3x the forward in both variants.
    """
    d, kv_dim, q_dim = shape.hidden_size, shape.num_kv_heads * shape.head_dim, shape.num_heads * shape.head_dim
    n_v = num_images * tokens_per_image
    n = text_before + n_v + text_after
    causal = _causal_pairs(n)
    block = num_images * (_causal_pairs(tokens_per_image) if within_image == "causal" else tokens_per_image**2)
    # text rows: the prefix sees its causal triangle; each suffix token at position p sees p + 1 keys.
    start = text_before + n_v
    suffix = text_after * start + _causal_pairs(text_after)
    masked_pairs = _causal_pairs(text_before) + block + suffix
    linear = 2 * n * (d * q_dim + 2 * d * kv_dim + q_dim * d) + 2 * n * 3 * d * shape.intermediate_size

    def attention(pairs: float) -> float:
        return 4 * pairs * q_dim  # q.k and p.v: 2 FLOPs per multiply-add, head_dim per head, every query head

    layers = set(masked_layers)
    full = shape.num_layers * (linear + attention(causal))
    masked = sum(linear + attention(masked_pairs if i in layers else causal) for i in range(shape.num_layers))
    return RunEstimate(shape, tuple(sorted(layers)), n, full, masked, causal, masked_pairs)


def format_run_estimate(est: RunEstimate, label: str = "") -> str:
    s = est.shape
    layers = est.masked_layers
    span = f"{layers[0]}-{layers[-1]}" if layers and list(layers) == list(range(layers[0], layers[-1] + 1)) else (
        ",".join(map(str, layers)) or "none")
    return "\n".join([
        f"{label}text model: d={s.hidden_size}, MLP {s.intermediate_size}, {s.num_layers} layers, "
        f"{s.num_heads} query / {s.num_kv_heads} KV heads x {s.head_dim}",
        f"sequence: {est.tokens:g} tokens; masked layers: {span} ({len(layers)} of {s.num_layers})",
        f"attention pairs per layer: causal {est.attention_pairs_causal:.4g}, masked {est.attention_pairs_masked:.4g} "
        f"({est.attention_pairs_masked / est.attention_pairs_causal:.1%})",
        f"decoder forward FLOPs per sample: stock {_b(est.full_flops)}, masked {_b(est.masked_flops)} "
        f"(gain {est.gain:.1%})",
    ])
