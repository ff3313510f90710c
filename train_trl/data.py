"""Training data: the data mixture loader and a small demo training set built from the synthetic world.

Rows are in TRL's conversational vision format (what `mimic build train` writes):
    {"images": [PIL.Image, ...],
     "messages": [{"role": "user", "content": [{"type": "image"}, ..., {"type": "text", "text": question}]},
                  {"role": "assistant", "content": [{"type": "text", "text": answer}]}, ...more turns]}
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from mimic.builders.hub_folder import load_split
from mimic.train_trl.config import DatasetSpec

__all__ = ["REQUIRED_COLUMNS", "build_demo_trainset", "load_mixture"]

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("images", "messages")


def build_demo_trainset(
    out_dir: str | Path,
    num_per_task: int = 8,
    seed: int = 0,
    world_images: int = 120,
    image_size: int = 96,
    max_images: int = 4,
) -> Path:
    """Render a small synthetic world and build the MIMIC training set on it (`mimic build train --source
    synthetic`): `num_per_task` conversations per task, at most `max_images` images each, so a CPU run on the
    tiny model stays short while the per-image mask still has several images to separate.
    `load_dataset(out_dir, split="train")` reads all tasks (the card's default config `all`)."""
    from mimic.builders.cards import write_dataset_card
    from mimic.builders.hub_folder import materialize
    from mimic.builders.mimic_train import TRAIN_TASKS, MimicTrain
    from mimic.builders.sources.synthetic import render_world

    out = Path(out_dir)
    paths = render_world(out / "world", num_images=world_images, seed=seed, image_size=image_size,
                         show_progress=False)
    for task in TRAIN_TASKS:
        builder = MimicTrain(config_name=task, source="synthetic", annotations=str(paths.annotations),
                             images_dir=str(paths.images), per_task=num_per_task, seed=seed, max_images=max_images)
        materialize(builder, out, split="train", progress=False)
    write_dataset_card(out, pretty_name="MIMIC demo training set", template="train.md", all_config=True,
                       summary="A small training set on the synthetic world, for smoke tests and the tiny CPU "
                       "training run (`make train-masked TINY=1`); the real one is built from Open Images.")
    return out


def load_mixture(
    specs: Sequence[DatasetSpec],
    seed: int = 0,
    stopping_strategy: str = "first_exhausted",
    max_samples: int | None = None,
):
    """Load each dataset (`load_dataset(path, config, split=split)`: a Hub id or a local Hub-layout folder),
    keep its `images` and `messages` columns, and combine them with `interleave_datasets` in proportion to
    their ratios. Raises `ValueError` naming the dataset when a required column is missing."""
    import datasets

    if not specs:
        raise ValueError("no training datasets given (dataset_mixture is empty)")
    parts = []
    for spec in specs:
        ds = load_split(spec.path, spec.config, split=spec.split)
        missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
        if missing:
            raise ValueError(f"dataset {spec}: missing columns {missing} (has {ds.column_names}); rows need "
                             "TRL's conversational vision format: `images` + `messages`")
        dropped = [c for c in ds.column_names if c not in REQUIRED_COLUMNS]
        if dropped:
            logger.info("dataset %s: not training on columns %s", spec, dropped)
        parts.append(ds.select_columns(list(REQUIRED_COLUMNS)))
    if len(parts) == 1:
        mixed = parts[0]
    else:
        features = parts[0].features
        parts = [p if p.features == features else p.cast(features) for p in parts]
        total = sum(s.ratio for s in specs)
        mixed = datasets.interleave_datasets(
            parts, probabilities=[s.ratio / total for s in specs], seed=seed, stopping_strategy=stopping_strategy
        )
    if max_samples is not None:
        mixed = mixed.select(range(min(max_samples, len(mixed))))
    return mixed
