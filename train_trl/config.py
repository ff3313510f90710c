"""`MimicTrainArguments` (our options next to TRL's `SFTConfig` and `ModelConfig`) and config-file validation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from mimic.train_trl.masking import BACKENDS, parse_layers

__all__ = [
    "DEFAULT_MODEL",
    "DatasetSpec",
    "LM_LORA_TARGETS",
    "MimicTrainArguments",
    "lora_target_regex",
    "parse_dataset_spec",
    "parse_train_config",
    "validate_config_file",
]

DEFAULT_MODEL = "llava-hf/llava-onevision-qwen2-0.5b-si-hf"
# Linear layers of a Qwen2 decoder layer. PEFT matches a *list* by suffix, which would also hit SigLIP's
# q/k/v/out projections; `lora_target_regex` anchors them under the language model instead.
LM_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

_SPEC = re.compile(r"^(?P<path>[^:@=]+?)(?::(?P<config>[^@=]+))?(?:@(?P<split>[^=]+))?(?:=(?P<ratio>[^=]+))?$")


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of the data mixture: `load_dataset(path, config, split=split)`, sampled with weight `ratio`."""

    path: str
    config: str | None = None
    split: str = "train"
    ratio: float = 1.0

    def __str__(self) -> str:
        cfg = f":{self.config}" if self.config else ""
        return f"{self.path}{cfg}@{self.split}={self.ratio:g}"


def parse_dataset_spec(text: str) -> DatasetSpec:
    """`PATH_OR_HUB_ID[:CONFIG][@SPLIT][=RATIO]` -> DatasetSpec (split default "train", ratio default 1)."""
    m = _SPEC.match(text.strip())
    if not m:
        raise ValueError(f"bad dataset entry {text!r}: use PATH_OR_HUB_ID[:CONFIG][@SPLIT][=RATIO]")
    ratio_text = m.group("ratio")
    try:
        ratio = 1.0 if ratio_text is None else float(ratio_text)
    except ValueError:
        raise ValueError(f"bad ratio {ratio_text!r} in dataset entry {text!r}") from None
    if not ratio > 0:
        raise ValueError(f"ratio must be > 0 in dataset entry {text!r}")
    return DatasetSpec(path=m.group("path").strip(), config=m.group("config"), split=m.group("split") or "train",
                       ratio=ratio)


def lora_target_regex(targets: list[str], layers: list[int] | None = None) -> str:
    """A PEFT `target_modules` regex (full-name `re.fullmatch`) for `targets` inside the language model only,
    optionally only in decoder `layers`."""
    names = "|".join(re.escape(t) for t in targets)
    layer = r"\d+" if not layers else "(?:" + "|".join(str(i) for i in layers) + ")"
    return rf".*language_model\.layers\.{layer}\.(?:self_attn|mlp)\.(?:{names})"


@dataclass
class MimicTrainArguments:
    """Options of the MIMIC fine-tuning recipe that TRL's `SFTConfig` and `ModelConfig` do not have.

    Data mixture:
        dataset_mixture, mixture_stopping_strategy, max_train_samples
    Per-image attention masking (paper section 4, Fig. 7):
        masked_layers, mask_backend, mask_within_image, mask_single_image
    What is trained (LoRA rank/alpha/dropout are ModelConfig's `use_peft`, `lora_r`, `lora_alpha`, `lora_dropout`):
        lora_targets, lora_layers, train_projector, freeze_vision_tower
    Checks and outputs:
        effective_batch_size, model_card_template
    """

    dataset_mixture: list[str] = field(
        default_factory=list,
        metadata={"help": "Training datasets, each 'PATH_OR_HUB_ID[:CONFIG][@SPLIT][=RATIO]' (split default "
                  "'train', ratio default 1). Each needs `images` + `messages` columns (TRL conversational "
                  "vision format). Several are combined with datasets.interleave_datasets, sampled in "
                  "proportion to their ratios."},
    )
    mixture_stopping_strategy: str = field(
        default="first_exhausted",
        metadata={"help": "interleave_datasets stopping strategy: 'first_exhausted' (stop when one dataset "
                  "runs out) or 'all_exhausted' (oversample until every dataset has been seen).",
                  "choices": ["first_exhausted", "all_exhausted"]},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N rows of the mixture (quick runs, smoke tests)."}
    )
    masked_layers: str = field(
        default="",
        metadata={"help": "Language-model layers where vision tokens attend only to their own image, e.g. "
                  "'12-23' (paper's best for the 24-layer 0.5B) or '0-11,20'. Empty: no masking (stock "
                  "attention everywhere, as in the full fine-tune)."},
    )
    mask_backend: str = field(
        default="sdpa",
        metadata={"help": "Attention kernel for the text model when masking: 'sdpa', 'eager' or "
                  "'flex_attention' (block-sparse BlockMask, no L x L mask; needs torch.compile).",
                  "choices": list(BACKENDS)},
    )
    mask_within_image: str = field(
        default="causal",
        metadata={"help": "Inside its own image a vision token attends 'causal'ly (the official code's tril "
                  "mask) or 'bidirectional'ly (the full block).", "choices": ["causal", "bidirectional"]},
    )
    mask_single_image: bool = field(
        default=False,
        metadata={"help": "Also restrict samples with a single image (vision tokens then no longer see the "
                  "text before the image). Off, as in the official code: the mask targets cross-image "
                  "attention."},
    )
    lora_targets: list[str] = field(
        default_factory=lambda: list(LM_LORA_TARGETS),
        metadata={"help": "Linear layers of the language model that get LoRA adapters (with use_peft). They "
                  "are anchored under `language_model`, so the vision tower never gets adapters."},
    )
    lora_layers: str = field(
        default="",
        metadata={"help": "Decoder layers that get LoRA adapters, e.g. '12-23'; empty: all layers."},
    )
    train_projector: bool = field(
        default=True,
        metadata={"help": "Train the vision-to-language projector fully (with LoRA: as a PEFT module to save)."},
    )
    freeze_vision_tower: bool = field(
        default=True, metadata={"help": "Keep the SigLIP vision tower frozen (paper: always frozen)."}
    )
    effective_batch_size: int | None = field(
        default=None,
        metadata={"help": "If set, the run fails unless per_device_train_batch_size x "
                  "gradient_accumulation_steps x number of processes equals it (the paper uses 128)."},
    )
    model_card_template: str | None = field(
        default=None,
        metadata={"help": "Jinja template of the model card written next to the model; default: "
                  "dataset_cards/model_card.md of this repository."},
    )

    def __post_init__(self):
        if isinstance(self.dataset_mixture, str):
            self.dataset_mixture = [self.dataset_mixture]
        if isinstance(self.lora_targets, str):
            self.lora_targets = [self.lora_targets]
        errors = self.problems()
        if errors:
            raise ValueError("; ".join(errors))

    def problems(self) -> list[str]:
        """Every problem with these values (empty list if none), so callers can report all at once."""
        out = []
        for entry in self.dataset_mixture:
            try:
                parse_dataset_spec(entry)
            except ValueError as e:
                out.append(f"dataset_mixture: {e}")
        for name in ("masked_layers", "lora_layers"):
            try:
                parse_layers(getattr(self, name))
            except ValueError as e:
                out.append(f"{name}: {e}")
        if self.mask_backend not in BACKENDS:
            out.append(f"mask_backend must be one of {BACKENDS}, got {self.mask_backend!r}")
        if self.mask_within_image not in ("causal", "bidirectional"):
            out.append(f"mask_within_image must be 'causal' or 'bidirectional', got {self.mask_within_image!r}")
        if self.mixture_stopping_strategy not in ("first_exhausted", "all_exhausted"):
            out.append(f"mixture_stopping_strategy must be first_exhausted or all_exhausted, "
                       f"got {self.mixture_stopping_strategy!r}")
        bad_targets = [t for t in self.lora_targets if t not in LM_LORA_TARGETS]
        if bad_targets:
            out.append(f"lora_targets {bad_targets} are not Qwen2 decoder linears {LM_LORA_TARGETS}")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            out.append(f"max_train_samples must be >= 1, got {self.max_train_samples}")
        if self.effective_batch_size is not None and self.effective_batch_size < 1:
            out.append(f"effective_batch_size must be >= 1, got {self.effective_batch_size}")
        return out

    @property
    def datasets(self) -> list[DatasetSpec]:
        return [parse_dataset_spec(e) for e in self.dataset_mixture]

    @property
    def mask_layers(self) -> tuple[int, ...]:
        return parse_layers(self.masked_layers)


def _dataclass_types():
    from trl import ModelConfig, SFTConfig

    return (MimicTrainArguments, SFTConfig, ModelConfig)


def parse_train_config(path: str | Path, overrides: list[str] | None = None, check_hardware: bool = True):
    """Parse a YAML training config (plus command-line style overrides) into
    `(MimicTrainArguments, SFTConfig, ModelConfig)` with `TrlParser`, exactly as `train.py` does.

    `check_hardware=False` is for reading a config on another machine than the one it is for: SFTConfig
    refuses bf16/fp16 where no GPU supports them, so on such a machine the config is read with `use_cpu`.
    """
    import yaml
    from trl import TrlParser

    overrides = list(overrides or [])
    if not check_hardware and not _has_accelerator():
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if isinstance(raw, dict) and not raw.get("use_cpu", False) and (raw.get("bf16") or raw.get("fp16")):
            overrides = ["--use_cpu", "true", *overrides]
    parser = TrlParser(_dataclass_types())
    return parser.parse_args_and_config(["--config", str(path), *overrides])


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def validate_config_file(path: str | Path) -> list[str]:
    """All problems of one YAML training config, as messages prefixed with the file name (empty: valid).

    Checks: it is a mapping; it sets no `env` (no configuration through environment variables); every key
    is a field of one of the three dataclasses; it starts with a comment holding the launch command; it
    parses with `TrlParser` (types, choices, each dataclass's own checks); and the recipe's cross-field
    rules (LoRA needs use_peft and no stray ModelConfig.lora_target_modules; a full fine-tune has no LoRA;
    the effective batch size divides evenly; masked layers are set only with a mask backend).
    """
    import yaml

    path = Path(path)
    where = path.name
    errors: list[str] = []
    text = path.read_text()
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    if not any("train_trl/train.py" in line or "mimic.train_trl.train" in line for line in header):
        errors.append(f"{where}: must start with a comment block giving the exact launch command")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return [*errors, f"{where}: not valid YAML: {e}"]
    if not isinstance(raw, dict):
        return [*errors, f"{where}: must be a YAML mapping"]
    if "env" in raw:
        errors.append(f"{where}: sets `env`; configure through fields, not environment variables")
    known = {f.name for cls in _dataclass_types() for f in fields(cls)}
    unknown = sorted(set(raw) - known - {"env"})
    for key in unknown:
        import difflib

        close = difflib.get_close_matches(key, known, n=1)
        errors.append(f"{where}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if unknown:
        return errors
    try:
        # A GPU config validated on a CPU-only machine (CI, laptops) must not fail on the bf16 hardware check.
        script, sft, model = parse_train_config(path, check_hardware=False)
    except (ValueError, TypeError, SystemExit) as e:
        return [*errors, f"{where}: does not parse: {e}"]
    errors += [f"{where}: {p}" for p in script.problems()]
    if model.use_peft and model.lora_target_modules:
        errors.append(f"{where}: set lora_targets (language model only), not ModelConfig.lora_target_modules, "
                      "which PEFT would also match inside the vision tower")
    if not model.use_peft and (script.lora_layers or "lora_r" in raw):
        errors.append(f"{where}: LoRA settings given but use_peft is false")
    if script.effective_batch_size is not None:
        per_step = sft.per_device_train_batch_size * sft.gradient_accumulation_steps
        if script.effective_batch_size % per_step:
            errors.append(f"{where}: effective_batch_size {script.effective_batch_size} is not a multiple of "
                          f"per_device_train_batch_size x gradient_accumulation_steps = {per_step}")
    from mimic.train_trl.flops import KNOWN_TEXT_SHAPES

    shape = KNOWN_TEXT_SHAPES.get(model.model_name_or_path or DEFAULT_MODEL)
    for name in ("masked_layers", "lora_layers"):
        layers = parse_layers(getattr(script, name)) if not script.problems() else ()
        if shape is not None and layers and layers[-1] >= shape.num_layers:
            errors.append(f"{where}: {name} {getattr(script, name)!r} exceeds the {shape.num_layers} layers of "
                          f"{model.model_name_or_path}")
    if not script.dataset_mixture:
        errors.append(f"{where}: dataset_mixture is empty")
    return errors
