"""Qwen2-VL and Qwen2.5-VL (`qwen2_vl`, `qwen2_5_vl`).

Token layout: every image is `<|vision_start|>` + n x `<|image_pad|>` + `<|vision_end|>`, in content order.
The processor keeps each image's aspect ratio and resizes it to multiples of 28 px with a pixel count in
[min_pixels, max_pixels]; its `image_grid_thw` row (t, h, w) counts 14 px patches, and 2 x 2 of them are
merged into one token: n = t * h * w / merge_size^2, in raster order over the merged grid. Nothing is padded:
the whole resized image is the image's content.

Positions: M-RoPE. `get_rope_index` gives an image's token at merged grid cell (row, col) the position
(cur, cur + row, cur + col) and then moves `cur` on by the longer grid side, so the text after an image does
not depend on its token count. The model derives them from `image_grid_thw` and the placeholders, which is
why token pooling (`_Pooling`) hands the model the pooled features and positions itself.
"""

from __future__ import annotations

import math

import torch

from mimic.errors import ConfigError
from mimic.eval.families.base import (
    ANALYSES,
    Family,
    PatchGrid,
    TokenPooling,
    pool_tokens,
    register_family,
    shrink_placeholders,
)

__all__ = ["Qwen2VL"]


def _pixel_bounds(size) -> tuple[int, int]:
    """(min_pixels, max_pixels) of an image processor's `size` (transformers 5 names them shortest_edge and
    longest_edge; older configs say min_pixels and max_pixels)."""
    get = size.get if hasattr(size, "get") else lambda key: getattr(size, key, None)
    low = get("shortest_edge") or get("min_pixels")
    high = get("longest_edge") or get("max_pixels")
    if not (low and high):
        raise ConfigError(f"qwen2_vl: the image processor's size {dict(size)} names no pixel bounds")
    return int(low), int(high)


class _Pooling(TokenPooling):
    """Average-pool each image's merged tokens in 1-D (raster order) by f, in `shorten`.

    The model cannot take fewer placeholders than `image_grid_thw` implies (its M-RoPE index and the split of
    the vision output both read the grid), and changing the grid changes the encoder. So `shorten` runs the
    vision encoder itself, pools its per-image features, keeps the first ceil(T/f) placeholders of each
    image, and gives each pooled token the floor of the mean M-RoPE position of its group (text keeps its
    own positions, which do not depend on the image's token count). The model gets the pooled features as
    `mm_encoder_outputs` and the positions as explicit (4, B, L) `position_ids` (row 0 the text positions,
    as generate builds them); generate extends explicit positions by one per step. At f = 1 this is exactly
    the model's own computation (tested: same logits and greedy outputs)."""

    def attach(self) -> None:
        pass  # nothing to hook: `shorten` supplies the pooled features

    def shorten(self, batch, pad_id: int):
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        model, f = self.model, self.factor
        inner = model.model
        token_id = self.family.image_token_id(model, self.processor)
        old = self.family.image_token_counts(model, self.processor, batch)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        with torch.no_grad():
            features = inner.get_image_features(batch["pixel_values"], batch["image_grid_thw"]).pooler_output
            positions, _ = inner.get_rope_index(ids, mm_token_type_ids=batch["mm_token_type_ids"],
                                                image_grid_thw=batch["image_grid_thw"], attention_mask=mask)
        if [len(x) for x in features] != [c for row in old for c in row]:
            raise ConfigError(f"qwen2_vl: the vision encoder gave {[len(x) for x in features]} tokens per image, "
                              f"the placeholders {old}")
        pooled = tuple(pool_tokens(x[None], f)[0] for x in features)
        new = [[math.ceil(t / f) for t in row] for row in old]
        for b in range(ids.shape[0]):
            columns = (ids[b] == token_id).nonzero().flatten()
            k = 0
            for t, n in zip(old[b], new[b], strict=True):
                run = columns[k : k + t]
                # the group means of the run's (t, h, w) positions, written where the kept placeholders stay
                means = pool_tokens(positions[:, b, run].T[None].double(), f)[0].T
                positions[:, b, run[:n]] = means.floor().long()
                k += t
        ids, mask, positions = shrink_placeholders(ids, mask, token_id, old, new, pad_id, carry=positions)
        text = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        for key in ("pixel_values", "image_grid_thw", "mm_token_type_ids"):
            batch.pop(key, None)
        batch["input_ids"], batch["attention_mask"] = ids, mask
        batch["position_ids"] = torch.cat([text[None], positions], dim=0)
        batch["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=pooled)}
        return batch


@register_family
class Qwen2VL(Family):
    name = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    analyses = frozenset(ANALYSES)
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

    def encoder_size(self, processor, image_size, num_images, options=None):
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

        ip = processor.image_processor
        if not ip.do_resize:
            raise ConfigError("qwen2_vl: the image processor does not resize (do_resize=False); its geometry is "
                              "not modelled")
        # the size the processor call gets: --min-pixels/--max-pixels reach it through processor_kwargs
        size = ip.size
        if options is not None:
            size = self.processor_kwargs(options, processor).get("images_kwargs", {}).get("size", size)
        low, high = _pixel_bounds(size)
        w, h = image_size
        height, width = smart_resize(h, w, factor=ip.patch_size * ip.merge_size, min_pixels=low, max_pixels=high)
        return width, height

    def patch_grid(self, model, processor, image_size, num_images, options=None):
        vc, ip = model.config.vision_config, processor.image_processor
        side = int(vc.patch_size) * int(vc.spatial_merge_size)
        if side != ip.patch_size * ip.merge_size:
            raise ConfigError(f"qwen2_vl: the model merges {side} px tokens, its processor resizes to multiples of "
                              f"{ip.patch_size * ip.merge_size} px")
        enc_w, enc_h = self.encoder_size(processor, image_size, num_images, options)
        # one token per side x side block of the resized image, in raster order; no padding to crop
        rows, cols = enc_h // side, enc_w // side
        return PatchGrid(index=torch.arange(rows * cols).view(rows, cols), encoder_size=(enc_w, enc_h))

    def token_pooling(self, model, processor, factor: int) -> TokenPooling:
        return _Pooling(self, model, processor, factor)


def _split_by_rows(input_ids, image_token_id: int, flat: list[int]) -> list[list[int]]:
    """Give the batch's images (counts in order) to the rows, each taking one image per run of placeholders.

    Each image is its own run (between `<|vision_start|>` and `<|vision_end|>`), so every run must be exactly
    as long as its image's grid says: a grid that does not belong to the row, or images in another order,
    is an error rather than a wrong attribution."""
    counts, k = [], 0
    for b, runs in enumerate(_runs(input_ids == image_token_id)):
        taken = flat[k : k + len(runs)]
        if taken != runs:
            raise ConfigError(f"row {b}: its image token runs are {runs} long, the image grids give {taken}")
        counts.append(taken)
        k += len(runs)
    if k != len(flat):
        raise ConfigError(f"{len(flat)} images in the batch, the rows' image tokens hold {k}")
    return counts


def _runs(is_image) -> list[list[int]]:
    """Per row of a (B, L) bool tensor, the lengths of its runs of True."""
    out = []
    for row in is_image.tolist():
        runs, prev = [], False
        for x in row:
            if x and prev:
                runs[-1] += 1
            elif x:
                runs.append(1)
            prev = x
        out.append(runs)
    return out
