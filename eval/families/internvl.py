"""InternVL (`internvl`, the OpenGVLab `-hf` checkpoints).

Token layout: every image is `<img>` + 256 x n_tiles `<IMG_CONTEXT>` + `</img>` (one run per image, all its
tiles inside); the processor cuts an image into up to `max_patches` 448 px tiles plus a thumbnail, and each
tile becomes 256 tokens (32 x 32 patches of 14 px, pixel-shuffled by 0.5 to 16 x 16).
"""

from __future__ import annotations

from mimic.errors import ConfigError
from mimic.eval.families.base import Family, register_family

__all__ = ["InternVL"]


@register_family
class InternVL(Family):
    name = "internvl"
    model_types = ("internvl",)
    analyses = frozenset({"attention", "stitch"})
    paper_tile = 484

    def processor_kwargs(self, options, processor) -> dict:
        return {"images_kwargs": {"max_patches": options.max_patches}} if options.max_patches else {}

    def image_token_counts(self, model, processor, batch) -> list[list[int]]:
        # the start/end tokens delimit images, so tiles of one image are never taken for several images
        start, end = processor.start_image_token_id, processor.end_image_token_id
        token = self.image_token_id(model, processor)
        counts = []
        for row in batch["input_ids"].tolist():
            images, inside, n = [], False, 0
            for t in row:
                if t == start:
                    if inside:
                        raise ConfigError("internvl: an image starts inside another")
                    inside, n = True, 0
                elif t == end:
                    if not inside:
                        raise ConfigError("internvl: an image ends that never started")
                    images.append(n)
                    inside = False
                elif inside and t == token:
                    n += 1
            if inside:
                raise ConfigError("internvl: the prompt ends inside an image (truncated?)")
            counts.append(images)
        return counts
