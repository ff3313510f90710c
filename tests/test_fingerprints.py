"""Shard fingerprints cover what a shard holds: a rebuild rewrites exactly the shards whose content changed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mimic.builders.hub_folder import materialize, shard_fingerprint
from mimic.builders.mimic_demo import MimicDemo
from mimic.builders.rows import ImageBytes
from mimic.builders.sources.synthetic import read_synthetic

CONFIG = "counting_unbalanced"
MAX_SHARD = 150_000  # several shards for 12 rows of 2-35 images


class EditedAnswers(MimicDemo):
    """The demo builder with some answers replaced, as a changed generator would produce them."""

    edits: dict[str, str] = {}

    def example(self, sample, read):
        row = super().example(sample, read)
        row["answer"] = self.edits.get(row["id"], row["answer"])
        return row


@pytest.fixture
def images(world, tmp_path) -> tuple[Path, object]:
    """A private copy of the test world's images (the test overwrites one) and an index reading from it."""
    paths, _ = world
    copy = tmp_path / "images"
    shutil.copytree(paths.images, copy)
    return copy, read_synthetic(paths.annotations, copy)


def build(world, images, out: Path, cls=MimicDemo) -> dict:
    paths, _ = world
    folder, index = images
    b = cls(config_name=CONFIG, annotations=str(paths.annotations), images_dir=str(folder), num_samples=12)
    b._index = index
    return materialize(b, out, max_shard_bytes=MAX_SHARD, progress=False)


def shards(out: Path) -> dict[str, int]:
    """Shard name -> inode: an atomic rewrite renames a new file into place, so the inode changes."""
    return {p.name: p.stat().st_ino for p in sorted((out / CONFIG).glob("*.parquet"))}


def shard_contents(out: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Shard name -> (image file names, sample ids) it holds."""
    out_map = {}
    for p in sorted((out / CONFIG).glob("*.parquet")):
        t = pq.read_table(p, columns=["id", "images"]).to_pylist()
        out_map[p.name] = ({im["path"] for r in t for im in r["images"]}, {r["id"] for r in t})
    return out_map


def test_unchanged_rebuild_keeps_every_shard(world, images, tmp_path):
    out = tmp_path / "out"
    first = build(world, images, out)
    before = shards(out)
    assert first["num_shards"] == len(before) >= 3 and first["shards_written"] == len(before)
    again = build(world, images, out)
    assert again["shards_kept"] == len(before) and again["shards_written"] == 0
    assert shards(out) == before


def test_changing_one_image_rewrites_exactly_the_shards_that_embed_it(world, images, tmp_path):
    out = tmp_path / "out"
    build(world, images, out)
    before, contents = shards(out), shard_contents(out)
    # An image embedded by as few shards as possible (ideally one), but not by all of them.
    counts = {}
    for files, _ in contents.values():
        for f in files:
            counts[f] = counts.get(f, 0) + 1
    name = min((f for f in counts if counts[f] < len(contents)), key=lambda f: (counts[f], f))
    affected = {s for s, (files, _) in contents.items() if name in files}
    target = images[0] / name
    target.write_bytes(target.read_bytes() + b"\0")  # same picture, other bytes (JPEG ignores trailing data)

    record = build(world, images, out)
    after = shards(out)
    rewritten = {s for s in before if after[s] != before[s]}
    assert rewritten == affected
    assert record["shards_written"] == len(affected) and record["shards_kept"] == len(before) - len(affected)
    for s in affected:  # the new bytes are what the rewritten shard embeds
        rows = pq.read_table(out / CONFIG / s, columns=["images"]).to_pylist()
        embedded = {im["path"]: im["bytes"] for r in rows for im in r["images"]}
        assert embedded[name] == target.read_bytes()


def test_changing_one_answer_rewrites_exactly_its_shard(world, images, tmp_path):
    out = tmp_path / "out"
    build(world, images, out)
    before, contents = shards(out), shard_contents(out)
    shard, (_, ids) = sorted(contents.items())[1]
    sample_id = sorted(ids)[0]
    EditedAnswers.edits = {sample_id: "42"}
    try:
        record = build(world, images, out, cls=EditedAnswers)
    finally:
        EditedAnswers.edits = {}
    after = shards(out)
    assert {s for s in before if after[s] != before[s]} == {shard}
    assert record["shards_written"] == 1
    table = pq.read_table(out / CONFIG / shard, columns=["id", "answer"]).to_pydict()
    answers = dict(zip(table["id"], table["answer"], strict=True))
    assert answers[sample_id] == "42"


def test_fingerprint_covers_version_features_and_every_column(world, tmp_path):
    paths, index = world
    read = ImageBytes(paths.images)
    b = MimicDemo(config_name="common", annotations=str(paths.annotations), images_dir=str(paths.images),
                  num_samples=2)
    b._index = index
    rows = [b.example(s, read) for s in b.samples()]
    features = json.dumps(b.info.features.to_dict(), sort_keys=True)
    base = shard_fingerprint(rows, read, features)
    assert base == shard_fingerprint([dict(r) for r in rows], read, features)
    assert base != shard_fingerprint(rows, read, features + " ")
    assert base != shard_fingerprint(rows[::-1], read, features)
    for column in ("question", "per_image_counts", "target_positions", "generator_version", "num_distractors"):
        changed = [dict(rows[0]), *rows[1:]]
        value = changed[0][column]
        changed[0][column] = value + "x" if isinstance(value, str) else ([[9]] if isinstance(value, list) else 99)
        assert shard_fingerprint(changed, read, features) != base, column
    # Image bytes enter by digest, whatever the path says.
    first = rows[0]["images"][0]["path"]
    assert read.digest(first) == hashlib.sha256((paths.images / first).read_bytes()).digest()
