"""Fine-tune LLaVA-OneVision with TRL's SFTTrainer, optionally with per-image attention masks (MIMIC section 4).

Two recipes, each a YAML in train_trl/configs/ (every file starts with its exact launch command):
- masked LoRA (optimization-centric): LoRA r=128 on the language model, projector trained, vision tower frozen,
  vision tokens attend only to their own image in layers 12-23; lr 2.5e-5.
- full fine-tune (data-centric): language model + projector trained, no mask; lr 2.5e-6.

    accelerate launch --config_file train_trl/accelerate/multi_gpu.yaml train_trl/train.py \\
        --config train_trl/configs/llava_ov_0.5b_masked_lora.yaml
    # any field can be overridden after the config, e.g. --learning_rate 1e-5 --masked_layers 0-11

Options come from three dataclasses parsed by TrlParser: `MimicTrainArguments` (data mixture, masked layers,
LoRA placement), TRL's `SFTConfig` (optimisation, logging, output) and `ModelConfig` (checkpoint, dtype, LoRA
rank/alpha/dropout). After training the output folder holds the model (or the LoRA adapter), the processor,
`image_masking.json` (read back by `mimic.train_trl.load_trained`), `mimic_training.json` and a model card.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mimic.atomic import write_json
from mimic.train_trl.config import DEFAULT_MODEL, MimicTrainArguments, lora_target_regex
from mimic.train_trl.masking import (
    MASK_FILE,
    ImageMaskSpec,
    enable_image_masking,
    flex_trains_on,
    parse_layers,
)

__all__ = ["build_model", "build_peft_config", "main", "resolve_mask_backend", "TRAINING_FILE"]

logger = logging.getLogger(__name__)

TRAINING_FILE = "mimic_training.json"


def build_peft_config(script_args: MimicTrainArguments, model_args):
    """LoRA on the language model only (vision tower untouched), projector fully trained and saved."""
    if not model_args.use_peft:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        task_type="CAUSAL_LM",
        bias="none",
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        # A regex is full-matched against module names; a plain list would match SigLIP's projections too.
        target_modules=lora_target_regex(script_args.lora_targets, list(parse_layers(script_args.lora_layers))),
        modules_to_save=["multi_modal_projector"] if script_args.train_projector else None,
    )


def resolve_mask_backend(script_args: MimicTrainArguments, training_args) -> str | None:
    """The mask backend this run trains with, decided before any data or model work (None: no mask).

    flex_attention has no backward pass on CPU in PyTorch 2.13 (it fails mid-way through the first step), so a
    CPU run of a flex config trains with sdpa instead, after one warning line: the mask is the same (the tests
    check that the backends agree), only the kernel differs. GPU runs keep flex. The backend actually used is
    the one written to `image_masking.json` and `mimic_training.json`.
    """
    if not script_args.mask_layers:
        return None
    device = training_args.device.type
    if script_args.mask_backend == "flex_attention" and not flex_trains_on(device):
        logger.warning("mask_backend flex_attention cannot train on %s (PyTorch has no flex backward there): "
                       "training with mask_backend sdpa, the same mask; pass --mask_backend sdpa to silence this",
                       device)
        script_args.mask_backend = "sdpa"
    return script_args.mask_backend


def build_model(script_args: MimicTrainArguments, model_args, training_args):
    """Load model + processor, freeze what the recipe freezes, and enable the per-image mask if asked.

    Returns `(model, processor, mask_spec_or_None)`.
    """
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    from mimic.tiny import load_processor

    name = model_args.model_name_or_path or DEFAULT_MODEL
    dtype = model_args.dtype
    if dtype not in (None, "auto"):
        dtype = getattr(torch, dtype)
    attn = model_args.attn_implementation or "sdpa"
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(
        name, revision=model_args.model_revision, dtype=dtype,
        attn_implementation={"text_config": attn, "vision_config": "sdpa"},
    )
    processor = load_processor(name, revision=model_args.model_revision)
    if processor.tokenizer.pad_token is None:  # TRL does not set it when it is given a collator
        processor.tokenizer.pad_token = processor.tokenizer.eos_token

    spec = None
    if script_args.mask_layers:
        # one spec for the model and the collator (train.py passes it on), so their settings cannot disagree
        spec = enable_image_masking(model, ImageMaskSpec(
            layers=script_args.mask_layers, backend=script_args.mask_backend,
            within_image=script_args.mask_within_image, single_image=script_args.mask_single_image)).spec
    if script_args.freeze_vision_tower:
        model.model.vision_tower.requires_grad_(False)
    if not script_args.train_projector and not model_args.use_peft:
        model.model.multi_modal_projector.requires_grad_(False)
    return model, processor, spec


def _check_effective_batch(script_args, training_args) -> int:
    effective = (training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
                 * max(training_args.world_size, 1))
    if script_args.effective_batch_size is not None and effective != script_args.effective_batch_size:
        raise ValueError(
            f"effective batch {effective} = per_device_train_batch_size {training_args.per_device_train_batch_size}"
            f" x gradient_accumulation_steps {training_args.gradient_accumulation_steps} x {training_args.world_size}"
            f" processes, but the config asks for effective_batch_size {script_args.effective_batch_size}; "
            "adjust gradient_accumulation_steps to the number of GPUs"
        )
    return effective


def main(argv: list[str] | None = None) -> Path:
    """Parse options (`--config FILE.yaml` plus overrides), train, save; returns the output folder."""
    from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser

    from mimic.train_trl.card import training_summary, write_model_card
    from mimic.train_trl.collator import MultiImageCollator
    from mimic.train_trl.data import load_mixture

    parser = TrlParser((MimicTrainArguments, SFTConfig, ModelConfig))
    script_args, training_args, model_args = parser.parse_args_and_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    effective_batch = _check_effective_batch(script_args, training_args)
    resolve_mask_backend(script_args, training_args)

    model, processor, spec = build_model(script_args, model_args, training_args)
    dataset = load_mixture(script_args.datasets, seed=training_args.seed,
                           stopping_strategy=script_args.mixture_stopping_strategy,
                           max_samples=script_args.max_train_samples)
    collator = MultiImageCollator(
        processor=processor,
        max_length=training_args.max_length,
        pad_to_multiple_of=training_args.pad_to_multiple_of,
        assistant_only_loss=training_args.assistant_only_loss,
        emit_image_ids=spec is not None,
        mask_spec=spec,
    )
    trainer = SFTTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=processor,
        data_collator=collator,
        peft_config=build_peft_config(script_args, model_args),
    )
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    out = Path(training_args.output_dir)
    trainer.save_model(str(out))  # the LoRA adapter (+ projector) with PEFT, else the whole model
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(out)
        write_json(out / MASK_FILE, spec.to_dict() if spec else None)
        summary = training_summary(trainer, result, script_args, training_args, model_args, spec, effective_batch,
                                   num_rows=len(dataset))
        write_json(out / TRAINING_FILE, summary, default=str, allow_nan=True)  # a diverged run still reports
        write_model_card(out, summary, template=script_args.model_card_template)
        logger.info("saved %s to %s", "adapter" if model_args.use_peft else "model", out)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
