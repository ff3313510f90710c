"""LLaVA-OneVision (`llava_onevision`; the llava-hf `-ov-hf` and `-si-hf` checkpoints).

Token layout: the chat template puts a turn's images back to back, each as a run of `<image>` tokens, so
the runs cannot be told apart from the ids; the counts come from the model's own rules
(`mimic.train_trl.masking.image_token_counts`). In a sample with several images each image is padded to a
square (centred, mean colour) and resized to the crop size (384 px on the real checkpoints): side x side
patch tokens (27 x 27) in raster order, then one `image_newline` token. A sample with one image goes
through anyres tiling instead; the analyses that need a patch grid take samples with two or more images.
"""

from __future__ import annotations

import math

import torch

from mimic.errors import ConfigError
from mimic.eval.families.base import (
    ANALYSES,
    Family,
    PatchGrid,
    ProjectorPooling,
    TokenPooling,
    register_family,
)

__all__ = ["LlavaOnevision"]


def _crop_side(processor) -> int:
    size = processor.image_processor.size
    side = getattr(size, "height", None) or (size.get("height") if isinstance(size, dict) else None)
    if not side:
        raise ConfigError(f"{type(processor).__name__}: no square crop size in its image processor")
    return int(side)


class _Pooling(ProjectorPooling):
    """Each image's 729 (T) projected grid tokens pooled by f; the prompt keeps the first ceil(T/f) of each
    image's T grid placeholders plus the newline (which the model appends after the projector)."""

    def pooled_count(self, count: int) -> int:
        return math.ceil((count - 1) / self.factor) + 1


@register_family
class LlavaOnevision(Family):
    name = "llava_onevision"
    model_types = ("llava_onevision",)
    analyses = frozenset(ANALYSES)

    def load_processor(self, target: str, model_type: str, **kwargs):
        from mimic.tiny import load_processor

        return load_processor(target, **kwargs)

    def image_token_counts(self, model, processor, batch) -> list[list[int]]:
        from mimic.train_trl.masking import image_token_counts

        return image_token_counts(model.config, batch["image_sizes"], batch["batch_num_images"].tolist())

    def encoder_size(self, processor, image_size, num_images, options=None):
        if num_images < 2:
            raise ConfigError("llava_onevision: an image alone in its sample is tiled (anyres); the analyses that "
                              "need its geometry take samples with two or more images")
        side = _crop_side(processor)
        w, h = image_size
        # padded to a square of the longer side, then that square resized to side x side
        return (side, round(h * side / w)) if w >= h else (round(w * side / h), side)

    def patch_grid(self, model, processor, image_size, num_images, options=None):
        vc = model.config.vision_config
        if model.config.vision_feature_select_strategy != "full":
            raise ConfigError("llava_onevision: patch maps assume vision_feature_select_strategy='full'")
        enc_w, enc_h = self.encoder_size(processor, image_size, num_images)
        side = vc.image_size // vc.patch_size
        crop = _crop_side(processor)
        # a patch row/column belongs to the image when its centre lies on the image, not on the padding; the
        # encoder's patches are patch_size px of its image_size (27 x 14 = 378 of 384 px: the last 6 are
        # never seen), not crop / side
        patch = vc.patch_size * crop / vc.image_size
        centres = (torch.arange(side) + 0.5) * patch
        rows = ((centres >= (crop - enc_h) / 2) & (centres <= (crop + enc_h) / 2)).nonzero().flatten()
        cols = ((centres >= (crop - enc_w) / 2) & (centres <= (crop + enc_w) / 2)).nonzero().flatten()
        index = rows[:, None] * side + cols[None, :]  # raster order; the newline token (last) is not a patch
        return PatchGrid(index=index, encoder_size=(enc_w, enc_h))

    def stitch_tile(self, model, processor) -> int:
        return int(model.config.vision_config.image_size)

    def token_pooling(self, model, processor, factor: int) -> TokenPooling:
        return _Pooling(self, model, processor, factor)
