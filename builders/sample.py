"""`Sample`: one generated question with its images, answer and every control that produced it.

The fields are the benchmark's row columns (docs/design.md, "Rows"), minus the image bytes,
which the dataset builders add from `file_names`. `per_image_counts[i][j]` is the number of instances
of `target_classes[j]` in image i, so every count-based control can be recomputed from one field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

__all__ = ["Sample", "GENERATOR_VERSION", "sample_id"]

# Bump when a change to generation makes the same (annotations, config, seed) give different samples.
GENERATOR_VERSION = "1.0.0"


@dataclass
class Sample:
    id: str
    task: str  # counting | listing | common | odd_one
    config: str  # counting_balanced, counting_unbalanced, counting_multiconcept, listing, common, odd_one
    image_ids: list[str]  # source image ids, in the order shown to the model
    file_names: list[str]  # relative to the source's images folder
    question: str
    answer: str  # canonical answer string
    answer_list: list[str]  # Listing: gold classes; multi-concept Counting: counts in target_classes order
    target_classes: list[str]  # counted classes / listed classes / the common or odd class
    category: str  # Listing: the asked category; otherwise the category of the first target class
    num_images: int
    num_query_images: int  # images holding at least one target instance (information spread)
    num_distractors: int  # images free of every target class (of the whole category, for Listing)
    num_concepts: int
    total_instances: int
    per_image_counts: list[list[int]]  # [image][target class]
    target_positions: list[int]  # positions (0-based, in image order) of the query images
    template_id: int
    connector_id: int
    seed: int  # the sample's own seed: with the config and annotations it regenerates this sample
    source: str  # coco | openimages | synthetic
    generator_version: str = GENERATOR_VERSION

    def to_row(self) -> dict:
        # Field lists are copied one level deep; dataclasses.asdict's deep copy is the slow part of generation.
        return {name: _copy(getattr(self, name)) for name in _FIELD_NAMES}

    @classmethod
    def from_row(cls, row: dict) -> Sample:
        names = {f.name for f in fields(cls)}
        missing = [n for n in names if n not in row and n != "generator_version"]
        if missing:
            raise KeyError(f"row {row.get('id', '?')!r} lacks fields {sorted(missing)}")
        return cls(**{k: v for k, v in row.items() if k in names})


_FIELD_NAMES = tuple(f.name for f in fields(Sample))


def _copy(value):
    if isinstance(value, list):
        return [list(v) if isinstance(v, list) else v for v in value]
    return value


def sample_id(config: str, number: int, image_ids: list[str], question: str) -> str:
    """Unique, deterministic key: the config, the sample number and a digest of its content."""
    digest = hashlib.sha1(("\x1f".join(image_ids) + "\x1e" + question).encode()).hexdigest()[:10]
    return f"{config}-{number:05d}-{digest}"
