"""Benchmark rows from samples: the sample's columns plus the image files' bytes, embedded unchanged.

This lives outside the builder modules on purpose: `datasets` swaps `open` and `os.path.join` in a
builder's module for its streaming-aware versions, which cost more than the file reads themselves.
"""

from __future__ import annotations

import os

from mimic.builders.sample import Sample
from mimic.errors import AnnotationError

__all__ = ["example_from_sample", "ImageBytes"]


class ImageBytes:
    """Reads image files, keeping recently read ones in memory up to `budget_bytes`.

    Samples of one config share many images (Table 1: 35,000 images shown over 5,370 distinct ones in
    counting_balanced), so most embeds come from memory instead of the disk.
    """

    def __init__(self, images_dir: str | os.PathLike, budget_bytes: int = 256 * 1024 * 1024):
        self.root = str(images_dir)
        self.budget = budget_bytes
        self._cache: dict[str, bytes] = {}
        self._held = 0

    def __call__(self, name: str, sample_id: str = "?") -> bytes:
        data = self._cache.get(name)
        if data is not None:
            return data
        path = os.path.join(self.root, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise AnnotationError(path, f"image of sample {sample_id} not found", field="file_name") from None
        if len(data) <= self.budget:
            # Oldest first out (dicts keep insertion order): simple and good enough for a streaming build.
            while self._held + len(data) > self.budget:
                self._held -= len(self._cache.pop(next(iter(self._cache))))
            self._cache[name] = data
            self._held += len(data)
        return data


def example_from_sample(sample: Sample, images_dir: str | os.PathLike | ImageBytes) -> dict:
    """A benchmark row: the sample's columns with the image files' bytes embedded as they are on disk."""
    read = images_dir if isinstance(images_dir, ImageBytes) else ImageBytes(images_dir, budget_bytes=0)
    row = sample.to_row()
    names = row.pop("file_names")
    row["images"] = [{"bytes": read(name, sample.id), "path": name} for name in names]
    return row
