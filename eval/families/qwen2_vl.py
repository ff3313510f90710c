"""Qwen2-VL and Qwen2.5-VL (`qwen2_vl`, `qwen2_5_vl`).

Token layout: every image is `<|vision_start|>` + n x `<|image_pad|>` + `<|vision_end|>`, in content order.
The processor keeps each image's aspect ratio and resizes it to multiples of 28 px with a pixel count in
[min_pixels, max_pixels]; its `image_grid_thw` row (t, h, w) counts 14 px patches, and 2 x 2 of them are
merged into one token: n = t * h * w / merge_size^2, in raster order over the merged grid.
"""

from __future__ import annotations

from mimic.eval.families.base import Family, register_family

__all__ = ["Qwen2VL"]


@register_family
class Qwen2VL(Family):
    name = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    analyses = frozenset({"attention", "stitch"})
    paper_tile = 484

    def processor_kwargs(self, options, processor) -> dict:
        if not (options.min_pixels or options.max_pixels):
            return {}
        size = dict(processor.image_processor.size)
        if options.min_pixels:
            size["shortest_edge"] = options.min_pixels
        if options.max_pixels:
            size["longest_edge"] = options.max_pixels
        return {"images_kwargs": {"size": size}}

    def image_token_counts(self, model, processor, batch) -> list[list[int]]:
        merge = int(model.config.vision_config.spatial_merge_size)
        flat = [int(t * h * w) // merge**2 for t, h, w in batch["image_grid_thw"].tolist()]
        return _split_by_rows(batch["input_ids"], self.image_token_id(model, processor), flat)


def _split_by_rows(input_ids, image_token_id: int, flat: list[int]) -> list[list[int]]:
    """Give the batch's images (counts in order) to the rows, each taking as many as its placeholders need."""
    from mimic.errors import ConfigError

    counts, k = [], 0
    for row in (input_ids == image_token_id).sum(dim=1).tolist():
        taken: list[int] = []
        while sum(taken) < row and k < len(flat):
            taken.append(flat[k])
            k += 1
        if sum(taken) != row:
            raise ConfigError(f"a row has {row} image tokens, its images need {sum(taken)}")
        counts.append(taken)
    if k != len(flat):
        raise ConfigError(f"{len(flat)} images in the batch, the rows' image tokens take {k}")
    return counts
