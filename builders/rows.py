"""Benchmark rows from samples: the sample's columns plus the image files' bytes, embedded unchanged.

This lives outside the builder modules on purpose: `datasets` swaps `open` and `os.path.join` in a
builder's module for its streaming-aware versions, which cost more than the file reads themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import typing
from collections.abc import Iterable, Sequence

from mimic.builders.sample import Sample
from mimic.errors import AnnotationError, DataError

__all__ = ["example_from_sample", "ImageBytes", "check_rows", "image_problem", "drop_bad_images", "bad_images_record",
           "SAMPLE_FIELDS",
           "STATS_FIELDS"]

# Every field of a generated sample (`mimic generate` writes them all); the verifier reads nearly all.
SAMPLE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Sample) if f.name != "generator_version")
# What Table 1 statistics read.
STATS_FIELDS: tuple[str, ...] = ("config", "source", "image_ids", "num_images", "question")
_HINTS = typing.get_type_hints(Sample)


def _has_type(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin is list:
        (elem,) = typing.get_args(tp)
        return isinstance(value, list) and all(_has_type(v, elem) for v in value)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp) -> str:
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    return {int: "an integer", str: "a string", float: "a number"}.get(tp, getattr(tp, "__name__", str(tp)))


def check_rows(rows: Iterable, path: str | os.PathLike, fields: Sequence[str] = SAMPLE_FIELDS) -> None:
    """Raise DataError naming the file, the row and the field when a row lacks one of `fields` or holds a
    value of the wrong type (by `Sample`'s annotations), before anything reads the rows."""
    for k, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {k} is a JSON {type(row).__name__}, not an object with sample fields")
        for name in fields:
            where = f"{path}: row {k} ({row.get('id', 'no id')!s})"
            if name not in row:
                raise DataError(f"{where}: missing field {name!r}; was it written by `mimic generate`?")
            if name in _HINTS and not _has_type(row[name], _HINTS[name]):
                raise DataError(f"{where}: field {name!r} is {row[name]!r}, expected {_type_name(_HINTS[name])}")


def image_problem(path: str | os.PathLike, width: int = 0, height: int = 0) -> str | None:
    """What is wrong with the image file at `path` (None: nothing): absent, not an image PIL can identify
    and verify, or another size than the annotations' `width` x `height` (0: the source gives none).

    Cheap on purpose: it reads the header (and for PNG the chunk checksums), never decodes JPEG pixels, so
    a build can afford it for every image it embeds. A 0-byte file or an HTML page saved as .jpg fails here
    instead of being embedded and later "scored".
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()
    except FileNotFoundError:
        return "not found"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        # UnidentifiedImageError is an OSError; verify() raises SyntaxError on a corrupt PNG.
        return f"is not a readable image ({' '.join(str(e).split()) or type(e).__name__})"
    if width and height and size != (width, height):
        return f"is {size[0]}x{size[1]} pixels, the annotations say {width}x{height}"
    return None


def drop_bad_images(index):
    """The index without the images whose files fail `image_problem`, and {file name: problem} for those.

    Every image of the index is opened (its header read): what samples will use is not known before they
    are drawn, and drawing them without the bad images keeps every row and every control intact.
    """
    import numpy as np

    if index.images_dir is None:
        raise AnnotationError("<index>", "the index has no images folder; pass --images when indexing")
    bad = {}
    for i in range(index.num_images):
        name = str(index.file_names[i])
        problem = image_problem(os.path.join(index.images_dir, name), int(index.widths[i]), int(index.heights[i]))
        if problem is not None:
            bad[i] = (name, problem)
    if not bad:
        return index, {}
    keep = np.ones(index.num_images, dtype=bool)
    keep[list(bad)] = False
    return index.subset(keep), dict(bad.values())


def bad_images_record(bad: dict[str, str], shown: int = 20) -> dict:
    """What a build record keeps of the skipped images: their number and the first few, with the problem."""
    return {"bad_images_skipped": len(bad), "bad_images": dict(sorted(bad.items())[:shown])}


class ImageBytes:
    """Reads image files, keeping recently read ones in memory up to `budget_bytes`, and the SHA-256 digest
    of every file it has read.

    Samples of one config share many images (Table 1: 35,000 images shown over 5,370 distinct ones in
    counting_balanced), so most embeds come from memory instead of the disk. The digests are taken while
    the bytes are read anyway (one pass over bytes already in memory), and shard fingerprints use them.
    """

    def __init__(self, images_dir: str | os.PathLike, budget_bytes: int = 256 * 1024 * 1024):
        self.root = str(images_dir)
        self.budget = budget_bytes
        self._cache: dict[str, bytes] = {}
        self._held = 0
        self._digests: dict[str, bytes] = {}

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
        if name not in self._digests:
            # Once per file: a file that changed during the build can only make its shards' fingerprints
            # stale, and a stale fingerprint costs a rewrite at the next build, never a wrongly kept shard.
            self._digests[name] = hashlib.sha256(data).digest()
        if len(data) <= self.budget:
            # Oldest first out (dicts keep insertion order): simple and good enough for a streaming build.
            while self._held + len(data) > self.budget:
                self._held -= len(self._cache.pop(next(iter(self._cache))))
            self._cache[name] = data
            self._held += len(data)
        return data

    def digest(self, name: str, sample_id: str = "?") -> bytes:
        """The SHA-256 digest of image file `name` as first read in this build (read now if it never was)."""
        if name not in self._digests:
            self(name, sample_id)
        return self._digests[name]


def example_from_sample(sample: Sample, images_dir: str | os.PathLike | ImageBytes) -> dict:
    """A benchmark row: the sample's columns with the image files' bytes embedded as they are on disk."""
    read = images_dir if isinstance(images_dir, ImageBytes) else ImageBytes(images_dir, budget_bytes=0)
    row = sample.to_row()
    names = row.pop("file_names")
    row["images"] = [{"bytes": read(name, sample.id), "path": name} for name in names]
    return row
