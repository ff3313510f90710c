"""Model card and training summary written next to a trained model."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_TEMPLATE", "render_model_card", "training_summary", "write_model_card"]

# The repository's template; a wheel install has no dataset_cards/, then huggingface_hub's default is used.
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[1] / "dataset_cards" / "model_card.md"


def _losses(log_history: list[dict]) -> list[float]:
    return [e["loss"] for e in log_history if "loss" in e]


def training_summary(trainer, result, script_args, training_args, model_args, spec, effective_batch, num_rows):
    """A JSON-able record of the run: what was trained on what, how, and the figures it produced."""
    import peft
    import transformers
    import trl

    from mimic import __version__
    from mimic.train_trl.config import DEFAULT_MODEL

    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    losses = _losses(trainer.state.log_history)
    metrics = dict(result.metrics)
    return {
        "base_model": model_args.model_name_or_path or DEFAULT_MODEL,
        "datasets": [str(d) for d in script_args.datasets],
        "dataset_paths": [d.path for d in script_args.datasets],
        "num_rows": num_rows,
        "image_masking": spec.to_dict() if spec else None,
        "num_layers": base.config.text_config.num_hidden_layers,
        "lora": None if not model_args.use_peft else {
            "r": model_args.lora_r, "alpha": model_args.lora_alpha, "dropout": model_args.lora_dropout,
            "targets": list(script_args.lora_targets), "layers": script_args.lora_layers or None,
        },
        "vision_frozen": script_args.freeze_vision_tower,
        "projector_trained": script_args.train_projector,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "learning_rate": training_args.learning_rate,
        "lr_scheduler": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup": training_args.warmup_steps,
        "weight_decay": training_args.weight_decay,
        "effective_batch_size": effective_batch,
        "epochs": trainer.state.epoch,
        "max_steps": training_args.max_steps,
        "global_step": trainer.state.global_step,
        "precision": "bf16" if training_args.bf16 else ("fp16" if training_args.fp16 else "fp32"),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "losses": losses,
        "train_loss": metrics.get("train_loss"),
        "runtime": metrics.get("train_runtime"),
        "samples_per_second": metrics.get("train_samples_per_second"),
        "versions": {"mimic": __version__, "transformers": transformers.__version__, "trl": trl.__version__,
                     "peft": peft.__version__},
    }


def _fmt(x, digits=4):
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def render_model_card(summary: dict, repo_or_path: str = ".", template: str | Path | None = None):
    """A `huggingface_hub.ModelCard` for a run summary (see `training_summary`), from `template`
    (default `dataset_cards/model_card.md`)."""
    from huggingface_hub import ModelCard, ModelCardData

    mask = summary.get("image_masking")
    lora = summary.get("lora")
    layers = mask["layers"] if mask else []
    span = f"{layers[0]}-{layers[-1]}" if layers and layers == list(range(layers[0], layers[-1] + 1)) else (
        ",".join(map(str, layers)))
    tags = ["llava-onevision", "multi-image", "mimic", "trl", "sft"] + (["per-image-attention-mask"] if mask else [])
    # Local folders are not Hub ids: they go in the text, not in the metadata the Hub links.
    hub_datasets = [p for p in summary.get("dataset_paths", []) if not Path(p).exists()]
    base_on_hub = not Path(summary["base_model"]).exists()
    data = ModelCardData(
        base_model=summary["base_model"] if base_on_hub else None,
        datasets=hub_datasets or None,
        library_name="peft" if lora else "transformers",
        pipeline_tag="image-text-to-text",
        tags=tags,
        license="apache-2.0",
    )
    recipe = ("LoRA fine-tune with per-image attention masking" if lora and mask else
              "LoRA fine-tune" if lora else
              "full fine-tune with per-image attention masking" if mask else "full fine-tune (data-centric)")
    versions = summary.get("versions", {})
    kwargs = dict(
        model_name=Path(repo_or_path).name if repo_or_path != "." else "MIMIC fine-tuned LLaVA-OneVision",
        recipe=recipe, base_model=summary["base_model"],
        base_model_link=f"https://huggingface.co/{summary['base_model']}" if base_on_hub else None,
        dataset_entries=summary.get("datasets", []),
        num_rows=summary.get("num_rows"), masked_layers=span, num_masked_layers=len(layers),
        num_layers=summary.get("num_layers"), within_image=(mask or {}).get("within_image"),
        single_image=(mask or {}).get("single_image"), mask_backend=(mask or {}).get("backend"),
        lora=lora, vision_frozen=summary.get("vision_frozen", True),
        projector_trained=summary.get("projector_trained", True),
        learning_rate=_fmt(summary.get("learning_rate")), lr_scheduler=summary.get("lr_scheduler"),
        warmup=_fmt(summary.get("warmup")), weight_decay=_fmt(summary.get("weight_decay")),
        effective_batch_size=summary.get("effective_batch_size"), epochs=_fmt(summary.get("epochs")),
        global_step=summary.get("global_step"), precision=summary.get("precision"),
        first_loss=_fmt(summary.get("first_loss")), last_loss=_fmt(summary.get("last_loss")),
        train_loss=_fmt(summary.get("train_loss")), runtime=_fmt(summary.get("runtime")),
        samples_per_second=_fmt(summary.get("samples_per_second")), repo_or_path=repo_or_path,
        mimic_version=versions.get("mimic"), transformers_version=versions.get("transformers"),
        trl_version=versions.get("trl"), peft_version=versions.get("peft"),
        # huggingface_hub's default template reads these names
        model_summary=f"{summary['base_model']} fine-tuned with the MIMIC recipe: {recipe}.",
    )
    template = Path(template) if template is not None else DEFAULT_TEMPLATE
    if template.exists():
        return ModelCard.from_template(data, template_path=str(template), **kwargs)
    return ModelCard.from_template(data, **kwargs)


def write_model_card(out_dir: str | Path, summary: dict, template: str | Path | None = None,
                     repo_or_path: str | None = None) -> Path:
    """Render the card for `summary` and save it as `out_dir/README.md`; returns the path."""
    out_dir = Path(out_dir)
    card = render_model_card(summary, repo_or_path or str(out_dir), template)
    path = out_dir / "README.md"
    card.save(path)
    return path
