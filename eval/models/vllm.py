"""`vllm:<model id or path>`: vLLM's offline engine (`vllm.LLM`), greedy, multi-image prompts.

The prompt is built exactly as `hf:` builds it: one user turn holding the sample's images in order and
then the question (`mimic.eval.models.hf.chat_messages`), rendered by the checkpoint's own processor
and chat template with the generation prompt. vLLM gets that text plus the images
(`{"prompt": text, "multi_modal_data": {"image": [...]}}`) and decodes greedily (temperature 0) for at most
`max_new_tokens` tokens.

The engine is created at the first batch, after the runner has shown the adapter every config's rows
(`prepare`): `limit_mm_per_prompt={"image": N}` with N the largest `num_images` of the run's data (or
`--limit-images`), so vLLM reserves room for the largest sample and no more. `tensor_parallel_size`,
`data_parallel_size`, `gpu_memory_utilization`, `max_model_len`, `max_num_seqs` and `enforce_eager` go
to `vllm.LLM` as they are. vLLM runs its own parallelism: use these options, not `--num-processes`.

vLLM is not a dependency of this package (it brings its own CUDA build of torch): install it on a GPU
machine (`pip install vllm`). Where it is missing or its engine cannot start, evaluation stops with one
line saying so. Serving instead of running in process: `vllm serve MODEL` and `--model openai:MODEL`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mimic.errors import ConfigError
from mimic.eval.api import Generation, ModelAdapter, Request, option, register_model
from mimic.eval.families import family_for_model_type
from mimic.eval.models.hf import chat_messages, load_processor_without_torchvision

__all__ = ["VLLMModel", "VLLMOptions"]

_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class VLLMOptions:
    max_new_tokens: int = option(64, help="Most tokens generated per answer (greedy decoding).")
    dtype: str = option("auto", help="Weights dtype (vLLM's: auto, float32, bfloat16, float16).")
    revision: str | None = option(None, help="Hub revision (branch, tag or commit) of the checkpoint.")
    tensor_parallel_size: int = option(1, identity=False, help="GPUs one model is split over (vLLM tensor "
                                       "parallelism).")
    data_parallel_size: int = option(1, identity=False, help="Model replicas vLLM runs (vLLM data parallelism).")
    gpu_memory_utilization: float = option(0.9, identity=False, help="Share of each GPU's memory vLLM may use.")
    max_model_len: int | None = option(None, help="Longest prompt + answer in tokens (default: the model's).")
    max_num_seqs: int | None = option(None, identity=False, help="Most sequences vLLM batches at once "
                                      "(default: vLLM's).")
    limit_images: int | None = option(None, identity=False, help="Images per prompt the engine reserves room for "
                                      "(default: the largest sample of the data evaluated).")
    enforce_eager: bool = option(False, identity=False, help="Run without CUDA graphs (less memory, slower).")

    def __post_init__(self):
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {self.dtype!r}")
        for name in ("max_new_tokens", "tensor_parallel_size", "data_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        for name in ("max_model_len", "max_num_seqs", "limit_images"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")


def import_vllm():
    """The `vllm` module, or ConfigError in one line saying why it cannot be used here."""
    try:
        import vllm
    except ImportError as err:  # not installed, or installed without the libraries it was built against
        raise ConfigError(f"vllm: cannot import vLLM ({err}); install it on a machine with a GPU (pip install vllm), "
                          "or serve the model with `vllm serve` and use --model openai:<model>") from None
    return vllm


@register_model("vllm")
class VLLMModel(ModelAdapter):
    """A checkpoint run by vLLM's offline engine (see the module docstring)."""

    Options = VLLMOptions
    takes_target = True

    def __init__(self, target: str | None = None, options: VLLMOptions | None = None):
        super().__init__(target, options)
        self.max_images = 0
        self.processor = None
        self.family: str | None = None  # the family name, as results.json records it
        self.llm = None
        self._info: dict = {}

    def prepare(self, config: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.max_images = max([self.max_images, *(int(r.get("num_images") or 0) for r in rows)])

    def load_processor(self) -> None:
        """The checkpoint's processor (its chat template renders the prompts), loaded as `hf:` loads it."""
        if self.processor is not None:
            return
        from transformers import AutoConfig

        target, o = str(self.target), self.options
        kwargs = {"revision": o.revision} if o.revision else {}
        try:
            config = AutoConfig.from_pretrained(target, **kwargs)
        except (OSError, ValueError) as err:
            raise ConfigError(f"vllm:{target}: cannot read the checkpoint's config ({err})") from err
        family = family_for_model_type(config.model_type)
        self.family = family.name if family else None
        if family is not None:
            self.processor = family.load_processor(target, config.model_type, **kwargs)
        else:
            self.processor = load_processor_without_torchvision(target, config.model_type, **kwargs)
        if getattr(self.processor, "chat_template", None) is None:
            raise ConfigError(f"vllm:{target}: the checkpoint has no chat template; it cannot be prompted")

    def prompt(self, request: Request) -> str:
        self.load_processor()
        messages = chat_messages(request.question, len(request.images) or int(request.sample.get("num_images", 0)))
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def engine_kwargs(self) -> dict:
        """The arguments of `vllm.LLM`."""
        o = self.options
        limit = o.limit_images or self.max_images
        if limit < 1:
            raise ConfigError(f"vllm:{self.target}: no image count known for the engine: no rows were prepared; "
                              "pass --limit-images")
        kwargs: dict[str, Any] = {
            "model": str(self.target), "dtype": o.dtype, "limit_mm_per_prompt": {"image": limit},
            "tensor_parallel_size": o.tensor_parallel_size, "gpu_memory_utilization": o.gpu_memory_utilization,
            "enforce_eager": o.enforce_eager, "seed": 0,
        }
        if o.data_parallel_size > 1:
            kwargs["data_parallel_size"] = o.data_parallel_size
        for name in ("revision", "max_model_len", "max_num_seqs"):
            if getattr(o, name) is not None:
                kwargs[name] = getattr(o, name)
        return kwargs

    def inputs(self, requests: Sequence[Request]) -> list[dict]:
        """vLLM prompts: the rendered text and the images, in order (RGB)."""
        return [{"prompt": self.prompt(r),
                 "multi_modal_data": {"image": [im if im.mode == "RGB" else im.convert("RGB") for im in r.images]}}
                for r in requests]

    def sampling_params(self):
        vllm = import_vllm()
        return vllm.SamplingParams(temperature=0.0, max_tokens=self.options.max_new_tokens)

    def load(self) -> None:
        if self.llm is not None:
            return
        vllm = import_vllm()  # first: without vLLM nothing else is worth loading
        self.load_processor()
        kwargs = self.engine_kwargs()
        try:
            self.llm = vllm.LLM(**kwargs)
        except (RuntimeError, ValueError, OSError) as err:  # no GPU, not enough memory, unsupported model
            raise ConfigError(f"vllm:{self.target}: the vLLM engine cannot start here ({err})") from err
        self._info = {"engine": "vllm", "vllm_version": getattr(vllm, "__version__", None),
                      "limit_mm_per_prompt": kwargs["limit_mm_per_prompt"], "family": self.family}

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        self.load()
        inputs = self.inputs(requests)
        outputs = self.llm.generate(inputs, self.sampling_params(), use_tqdm=False)
        results = []
        for out in outputs:
            completion = out.outputs[0]
            info = {"input_tokens": len(out.prompt_token_ids or ()), "output_tokens": len(completion.token_ids),
                    "finish_reason": completion.finish_reason}
            results.append(Generation(completion.text.strip(), info))
        return results

    def describe(self) -> dict:
        return {**super().describe(), **self._info}

    def close(self) -> None:
        self.llm = self.processor = None
