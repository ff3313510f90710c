"""`hf:<model id or path>`: vision-language checkpoints through transformers, greedy decoding, batched.

Supported families (by `config.model_type`), each with its own processor and chat template, as the
checkpoints ship them:

- LLaVA-OneVision (`llava-hf/*-ov-hf`, `*-si-hf`; `llava_onevision`): the processor gives a sample with
  several images 729 + 1 tokens per image (one 384x384 crop each plus the newline token) and a sample
  with one image anyres patching, as the official pipeline does. It is loaded with
  `mimic.tiny.load_processor`, which falls back to a torchvision-free processor.
- Qwen2-VL / Qwen2.5-VL (`qwen2_vl`, `qwen2_5_vl`): images keep their aspect ratio and are resized to a
  pixel count in [min_pixels, max_pixels] (defaults: the checkpoint's preprocessor config, i.e. the
  official 56*56 .. 28*28*16384 of qwen-vl-utils); `--min-pixels/--max-pixels` override per run.
- InternVL (`OpenGVLab/InternVL*-hf`; `internvl`): dynamic tiling into 448x448 crops (up to 12 per
  image by default; `--max-patches` bounds it, useful when samples have dozens of images).
Other image-text-to-text checkpoints load too (AutoModelForImageTextToText + AutoProcessor), with a
warning that their prompt format was not checked.

A folder written by `train_trl/train.py` (LoRA adapter or full model, `image_masking.json`) loads through
`mimic.train_trl.load_trained`: the adapter merged onto its base, the per-image mask re-enabled on the same
layers. `mask_backend` (`mimic eval --mask-backend`) picks the kernel that applies it; with flex_attention,
prompts are padded to a multiple of 128 tokens so that few shapes are compiled (docs/masking.md).

Every sample is one user turn holding its images (in order) and then the question, rendered by the
checkpoint's chat template with the generation prompt. Batches are left-padded so that generation
continues every row from its last real token. Decoding is greedy (no sampling, one beam) for at most
`max_new_tokens` tokens. dtype "auto" is bfloat16 on a CUDA device that supports it (float16 on older
ones) and float32 on CPU; device "auto" is the first CUDA device, else the CPU.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mimic.errors import ConfigError
from mimic.eval.api import Generation, ModelAdapter, Request, option, register_model
from mimic.eval.families import FAMILIES, Family, family_for_model_type

__all__ = [
    "HFModel",
    "HFOptions",
    "chat_messages",
    "is_training_output",
    "load_processor_without_torchvision",
    "resolve_device",
    "resolve_dtype",
    "without_video_processor",
]

logger = logging.getLogger(__name__)

_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class HFOptions:
    max_new_tokens: int = option(64, help="Most tokens generated per answer (greedy decoding).")
    dtype: str = option("auto", help="Weights dtype: auto (bfloat16 on CUDA when supported, float32 on CPU), "
                        "float32, bfloat16 or float16.")
    device: str = option("auto", identity=False, help="Device: auto (cuda if available, else cpu), cpu, cuda, "
                         "cuda:1, ...")
    device_map: str | None = option(None, identity=False, help="Passed to from_pretrained to shard a large "
                                    "model over devices (e.g. 'auto'); replaces --device.")
    attn_implementation: str | None = option(None, help="Attention kernel (sdpa, eager, flash_attention_2); "
                                             "default: the transformers default.")
    revision: str | None = option(None, help="Hub revision (branch, tag or commit) of the checkpoint.")
    min_pixels: int | None = option(None, help="Qwen2-VL: fewest pixels an image is resized to "
                                    "(default: the checkpoint's).")
    max_pixels: int | None = option(None, help="Qwen2-VL: most pixels an image is resized to "
                                    "(default: the checkpoint's).")
    max_patches: int | None = option(None, help="InternVL: most 448x448 tiles per image (default: the "
                                     "checkpoint's, 12).")
    mask_backend: str | None = option(None, help="A folder trained with per-image masks (train.py output): "
                                      "the attention kernel that applies them (sdpa, eager, flex_attention; "
                                      "default: the one it was trained with).")

    def __post_init__(self):
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        from mimic.train_trl.masking import BACKENDS

        if self.mask_backend is not None and self.mask_backend not in BACKENDS:
            raise ValueError(f"mask_backend must be one of {', '.join(BACKENDS)}, got {self.mask_backend!r}")
        for name in ("min_pixels", "max_pixels", "max_patches"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def resolve_dtype(name: str, device: str):
    """The torch dtype for option `name` on `device` (see the module docstring for "auto")."""
    import torch

    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


def without_video_processor(base: type) -> type:
    """`base` (a processor class) with no `video_processor` in its `__init__` signature.

    `ProcessorMixin` finds its sub-processors by reading that signature; without the parameter it neither
    loads nor type-checks a video processor, which in transformers 5 needs torchvision for every family
    here. `mimic.tiny.PilLlavaOnevisionProcessor` is the same idea, written out for LLaVA-OneVision.
    """
    import inspect

    # `ProcessorMixin` reads the base's other parameters (InternVL's `image_seq_length`, ...) from the code of
    # `__init__` (`co_varnames`) when loading and from its signature when saving: a bare `**kwargs` wrapper would
    # drop them on save and get their defaults back on load (256 image tokens per tile, whatever the folder
    # says). So the wrapper is generated with the base's own parameter list, less `video_processor`.
    params = [p for name, p in inspect.signature(base.__init__).parameters.items()
              if name not in ("self", "video_processor") and p.kind is p.POSITIONAL_OR_KEYWORD]
    defaults = {p.name: p.default if p.default is not p.empty else None for p in params}
    names = [p.name for p in params]
    source = (f"def __init__(self, {', '.join(f'{n}=_defaults[{n!r}]' for n in names)}, **kwargs):\n"
              f"    _base.__init__(self, video_processor=None, {', '.join(f'{n}={n}' for n in names)}, **kwargs)\n")
    namespace: dict = {"_base": base, "_defaults": defaults}
    exec(source, namespace)  # noqa: S102 (built from parameter names of a transformers class, not user input)
    __init__ = namespace["__init__"]
    return type(f"{base.__name__}WithoutVideo", (base,), {"__init__": __init__, "__module__": __name__})


def load_processor_without_torchvision(target: str, model_type: str, **kwargs):
    """The checkpoint's processor: `AutoProcessor` when it yields an image+text processor (torchvision
    installed), else the model type's processor class without its video processor, whose image processor
    `AutoImageProcessor` then builds with the PIL backend."""
    from transformers import AutoProcessor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES, processor_class_from_name
    from transformers.processing_utils import ProcessorMixin

    reason: Exception | None = None
    try:
        processor = AutoProcessor.from_pretrained(target, **kwargs)
    except (AttributeError, ImportError, ValueError, TypeError, OSError) as err:
        # AttributeError/ImportError: the video processor mapping without torchvision.
        reason = err
    else:
        if isinstance(processor, ProcessorMixin) and getattr(processor, "image_processor", None) is not None:
            return processor
    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    base = processor_class_from_name(name) if name else None
    if base is None:
        raise ConfigError(f"hf:{target}: no processor for model type {model_type!r}"
                          + (f" ({reason})" if reason else ""))
    try:
        return without_video_processor(base).from_pretrained(target, **kwargs)
    except Exception as err:
        raise ConfigError(f"hf:{target}: cannot build its {base.__name__} ({err})") from (reason or err)


def is_training_output(target: str) -> bool:
    """A local folder written by `train.py` (a LoRA adapter, or a model trained with per-image masks)."""
    from pathlib import Path

    from mimic.train_trl.masking import MASK_FILE

    root = Path(target)
    return root.is_dir() and ((root / "adapter_config.json").exists() or (root / MASK_FILE).exists())


def chat_messages(question: str, num_images: int) -> list[dict]:
    """One user turn: the sample's images in order, then the question (the official MIMIC prompt order)."""
    return [{"role": "user", "content": [{"type": "image"}] * num_images + [{"type": "text", "text": question}]}]


@register_model("hf")
class HFModel(ModelAdapter):
    """A transformers vision-language checkpoint (see the module docstring)."""

    Options = HFOptions
    takes_target = True

    def __init__(self, target: str | None = None, options: HFOptions | None = None):
        super().__init__(target, options)
        self.model = None
        self.processor = None
        # the checkpoint's `mimic.eval.families` entry: how its processor is loaded and called, and everything
        # the diagnostics need about its token layout (None for an unchecked model type)
        self.family: Family | None = None
        self._model_type: str | None = None
        self._info: dict = {}

    # Loading is deferred to the first use, so that a run folder's consistency check (and option errors)
    # come before minutes of weight loading.
    def load(self) -> None:
        if self.model is not None:
            return
        from transformers import AutoConfig, AutoModelForImageTextToText

        o, target = self.options, str(self.target)
        if is_training_output(target):
            return self._load_trained(target)
        if o.mask_backend:
            raise ConfigError(f"--mask-backend {o.mask_backend}: hf:{target} was not trained with per-image masks "
                              "(no image_masking.json from train.py)")
        try:
            config = AutoConfig.from_pretrained(target, revision=o.revision)
        except (OSError, ValueError) as err:
            raise ConfigError(f"hf:{target}: cannot read the checkpoint's config ({err})") from err
        self._model_type = config.model_type
        self.family = family_for_model_type(config.model_type)
        if self.family is None:
            logger.warning("hf:%s: model type %r is not one of the checked families (%s); using its "
                           "processor and chat template as they are", target, config.model_type,
                           ", ".join(FAMILIES.names()))
        # The processor first: it fails fast (no torchvision, no chat template), weights take minutes.
        self.processor = self._load_processor(target)
        tokenizer = self.processor.tokenizer
        # Left padding: generation appends to the end of every row, so the real tokens must end there.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(self.processor, "chat_template", None) is None:
            raise ConfigError(f"hf:{target}: the checkpoint has no chat template; it cannot be prompted")
        device = resolve_device(o.device)
        dtype = resolve_dtype(o.dtype, device)
        kwargs: dict[str, Any] = {"dtype": dtype, "revision": o.revision}
        if o.attn_implementation:
            kwargs["attn_implementation"] = o.attn_implementation
        if o.device_map:
            kwargs["device_map"] = o.device_map
        try:
            model = AutoModelForImageTextToText.from_pretrained(target, **kwargs)
        except ValueError as err:
            raise ConfigError(f"hf:{target}: not an image-text-to-text checkpoint ({err})") from err
        if not o.device_map:
            model.to(device)
        model.eval()
        self._finish(model, config, device, dtype)

    def _load_trained(self, target: str) -> None:
        """A `train.py` output folder: LoRA merged onto its base, the per-image mask on again if it had one."""
        from mimic.train_trl.load import load_trained, read_mask_spec

        o = self.options
        spec = read_mask_spec(target)
        if o.mask_backend and spec is None:
            raise ConfigError(f"--mask-backend {o.mask_backend}: hf:{target} was trained without per-image masks "
                              "(its image_masking.json is null)")
        device = resolve_device(o.device)
        dtype = resolve_dtype(o.dtype, device)
        model, self.processor = load_trained(target, dtype=dtype, device=device, backend=o.mask_backend)
        self._model_type = model.config.model_type
        self.family = family_for_model_type(self._model_type)
        self.processor.tokenizer.padding_side = "left"
        if self.processor.tokenizer.pad_token_id is None:
            self.processor.tokenizer.pad_token = self.processor.tokenizer.eos_token
        self._finish(model, model.config, device, dtype)
        self._info["image_masking"] = None if spec is None else {"layers": list(spec.layers),
                                                                 "backend": o.mask_backend or spec.backend}

    def _finish(self, model, config, device: str, dtype) -> None:
        import torch

        o, tokenizer = self.options, self.processor.tokenizer
        gen = copy.deepcopy(model.generation_config)
        # Greedy decoding; sampling settings of the checkpoint are cleared so that they do not linger.
        gen.do_sample, gen.num_beams = False, 1
        gen.temperature = gen.top_p = gen.top_k = None
        gen.max_new_tokens = o.max_new_tokens
        if gen.pad_token_id is None:
            gen.pad_token_id = tokenizer.pad_token_id
        self.generation_config = gen
        self.model, self.device, self.dtype = model, (model.device if o.device_map else torch.device(device)), dtype
        self._info = {
            "model_class": type(model).__name__,
            "model_type": config.model_type,
            "family": self.family.name if self.family else None,
            "processor_class": type(self.processor).__name__,
            "dtype": str(dtype).removeprefix("torch."),
            "device": str(self.device),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "commit_hash": getattr(model.config, "_commit_hash", None),
        }

    def _load_processor(self, target: str):
        o = self.options
        kwargs = {"revision": o.revision} if o.revision else {}
        if self.family is not None:
            return self.family.load_processor(target, self._model_type, **kwargs)
        return load_processor_without_torchvision(target, self._model_type, **kwargs)

    def _padding_kwargs(self) -> dict:
        # flex compiles one kernel per prompt shape: 128-token buckets (flex's block size) keep the shapes few
        masking = getattr(self.model, "_mimic_image_masking", None)
        if masking is not None and masking.spec.backend == "flex_attention":
            return {"pad_to_multiple_of": 128}
        return {}

    def _processor_kwargs(self) -> dict:
        return self.family.processor_kwargs(self.options, self.processor) if self.family is not None else {}

    def render(self, request: Request) -> str:
        """The prompt text: the chat template over the sample's images and question."""
        self.load()
        messages = chat_messages(request.question, len(request.images) or int(request.sample.get("num_images", 0)))
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prompt(self, request: Request) -> str:
        return self.render(request)

    def encode(self, requests: Sequence[Request]):
        """The model inputs of a batch (processor output on the model's device and dtype). The diagnostics
        (`mimic.eval.diagnostics`) override it to change images or placeholders before generation."""
        self.load()
        texts = [self.render(r) for r in requests]
        images = [[im if im.mode == "RGB" else im.convert("RGB") for im in r.images] for r in requests]
        batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt",
                               **self._padding_kwargs(), **self._processor_kwargs())
        return batch.to(self.device, dtype=self.dtype)

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        import torch

        batch = self.encode(requests)
        with torch.inference_mode():
            out = self.model.generate(**batch, generation_config=self.generation_config)
        prompt_len = batch["input_ids"].shape[1]
        answers = self.processor.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
        input_tokens = batch["attention_mask"].sum(dim=1).tolist()
        image_token_id = getattr(self.processor, "image_token_id", None)
        image_tokens = (
            (batch["input_ids"] == image_token_id).sum(dim=1).tolist() if image_token_id is not None else None
        )
        pad_id = self.generation_config.pad_token_id
        results = []
        for i, text in enumerate(answers):
            new = out[i, prompt_len:]
            info = {"input_tokens": int(input_tokens[i]), "output_tokens": int((new != pad_id).sum())}
            if image_tokens is not None:
                info["image_tokens"] = int(image_tokens[i])
            results.append(Generation(text.strip(), info))
        return results

    def describe(self) -> dict:
        return {**super().describe(), **self._info}

    def close(self) -> None:
        self.model = self.processor = None
