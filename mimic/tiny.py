"""Tiny, offline models of every family `hf:` supports (LLaVA-OneVision, Qwen2-VL, InternVL) for tests and
demos, plus a torchvision-free processor.

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
- `tiny_qwen2_vl(seed, num_layers)`, `tiny_internvl(seed, num_layers)`: the same for Qwen2-VL and InternVL
  (byte-level tokenizer with the family's special tokens, PIL image processor, the checkpoint's chat template).
- `save_tiny(directory, family=...)`: write model + processor + chat template of one family (`FAMILIES`), a
  folder that `mimic eval --model hf:<directory>` loads like a Hub checkpoint.
- `real_shape_config(tokenizer)`, `real_shape_processor()`, `real_shape_llava_onevision(seed, dtype)`: the
  exact shapes of `llava-hf/llava-onevision-qwen2-0.5b-ov-hf` (Qwen2-0.5B + SigLIP-so400m at 384 px, 894M
  parameters) with random weights and the byte-level tokenizer, for real-size tests and benchmarks offline.

Token counts of the tiny model (they follow the real model's rules, scaled down): SigLIP sees 16x16
pixels in 8x8 patches, so an image of a multi-image sample becomes (16/8)^2 + 1 = 5 `<image>` tokens
(grid + `image_newline`); an image alone in its sample goes through anyres patching (more tokens).
Qwen2-VL keeps the real 14 px patches merged 2x2 (28 px per token) but caps images at 112x112 pixels: a 320x320
image becomes 4x4 = 16 `<|image_pad|>` tokens. InternVL tiles images into 56x56 crops (the real 448, scaled by
1/8) of 4x4 patches of 14 px, pixel-shuffled to 2x2 = 4 `<IMG_CONTEXT>` tokens per tile; up to 12 tiles plus a
thumbnail per image, as the real checkpoints, so a 320x320 image is 3x3 tiles + thumbnail = 40 tokens.
"""

from __future__ import annotations

from pathlib import Path

from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor

__all__ = [
    "CHAT_TEMPLATE",
    "FAMILIES",
    "INTERNVL_CHAT_TEMPLATE",
    "QWEN2_VL_CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "PilLlavaOnevisionProcessor",
    "byte_level_tokenizer",
    "load_processor",
    "real_shape_config",
    "real_shape_llava_onevision",
    "real_shape_processor",
    "save_tiny",
    "tiny_config",
    "tiny_internvl",
    "tiny_llava_onevision",
    "tiny_model",
    "tiny_processor",
    "tiny_qwen2_vl",
]

# The families `save_tiny` / `mimic tiny-model --family` build (eval/models/hf.py's family names).
FAMILIES = ("llava_onevision", "qwen2_vl", "internvl")

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


def byte_level_tokenizer(special_tokens=SPECIAL_TOKENS, named_tokens: dict[str, str] | None = None):
    """A byte-level Qwen2 tokenizer built in code (no files): 0 = `<|endoftext|>` (pad), 1..256 = bytes.

    The special tokens come next: by default LLaVA-OneVision's (`SPECIAL_TOKENS`), in that order. eos is
    `<|im_end|>` as in the checkpoints of all three families, so `generate` stops at the end of an assistant
    turn. `named_tokens` become tokenizer attributes (`tok.<name>` and `tok.<name>_id`), as the
    `extra_special_tokens` of a checkpoint's tokenizer_config.json do; InternVL's processor reads
    `start_image_token`, `end_image_token`, `context_image_token` and `video_token` that way.
    """
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # Without merges the BPE model never joins symbols, so each byte symbol is one token: every string encodes.
    vocab = {"<|endoftext|>": 0, **{sym: i + 1 for i, sym in enumerate(bytes_to_unicode().values())}}
    extra = {"extra_special_tokens": dict(named_tokens)} if named_tokens else {}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], eos_token="<|im_end|>", pad_token="<|endoftext|>", **extra)
    # replace_extra_special_tokens=False keeps the named tokens' attributes set above.
    tok.add_special_tokens({"additional_special_tokens": list(special_tokens)}, replace_extra_special_tokens=False)
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
    from transformers import LlavaOnevisionForConditionalGeneration

    processor = tiny_processor()
    config = tiny_config(processor.tokenizer, num_layers=num_layers)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    return _seeded(LlavaOnevisionForConditionalGeneration, config, seed), processor


def _seeded(model_class, config, seed: int):
    """`model_class(config)` initialised from `seed` alone, in eval mode, with the generation ids of its text config."""
    import torch

    # fork_rng: a reproducible init without changing the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    return model.eval()


def _tiny_text_config(tokenizer, num_layers: int, **extra) -> dict:
    """The Qwen2 text model every tiny family shares: hidden 64, 4 heads, 2 KV heads (grouped-query attention like
    the real 0.5B-2B models), MLP 128, `num_layers` layers."""
    return dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=num_layers,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                bos_token_id=None, **extra)


# --- Qwen2-VL -------------------------------------------------------------------------------------------------

# The Qwen2-VL chat template (Qwen/Qwen2-VL-*-Instruct chat_template.json), reduced to what image+text prompts use:
# the default system turn, then each image as <|vision_start|><|image_pad|><|vision_end|> where it stands in the
# content (MIMIC prompts put the images first), then the text.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN2_VL_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                           "<|video_pad|>")
# The real patch (14 px) and 2x2 merge, so smart_resize rounds to multiples of 28 px as in the checkpoints; only the
# pixel budget is small: 56x56 .. 112x112 pixels, i.e. 2x2 .. 4x4 merged tokens per image.
QWEN2_VL_MIN_PIXELS = 56 * 56
QWEN2_VL_MAX_PIXELS = 112 * 112


def tiny_qwen2_vl(seed: int = 0, num_layers: int = 2, attn_implementation: str | dict | None = "sdpa"):
    """A randomly initialised tiny `Qwen2VLForConditionalGeneration` and its torchvision-free processor.

    Text: the shared tiny Qwen2 (hidden 64) with multimodal RoPE (mrope sections 2+3+3 = head_dim 16 / 2). Vision:
    a 2-block ViT (width 32) on 14 px patches, 2 frames per temporal patch, 2x2 merger into the text width.
    """
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

    from mimic.eval.models.hf import without_video_processor

    tok = byte_level_tokenizer(QWEN2_VL_SPECIAL_TOKENS)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=QWEN2_VL_MIN_PIXELS, max_pixels=QWEN2_VL_MAX_PIXELS)
    processor = without_video_processor(Qwen2VLProcessor)(image_processor=image_processor, tokenizer=tok,
                                                          chat_template=QWEN2_VL_CHAT_TEMPLATE)
    ids = tok.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=_tiny_text_config(tok, num_layers,
                                      rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    return _seeded(Qwen2VLForConditionalGeneration, config, seed), processor


# --- InternVL -------------------------------------------------------------------------------------------------

# The chat template of the OpenGVLab/InternVL*-hf checkpoints (transformers' converter): each image is one
# <IMG_CONTEXT> line where it stands in the content; the processor expands it to <img> + <IMG_CONTEXT> x
# (tokens per tile x tiles) + </img>. No system turn.
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)
INTERNVL_NAMED_TOKENS = {"start_image_token": "<img>", "end_image_token": "</img>",
                         "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
INTERNVL_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>")
# Real: 448 px tiles, 14 px patches (32x32), pixel shuffle 0.5 -> 16x16 = 256 tokens per tile, 1..12 tiles plus a
# thumbnail. Tiny: 56 px tiles (4x4 patches) -> 2x2 = 4 tokens per tile, the same 1..12 tiles plus thumbnail.
INTERNVL_TILE = 56
INTERNVL_PATCH = 14
INTERNVL_DOWNSAMPLE = 0.5
INTERNVL_TOKENS_PER_TILE = int((INTERNVL_TILE // INTERNVL_PATCH * INTERNVL_DOWNSAMPLE) ** 2)
INTERNVL_MAX_PATCHES = 12


def tiny_internvl(seed: int = 0, num_layers: int = 2, attn_implementation: str | dict | None = "sdpa"):
    """A randomly initialised tiny `InternVLForConditionalGeneration` and its torchvision-free processor.

    Text: the shared tiny Qwen2 (as InternVL3-1B/2B, whose language model is Qwen2.5). Vision: a 2-layer InternViT
    (width 32, CLS token dropped as `vision_feature_select_strategy="default"` does) on 56 px tiles, pixel shuffle
    0.5 and the 2-layer MLP projector. Images go through the PIL GotOcr2 image processor (crop_to_patches on, as
    InternVLProcessor sets it by default): see `INTERNVL_*` for the geometry.
    """
    from transformers import InternVLConfig, InternVLForConditionalGeneration
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil
    from transformers.models.internvl.processing_internvl import InternVLProcessor

    from mimic.eval.models.hf import without_video_processor

    tok = byte_level_tokenizer(INTERNVL_SPECIAL_TOKENS, named_tokens=INTERNVL_NAMED_TOKENS)
    # ImageNet mean/std as the InternVL checkpoints' preprocessor_config.json.
    image_processor = GotOcr2ImageProcessorPil(
        size={"height": INTERNVL_TILE, "width": INTERNVL_TILE}, min_patches=1, max_patches=INTERNVL_MAX_PATCHES,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    processor = without_video_processor(InternVLProcessor)(
        image_processor=image_processor, tokenizer=tok, image_seq_length=INTERNVL_TOKENS_PER_TILE,
        chat_template=INTERNVL_CHAT_TEMPLATE,
    )
    config = InternVLConfig(
        text_config=dict(model_type="qwen2", **_tiny_text_config(tok, num_layers)),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=INTERNVL_TILE, patch_size=INTERNVL_PATCH),
        image_token_id=processor.image_token_id, image_seq_length=INTERNVL_TOKENS_PER_TILE,
        downsample_ratio=INTERNVL_DOWNSAMPLE, vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    return _seeded(InternVLForConditionalGeneration, config, seed), processor


def tiny_model(family: str = "llava_onevision", seed: int = 0, num_layers: int = 2,
               attn_implementation: str | dict | None = "sdpa"):
    """(model, processor) of one tiny family (`FAMILIES`); unknown names are a ConfigError."""
    builders = {"llava_onevision": tiny_llava_onevision, "qwen2_vl": tiny_qwen2_vl, "internvl": tiny_internvl}
    if family not in builders:
        from mimic.errors import ConfigError

        raise ConfigError(f"unknown tiny model family {family!r}; choose one of {', '.join(FAMILIES)}")
    return builders[family](seed=seed, num_layers=num_layers, attn_implementation=attn_implementation)


# The stock processor class each family's folder names, as on the Hub: with torchvision installed AutoProcessor
# builds it; without, eval/models/hf.py loads the same files through `without_video_processor`.
_STOCK_PROCESSOR = {"qwen2_vl": "Qwen2VLProcessor", "internvl": "InternVLProcessor"}


def save_tiny(directory: str | Path, seed: int = 0, num_layers: int = 4, family: str = "llava_onevision") -> Path:
    """Write the tiny model of `family` and its processor (with the chat template) to `directory` (created).

    The folder is what `mimic eval --model hf:<directory>` loads (AutoModelForImageTextToText + the family's
    processor). LLaVA-OneVision loads back with `LlavaOnevisionForConditionalGeneration.from_pretrained(directory)`
    and `load_processor(directory)`; the other families with their model class and
    `mimic.eval.models.hf.load_processor_without_torchvision(directory, model_type)`.
    """
    import json

    model, processor = tiny_model(family, seed=seed, num_layers=num_layers)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    from mimic.atomic import follow_umask

    follow_umask(*directory.glob("*.safetensors"))
    if family in _STOCK_PROCESSOR:
        for name in ("processor_config.json", "tokenizer_config.json"):
            path = directory / name
            data = json.loads(path.read_text())
            if "processor_class" in data:
                data["processor_class"] = _STOCK_PROCESSOR[family]
                path.write_text(json.dumps(data, indent=2) + "\n")
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
