"""Fine-tuning with TRL: collator with per-image attention masks, training entry point (import name `mimic.train_trl`).

- `enable_image_masking(model, layers, backend)`: vision tokens attend only to their own image in `layers`
  (sdpa, eager or flex_attention), through transformers' AttentionInterface / AttentionMaskInterface.
- `MultiImageCollator`: TRL's vision-language collator plus `image_ids` (B, L) and image tokens out of the loss.
- `load_trained(dir)`: a trained model (or adapter) and its processor, with the mask re-enabled.
- `causal_lm_loss(model, batch)`: the training loss with the LM head only at labelled positions.
Semantics, backends, CPU/GPU behaviour: docs/masking.md.
- `train.py`: the TrlParser script (`--config train_trl/configs/*.yaml`); `flops`: Eq. 1 and honest estimates.

Heavy imports (torch, transformers, trl) happen when a name is first used.
"""

from __future__ import annotations

import importlib

__all__ = [
    "MASK_FILE",
    "ImageMaskSpec",
    "MimicTrainArguments",
    "MultiImageCollator",
    "causal_lm_loss",
    "dense_image_mask",
    "disable_image_masking",
    "enable_image_masking",
    "image_ids_from_inputs",
    "load_trained",
    "register_image_attention",
]

_WHERE = {
    "MASK_FILE": "masking",
    "ImageMaskSpec": "masking",
    "dense_image_mask": "masking",
    "disable_image_masking": "masking",
    "enable_image_masking": "masking",
    "image_ids_from_inputs": "masking",
    "register_image_attention": "masking",
    "MultiImageCollator": "collator",
    "MimicTrainArguments": "config",
    "load_trained": "load",
    "causal_lm_loss": "loss",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"mimic.train_trl.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mimic.train_trl' has no attribute {name!r}")
