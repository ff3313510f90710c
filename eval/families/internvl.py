"""InternVL (`internvl`, the OpenGVLab `-hf` checkpoints).

Token layout: every image is `<img>` + T x n_tiles `<IMG_CONTEXT>` + `</img>`: one run per image holding all
its tiles back to back, no separator between tiles. T = `image_seq_length` (256 on the real checkpoints: a
448 px tile is 32 x 32 patches of 14 px, pixel-shuffled by 0.5 to a 16 x 16 raster of tokens).

Pixels: `InternVLProcessor` sets `crop_to_patches=True` for every call (a class default that beats the image
processor's own `False`), so every image, whatever the number of images in its sample, is resized (aspect
not kept) to the canvas of `cols x rows` tiles whose aspect is closest to its own (`get_optimal_tiled_canvas`,
1 .. `max_patches` tiles, 12 by default, `--max-patches` to change it) and cut into tiles in row-major order.
When there is more than one tile a thumbnail follows: the whole image resized to one tile, a second, coarser
view of the same content. `encoder_size` is the canvas (the tiled view); `patch_grid` stitches the tiles'
token rasters over the canvas and leaves the thumbnail out (`thumbnail_index` gives its tokens). There is no
padding: the whole canvas is the image.

Pooling: 1-D average pooling of each tile's T projected tokens (what the projector hook sees, one tile per
row), T -> ceil(T/f). With f dividing T (every power of two up to 256 on the real checkpoints) this is the
paper's 1-D pooling over the image's run of tokens exactly; otherwise a window never straddles two tiles
(two unrelated parts of the canvas, or a tile and the thumbnail).
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

__all__ = ["InternVL"]


def _side(value) -> int:
    """One side of a square size given as an int or an (h, w) pair (vision configs use both)."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ConfigError(f"internvl: non-square vision size {value} is not supported")
        value = value[0]
    return int(value)


def _tile_tokens_side(model) -> int:
    """Tokens per tile side: patches per side, pixel-shuffled by `downsample_ratio` (32 x 0.5 = 16)."""
    vc = model.config.vision_config
    side = _side(vc.image_size) // _side(vc.patch_size) * model.config.downsample_ratio
    if side != int(side) or int(side) ** 2 != model.config.image_seq_length:
        raise ConfigError(f"internvl: {_side(vc.image_size)} px tiles of {_side(vc.patch_size)} px patches shuffled "
                          f"by {model.config.downsample_ratio} do not give image_seq_length "
                          f"{model.config.image_seq_length} tokens")
    return int(side)


class _Pooling(ProjectorPooling):
    """Each tile's T projected tokens pooled by f; each image's run keeps n_tiles x ceil(T/f) of its
    n_tiles x T placeholders (see the module docstring)."""

    def pooled_count(self, count: int) -> int:
        per_tile = int(self.model.config.image_seq_length)
        if count % per_tile:
            raise ConfigError(f"internvl: an image has {count} tokens, not a whole number of {per_tile}-token tiles")
        return count // per_tile * math.ceil(per_tile / self.factor)


@register_family
class InternVL(Family):
    name = "internvl"
    model_types = ("internvl",)
    analyses = frozenset(ANALYSES)
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

    # -- pixels ------------------------------------------------------------------------------------------------
    def tiling(self, processor, image_size: tuple[int, int], options=None) -> tuple[int, int, int, bool]:
        """(tile side px, cols, rows, thumbnail) of an image of `image_size` (w, h), by the processor's own
        rules and merged call arguments (its class default crop_to_patches=True, --max-patches)."""
        from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import get_optimal_tiled_canvas

        ip = processor.image_processor
        call = self.processor_kwargs(options, processor) if options is not None else {}
        # the processor's own merge of class defaults and call arguments: what its __call__ uses
        kwargs = processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs, **call)["images_kwargs"]
        size = kwargs.get("size", ip.size)
        tile_h, tile_w = (size["height"], size["width"]) if isinstance(size, dict) else (size.height, size.width)
        if tile_h != tile_w:
            raise ConfigError(f"internvl: non-square tiles {tile_w}x{tile_h} are not supported")
        crop = kwargs.get("crop_to_patches", ip.crop_to_patches)
        max_patches = kwargs.get("max_patches", ip.max_patches)
        if not crop or max_patches <= 1:
            return int(tile_w), 1, 1, False
        w, h = image_size
        cols, rows = get_optimal_tiled_canvas((h, w), (tile_h, tile_w), kwargs.get("min_patches", ip.min_patches),
                                              max_patches)
        return int(tile_w), cols, rows, cols * rows > 1

    def encoder_size(self, processor, image_size, num_images, options=None):
        # every image is tiled, alone or not, so num_images does not matter; the thumbnail is not counted
        tile, cols, rows, _ = self.tiling(processor, image_size, options)
        return tile * cols, tile * rows

    def patch_grid(self, model, processor, image_size, num_images, options=None):
        side = _tile_tokens_side(model)
        tile, cols, rows, _ = self.tiling(processor, image_size, options)
        if _side(model.config.vision_config.image_size) != tile:
            raise ConfigError(f"internvl: the processor cuts {tile} px tiles, the vision encoder takes "
                              f"{_side(model.config.vision_config.image_size)} px")
        # token (r, c) of the canvas is token (r % side, c % side) of tile (r // side, c // side); tiles come
        # row-major, each its side x side raster (pixel shuffle keeps the raster order), the thumbnail after them
        r = torch.arange(rows * side)[:, None]
        c = torch.arange(cols * side)[None, :]
        tile_index = (r // side) * cols + c // side
        index = tile_index * side * side + (r % side) * side + c % side
        return PatchGrid(index=index, encoder_size=(tile * cols, tile * rows))

    def thumbnail_index(self, model, processor, image_size, num_images, options=None) -> torch.Tensor | None:
        """(side, side) positions of the thumbnail's tokens among the image's tokens (the whole image resized
        to one tile, after the tiles); None when the image is a single tile, which has no thumbnail."""
        side = _tile_tokens_side(model)
        _, cols, rows, thumbnail = self.tiling(processor, image_size, options)
        if not thumbnail:
            return None
        return cols * rows * side * side + torch.arange(side * side).view(side, side)

    # -- pooling -----------------------------------------------------------------------------------------------
    def token_pooling(self, model, processor, factor: int) -> TokenPooling:
        return _Pooling(self, model, processor, factor)
