"""Every shipped training config parses into the dataclasses and matches the paper's recipe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mimic.train_trl.config import (
    DatasetSpec,
    MimicTrainArguments,
    lora_target_regex,
    parse_dataset_spec,
    parse_train_config,
    validate_config_file,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "train_trl" / "configs").glob("*.yaml"))
ACCELERATE = sorted((ROOT / "train_trl" / "accelerate").glob("*.yaml"))


def test_every_shipped_config_is_valid():
    assert len(CONFIGS) >= 7
    errors = [e for path in CONFIGS for e in validate_config_file(path)]
    assert errors == [], "\n".join(errors)  # every problem of every file, at once


def test_validation_reports_all_problems_of_a_file_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset_mixture: [x]\nmasked_layer: 12-23\nlearnin_rate: 1\nenv: {LAYERS: '12,23'}\n")
    errors = validate_config_file(bad)
    assert any("launch command" in e for e in errors)
    assert any("`env`" in e for e in errors)
    assert any("'masked_layer'" in e and "did you mean 'masked_layers'" in e for e in errors)
    assert any("'learnin_rate'" in e and "learning_rate" in e for e in errors)
    worse = tmp_path / "worse.yaml"
    worse.write_text("# accelerate launch train_trl/train.py --config worse.yaml\n"
                     "dataset_mixture: ['d=0']\nmasked_layers: 20-30\nmodel_name_or_path: "
                     "llava-hf/llava-onevision-qwen2-0.5b-si-hf\nuse_peft: false\nlora_r: 8\n"
                     "effective_batch_size: 10\nper_device_train_batch_size: 4\nuse_cpu: true\n")
    errors = validate_config_file(worse)
    assert any("does not parse" in e and "ratio must be > 0" in e for e in errors), errors


def test_semantic_checks_after_parsing(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("# accelerate launch train_trl/train.py --config c.yaml\n"
                   "dataset_mixture: [d]\nmasked_layers: 20-30\nmodel_name_or_path: "
                   "llava-hf/llava-onevision-qwen2-0.5b-si-hf\nuse_peft: false\nlora_r: 8\n"
                   "effective_batch_size: 10\nper_device_train_batch_size: 4\nuse_cpu: true\n")
    errors = validate_config_file(cfg)
    assert any("exceeds the 24 layers" in e for e in errors)
    assert any("use_peft is false" in e for e in errors)
    assert any("not a multiple" in e for e in errors)
    assert len(errors) == 3


def _load(name):
    return parse_train_config(ROOT / "train_trl" / "configs" / name, check_hardware=False)


def test_paper_recipes():
    script, sft, model = _load("llava_ov_0.5b_masked_lora.yaml")
    assert script.mask_layers == tuple(range(12, 24)) and model.use_peft and model.lora_r == 128
    assert sft.learning_rate == 2.5e-5 and script.effective_batch_size == 128
    assert sft.per_device_train_batch_size * sft.gradient_accumulation_steps * 8 == 128
    assert str(sft.lr_scheduler_type.value) == "cosine" and sft.warmup_steps == 0.03 and sft.weight_decay == 0
    assert model.model_name_or_path == "llava-hf/llava-onevision-qwen2-0.5b-si-hf"
    script, sft, model = _load("llava_ov_0.5b_full.yaml")
    assert script.mask_layers == () and not model.use_peft and sft.learning_rate == 2.5e-6
    assert _load("llava_ov_0.5b_masked_lora_layers_0-11.yaml")[0].mask_layers == tuple(range(12))
    assert _load("llava_ov_0.5b_masked_lora_layers_0-23.yaml")[0].mask_layers == tuple(range(24))
    script, sft, model = _load("llava_ov_7b_masked_lora.yaml")
    assert "7b" in model.model_name_or_path and model.lora_r == 128 and script.mask_layers == tuple(range(14, 28))


def test_launch_commands_point_at_existing_files():
    for path in CONFIGS + ACCELERATE:
        header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
        for ref in re.findall(r"train_trl/(?:configs|accelerate)/[\w.\-]+\.yaml", header):
            assert (ROOT / ref).exists(), f"{path.name} names missing {ref}"


def test_accelerate_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {load_config_from_file(str(p)).distributed_type.value for p in ACCELERATE}
    assert {"DEEPSPEED", "FSDP", "MULTI_GPU", "NO"} <= kinds


def test_dataset_spec_parsing():
    assert parse_dataset_spec("org/name") == DatasetSpec("org/name", None, "train", 1.0)
    assert parse_dataset_spec("org/name:counting@test=0.25") == DatasetSpec("org/name", "counting", "test", 0.25)
    assert parse_dataset_spec("./local/folder=3") == DatasetSpec("./local/folder", None, "train", 3.0)
    assert str(parse_dataset_spec("a:b@c=2")) == "a:b@c=2"
    for bad in ("x=abc", "x=0", "x=-1", ""):
        with pytest.raises(ValueError):
            parse_dataset_spec(bad)
    with pytest.raises(ValueError, match="masked_layers"):
        MimicTrainArguments(dataset_mixture=["d"], masked_layers="3-1")


def test_lora_targets_stay_in_the_language_model():
    import re as _re

    from mimic.tiny import tiny_llava_onevision

    model, _ = tiny_llava_onevision(num_layers=4)
    names = [n for n, _ in model.named_modules()]
    pattern = lora_target_regex(["q_proj", "v_proj", "down_proj"])
    hits = [n for n in names if _re.fullmatch(pattern, n)]
    assert len(hits) == 4 * 3 and all(".language_model.layers." in n for n in hits)
    assert any("vision_tower" in n and n.endswith("q_proj") for n in names)  # the regex has something to avoid
    only = [n for n in names if _re.fullmatch(lora_target_regex(["q_proj"], [2, 3]), n)]
    assert [n.split(".layers.")[1][0] for n in only] == ["2", "3"]
