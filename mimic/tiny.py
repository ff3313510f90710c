"""Tiny, offline LLaVA-OneVision pieces for tests and demos, plus a torchvision-free processor.

Everything here is built in code: no download, no network, no torchvision. Public API:

- `byte_level_tokenizer()`: a Qwen2 tokenizer whose vocabulary is the 256 byte symbols plus the
  special tokens LLaVA-OneVision uses (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<image>`,
  `<video>`); it encodes any text, one token per UTF-8 byte.
- `PilLlavaOnevisionProcessor`: `LlavaOnevisionProcessor` without a video processor, paired with the
  PIL image processor. The stock class needs a video processor, and that needs torchvision.
- `load_processor(model_id_or_path)`: `AutoProcessor`, falling back to `PilLlavaOnevisionProcessor`
  when AutoProcessor cannot build a full multimodal processor (e.g. no torchvision). Works for real
  checkpoints (`llava-hf/llava-onevision-qwen2-0.5b-si-hf`) and for folders written by `save_tiny`.
- `tiny_processor()`, `tiny_config(tokenizer)`, `tiny_llava_onevision(seed, num_layers)`: a randomly
  initialised `LlavaOnevisionForConditionalGeneration` (about 0.3M parameters) and its processor.
- `save_tiny(directory)`: write model + processor so `from_pretrained(directory)` / `load_processor`
  load them back.
- `real_shape_config(tokenizer)`, `real_shape_processor()`, `real_shape_llava_onevision(seed, dtype)`: the
  exact shapes of `llava-hf/llava-onevision-qwen2-0.5b-ov-hf` (Qwen2-0.5B + SigLIP-so400m at 384 px, 894M
  parameters) with random weights and the byte-level tokenizer, for real-size tests and benchmarks offline.

Token counts of the tiny model (they follow the real model's rules, scaled down): SigLIP sees 16x16
pixels in 8x8 patches, so an image of a multi-image sample becomes (16/8)^2 + 1 = 5 `<image>` tokens
(grid + `image_newline`); an image alone in its sample goes through anyres patching (more tokens).
"""

from __future__ import annotations

from pathlib import Path

from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "PilLlavaOnevisionProcessor",
    "byte_level_tokenizer",
    "load_processor",
    "real_shape_config",
    "real_shape_llava_onevision",
    "real_shape_processor",
    "save_tiny",
    "tiny_config",
    "tiny_llava_onevision",
    "tiny_processor",
]

# The chat template of the llava-hf LLaVA-OneVision checkpoints (chat_template.json): all images of a turn
# first, back to back, then the text; assistant text inside {% generation %} so TRL's assistant-only loss
# works. It is copied, not downloaded, so the tiny processor renders exactly what the real one renders.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\n' + content['text'] }}{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}"
    "{% endif %}"
    "{{'<|im_end|>'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<image>", "<video>")

# Tiny vision geometry: 16x16 images in 8x8 patches -> 4 grid tokens per 16x16 crop.
_IMAGE_SIZE = 16
_PATCH_SIZE = 8
# anyres grid for single-image samples; every pinpoint must be a multiple of the image size (the model and the
# processor must agree, or the feature count check in LlavaOnevisionModel fails).
_GRID_PINPOINTS = [[16, 16], [16, 32], [32, 16], [32, 32]]


def byte_level_tokenizer():
    """A byte-level Qwen2 tokenizer built in code (no files): 0 = `<|endoftext|>` (pad), 1..256 = bytes.

    The special tokens come next, in `SPECIAL_TOKENS` order. eos is `<|im_end|>` as in the llava-hf
    checkpoints, so `generate` stops at the end of an assistant turn.
    """
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # Without merges the BPE model never joins symbols, so each byte symbol is one token: every string encodes.
    vocab = {"<|endoftext|>": 0, **{sym: i + 1 for i, sym in enumerate(bytes_to_unicode().values())}}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    return tok


class PilLlavaOnevisionProcessor(LlavaOnevisionProcessor):
    """`LlavaOnevisionProcessor` with no video processor (so no torchvision).

    `ProcessorMixin.get_attributes` reads the sub-processors from this `__init__` signature; leaving
    `video_processor` out is what lets `from_pretrained`, `save_pretrained`, TRL's collator and `SFTTrainer`
    work without the video stack. Videos are not supported by this class; everything else (chat template,
    per-image token counts, `replace_image_token`) is the stock behaviour.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_image_tokens=None,
        vision_feature_select_strategy=None,
        chat_template=None,
        image_token="<image>",
        video_token="<video>",
        vision_aspect_ratio="anyres_max_9",
        **kwargs,
    ):
        super().__init__(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=None,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template,
            image_token=image_token,
            video_token=video_token,
            vision_aspect_ratio=vision_aspect_ratio,
            **kwargs,
        )


def tiny_processor():
    """The processor of the tiny model: byte-level tokenizer + PIL image processor at 16x16."""
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}, image_grid_pinpoints=_GRID_PINPOINTS
    )
    return PilLlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=byte_level_tokenizer(),
        num_image_tokens=(_IMAGE_SIZE // _PATCH_SIZE) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )


def tiny_config(tokenizer, num_layers: int = 4):
    """`LlavaOnevisionConfig` of the tiny model: Qwen2 text model (hidden 64, 4 heads, 2 KV heads: grouped-query
    attention like the real 0.5B) with `num_layers` layers, and a 2-layer SigLIP at 16x16 pixels."""
    from transformers import LlavaOnevisionConfig

    pad_id = tokenizer.pad_token_id
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return LlavaOnevisionConfig(
        text_config=dict(
            model_type="qwen2", vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
            num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=4096, pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=None,
        ),
        vision_config=dict(
            model_type="siglip_vision_model", image_size=_IMAGE_SIZE, patch_size=_PATCH_SIZE, hidden_size=32,
            intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vision_use_head=False,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=_GRID_PINPOINTS,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )


def tiny_llava_onevision(seed: int = 0, num_layers: int = 4, attn_implementation: str | dict | None = "sdpa"):
    """A randomly initialised tiny `LlavaOnevisionForConditionalGeneration` and its processor.

    The weights depend only on `seed` (and `num_layers`), so two calls with the same arguments give the same
    model. `attn_implementation` is passed to the constructor ("sdpa", "eager", "flex_attention", or a dict
    per sub-config such as `{"text_config": ..., "vision_config": "sdpa"}`).
    """
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    processor = tiny_processor()
    config = tiny_config(processor.tokenizer, num_layers=num_layers)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    # fork_rng: a reproducible init without changing the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.eval()
    return model, processor


def save_tiny(directory: str | Path, seed: int = 0, num_layers: int = 4) -> Path:
    """Write the tiny model and its processor to `directory` (created); returns the path.

    Load back with `LlavaOnevisionForConditionalGeneration.from_pretrained(directory)` and
    `load_processor(directory)`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model, processor = tiny_llava_onevision(seed=seed, num_layers=num_layers)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def load_processor(model_id_or_path: str | Path, **kwargs):
    """The processor of a LLaVA-OneVision checkpoint (Hub id or folder), with or without torchvision.

    Tries `AutoProcessor` first (the stock class, when torchvision is installed). When that fails, or
    gives back something that is not an image+text processor (AutoProcessor returns a bare tokenizer for a
    processor class it does not know, such as the one `save_tiny` writes), it loads
    `PilLlavaOnevisionProcessor` from the same files. `kwargs` go to `from_pretrained` (e.g. `revision`).
    """
    from transformers import AutoProcessor
    from transformers.processing_utils import ProcessorMixin

    source = str(model_id_or_path)
    if (Path(source).is_absolute() or source.startswith(".")) and not Path(source).exists():
        # Without this the Hub client reports a local typo as an invalid repo id.
        raise FileNotFoundError(f"no checkpoint folder at {source}")
    try:
        processor = AutoProcessor.from_pretrained(source, **kwargs)
    except (AttributeError, ImportError, ValueError, TypeError, OSError) as err:
        # AttributeError/ImportError: the video processor mapping without torchvision; OSError is not
        # swallowed for good: the fallback below raises it again if the files are really missing.
        fallback_reason: Exception | None = err
    else:
        if isinstance(processor, ProcessorMixin) and getattr(processor, "image_processor", None) is not None:
            return processor
        fallback_reason = None
    try:
        return PilLlavaOnevisionProcessor.from_pretrained(source, **kwargs)
    except Exception as err:
        if fallback_reason is not None:
            raise err from fallback_reason
        raise


# llava-hf/llava-onevision-qwen2-0.5b-ov-hf: SigLIP-so400m at 384 px in 14 px patches (27 x 27 = 729 grid tokens
# per crop), anyres grid pinpoints from 1x1 to 6x6 crops of 384 px. The checkpoint keeps 26 of SigLIP's 27
# encoder layers (LLaVA reads the penultimate layer's features): 894M parameters in all, as the real one.
REAL_VISION_LAYERS = 26
REAL_IMAGE_SIZE = 384
REAL_PATCH_SIZE = 14
REAL_GRID_PINPOINTS = [[REAL_IMAGE_SIZE * i, REAL_IMAGE_SIZE * j] for i in range(1, 7) for j in range(1, 7)]
REAL_VOCAB_SIZE = 152000  # the checkpoint's text vocabulary (Qwen2's 151,646 tokens + added ones, padded)


def real_shape_processor():
    """The processor of the real 0.5B checkpoint, built in code: PIL image processor at 384 px with its grid
    pinpoints and SigLIP normalisation, 729 tokens per crop, and the byte-level tokenizer (the real BPE
    vocabulary is not needed for shapes: ids stay below the model's vocabulary size)."""
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    image_processor = LlavaOnevisionImageProcessorPil(
        size={"height": REAL_IMAGE_SIZE, "width": REAL_IMAGE_SIZE}, image_grid_pinpoints=REAL_GRID_PINPOINTS,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    return PilLlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=byte_level_tokenizer(),
        num_image_tokens=(REAL_IMAGE_SIZE // REAL_PATCH_SIZE) ** 2,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )


def real_shape_config(tokenizer):
    """`LlavaOnevisionConfig` with the shapes of llava-onevision-qwen2-0.5b-ov-hf: Qwen2 (hidden 896, 24 layers,
    14 query / 2 KV heads, MLP 4864, vocabulary 152,000, tied embeddings) and SigLIP-so400m (hidden 1152, 26
    of its 27 layers as the checkpoint keeps them, 16 heads, MLP 4304, 384 px, patch 14). Special token ids come
    from `tokenizer`."""
    from transformers import LlavaOnevisionConfig

    return LlavaOnevisionConfig(
        text_config=dict(
            model_type="qwen2", vocab_size=REAL_VOCAB_SIZE, hidden_size=896, intermediate_size=4864,
            num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
            rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
            bos_token_id=None,
        ),
        vision_config=dict(
            model_type="siglip_vision_model", image_size=REAL_IMAGE_SIZE, patch_size=REAL_PATCH_SIZE,
            hidden_size=1152, intermediate_size=4304, num_hidden_layers=REAL_VISION_LAYERS, num_attention_heads=16,
            vision_use_head=False,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=REAL_GRID_PINPOINTS,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=True,
    )


def real_shape_llava_onevision(seed: int = 0, dtype=None, attn_implementation: str | dict | None = "sdpa"):
    """A randomly initialised LLaVA-OneVision of the real 0.5B shape (894M parameters) and its processor.

    `dtype` (default bfloat16, the training recipe's) is the dtype the weights are created in: 1.8 GB in
    bfloat16, 3.6 GB in float32. Nothing is downloaded.
    """
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    processor = real_shape_processor()
    config = real_shape_config(processor.tokenizer)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaOnevisionForConditionalGeneration._from_config(config, dtype=dtype or torch.bfloat16)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.eval()
    return model, processor
