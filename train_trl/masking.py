"""Per-image attention masks for LLaVA-OneVision, applied in chosen language-model layers only.

Semantics (paper Fig. 7, and the official implementation's mask): in a masked layer, a vision token of image
j attends only to tokens of image j (causally inside the image by default, as the official code's
`tril` mask does; `within_image="bidirectional"` gives the full block); text tokens keep the ordinary causal
mask over everything before them, images included. Padding is never attended. Layers outside the chosen set
run the stock mask, untouched. As in the official code, a sample with a single image is left unmasked
(`single_image=True` masks it too): the remedy targets interaction *between* images.

How it is wired (no monkeypatching, no environment variables; transformers' documented extension points):

1. `register_image_attention()` adds three attention functions to `AttentionInterface` and their mask
   builders to `AttentionMaskInterface` under the names in `ATTENTION_NAMES` (one per backend: sdpa, eager,
   flex_attention). Each one delegates to the stock function of its backend and swaps in the per-image mask
   only when `module.layer_idx` is in the layer set that arrives with the call.
2. `enable_image_masking(model, layers, backend)` switches the *text* config to that name
   (`set_attn_implementation({"text_config": ..., "vision_config": <unchanged>})`, so SigLIP keeps its own
   attention) and registers two forward pre-hooks:
   - on `LlavaOnevisionModel`: derives `image_ids` from `input_ids` + `image_sizes` + `batch_num_images`
     with the model's own token-count rules when the caller did not pass them (plain `generate(**inputs)`
     therefore gets the mask too), and checks them when it did;
   - on the text backbone: pops `image_ids` (or a dense `image_attention_mask`), builds the mask once per
     forward with transformers' own builder (`create_causal_mask`, so the format always matches the backend:
     bool for sdpa, additive float for eager, a `BlockMask` for flex), and passes it down as
     `image_block_mask` together with `image_block_layers`. The pre-hook runs outside the gradient-checkpointed
     layers, so recomputation reuses the same mask.

KV-cache decoding: only rows of *vision queries* differ from the causal mask. A decoding step's queries are
generated text tokens, so their rows are exactly causal: the builder returns no mask for such a step (the
stock mask is used), and the keys/values of the image tokens in the cache were computed under the per-image
mask during prefill. `tests/test_train_masking.py` checks cached generation against full recomputation.

Memory: `image_ids` is O(B*L). With flex the mask is a `BlockMask` (O(B*(L/128)^2) block indices), built by
compiled `create_block_mask` without materialising L x L. sdpa and eager need a dense (B, 1, L, L) mask,
like the stock masks they replace.

flex on CPU: no backward (training raises `ConfigError`; train.py switches to sdpa up front); its compile
settings are scoped to each flex call (`flex_compile_settings`); decoding steps run with sdpa. A 4D
`attention_mask` from the caller raises `ConfigError`. All of it, and why: docs/masking.md.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from mimic.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "ATTENTION_NAMES",
    "BACKENDS",
    "FLEX_RECOMPILE_LIMIT",
    "MASK_FILE",
    "flex_compile_settings",
    "flex_trains_on",
    "ImageMaskSpec",
    "ImageMasking",
    "dense_image_mask",
    "disable_image_masking",
    "enable_image_masking",
    "image_ids_from_counts",
    "image_ids_from_flat_counts",
    "image_ids_from_inputs",
    "image_mask_functions",
    "image_token_counts",
    "parse_layers",
    "register_image_attention",
]

BACKENDS = ("sdpa", "eager", "flex_attention")
# Custom attention names: no "flash" (would trigger flash-attention dispatch checks) and no "flex_attention"
# substring (would trigger the flex availability checks meant for the stock name).
ATTENTION_NAMES = {"sdpa": "mimic_image_sdpa", "eager": "mimic_image_eager", "flex_attention": "mimic_image_flex"}
_BACKEND_OF = {v: k for k, v in ATTENTION_NAMES.items()}

# kwargs carried from the backbone pre-hook to the attention functions.
_MASK_KWARG = "image_block_mask"
_LAYERS_KWARG = "image_block_layers"

# Written next to a trained model by train.py, read back by `load_trained` and the `hf:` eval adapter.
MASK_FILE = "image_masking.json"

# Distinct compiled shapes allowed per flex function inside `flex_compile_settings` (torch's default is 8: with
# two BlockMasks per forward, stock and per-image, that is only four prompt lengths before torch falls back to
# the unfused path, which materialises every score).
FLEX_RECOMPILE_LIMIT = 64


@dataclass(frozen=True)
class ImageMaskSpec:
    """What `enable_image_masking` applies; saved next to a trained model as `image_masking.json`."""

    layers: tuple[int, ...]
    backend: str = "sdpa"
    within_image: str = "causal"
    single_image: bool = False

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.within_image not in ("causal", "bidirectional"):
            raise ValueError(f"within_image must be 'causal' or 'bidirectional', got {self.within_image!r}")
        if any((not isinstance(i, int)) or i < 0 for i in self.layers):
            raise ValueError(f"layers must be non-negative integers, got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(sorted(set(self.layers))))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = list(self.layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ImageMaskSpec:
        return cls(
            layers=tuple(d["layers"]), backend=d.get("backend", "sdpa"),
            within_image=d.get("within_image", "causal"), single_image=bool(d.get("single_image", False)),
        )


def parse_layers(text: str | Sequence[int] | None) -> tuple[int, ...]:
    """`"12-23"`, `"0-11,20"`, `[12, 13]` or `None`/`""`/`"none"` (no masking) -> sorted tuple of layer indices."""
    if text is None:
        return ()
    if not isinstance(text, str):
        return tuple(sorted({int(i) for i in text}))
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if a > b:
                    raise ValueError
                out.update(range(a, b + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise ValueError(f"bad layer range {part!r} in {text!r}: use e.g. '12-23' or '0-11,20'") from None
    if min(out) < 0:
        raise ValueError(f"layer indices must be >= 0, got {text!r}")
    return tuple(sorted(out))


# --------------------------------------------------------------------------------------------------------------
# image_ids: per token, the index of its image within the sample (-1 for text and padding)


def image_ids_from_counts(input_ids: torch.Tensor, image_token_id: int, counts: Sequence[Sequence[int]]) -> torch.Tensor:
    """(B, L) image ids from per-sample lists of per-image `<image>` token counts.

    The chat template puts the images of a turn back to back, so runs of image tokens cannot be told apart
    from the ids; the counts say where one image ends. Raises if a row's image tokens do not add up to its
    counts (truncation through an image, or counts from another batch).
    """
    if input_ids.dim() != 2 or len(counts) != input_ids.shape[0]:
        raise ValueError(f"input_ids must be (B, L) with one count list per row, got {tuple(input_ids.shape)} "
                         f"and {len(counts)} lists")
    ids = torch.full_like(input_ids, -1)
    is_image = input_ids == image_token_id
    for b, row_counts in enumerate(counts):
        pos = is_image[b].nonzero(as_tuple=True)[0]
        if int(pos.numel()) != sum(row_counts):
            raise ValueError(
                f"sample {b}: {int(pos.numel())} <image> tokens but its images need {sum(row_counts)} "
                f"({list(row_counts)}); was the sequence truncated through an image?"
            )
        if row_counts:
            ids[b, pos] = torch.repeat_interleave(
                torch.arange(len(row_counts), device=input_ids.device),
                torch.tensor(list(row_counts), device=input_ids.device),
            )
    return ids


def image_token_counts(config, image_sizes, batch_num_images: Sequence[int]) -> list[list[int]]:
    """Per sample, the `<image>` token count of each image, by the model's own rules.

    A sample with several images: each image is one base crop -> grid + 1 `image_newline`. A sample with one
    image: anyres -> base grid + unpadded patch grid with one newline per row, capped by
    `vision_aspect_ratio`. This mirrors `LlavaOnevisionModel.pack_image_features` (it calls the model file's
    own `get_anyres_image_grid_shape` and `unpad_image`) and gives the same numbers as the processor's
    `replace_image_token` (checked in the tests).
    """
    from transformers.models.llava_onevision.modeling_llava_onevision import (
        get_anyres_image_grid_shape,
        unpad_image,
    )

    vc = config.vision_config
    side = vc.image_size // vc.patch_size
    base = side * side
    max_patches = int(str(config.vision_aspect_ratio).removeprefix("anyres_max_"))
    drop = 1 if config.vision_feature_select_strategy == "default" else 0
    sizes = [tuple(int(v) for v in s) for s in (image_sizes.tolist() if torch.is_tensor(image_sizes) else image_sizes)]
    out, k = [], 0
    for n in (int(v) for v in batch_num_images):
        row = []
        for size in sizes[k : k + n]:
            if n == 1:
                grid_h, grid_w = get_anyres_image_grid_shape(size, config.image_grid_pinpoints, vc.image_size)
                h, w = unpad_image(torch.empty(0, grid_h * side, grid_w * side), size).shape[1:]
                ratio = math.sqrt(h * w / (max_patches * side**2))
                if ratio > 1.1:
                    h, w = int(h // ratio), int(w // ratio)
                row.append(base + h * (w + 1) - drop)
            else:
                row.append(base + 1 - drop)
        if len(row) != n:
            raise ValueError(f"batch_num_images {list(batch_num_images)} needs more than the {len(sizes)} image_sizes")
        out.append(row)
        k += n
    if k != len(sizes):
        raise ValueError(f"batch_num_images {list(batch_num_images)} covers {k} images, image_sizes has {len(sizes)}")
    return out


def image_ids_from_inputs(config, input_ids, image_sizes, batch_num_images=None) -> torch.Tensor:
    """`image_ids` for a processor output, from the model config alone (no processor needed).

    Without `batch_num_images` the model treats every image as a sample of its own (anyres); the images are
    then given to the rows in order, as many as each row's `<image>` tokens take.
    """
    if batch_num_images is not None:
        counts = image_token_counts(config, image_sizes, batch_num_images)
        return image_ids_from_counts(input_ids, config.image_token_id, counts)
    flat = [c[0] for c in image_token_counts(config, image_sizes, [1] * len(image_sizes))]
    return image_ids_from_flat_counts(input_ids, config.image_token_id, flat)


def image_ids_from_flat_counts(input_ids: torch.Tensor, image_token_id: int, flat: Sequence[int]) -> torch.Tensor:
    """`image_ids` from the token counts of all images of the batch in order: each row takes the next images
    until its `<image>` tokens are covered (counts are positive, so the split is unique)."""
    counts, k = [], 0
    for row in (input_ids == image_token_id).sum(dim=1).tolist():
        taken = []
        while sum(taken) < row and k < len(flat):
            taken.append(int(flat[k]))
            k += 1
        counts.append(taken)
    if k != len(flat):
        raise ValueError(f"{len(flat)} images but the rows' <image> tokens only take {k} of them")
    return image_ids_from_counts(input_ids, image_token_id, counts)


# --------------------------------------------------------------------------------------------------------------
# Mask functions (mask_mod signature: batch, head, q_idx, kv_idx -> bool; True = may attend)


def image_mask_functions(
    image_ids: torch.Tensor, within_image: str = "causal", single_image: bool = False
) -> tuple:
    """`(or_mask_function, and_mask_function)` for `create_causal_mask`, closing over `image_ids` (B, L).

    Combined by transformers as `(causal OR or_fn) AND and_fn`, then AND padding:
    - vision query in a restricted sample: `(kv <= q [OR same image]) AND same image`;
    - text query (or an unrestricted sample): `kv <= q`.
    Indices are absolute positions, so `image_ids` must cover every key position (see `_pad_ids`).
    """
    counts = (image_ids.max(dim=1).values + 1) if image_ids.shape[1] else torch.zeros_like(image_ids[:, 0])
    restrict = counts >= (1 if single_image else 2)  # (B,) which samples are masked

    def and_fn(batch_idx, head_idx, q_idx, kv_idx):
        q_img = image_ids[batch_idx, q_idx]
        return (q_img < 0) | ~restrict[batch_idx] | (image_ids[batch_idx, kv_idx] == q_img)

    if within_image == "causal":
        return None, and_fn

    def or_fn(batch_idx, head_idx, q_idx, kv_idx):
        q_img = image_ids[batch_idx, q_idx]
        return restrict[batch_idx] & (q_img >= 0) & (image_ids[batch_idx, kv_idx] == q_img)

    return or_fn, and_fn


def dense_image_mask(
    image_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    within_image: str = "causal",
    single_image: bool = False,
) -> torch.Tensor:
    """The explicit (B, 1, L, L) bool mask (True = may attend), written out directly from the definition.

    It is the reference the tests compare the backend masks with, and what the collator emits with
    `dense_image_mask=True`. It costs B*L*L bytes: for real sequence lengths use `image_ids` and flex.
    """
    B, L = image_ids.shape
    pos = torch.arange(L, device=image_ids.device)
    causal = pos[None, :] <= pos[:, None]                                     # (L, L): kv <= q
    q_img, k_img = image_ids[:, :, None], image_ids[:, None, :]               # (B, L, 1), (B, 1, L)
    same = (q_img >= 0) & (k_img == q_img)                                    # (B, L, L)
    restrict = (image_ids.max(dim=1).values + 1) >= (1 if single_image else 2)
    vision_row = (q_img >= 0) & restrict[:, None, None]
    inside = same & (causal if within_image == "causal" else torch.ones_like(causal))
    allowed = torch.where(vision_row, inside, causal.expand(B, L, L))
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, :]
    return allowed[:, None]


# --------------------------------------------------------------------------------------------------------------
# Attention functions registered with transformers


def _pick(module, attention_mask, kwargs):
    block = kwargs.pop(_MASK_KWARG, None)
    layers = kwargs.pop(_LAYERS_KWARG, ())
    if block is not None and module.layer_idx in layers:
        return block
    return attention_mask


def _image_sdpa(module, query, key, value, attention_mask, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, _pick(module, attention_mask, kwargs), **kwargs)


def _image_eager(module, query, key, value, attention_mask, **kwargs):
    from transformers.models.qwen2.modeling_qwen2 import eager_attention_forward

    return eager_attention_forward(module, query, key, value, _pick(module, attention_mask, kwargs), **kwargs)


def _image_flex(module, query, key, value, attention_mask, **kwargs):
    from torch.nn.attention.flex_attention import BlockMask
    from transformers.integrations.flex_attention import flex_attention_forward
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    mask = _pick(module, attention_mask, kwargs)
    if not isinstance(mask, BlockMask):
        # `_image_flex_mask` gave a decoding step an sdpa mask (see there): text queries, plain causal rows.
        return sdpa_attention_forward(module, query, key, value, mask, **kwargs)
    if torch.is_grad_enabled() and query.requires_grad and not flex_trains_on(query.device.type):
        raise ConfigError(f"mask backend 'flex_attention' cannot train on {query.device.type}: PyTorch has no "
                          "flex_attention backward there; use mask backend 'sdpa' (--mask_backend sdpa)")
    with flex_compile_settings(query.device):
        _note_flex_shape(query.device, (query.shape[0], query.shape[2], key.shape[2]))
        return flex_attention_forward(module, query, key, value, mask, **kwargs)


def _image_flex_mask(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, **kwargs):
    """Mask builder registered for the flex name: a `BlockMask`, except for decoding steps.

    A decoding step (queries after cached tokens) has text queries only, whose rows are plain causal, and a new
    key length at every token: flex would compile a kernel per step and soon hit the recompile limit. Those
    steps get transformers' sdpa mask instead and `_image_flex` runs them with sdpa.
    """
    from transformers.masking_utils import flex_attention_mask, sdpa_mask

    past = int(q_offset) if torch.is_tensor(q_offset) else q_offset
    if past > 0:
        return sdpa_mask(batch_size, q_length, kv_length, q_offset, kv_offset, **kwargs)
    device = torch.device(kwargs.get("device", "cpu"))
    with flex_compile_settings(device):
        _note_flex_shape(device, (batch_size, q_length, kv_length))
        return flex_attention_mask(batch_size, q_length, kv_length, q_offset, kv_offset, **kwargs)


def flex_trains_on(device_type: str) -> bool:
    """Whether flex_attention can train on this device type: PyTorch 2.13 has its backward on CUDA and XPU only
    (on CPU: `NotImplementedError: FlexAttention does not support backward on CPU`)."""
    return device_type in ("cuda", "xpu")


@contextlib.contextmanager
def flex_compile_settings(device: torch.device | str = "cpu"):
    """The torch.compile settings of the flex path, scoped to one call (the caller's global settings stay).

    - On CPU, static shapes (`automatic_dynamic_shapes=False`): after a second distinct sequence length torch
      would recompile with dynamic shapes, and inductor's CPU flex template then fails to build (torch 2.13,
      `CppCompileError`). Each new length compiles once instead; `pad_to_multiple_of=128` keeps them few.
    - Everywhere, `recompile_limit` at least `FLEX_RECOMPILE_LIMIT`: past the limit torch silently runs the
      unfused flex path, which materialises every attention score.
    """
    config = torch._dynamo.config
    settings = {"recompile_limit": max(FLEX_RECOMPILE_LIMIT, config.recompile_limit)}
    if torch.device(device).type == "cpu":
        settings["automatic_dynamic_shapes"] = False
    with config.patch(**settings):
        yield


_flex_shapes: set[tuple] = set()
_flex_warned: list[bool] = [False]


def _note_flex_shape(device, shape: tuple) -> None:
    # Only static-shape compiles (CPU) are one per shape; there, warn before torch's recompile limit is reached.
    if torch.device(device).type != "cpu":
        return
    _flex_shapes.add(shape)
    # two compiled variants per shape and function: the stock BlockMask and the per-image one
    if len(_flex_shapes) > FLEX_RECOMPILE_LIMIT // 2 and not _flex_warned[0]:
        _flex_warned[0] = True
        logger.warning(
            "flex_attention on CPU has compiled %d distinct (batch, query, key) shapes; past about %d torch falls "
            "back to its unfused path. Pad batches to a multiple of 128 or use mask backend 'sdpa'.",
            len(_flex_shapes), FLEX_RECOMPILE_LIMIT // 2,
        )


def register_image_attention() -> dict[str, str]:
    """Register the three image-mask attention functions and their mask builders (idempotent).

    Call it before `from_pretrained(..., attn_implementation={"text_config": ATTENTION_NAMES[b], ...})`;
    `enable_image_masking` calls it itself. Returns `ATTENTION_NAMES`.
    """
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import eager_mask, sdpa_mask

    for backend, fn, mask_builder in (
        ("sdpa", _image_sdpa, sdpa_mask),
        ("eager", _image_eager, eager_mask),
        ("flex_attention", _image_flex, _image_flex_mask),
    ):
        AttentionInterface.register(ATTENTION_NAMES[backend], fn)
        AttentionMaskInterface.register(ATTENTION_NAMES[backend], mask_builder)
    return dict(ATTENTION_NAMES)


# --------------------------------------------------------------------------------------------------------------
# Hooks


def _llava_parts(model):
    """(top model, LlavaOnevisionModel, text backbone) of a LLaVA-OneVision model, PEFT-wrapped or not."""
    base = model
    if hasattr(base, "get_base_model"):  # peft.PeftModel
        base = base.get_base_model()
    inner = getattr(base, "model", None)
    lm = getattr(inner, "language_model", None)
    if inner is None or lm is None or not hasattr(lm, "layers"):
        raise TypeError(
            f"{type(model).__name__} is not a LLaVA-OneVision-style model (expected .model.language_model.layers)"
        )
    return base, inner, lm


def _pad_ids(ids: torch.Tensor, length: int) -> torch.Tensor:
    # Positions after the given ids are tokens generated since (text): -1.
    if ids.shape[1] >= length:
        return ids[:, :length]
    return torch.nn.functional.pad(ids, (0, length - ids.shape[1]), value=-1)


@dataclass
class ImageMasking:
    """Handle returned by `enable_image_masking`: the spec, the hooks, and `remove()` to undo it."""

    spec: ImageMaskSpec
    model: object
    previous_text_attn: str
    handles: list = field(default_factory=list)
    mask_builds: int = 0  # how many masks were built (the tests use it: once per forward, also under GC)

    def remove(self) -> None:
        """Remove the hooks and restore the text model's previous attention implementation."""
        for h in self.handles:
            h.remove()
        self.handles.clear()
        base, _, _ = _llava_parts(self.model)
        base.set_attn_implementation({"text_config": self.previous_text_attn,
                                      "vision_config": base.config.vision_config._attn_implementation})
        if getattr(base, "_mimic_image_masking", None) is self:
            del base._mimic_image_masking


def enable_image_masking(
    model,
    layers: Iterable[int] | str | ImageMaskSpec,
    backend: str | None = None,
    within_image: str = "causal",
    single_image: bool = False,
) -> ImageMasking:
    """Switch `layers` of the language model of `model` to the per-image attention mask.

    `model`: a `LlavaOnevisionForConditionalGeneration` (or PEFT wrapper of one). `layers`: indices, a range
    string ("12-23"), or a whole `ImageMaskSpec` (then its layers, backend, within_image and single_image are
    used and only `backend` may override the kernel; pass the same spec to `MultiImageCollator(mask_spec=...)`).
    `backend`: "sdpa", "eager" or "flex_attention"; default: the text model's current one
    (sdpa if it is something else, e.g. flash attention, which cannot take an arbitrary mask). The vision
    tower keeps its attention. Call it before wrapping with PEFT or after, either works. Returns a handle
    whose `remove()` undoes it. Raises if masking is already enabled or a layer index does not exist.
    """
    if isinstance(layers, ImageMaskSpec):
        backend = backend or layers.backend
        layers, within_image, single_image = layers.layers, layers.within_image, layers.single_image
    base, inner, lm = _llava_parts(model)
    if getattr(base, "_mimic_image_masking", None) is not None:
        raise RuntimeError("image masking is already enabled on this model; call .remove() on its handle first")
    layer_set = parse_layers(layers)
    n_layers = len(lm.layers)
    bad = [i for i in layer_set if i >= n_layers]
    if bad:
        raise ValueError(f"layers {bad} do not exist: the language model has {n_layers} layers (0-{n_layers - 1})")
    text_cfg = base.config.text_config
    current = text_cfg._attn_implementation
    current_backend = _BACKEND_OF.get(current, current)
    if backend is None:
        backend = current_backend if current_backend in BACKENDS else "sdpa"
    spec = ImageMaskSpec(layers=layer_set, backend=backend, within_image=within_image, single_image=single_image)

    register_image_attention()
    previous = current if current not in _BACKEND_OF else backend
    base.set_attn_implementation({"text_config": ATTENTION_NAMES[backend],
                                  "vision_config": base.config.vision_config._attn_implementation})
    handle = ImageMasking(spec=spec, model=model, previous_text_attn=previous)
    handle.handles.append(inner.register_forward_pre_hook(_make_ids_hook(), with_kwargs=True))
    handle.handles.append(lm.register_forward_pre_hook(_make_mask_hook(handle, frozenset(layer_set)), with_kwargs=True))
    base._mimic_image_masking = handle
    return handle


def disable_image_masking(model) -> None:
    """Undo `enable_image_masking` on `model` (no-op if it is not enabled)."""
    base, _, _ = _llava_parts(model)
    handle = getattr(base, "_mimic_image_masking", None)
    if handle is not None:
        handle.remove()


def _bind(module, args, kwargs) -> dict:
    if not args:
        return kwargs
    bound = inspect.signature(module.forward).bind_partial(*args, **kwargs)
    return dict(bound.arguments)


def _make_ids_hook():
    def derive_image_ids(module, args, kwargs):
        kwargs = _bind(module, args, kwargs)
        input_ids = kwargs.get("input_ids")
        given = kwargs.get("image_ids")
        if given is not None:
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            cached = cache is not None and cache.get_seq_length() > 0
            # With a cache (generate), the prompt's image_ids come back at every decoding step: the new tokens
            # are text and the mask hook pads the ids for them. Without one they must cover input_ids exactly.
            if input_ids is not None and (given.shape[0] != input_ids.shape[0]
                                          or (not cached and given.shape[1] != input_ids.shape[1])):
                raise ValueError(f"image_ids {tuple(given.shape)} must have the shape of input_ids "
                                 f"{tuple(input_ids.shape)}")
            return (), kwargs
        if kwargs.get("image_attention_mask") is not None:
            return (), kwargs
        if input_ids is None:
            return (), kwargs
        encoded = (kwargs.get("mm_encoder_outputs") or {}).get("image")
        if encoded is not None:
            # `generate` runs the vision tower before prefill and passes its per-image features (one tensor per
            # image, after packing): their lengths are the token counts, straight from the model.
            flat = [int(f.shape[0]) for f in encoded.pooler_output]
            ids = image_ids_from_flat_counts(input_ids, module.config.image_token_id, flat)
        elif kwargs.get("pixel_values") is not None and kwargs.get("image_sizes") is not None:
            ids = image_ids_from_inputs(
                module.config, input_ids, kwargs["image_sizes"], kwargs.get("batch_num_images")
            )
        else:
            return (), kwargs  # text-only batch or a decoding step: nothing to restrict
        kwargs["image_ids"] = ids.to(input_ids.device)
        return (), kwargs

    return derive_image_ids


def _make_mask_hook(handle: ImageMasking, layer_set: frozenset):
    spec = handle.spec

    def build_image_mask(module, args, kwargs):
        from transformers.masking_utils import create_causal_mask

        kwargs = _bind(module, args, kwargs)
        image_ids = kwargs.pop("image_ids", None)
        dense = kwargs.pop("image_attention_mask", None)
        if image_ids is None and dense is None:
            return (), kwargs
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            embeds = module.embed_tokens(kwargs["input_ids"])
            kwargs["inputs_embeds"], kwargs["input_ids"] = embeds, None
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = cache.get_seq_length() if cache is not None else 0
        q_len = embeds.shape[1]
        attention_mask = kwargs.get("attention_mask")
        if dense is not None:
            if past:
                return (), kwargs  # a dense prompt mask says nothing about new (text) queries: stock rows
            fn = _dense_fn(dense.to(embeds.device))
            or_fn, and_fn = fn, fn
        else:
            length = past + q_len
            if cache is not None:  # a static cache sizes the mask to its capacity: cover every key index
                kv_length, kv_offset = cache.get_mask_sizes(q_len, 0)
                length = max(length, kv_length + kv_offset)
            ids = _pad_ids(image_ids.to(embeds.device), length)
            queries = ids[:, past : past + q_len]
            if not bool((queries >= 0).any()):
                return (), kwargs  # only text queries (e.g. every decoding step): their rows are plain causal
            or_fn, and_fn = image_mask_functions(ids, spec.within_image, spec.single_image)
        _check_padding_mask(attention_mask)
        kwargs[_MASK_KWARG] = create_causal_mask(
            config=module.config, inputs_embeds=embeds, attention_mask=attention_mask, cache=cache,
            position_ids=kwargs.get("position_ids"), or_mask_function=or_fn, and_mask_function=and_fn,
        )
        kwargs[_LAYERS_KWARG] = layer_set
        handle.mask_builds += 1
        return (), kwargs

    return build_image_mask


def _check_padding_mask(attention_mask) -> None:
    # create_causal_mask returns a 4D mask (tensor or BlockMask) unchanged, and transformers then uses it in
    # every layer: the per-image mask would silently vanish from the masked layers.
    if attention_mask is None or (torch.is_tensor(attention_mask) and attention_mask.dim() == 2):
        return
    got = ("a precomputed mask mapping" if isinstance(attention_mask, dict)
           else f"a {type(attention_mask).__name__} of shape {tuple(attention_mask.shape)}")
    raise ConfigError(f"attention_mask: image masking needs the 2D (batch, length) padding mask, got {got}; pass a "
                      "dense per-image mask as `image_attention_mask` instead")


def _dense_fn(dense: torch.Tensor):
    def fn(batch_idx, head_idx, q_idx, kv_idx):
        return dense[batch_idx, 0, q_idx, kv_idx]

    return fn
