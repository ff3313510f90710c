"""Hub-layout folders: build, load back with `load_dataset`, cards, determinism, resume, push dry run."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import build_demo_folder
from datasets import Image, List, get_dataset_config_names, load_dataset
from huggingface_hub import DatasetCard

from mimic.builders import hub_folder
from mimic.builders.cards import write_dataset_card
from mimic.builders.configs import CONFIGS
from mimic.builders.hub_folder import materialize, plan_shards
from mimic.builders.mimic_bench import MimicBench
from mimic.builders.publish import push_folder
from mimic.builders.verify import check_sample
from mimic.cli import main


def load_local(folder: Path, *args, **kwargs):
    """`load_dataset` on a local Hub-layout folder, exactly as a user calls it (offline: see conftest)."""
    return load_dataset(str(folder), *args, **kwargs)  # a local folder; HF_HUB_OFFLINE is set


def build_demo(world, out: Path, configs=tuple(CONFIGS), num=6, seed=0, max_shard_bytes=None) -> dict:
    kw = {} if max_shard_bytes is None else {"max_shard_bytes": max_shard_bytes}
    return build_demo_folder(world, out, configs, num=num, seed=seed, **kw)


def test_every_config_loads_back_with_source_bytes(world, tmp_path):
    paths, index = world
    out = tmp_path / "demo"
    build_demo(world, out)
    assert get_dataset_config_names(str(out)) == list(CONFIGS)
    for name in CONFIGS:
        ds = load_local(out, name, split="test")
        assert len(ds) == 6
        row = ds[0]
        assert row["config"] == name and len(row["images"]) == row["num_images"]
        assert row["images"][0].size == (index.widths[0], index.heights[0])
        raw = ds.cast_column("images", List(Image(decode=False)))
        for r in raw:
            for img, image_id in zip(r["images"], r["image_ids"], strict=True):
                src = paths.images / index.file_names[index.image_to_pos[image_id]]
                assert img["bytes"] == src.read_bytes()  # embedded unchanged, no re-encode
            # Rows still verify against the annotations after the round trip.
            row = {k: v for k, v in r.items() if k != "images"}
            row["file_names"] = [index.file_names[index.image_to_pos[i]] for i in r["image_ids"]]
            assert check_sample(index, row) == []
    default = load_local(out, split="test")
    assert default[0]["config"] == "counting_balanced"


def test_card_lists_every_config_and_the_statistics(world, tmp_path):
    out = tmp_path / "demo"
    build_demo(world, out, configs=("common", "listing"))
    card = DatasetCard.load(out / "README.md")
    assert [c["config_name"] for c in card.data.configs] == ["listing", "common"]
    assert card.data.configs[0]["data_files"] == [{"split": "test", "path": "listing/test-*"}]
    assert card.data.license == "cc-by-4.0" and "visual-question-answering" in card.data.task_categories
    assert "| Queries | 6 | 6 |" in card.text and "from datasets import load_dataset" in card.text and "@article" in card.text


def test_same_seed_gives_identical_parquet_bytes(world, tmp_path):
    build_demo(world, tmp_path / "a", configs=("counting_unbalanced", "odd_one"), seed=7)
    build_demo(world, tmp_path / "b", configs=("counting_unbalanced", "odd_one"), seed=7)
    build_demo(world, tmp_path / "c", configs=("counting_unbalanced",), seed=8)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").glob("*/*.parquet"))
    assert len(files) == 2
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    f = Path("counting_unbalanced/test-00000-of-00001.parquet")
    assert (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes()


def test_interrupted_build_resumes_where_it_stopped(world, tmp_path, monkeypatch):
    out, ref = tmp_path / "out", tmp_path / "ref"
    build_demo(world, ref, configs=("counting_unbalanced",), num=12, max_shard_bytes=120_000)
    shards = sorted((ref / "counting_unbalanced").glob("*.parquet"))
    assert len(shards) >= 3
    real = hub_folder.pq.ParquetWriter
    calls = {"n": 0}

    class Crashing(real):  # the third shard dies mid-write
        def write_table(self, table, *a, **kw):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return super().write_table(table, *a, **kw)

    monkeypatch.setattr(hub_folder.pq, "ParquetWriter", Crashing)
    with pytest.raises(KeyboardInterrupt):
        build_demo(world, out, configs=("counting_unbalanced",), num=12, max_shard_bytes=120_000)
    done = sorted((out / "counting_unbalanced").glob("*.parquet"))
    assert [p.name for p in done] == [p.name for p in shards[:2]]  # no half-written shard under a final name
    assert not list((out / "counting_unbalanced").glob(".*"))  # no temporary file left
    monkeypatch.setattr(hub_folder.pq, "ParquetWriter", real)
    record = build_demo(world, out, configs=("counting_unbalanced",), num=12, max_shard_bytes=120_000)
    assert record["counting_unbalanced"]["shards_kept"] == 2
    assert record["counting_unbalanced"]["shards_written"] == len(shards) - 2
    for a in shards:
        assert (out / "counting_unbalanced" / a.name).read_bytes() == a.read_bytes()


def test_resharding_removes_stale_shards(world, tmp_path):
    out = tmp_path / "out"
    build_demo(world, out, configs=("common",), num=10, max_shard_bytes=50_000)
    assert len(list((out / "common").glob("*.parquet"))) > 1
    build_demo(world, out, configs=("common",), num=10)
    assert [p.name for p in (out / "common").glob("*.parquet")] == ["test-00000-of-00001.parquet"]
    assert len(load_local(out, "common", split="test")) == 10


def test_plan_shards():
    assert plan_shards([5, 5, 5, 5], 10) == [(0, 2), (2, 4)]
    assert plan_shards([50, 1], 10) == [(0, 1), (1, 2)]  # an oversized row still gets its own shard
    assert plan_shards([], 10) == [(0, 0)]


def test_push_dry_run_and_upload_call(world, tmp_path, capsys):
    out = tmp_path / "demo"
    build_demo(world, out, configs=("common",))
    assert main(["push", str(out), "--repo", "me/mimic-demo", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "(dry run) 2 files" in text and "README.md" in text and "common/test-00000-of-00001.parquet" in text
    assert ".mimic" not in text

    class FakeApi:
        def __init__(self):
            self.calls = []

        def create_repo(self, repo_id, **kw):
            self.calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, **kw):
            self.calls.append(("upload_folder", kw))

    api = FakeApi()
    push_folder(out, "me/mimic-demo", private=True, api=api)
    assert api.calls[0] == ("create_repo", "me/mimic-demo", {"repo_type": "dataset", "private": True, "exist_ok": True})
    kw = api.calls[1][1]
    assert kw["repo_id"] == "me/mimic-demo" and kw["folder_path"] == str(out)
    assert "README.md" in kw["allow_patterns"] and ".mimic/*" in kw["ignore_patterns"]
    assert main(["push", str(tmp_path), "--repo", "me/x", "--dry-run"]) == 2  # no card: a clear error


def test_cli_build_demo_and_show(world, tmp_path, capsys):
    paths, _ = world
    out = tmp_path / "cli"
    assert main(["build", "demo", "--world", str(paths.root), "--out", str(out), "--configs", "odd_one", "common",
                 "--num", "4", "--no-progress"]) == 0
    assert get_dataset_config_names(str(out)) == ["common", "odd_one"]
    assert main(["show", str(out), "--rows", "1"]) == 0
    shown = capsys.readouterr().out
    assert "== odd_one: 4 rows ==" in shown and "Q: " in shown


@pytest.mark.shared_data
def test_bench_from_real_coco_sample(coco_sample, tmp_path):
    ann, images = coco_sample
    out = tmp_path / "bench"
    # Every config, on the 128 real COCO images (small grids where the full one needs more images).
    controls = {"counting_balanced": {}, "counting_unbalanced": {"num_images": 5, "spread": 2},
                "counting_multiconcept": {"concepts": 2, "num_images": 4}, "listing": {}, "common": {},
                "odd_one": {"num_images": 4}}
    for name, c in controls.items():
        b = MimicBench(config_name=name, annotations=str(ann), images_dir=str(images), num_samples=4, controls=c)
        assert materialize(b, out, progress=False)["num_rows"] == 4
    write_dataset_card(out, pretty_name="MIMIC", summary="coco sample")
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other" and [c["config_name"] for c in card.data.configs] == list(CONFIGS)
    from mimic.builders.sources.coco import read_coco

    index = read_coco(ann, images)
    for name in CONFIGS:
        ds = load_local(out, name, split="test").cast_column("images", List(Image(decode=False)))
        for r in ds:
            for img in r["images"]:
                assert img["bytes"] == (images / img["path"]).read_bytes()
            row = {k: v for k, v in r.items() if k != "images"}
            row["file_names"] = [img["path"] for img in r["images"]]
            assert check_sample(index, row) == []
    assert pq.read_metadata(next((out / "common").glob("*.parquet"))).num_rows == 4
