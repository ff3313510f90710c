"""The model interface: requests in, raw answers out; adapters in a registry, chosen by a spec string.

A model spec is `NAME` or `NAME:TARGET`: `hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf`, `hf:./ckpt`,
`openai:gpt-4o-mini`, `oracle`, `random`, `prior`. NAME picks a registered `ModelAdapter` class,
TARGET (the checkpoint, the served model name) is passed to it. Each adapter declares its options as a
typed dataclass (`Adapter.Options`) of `option` fields (`mimic.options`, shared with the CLI); `create_model` fills it from a plain dict and rejects options the
adapter does not have, so a misspelt or misplaced option never goes unnoticed.

The pieces of an evaluation stay separate, as in lm-evaluation-harness: the prompt is the benchmark row's
question (prompt formatting per model family lives in the adapter), the adapter produces raw text, the
scorer (`mimic.eval.scoring`) parses and scores it, and `mimic.eval.aggregate` aggregates.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mimic.errors import ConfigError
from mimic.options import option
from mimic.registry import Registry

__all__ = [
    "MODELS",
    "Generation",
    "ModelAdapter",
    "Request",
    "create_model",
    "option",
    "parse_model_spec",
    "register_model",
]


@dataclass(frozen=True)
class Request:
    """One benchmark sample as a model sees it.

    id, config, task: the row's identity. question: the prompt text (the row's `question`).
    images: the row's images, in order (PIL images; empty when the adapter sets `needs_images = False`).
    sample: the row's other columns (answer, controls). Only the baselines read the gold answer from it;
    model adapters use `question` and `images` alone.
    """

    id: str
    config: str
    task: str
    question: str
    images: Sequence[Any] = ()
    sample: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    """A raw answer plus facts about producing it (`info`: e.g. input token counts), stored with it."""

    text: str
    info: dict = field(default_factory=dict)


class ModelAdapter(abc.ABC):
    """Base class of model adapters: `generate` maps a batch of requests to raw answers, in order.

    Subclasses set `Options` (a dataclass built with `option`), `takes_target` (whether the spec needs
    ":TARGET"), and may override `load` (weights, an engine), `prepare` (a look at a config's rows before
    generation: the baselines derive their answer spaces there), `prompt` (the text recorded as the prompt),
    `describe` (metadata for results.json, without secrets) and `close`.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = type("NoOptions", (), {})
    takes_target: ClassVar[bool] = False
    needs_images: ClassVar[bool] = True

    def __init__(self, target: str | None = None, options: Any = None):
        self.target = target
        self.options = options if options is not None else self.Options()

    def prepare(self, config: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Called once per config before any batch of the run, with all of the config's rows (no images).
        Model adapters need nothing from the rows; the baselines derive their answer spaces here."""
        return None

    def load(self) -> None:
        """Load the weights or start the engine (after `prepare`); the runner calls it before it writes anything
        to the run folder, so a model that cannot load leaves no run behind. Nothing to load by default."""
        return None

    @abc.abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Raw answers for `requests`, one per request, in the same order."""

    def prompt(self, request: Request) -> str:
        """The prompt text recorded in predictions.jsonl (adapters with a chat template record the
        rendered text)."""
        return request.question

    def describe(self) -> dict:
        """Metadata for results.json: adapter, target and the options (secrets left out)."""
        return {"adapter": self.name, "target": self.target, "options": public_options(self.options)}

    def identity(self) -> dict:
        """What must stay equal for predictions of two runs to be mixed (see `option(identity=...)`)."""
        opts = self.options
        fields = dataclasses.fields(opts) if dataclasses.is_dataclass(opts) else ()
        values = {f.name: getattr(opts, f.name) for f in fields if f.metadata.get("identity", True)}
        return {"adapter": self.name, "target": self.target, "options": values}

    def close(self) -> None:
        """Release resources (GPU memory, connections); nothing to release by default."""
        return None


def public_options(options: Any) -> dict:
    if not dataclasses.is_dataclass(options):
        return {}
    return {
        f.name: getattr(options, f.name)
        for f in dataclasses.fields(options)
        if not f.metadata.get("secret", False)
    }


MODELS: Registry[type[ModelAdapter]] = Registry("model")


def register_model(name: str):
    """Class decorator: register a `ModelAdapter` subclass as model NAME (`--model NAME[:TARGET]`)."""

    def wrap(cls: type[ModelAdapter]) -> type[ModelAdapter]:
        if not (isinstance(cls, type) and issubclass(cls, ModelAdapter)):
            raise TypeError(f"register_model({name!r}) needs a ModelAdapter subclass, got {cls!r}")
        cls.name = name
        return MODELS.register(name)(cls)

    return wrap


def _load_builtin_models() -> None:
    # Importing the modules registers the built-in adapters (hf, openai, vllm, oracle, random, prior).
    from mimic.eval.models import baselines as _baselines  # noqa: F401
    from mimic.eval.models import hf as _hf  # noqa: F401
    from mimic.eval.models import openai_compat as _openai  # noqa: F401
    from mimic.eval.models import vllm as _vllm  # noqa: F401


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """Split "NAME:TARGET" into (NAME, TARGET); "NAME" gives (NAME, None).

    A bare Hub id or path ("llava-hf/llava-onevision-qwen2-0.5b-ov-hf") is an error that suggests "hf:".
    """
    _load_builtin_models()
    spec = spec.strip()
    name, sep, target = spec.partition(":")
    if name not in MODELS:
        if not sep and ("/" in spec or spec.startswith(".")):
            raise ConfigError(f"model spec {spec!r} names no adapter; did you mean 'hf:{spec}'?")
        raise ConfigError(MODELS.unknown_message(name) + " (a model spec is NAME or NAME:TARGET)")
    cls = MODELS.get(name)
    if cls.takes_target and not target:
        raise ConfigError(f"model {name!r} needs a target: '{name}:<model id or path>'")
    if not cls.takes_target and sep:
        raise ConfigError(f"model {name!r} takes no target, got {spec!r}")
    return name, (target or None)


def create_model(spec: str, options: Mapping[str, Any] | None = None) -> ModelAdapter:
    """The adapter for `spec`, with `options` (name -> value; None values mean "adapter default").

    An option the adapter does not declare raises ConfigError naming the options it does declare.
    """
    name, target = parse_model_spec(spec)
    cls = MODELS.get(name)
    given = {k: v for k, v in (options or {}).items() if v is not None}
    known = {f.name for f in dataclasses.fields(cls.Options)} if dataclasses.is_dataclass(cls.Options) else set()
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(
            f"option(s) {', '.join(unknown)} do not apply to model {name!r}; "
            f"its options are: {', '.join(sorted(known)) or '(none)'}"
        )
    try:
        opts = cls.Options(**given)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model {name!r}: {err}") from err
    return cls(target, opts)
