"""The training set from Open Images: verified samples, TRL messages, chat template, SFTTrainer, safeguards."""

from __future__ import annotations

import json

import pytest

from mimic.builders.cards import write_dataset_card
from mimic.builders.hub_folder import load_split, materialize
from mimic.builders.mimic_train import MimicTrain
from mimic.builders.sources.openimages import read_openimages
from mimic.builders.verify import check_sample
from mimic.cli import main
from mimic.errors import ConfigError

pytestmark = pytest.mark.shared_data


def build(oi, out, tasks=("counting", "listing", "common", "odd_one"), per_task=10, seed=0, **kw):
    records = {}
    for task in tasks:
        b = MimicTrain(config_name=task, annotations=str(oi["boxes"]), oi_classes=str(oi["classes"]),
                       oi_hierarchy=str(oi["hierarchy"]), images_dir=str(oi["images"]), per_task=per_task,
                       seed=seed, **kw)
        records[task] = materialize(b, out, split="train", progress=False)
        records[task]["missing"] = b.missing_image_ids
    write_dataset_card(out, pretty_name="t", summary="t", template="train.md", all_config=True)
    return records


@pytest.fixture(scope="module")
def train_dir(oi_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    return out, build(oi_world, out)


def test_every_row_verifies_and_messages_match(oi_world, train_dir):
    out, records = train_dir
    index = read_openimages(oi_world["boxes"], oi_world["classes"], oi_world["hierarchy"])
    ds = load_split(str(out), "all", "train")
    assert len(ds) == 40 and set(ds["task"]) == {"counting", "listing", "common", "odd_one"}
    assert max(ds["num_images"]) <= 10 and min(ds["num_images"]) >= 2
    for r in ds:
        row = {k: v for k, v in r.items() if k not in ("images", "messages")}
        row["file_names"] = [f"{i}.jpg" for i in r["image_ids"]]
        assert check_sample(index, row) == [], r["id"]
        msgs = r["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant"] * r["num_turns"]
        images = [c for c in msgs[0]["content"] if c["type"] == "image"]
        assert len(images) == r["num_images"] == len(r["images"])
        assert all(c["type"] == "text" for m in msgs[1:] for c in m["content"])
        for k, letter in enumerate(r["correct_options"]):
            answer = msgs[2 * k + 1]["content"][0]["text"]
            if letter:  # a lettered turn: the answer is the letter, the options are listed in the question
                assert answer == letter and "\nOptions:\n" in msgs[2 * k]["content"][-1]["text"]
                assert len(r["options"][k]) == 4
        if r["task"] == "counting" and r["num_concepts"] > 1:
            totals = [sum(col) for col in zip(*r["per_image_counts"], strict=True)]
            open_answers = [msgs[2 * k + 1]["content"][0]["text"] for k in range(r["num_turns"]) if not r["correct_options"][k]]
            assert all(a in {str(t) for t in totals} for a in open_answers)
    assert sum(len(r["correct_options"]) - r["correct_options"].count("") for r in ds) > 0  # some lettered turns
    assert any(r["num_turns"] > 1 for r in ds)  # some multi-turn conversations


def test_missing_images_are_skipped_and_counted(oi_world, train_dir):
    _, records = train_dir
    assert len(records["counting"]["missing"]) == 3
    assert set(records["counting"]["missing"]) <= set(oi_world["listed"])
    assert records["counting"]["parameters"]["missing_images_skipped"] == 3


def test_messages_render_with_the_chat_template(train_dir):
    from mimic.tiny import tiny_processor

    out, _ = train_dir
    processor = tiny_processor()
    for r in load_split(str(out), "listing", "train").select(range(3)):
        text = processor.apply_chat_template(r["messages"], tokenize=False)
        assert text.count("<image>") == r["num_images"]
        assert text.count("<|im_start|>assistant") == r["num_turns"]
        assert r["messages"][-1]["content"][0]["text"] in text


def test_sft_trainer_trains_on_rows(train_dir, tmp_path):
    from trl import SFTConfig, SFTTrainer

    from mimic.tiny import tiny_llava_onevision

    out, _ = train_dir
    model, processor = tiny_llava_onevision(seed=0)
    ds = load_split(str(out), "all", "train").shuffle(seed=0).select(range(4))
    args = SFTConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2, bf16=False, use_cpu=True,
                     report_to="none", max_length=None, logging_steps=1, save_strategy="no")
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=processor)
    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0


def test_same_seed_identical_bytes_and_llava_export(oi_world, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    build(oi_world, a, tasks=("common",), per_task=6, seed=3)
    build(oi_world, b, tasks=("common",), per_task=6, seed=3)
    f = "common/train-00000-of-00001.parquet"
    assert (a / f).read_bytes() == (b / f).read_bytes()
    out = tmp_path / "cli"
    assert main(["build", "train", "--oi-boxes", str(oi_world["boxes"]), "--oi-classes", str(oi_world["classes"]),
                 "--oi-hierarchy", str(oi_world["hierarchy"]), "--oi-images", str(oi_world["images"]),
                 "--out", str(out), "--tasks", "odd_one", "--per-task", "5", "--export", "llava", "--no-progress"]) == 0
    assert "skipped 3 images" in capsys.readouterr().out
    llava = json.loads((out / "llava" / "odd_one.json").read_text())
    ds = load_split(str(out), "odd_one", "train")
    assert [r["id"] for r in llava] == ds["id"]
    first = llava[0]
    assert first["conversations"][0]["value"].count("<image>\n") == len(first["image"]) == ds[0]["num_images"]
    assert first["conversations"][1]["value"] == ds[0]["messages"][1]["content"][0]["text"]


def test_coco_refused_and_overlap_reported(world, tmp_path, capsys):
    with pytest.raises(ConfigError, match="leak evaluation images"):
        MimicTrain(config_name="common", source="coco", annotations="x.json", images_dir="y")
    paths, index = world
    from mimic.builders.mimic_demo import MimicDemo

    bench, train = tmp_path / "bench", tmp_path / "train"
    b = MimicDemo(config_name="common", annotations=str(paths.annotations), images_dir=str(paths.images), num_samples=30)
    materialize(b, bench, progress=False)
    t = MimicTrain(config_name="common", source="synthetic", annotations=str(paths.annotations),
                   images_dir=str(paths.images), per_task=30)
    materialize(t, train, split="train", progress=False)
    assert main(["check-overlap", "--train", str(train), "--bench", str(bench)]) == 1
    assert "shared: " in capsys.readouterr().out
    assert main(["check-overlap", "--train", str(bench), "--bench", str(bench)]) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["check-overlap", "--train", str(train), "--bench", str(empty)]) == 2
