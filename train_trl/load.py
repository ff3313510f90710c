"""Load a model trained by `train.py` (full weights or LoRA adapter), with its per-image mask re-enabled."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["load_trained", "read_mask_spec"]


def read_mask_spec(directory: str | Path):
    """The `ImageMaskSpec` saved with a run (`image_masking.json`), or None when it trained without a mask."""
    from mimic.train_trl.masking import MASK_FILE, ImageMaskSpec

    path = Path(directory) / MASK_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return None if data is None else ImageMaskSpec.from_dict(data)


def load_trained(directory: str | Path, dtype=None, device: str | None = None, backend: str | None = None,
                 merge_adapter: bool = True):
    """`(model, processor)` from an output folder of `train.py`, in eval mode.

    A LoRA adapter is loaded onto its base model (`adapter_config.json` names it) and, by default, merged
    so the result is a plain `LlavaOnevisionForConditionalGeneration`. When the run used a per-image mask,
    it is enabled again on the same layers (`backend` overrides the kernel, e.g. "sdpa" for inference
    where training used flex). `generate` then applies it during prefill; decoding steps need no mask of
    their own (their queries are text tokens, whose rows are plain causal; see `mimic.train_trl.masking`).
    """
    from transformers import LlavaOnevisionForConditionalGeneration

    from mimic.tiny import load_processor
    from mimic.train_trl.masking import enable_image_masking

    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no trained model folder at {directory}")
    spec = read_mask_spec(directory)
    kwargs = {"dtype": dtype} if dtype is not None else {}
    adapter = directory / "adapter_config.json"
    if adapter.exists():
        from peft import PeftModel

        base_id = json.loads(adapter.read_text())["base_model_name_or_path"]
        model = LlavaOnevisionForConditionalGeneration.from_pretrained(base_id, **kwargs)
        model = PeftModel.from_pretrained(model, str(directory))
        if merge_adapter:
            model = model.merge_and_unload()
    else:
        model = LlavaOnevisionForConditionalGeneration.from_pretrained(directory, **kwargs)
    if device is not None:
        model = model.to(device)
    if spec is not None:
        enable_image_masking(model, spec.layers, backend=backend or spec.backend, within_image=spec.within_image,
                             single_image=spec.single_image)
    model.eval()
    return model, load_processor(directory)
