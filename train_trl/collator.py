"""`MultiImageCollator`: TRL's vision-language collator plus per-token image ids for per-image attention masks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from mimic.errors import ConfigError
from mimic.train_trl.masking import ImageMaskSpec, dense_image_mask, image_ids_from_counts

__all__ = ["MultiImageCollator", "processor_image_token_counts"]

_ROW_KEYS = frozenset({"images", "image", "messages", "prompt", "completion"})
_OUTPUT_KEYS = frozenset({
    "input_ids", "attention_mask", "pixel_values", "image_sizes", "batch_num_images", "labels",
    "image_ids", "image_attention_mask",
})


def processor_image_token_counts(processor, batch) -> list[list[int]]:
    """Per sample, the `<image>` token count of each image, as the processor expanded them.

    Uses `processor.replace_image_token` on the processor's own output (`batch_num_images`, `image_sizes`,
    `pixel_values`), i.e. the same rule that wrote the placeholders into `input_ids`.
    """
    per_sample = batch["batch_num_images"].tolist()
    counts, k = [], 0
    for n in per_sample:
        counts.append([processor.replace_image_token(batch, image_idx=k + i).count(processor.image_token)
                       for i in range(n)])
        k += n
    return counts


@dataclass
class MultiImageCollator(DataCollatorForVisionLanguageModeling):
    """Collate conversational multi-image rows for LLaVA-OneVision and add per-image attention information.

    Input rows (one dict per sample; any other key raises `KeyError`, so a stray dataset column is caught):
        images:   list[PIL.Image]  (or `image`: one PIL.Image)
        messages: TRL conversational format, `{"type": "image"}` placeholders in the user turn(s)
        (or `prompt` + `completion`, handled by TRL's prompt-completion path)

    Output (B samples, L = longest sequence after padding to `pad_to_multiple_of`, N = images in the batch,
    P = crops per image, S = the vision tower's image size); no other key is ever returned:
        input_ids:        (B, L) int64, right-padded with the pad token.
        attention_mask:   (B, L) int64, 1 = real token, 0 = padding. Stays 2D: TRL counts tokens with it, and
                          a 4D mask here would replace the causal mask in *every* layer.
        pixel_values:     (N, P, 3, S, S) float32, crops padded on the P axis.
        image_sizes:      (N, 2) int64, original (height, width) of each image.
        batch_num_images: (B,) int64, images per sample.
        labels:           (B, L) int64, the input ids with -100 on padding, on every `<image>` token, and (with
                          `assistant_only_loss`) on everything outside assistant turns; the end-of-turn token
                          that closes an assistant turn is kept, so the model learns to stop.
        image_ids:        (B, L) int64, per token the index of its image within the sample (0 = first image),
                          -1 for text and padding. Only with `emit_image_ids` (default). A model prepared with
                          `enable_image_masking` builds the per-image mask of its chosen layers from it.
        image_attention_mask: (B, 1, L, L) bool, True = may attend: the per-image mask written out densely
                          (vision rows: own image only; text rows: causal; padding columns False). Only with
                          `dense_image_mask=True`; O(B*L^2) memory, for inspection and small runs. The model
                          uses it in place of `image_ids` when present.

    Args (beyond TRL's): `emit_image_ids`, `dense_image_mask`, `mask_spec` (the `ImageMaskSpec` the model was
    enabled with: the dense mask follows its `within_image` and `single_image`, so collator and model cannot
    disagree; required with `dense_image_mask`), `end_of_turn_token` (kept in the labels after an assistant
    turn; None to leave TRL's labels alone). `image_ids` carry no mask settings: the model applies its own spec.
    """

    emit_image_ids: bool = True
    dense_image_mask: bool = False
    mask_spec: ImageMaskSpec | None = None
    end_of_turn_token: str | None = "<|im_end|>"

    def __post_init__(self):
        if self.dense_image_mask and self.mask_spec is None:
            raise ConfigError("dense_image_mask=True needs mask_spec: the ImageMaskSpec the model was enabled with")

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        for i, row in enumerate(examples):
            extra = set(row) - _ROW_KEYS
            if extra:
                raise KeyError(
                    f"row {i} has unexpected keys {sorted(extra)}; MultiImageCollator takes {sorted(_ROW_KEYS)} "
                    "(drop other columns, or keep SFTConfig.remove_unused_columns=True)"
                )
        batch = super().torch_call(examples)
        input_ids, labels = batch["input_ids"], batch["labels"]
        image_token_id = self.processor.image_token_id
        if "batch_num_images" in batch:
            ids = image_ids_from_counts(input_ids, image_token_id, processor_image_token_counts(self.processor, batch))
        else:  # no image anywhere in the batch
            ids = torch.full_like(input_ids, -1)
        labels[ids >= 0] = -100
        if self.assistant_only_loss and self.end_of_turn_token is not None:
            self._keep_end_of_turn(input_ids, labels, batch["attention_mask"])
        if self.emit_image_ids:
            batch["image_ids"] = ids
        if self.dense_image_mask:
            batch["image_attention_mask"] = dense_image_mask(
                ids, batch["attention_mask"], within_image=self.mask_spec.within_image,
                single_image=self.mask_spec.single_image,
            )
        unexpected = set(batch) - _OUTPUT_KEYS
        if unexpected:
            raise KeyError(
                f"the processor returned keys this collator does not document: {sorted(unexpected)} "
                f"({type(self.processor).__name__} is not a LLaVA-OneVision processor?)"
            )
        return dict(batch)

    def _keep_end_of_turn(self, input_ids, labels, attention_mask) -> None:
        # The llava-hf template closes the assistant turn with <|im_end|> *outside* {% generation %}, so TRL
        # masks it; without it in the loss the model never learns to end its answer.
        eot = self.processor.tokenizer.convert_tokens_to_ids(self.end_of_turn_token)
        trained = labels != -100
        closes = torch.zeros_like(trained)
        closes[:, 1:] = trained[:, :-1] & ~trained[:, 1:]
        keep = closes & (input_ids == eot) & attention_mask.bool()
        labels[keep] = eot
