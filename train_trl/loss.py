"""The causal-LM loss of a LLaVA-OneVision batch without the full-vocabulary logits.

In a multi-image sample almost every position is an image token with label -100 (10 images: 7,300 of 7,386
positions), yet `model(**batch).loss` projects every position through the 152K-word LM head and upcasts the
result to fp32 before the loss reads a handful of them: (B, L, V) fp32 logits, 4.5 GB per 10-image sample,
plus their gradient. `causal_lm_loss` asks the model for the logits of only the positions whose *next* token
has a label (transformers' `logits_to_keep` with an index tensor, the model's own forward and LM head), and
applies the same cross-entropy as transformers' `ForCausalLMLoss` to them. The value is that of the full
computation (`tests/test_train_loss.py` compares loss and gradients on the tiny model).

TRL's `SFTTrainer` (1.16, what `train.py` runs) has its own fused LM head (`trl.trainer.utils.add_fused_lm_head`):
on CUDA/XPU with Triton it projects only the labelled positions; on other devices it projects every position in
4096 x 32768 tiles (bounded memory, but compute spent on image tokens). It never builds the full logits either,
so `train.py` keeps it; `causal_lm_loss` is for direct calls (own training loops, the tests, the benchmarks).
See docs/masking.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

__all__ = ["LabelledLoss", "causal_lm_loss", "scored_positions"]

IGNORE_INDEX = -100


@dataclass
class LabelledLoss:
    """`loss`: scalar, as `model(**batch).loss`; `num_tokens`: labelled next-token positions; `positions`: (K,)
    the positions whose logits were computed; `logits`: (B, K, V) those logits (fp32 as the loss read them)."""

    loss: torch.Tensor
    num_tokens: torch.Tensor
    positions: torch.Tensor
    logits: torch.Tensor


def scored_positions(labels: torch.Tensor) -> torch.Tensor:
    """(K,) int64: positions p < L-1 where some row has a label at p+1 (the token position p predicts)."""
    if labels.shape[1] < 2:
        return torch.zeros(0, dtype=torch.long, device=labels.device)
    return (labels[:, 1:] != IGNORE_INDEX).any(dim=0).nonzero().flatten()


def causal_lm_loss(model, batch: Mapping[str, torch.Tensor], num_items_in_batch=None) -> LabelledLoss:
    """Forward `batch` (collator output with `labels` (B, L)) and return the next-token loss computed from the
    logits of the labelled positions only.

    Same value as `model(**batch).loss`: mean over labelled tokens, or the sum divided by `num_items_in_batch`
    when given (gradient accumulation, as transformers' Trainer passes it). Works on a PEFT-wrapped model and
    with per-image masking (the extra keys of the batch go to the forward as they are).
    """
    labels = batch["labels"]
    positions = scored_positions(labels)
    if positions.numel() == 0:  # nothing to learn in this batch: one position keeps the graph connected
        positions = torch.tensor([labels.shape[1] - 2], device=labels.device)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    out = model(**inputs, logits_to_keep=positions, use_cache=False)
    logits = out.logits.float()                                  # (B, K, V), as ForCausalLMLoss upcasts
    targets = labels[:, positions + 1].to(logits.device)         # (B, K)
    flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    num_tokens = (flat_targets != IGNORE_INDEX).sum()
    if num_items_in_batch is None:
        loss = torch.nn.functional.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE_INDEX)
    else:
        loss = torch.nn.functional.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE_INDEX,
                                                 reduction="sum")
        loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device)
    return LabelledLoss(loss=loss, num_tokens=num_tokens, positions=positions, logits=logits)
