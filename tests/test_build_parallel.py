"""`mimic build train --num-proc N`: the shards written by N processes are the one-process shards, byte for byte,
and a rebuild with another N keeps them all."""

from __future__ import annotations

import hashlib

from mimic.builders.hub_folder import materialize
from mimic.builders.mimic_train import MimicTrain
from mimic.cli import main


def _digests(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*/*.parquet"))}


def test_two_processes_write_the_same_bytes(world, tmp_path, capsys):
    paths, _ = world
    common = ["build", "train", "--source", "synthetic", "--world", str(paths.annotations), "--tasks", "counting",
              "common", "--per-task", "40", "--max-shard-mb", "1", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "one"), "--num-proc", "1"]) == 0
    assert main([*common, "--out", str(tmp_path / "two"), "--num-proc", "2"]) == 0
    one, two = _digests(tmp_path / "one"), _digests(tmp_path / "two")
    assert len([f for f in one if f.startswith("counting/")]) > 2  # several shards, so both workers wrote some
    assert one == two
    capsys.readouterr()

    # Resuming with another process count: every shard is recognised as finished and kept.
    b = MimicTrain(config_name="counting", source="synthetic", annotations=str(paths.annotations),
                   images_dir=str(paths.images), per_task=40)
    record = materialize(b, tmp_path / "two", split="train", max_shard_bytes=1024 * 1024, progress=False,
                         num_proc=3)
    assert record["shards_written"] == 0 and record["shards_kept"] == record["num_shards"] > 2
    assert _digests(tmp_path / "two") == two


def test_spooled_items_give_back_what_was_generated(world):
    import numpy as np

    from mimic.builders.configs import train_configs
    from mimic.builders.conversations import conversation_turns
    from mimic.builders.generate import iter_samples
    from mimic.builders.mimic_train import SpooledItems, TrainItem
    from mimic.builders.rows import ImageBytes

    paths, _ = world
    b = MimicTrain(config_name="listing", source="synthetic", annotations=str(paths.annotations),
                   images_dir=str(paths.images), per_task=30)
    items = b.samples()
    assert isinstance(items, SpooledItems) and len(items) == 30
    # The same generation, held in memory as objects.
    index = b.load_index()
    expected = [TrainItem(s, conversation_turns(index, s, np.random.default_rng([s.seed, 1]), option_rate=0.3,
                                                followup_rate=0.5))
                for s in iter_samples(index, train_configs(10)["train_listing"], num=30)]
    assert list(items) == expected
    assert items[3:7] == expected[3:7] and items[-1] == expected[-1] and items[0] == expected[0]
    read = ImageBytes(paths.images)
    assert b.example(items[5], read) == b.example(expected[5], read)
    copy = SpooledItems()
    for item in expected:
        copy.append(item)
    assert list(copy.seal()) == expected
