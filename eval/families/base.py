"""The `Family` interface: what the `hf:` adapter and every diagnostic need to know about one model family.

A family is one object (one module per family in this package, registered in `FAMILIES`) that answers,
for a checkpoint of that family and a processor output, the questions whose answers differ between
architectures:

- loading: how its processor is built (without torchvision) and which processor arguments the adapter's
  options become;
- token layout: how many placeholder tokens each image of each row gets, hence which image every token
  belongs to (`image_ids`, checked: the images found must be the row's images, and their tokens must be
  exactly the row's placeholder tokens, else an error instead of a wrong matrix);
- pixels: the size at which an image's own content reaches the vision encoder (`encoder_size`), and how
  an image's tokens lay out over that content (`patch_grid`, padding cropped away);
- modules: the text layers (attention analyses) and the token pooling of the pooling analysis;
- which analyses it supports (`analyses`); the diagnostics refuse the others with one line.

Adding a family: a new module with a `Family` subclass registered under its name, its tiny random model in
`mimic.tiny`, and its tests; nothing else in the tree needs to change (docs/diagnostics.md, "Families").
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from mimic.errors import ConfigError
from mimic.registry import Registry

__all__ = [
    "ANALYSES",
    "FAMILIES",
    "Family",
    "PatchGrid",
    "ProjectorPooling",
    "TokenPooling",
    "family_for_model_type",
    "pool_tokens",
    "register_family",
    "shrink_placeholders",
]

#: The analyses of `mimic diagnose` that look inside a model (the sweeps need no model).
ANALYSES = ("attention", "pooling", "stitch", "answer_attention")

FAMILIES: Registry[Family] = Registry("model family")


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: register one instance of the family under its `name`."""
    FAMILIES.register(cls.name)(cls())
    return cls


def family_for_model_type(model_type: str | None) -> Family | None:
    """The registered family whose `model_types` hold `model_type`, else None."""
    for _, family in FAMILIES.items():
        if model_type in family.model_types:
            return family
    return None


@dataclass(frozen=True)
class PatchGrid:
    """How one image's tokens cover its own pixels, as the encoder saw them.

    index: (rows, cols) long tensor, the position of each patch's token among the image's tokens (in
    sequence order), cropped to the image's own area (padding the processor added is left out).
    encoder_size: (width, height) of the image's content at the encoder input.
    """

    index: torch.Tensor
    encoder_size: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.index.shape[0]), int(self.index.shape[1])


def pool_tokens(x: torch.Tensor, factor: int) -> torch.Tensor:
    """1-D average pooling along dim 1 of (N, T, d) by `factor`: (N, ceil(T/factor), d); the last window
    averages the tokens it has. factor 1 returns the values unchanged."""
    n, t, d = x.shape
    m = math.ceil(t / factor)
    pad = m * factor - t
    if pad:
        x = torch.cat([x, x.new_zeros(n, pad, d)], dim=1)
    sums = x.view(n, m, factor, d).sum(2)
    counts = torch.full((m,), factor, dtype=x.dtype, device=x.device)
    counts[-1] = factor - pad
    return sums / counts[:, None]


def shrink_placeholders(input_ids: torch.Tensor, attention_mask: torch.Tensor, image_token_id: int,
                        old: Sequence[Sequence[int]], new: Sequence[Sequence[int]], pad_id: int,
                        carry: torch.Tensor | None = None):
    """Keep the first new[b][k] of the old[b][k] image placeholder tokens of every image k of every row b.

    input_ids, attention_mask: (B, L), left-padded. Returns both, left-padded to the new longest row.
    carry: an optional (..., B, L) tensor aligned with the tokens (e.g. Qwen2-VL's M-RoPE positions); its
    kept columns are returned third, left-padded with 0.
    """
    rows, kept = [], []
    for b in range(input_ids.shape[0]):
        real = input_ids[b][attention_mask[b].bool()]
        keep = torch.ones_like(real, dtype=torch.bool)
        pos = (real == image_token_id).nonzero().flatten()
        if len(pos) != sum(old[b]):
            raise ValueError(f"row {b}: {len(pos)} image tokens, the counts say {sum(old[b])}")
        k = 0
        for o, n in zip(old[b], new[b], strict=True):
            keep[pos[k + n : k + o]] = False
            k += o
        rows.append(real[keep])
        if carry is not None:
            kept.append(carry[..., b, :][..., attention_mask[b].bool()][..., keep])
    length = max(len(r) for r in rows)
    ids = input_ids.new_full((len(rows), length), pad_id)
    mask = attention_mask.new_zeros((len(rows), length))
    for b, r in enumerate(rows):
        ids[b, length - len(r) :] = r
        mask[b, length - len(r) :] = 1
    if carry is None:
        return ids, mask
    carried = carry.new_zeros((*carry.shape[:-2], len(rows), length))
    for b, c in enumerate(kept):
        carried[..., b, length - c.shape[-1] :] = c
    return ids, mask, carried


class TokenPooling(abc.ABC):
    """The tokens arm of the pooling analysis for one family at one factor: `attach` installs the pooling on
    the model (hooks on its own modules; a no-op for a family whose `shorten` supplies the pooled features
    itself), `shorten` turns a processor output (on the model's device) into the model input with pooled
    image tokens: its placeholders, and whatever else the family derives from them, match the pooled
    features, and `model(**batch)` / `model.generate(**batch)` accept it; `detach` removes the hooks."""

    def __init__(self, family: Family, model, processor, factor: int):
        self.family, self.model, self.processor, self.factor = family, model, processor, factor
        self._handles: list[Any] = []

    @abc.abstractmethod
    def attach(self) -> None: ...

    @abc.abstractmethod
    def shorten(self, batch, pad_id: int): ...

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class ProjectorPooling(TokenPooling):
    """Token pooling for families whose projector (`model.model.multi_modal_projector`) returns one (N, T, d)
    block per image or tile: a forward hook pools each block by f along T (`pool_tokens`), and the prompt keeps,
    of each image's placeholders, as many as `pooled_count` says its pooled features fill."""

    def attach(self) -> None:
        factor = self.factor
        projector = self.model.model.multi_modal_projector
        self._handles.append(projector.register_forward_hook(lambda module, args, output: pool_tokens(output, factor)))

    @abc.abstractmethod
    def pooled_count(self, count: int) -> int:
        """Placeholders of an image of `count` tokens after pooling."""

    def shorten(self, batch, pad_id: int):
        old = self.family.image_token_counts(self.model, self.processor, batch)
        new = [[self.pooled_count(c) for c in row] for row in old]
        token_id = self.family.image_token_id(self.model, self.processor)
        batch["input_ids"], batch["attention_mask"] = shrink_placeholders(
            batch["input_ids"], batch["attention_mask"], token_id, old, new, pad_id)
        return batch


class Family(abc.ABC):
    """One model family (see the module docstring). Subclasses set `name`, `model_types`, `analyses` and
    implement the token layout and pixel geometry of their processor."""

    name: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()
    analyses: ClassVar[frozenset[str]] = frozenset()
    #: The paper's tile side for the stitched composite (Table 6 caption), when it names one.
    paper_tile: ClassVar[int | None] = None

    def __repr__(self) -> str:
        return f"<family {self.name}>"

    # -- loading ---------------------------------------------------------------------------------------------
    def load_processor(self, target: str, model_type: str, **kwargs):
        from mimic.eval.models.hf import load_processor_without_torchvision

        return load_processor_without_torchvision(target, model_type, **kwargs)

    def processor_kwargs(self, options, processor) -> dict:
        """Extra processor call arguments from the adapter's options (e.g. Qwen2-VL's pixel bounds)."""
        return {}

    def check(self, analysis: str, target: str) -> None:
        """ConfigError unless this family supports `analysis`."""
        if analysis not in self.analyses:
            raise ConfigError(f"mimic diagnose {analysis.replace('_', '-')}: hf:{target} is {self.name}, which "
                              f"supports {', '.join(sorted(self.analyses)) or 'no analysis'}")

    # -- the model ---------------------------------------------------------------------------------------------
    def text_layers(self, model) -> Sequence[torch.nn.Module]:
        """The decoder layers of the language model, in order (their `self_attn` gives attention weights)."""
        inner = getattr(model, "model", None)
        layers = getattr(getattr(inner, "language_model", None), "layers", None)
        if layers is None:
            raise ConfigError(f"{type(model).__name__}: no model.language_model.layers to read attention from")
        return layers

    def image_token_id(self, model, processor) -> int:
        token_id = getattr(processor, "image_token_id", None)
        if token_id is None:
            token_id = getattr(model.config, "image_token_id", None)
        if token_id is None:
            raise ConfigError(f"{self.name}: neither the processor nor the config names an image token")
        return int(token_id)

    # -- token layout ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def image_token_counts(self, model, processor, batch) -> list[list[int]]:
        """Per row, the number of image placeholder tokens of each of its images, by the family's rules."""

    def image_ids(self, model, processor, batch, num_images: Sequence[int]) -> torch.Tensor:
        """(B, L) index of the image every token belongs to (-1 for text), checked against the rows.

        num_images: the number of images each row was given. The family's counts must find exactly that many
        images per row, and they must cover exactly the row's placeholder tokens; anything else is an error,
        never a silently wrong attribution.
        """
        from mimic.train_trl.masking import image_ids_from_counts

        counts = self.image_token_counts(model, processor, batch)
        found = [len(c) for c in counts]
        if found != [int(n) for n in num_images]:
            raise ConfigError(f"{self.name}: the token layout has {found} images per row, the rows have "
                              f"{list(num_images)}")
        try:
            return image_ids_from_counts(batch["input_ids"], self.image_token_id(model, processor), counts)
        except ValueError as err:
            raise ConfigError(f"{self.name}: {err}") from None

    # -- pixels ------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def encoder_size(self, processor, image_size: tuple[int, int], num_images: int,
                     options=None) -> tuple[int, int]:
        """(width, height) of an image of `image_size` (w, h) as its content reaches the vision encoder in a
        sample with `num_images` images: after the processor's resize, without its padding.

        options: the adapter's options (`HFOptions`), for families whose processor call takes per-run
        arguments from them (`processor_kwargs`, e.g. Qwen2-VL's pixel bounds); None = the processor's own."""

    @abc.abstractmethod
    def patch_grid(self, model, processor, image_size: tuple[int, int], num_images: int,
                   options=None) -> PatchGrid:
        """The patch tokens of one image over its own area (see `PatchGrid`); options as in `encoder_size`."""

    def stitch_tile(self, model, processor) -> int:
        """The paper's tile side for this family's stitched composite (only a starting point: the stitch
        analysis sizes the grid so the token counts match)."""
        if self.paper_tile is None:
            raise ConfigError(f"{self.name}: no known tile size; pass --tile-size")
        return self.paper_tile

    # -- pooling -----------------------------------------------------------------------------------------------
    def token_pooling(self, model, processor, factor: int) -> TokenPooling:
        raise ConfigError(f"{self.name}: token pooling is not supported")
