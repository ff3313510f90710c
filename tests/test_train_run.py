"""Training end to end on the tiny model: overfit one batch, run train.py, save, reload, generate, publish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mimic.commands.train  # noqa: F401  (registers the training commands with the CLI)
from mimic.cli import main as cli
from mimic.tiny import tiny_llava_onevision
from mimic.train_trl.collator import MultiImageCollator
from mimic.train_trl.masking import enable_image_masking

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A saved tiny model and a small demo training set (8 conversations), built with the CLI commands."""
    root = tmp_path_factory.mktemp("train")
    assert cli(["tiny-model", "--out", str(root / "model")]) == 0
    assert cli(["demo-trainset", "--out", str(root / "data"), "--per-task", "2", "--world-images", "60",
                "--image-size", "64"]) == 0
    return root


def test_demo_trainset_is_in_trl_conversational_format(assets):
    import datasets

    ds = datasets.load_dataset(str(assets / "data"), split="train")  # a local folder; HF_HUB_OFFLINE is set
    assert len(ds) == 8 and {"images", "messages"} <= set(ds.column_names)
    for row in ds:
        msgs = row["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant"] * (len(msgs) // 2)
        n_placeholders = sum(c["type"] == "image" for c in msgs[0]["content"])
        assert 2 <= n_placeholders == len(row["images"]) <= 4
        assert not any(c["type"] == "image" for m in msgs[1:] for c in m["content"])
        assert all(m["content"][-1]["type"] == "text" and m["content"][-1]["text"] for m in msgs)


def test_overfitting_one_batch_lowers_the_loss_with_the_mask_on(assets):
    import datasets

    model, proc = tiny_llava_onevision(seed=0, num_layers=4)
    handle = enable_image_masking(model, [2, 3])
    ds = datasets.load_dataset(str(assets / "data"), split="train").select_columns(  # a local folder
        ["images", "messages"])
    rows = list(ds.select(range(4)))
    batch = MultiImageCollator(proc, assistant_only_loss=True)(rows)
    model.model.vision_tower.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(10):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert handle.mask_builds == 10
    assert losses[-1] < 0.5 * losses[0], losses


def _train(assets, config, out, steps=3, extra=()):
    from mimic.train_trl.train import main

    return main(["--config", str(ROOT / "train_trl" / "configs" / config),
                 "--model_name_or_path", str(assets / "model"),
                 "--dataset_mixture", f"{assets / 'data'}@train=1",
                 "--output_dir", str(out), "--max_steps", str(steps), "--logging_steps", "1", *extra])


def test_a_flex_config_on_cpu_trains_with_sdpa_after_one_warning(assets, tmp_path, caplog):
    import logging

    caplog.set_level(logging.WARNING, logger="mimic.train_trl.train")
    # decided before any model or data work: with a missing model folder the warning still comes first
    with pytest.raises(OSError):
        _train(assets, "tiny_masked_lora.yaml", tmp_path / "none", extra=["--mask_backend", "flex_attention",
                                                                         "--model_name_or_path", str(tmp_path / "x")])
    assert "mask_backend flex_attention cannot train on cpu" in caplog.text
    caplog.clear()
    out = _train(assets, "tiny_masked_lora.yaml", tmp_path / "run", steps=1, extra=["--mask_backend", "flex_attention"])
    assert [r.getMessage().count("\n") for r in caplog.records if "flex_attention" in r.getMessage()] == [0]
    assert json.loads((out / "image_masking.json").read_text())["backend"] == "sdpa"
    assert json.loads((out / "mimic_training.json").read_text())["image_masking"]["backend"] == "sdpa"


def _generate(model, proc):
    from PIL import Image

    images = [Image.new("RGB", (30, 30), (60 * i, 90, 30)) for i in range(3)]
    messages = [{"role": "user", "content": [{"type": "image"}] * 3 + [{"type": "text", "text": "How many?"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = proc(text=[text], images=[images], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=4, do_sample=False)
    return out[0, enc["input_ids"].shape[1]:]


def test_masked_lora_run_saves_reloads_and_generates(assets, tmp_path, capsys):
    from mimic.train_trl import load_trained

    out = _train(assets, "tiny_masked_lora.yaml", tmp_path / "run")
    for name in ("adapter_config.json", "adapter_model.safetensors", "processor_config.json", "README.md",
                 "image_masking.json", "mimic_training.json"):
        assert (out / name).exists(), name
    assert json.loads((out / "image_masking.json").read_text())["layers"] == [2, 3]
    summary = json.loads((out / "mimic_training.json").read_text())
    assert summary["global_step"] == 3 and len(summary["losses"]) == 3 and summary["lora"]["r"] == 16
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert "vision_tower" not in adapter["target_modules"] and "language_model" in adapter["target_modules"]
    card = (out / "README.md").read_text()
    assert "layers **2-3**" in card and "r = 16" in card and "library_name: peft" in card
    assert f"{summary['first_loss']:.4g}" in card

    model, proc = load_trained(out)
    assert model.config.text_config._attn_implementation == "mimic_image_sdpa"
    assert model._mimic_image_masking.spec.layers == (2, 3)
    assert not hasattr(model, "peft_config") or not model.peft_config  # adapter merged
    assert len(_generate(model, proc)) >= 1
    assert model._mimic_image_masking.mask_builds == 1

    # The evaluation adapter loads the run folder the same way: adapter merged, mask on the same layers.
    from PIL import Image

    from mimic.eval.api import Request, create_model

    adapter_model = create_model(f"hf:{out}", {"max_new_tokens": 3, "mask_backend": "eager"})
    images = [Image.new("RGB", (30, 30), (60 * i, 90, 30)) for i in range(3)]
    (answer,) = adapter_model.generate([Request("x", "common", "common", "Which class?", images)])
    loaded = adapter_model.model
    assert loaded.config.text_config._attn_implementation == "mimic_image_eager"
    assert loaded._mimic_image_masking.spec.layers == (2, 3) and loaded._mimic_image_masking.mask_builds == 1
    assert adapter_model.describe()["image_masking"] == {"layers": [2, 3], "backend": "eager"}
    assert isinstance(answer.text, str)

    # publishing: the dry run lists the files and never builds a Hub client
    import huggingface_hub

    def no_network(*a, **k):
        raise AssertionError("--dry-run must not touch the Hub")

    capsys.readouterr()
    mp = pytest.MonkeyPatch()
    mp.setattr(huggingface_hub, "HfApi", no_network)
    try:
        assert cli(["push-model", str(out), "--repo", "me/tiny-masked", "--dry-run", "--private"]) == 0
    finally:
        mp.undo()
    listing = capsys.readouterr().out
    assert "private model repo me/tiny-masked" in listing
    assert "adapter_model.safetensors" in listing and "README.md" in listing


def test_full_run_has_no_mask_and_push_uses_upload_folder(assets, tmp_path, monkeypatch, capsys):
    from mimic.train_trl import load_trained

    out = _train(assets, "tiny_full.yaml", tmp_path / "full", steps=2)
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()
    assert json.loads((out / "image_masking.json").read_text()) is None
    model, proc = load_trained(out)
    assert model.config.text_config._attn_implementation == "sdpa"
    assert not hasattr(model, "_mimic_image_masking")
    assert len(_generate(model, proc)) >= 1
    (out / "checkpoint-1").mkdir()
    (out / "checkpoint-1" / "optimizer.pt").write_bytes(b"x")

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw))

        def upload_folder(self, **kw):
            calls.append(("upload_folder", kw))
            return "https://huggingface.co/me/tiny-full/commit/abc"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token_123")
    assert cli(["push-model", str(out), "--repo", "me/tiny-full"]) == 0
    printed = capsys.readouterr()
    assert "hf_not_a_real_token_123" not in printed.out + printed.err
    assert calls[0] == ("create_repo", "me/tiny-full", {"repo_type": "model", "private": False, "exist_ok": True})
    upload = calls[1][1]
    assert upload["folder_path"] == str(out) and "checkpoint-*" in upload["ignore_patterns"]
    from mimic.commands.train import files_to_push

    assert not any(str(f).startswith("checkpoint-") for f in files_to_push(out))


def test_push_model_rejects_a_folder_without_a_model(tmp_path, capsys):
    assert cli(["push-model", str(tmp_path), "--repo", "me/x", "--dry-run"]) == 2
    assert "neither config.json nor adapter_config.json" in capsys.readouterr().err


def test_flops_command(capsys, tmp_path):
    assert cli(["flops", "--paper"]) == 0
    out = capsys.readouterr().out
    assert "58.0B" in out and "11.2B" in out and "106.9B" in out and "26.7B" in out
    assert cli(["flops", "--train-config", str(ROOT / "train_trl/configs/llava_ov_0.5b_masked_lora.yaml")]) == 0
    out = capsys.readouterr().out
    assert "masked layers: 12-23 (12 of 24)" in out and "14 query / 2 KV heads" in out
    assert cli(["flops", "--model-config", "llava-hf/llava-onevision-qwen2-0.5b-si-hf", "--masked-layers", "30"]) == 2
