"""The `hf:` adapter end to end: tiny random checkpoints of every family (LLaVA-OneVision, Qwen2-VL, InternVL)
saved with `save_tiny`, loaded back through `hf:<path>` (AutoModelForImageTextToText + the torchvision-free
processor), run by the real runner."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import build_demo_folder

from mimic.builders.sample import GENERATOR_VERSION
from mimic.errors import ConfigError
from mimic.eval.api import Request, create_model
from mimic.eval.data import load_config
from mimic.eval.models.hf import chat_messages, resolve_dtype
from mimic.eval.predictions import read_predictions
from mimic.eval.runner import EvalSettings, run_eval
from mimic.tiny import save_tiny

CONFIGS = ("counting_balanced", "listing")


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-hf-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=6)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0, num_layers=2)


def test_tiny_llava_onevision_end_to_end(bench, cache, tiny, tmp_path):
    spec = f"hf:{tiny}"
    settings = EvalSettings(data=str(bench), model=spec, out=str(tmp_path / "run"), configs=list(CONFIGS), limit=3,
                            batch_size=2, progress=False, model_options={"max_new_tokens": 4}, cache_dir=cache)
    results = run_eval(settings)
    records = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert [r["config"] for r in records] == ["counting_balanced"] * 3 + ["listing"] * 3
    for r in records:
        n = r["controls"]["num_images"]
        # The llava-hf chat template: one <image> per image, all before the question, then the assistant turn.
        assert r["prompt"].startswith("<|im_start|>user " + "<image>" * n + "\n")
        assert r["prompt"].endswith("<|im_end|><|im_start|>assistant\n")
        # Several images: (16/8)^2 grid tokens + 1 newline each, the tiny analogue of LLaVA-OV's 729 + 1.
        assert n > 1 and r["info"]["image_tokens"] == 5 * n
        assert 1 <= r["info"]["output_tokens"] <= 4
        assert isinstance(r["output"], str) and r["latency_s"] > 0
        assert r["parse_failed"] == (r["parsed"] is None)
    adapter = results["run"]["adapter"]
    assert adapter["model_class"] == "LlavaOnevisionForConditionalGeneration"
    assert adapter["processor_class"] == "PilLlavaOnevisionProcessor"
    assert (adapter["dtype"], adapter["device"], adapter["family"]) == ("float32", "cpu", "llava_onevision")
    assert results["run"]["generator_version"] == [GENERATOR_VERSION] and results["run"]["model"] == spec
    assert {c: s["n"] for c, s in results["configs"].items()} == {"counting_balanced": 3, "listing": 3}
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["table4"] == results["table4"]

    # Greedy decoding: a second run in another folder gives the same answers.
    again = run_eval(EvalSettings(**{**vars(settings), "out": str(tmp_path / "again")}))
    assert [r["output"] for r in read_predictions(tmp_path / "again" / "predictions.jsonl")] == [
        r["output"] for r in records]
    assert again["configs"]["listing"]["score"] == results["configs"]["listing"]["score"]


def test_adapter_matches_a_hand_written_generate(bench, cache, tiny):
    from transformers import LlavaOnevisionForConditionalGeneration

    from mimic.tiny import load_processor

    row = load_config(str(bench), "counting_balanced", cache_dir=cache)[0]
    request = Request(id=row["id"], config=row["config"], task=row["task"], question=row["question"],
                      images=row["images"], sample={k: v for k, v in row.items() if k != "images"})
    model = create_model(f"hf:{tiny}", {"max_new_tokens": 6})
    [generation] = model.generate([request])

    ref = LlavaOnevisionForConditionalGeneration.from_pretrained(tiny).eval()  # the local tiny folder
    proc = load_processor(tiny)
    text = proc.apply_chat_template(chat_messages(row["question"], len(row["images"])), add_generation_prompt=True,
                                    tokenize=False)
    enc = proc(text=[text], images=[row["images"]], return_tensors="pt")
    with torch.no_grad():
        out = ref.generate(**enc, max_new_tokens=6, do_sample=False)
    expected = proc.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)[0].strip()
    assert generation.text == expected
    assert generation.info["input_tokens"] == enc["input_ids"].shape[1]


def test_dtype_and_device_choices(tiny, bench, cache):
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    model = create_model(f"hf:{tiny}", {"dtype": "bfloat16", "device": "cpu", "max_new_tokens": 2})
    row = load_config(str(bench), "listing", cache_dir=cache)[0]
    [gen] = model.generate([Request(id=row["id"], config="listing", task="listing", question=row["question"],
                                    images=row["images"], sample={})])
    assert model.model.dtype == torch.bfloat16 and model.describe()["dtype"] == "bfloat16"
    assert isinstance(gen.text, str)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    model = create_model(f"hf:{tmp_path / 'nothing'}")
    with pytest.raises(ConfigError, match="cannot read the checkpoint's config"):
        model.load()


# Image tokens per 320x320 image (the test world's size) in a multi-image sample, worked out by hand from each
# tiny geometry (mimic/tiny.py), not read from the code under test:
# - LLaVA-OneVision: one 16 px crop in 8 px patches -> 2x2 grid + 1 image_newline = 5.
# - Qwen2-VL: 320x320 is over max_pixels 112*112, so smart_resize scales it to 112x112 (multiples of 28) ->
#   8x8 patches of 14 px -> 2x2 merge -> 4x4 = 16 <|image_pad|>.
# - InternVL: 56 px tiles, square image: grids 1x1, 2x2, 3x3 tie on aspect ratio and the largest whose area stays
#   under twice the image's wins (9 * 56^2 / 2 < 320^2) -> 3x3 tiles + 1 thumbnail = 10 tiles x (4x4 patches
#   pixel-shuffled to 2x2) 4 = 40 <IMG_CONTEXT>.
PER_IMAGE = {"llava_onevision": 5, "qwen2_vl": 16, "internvl": 40}
PROMPT_IMAGE = {"llava_onevision": "<image>", "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
                "internvl": "<IMG_CONTEXT>\n"}
MODEL_CLASS = {"llava_onevision": "LlavaOnevisionForConditionalGeneration",
               "qwen2_vl": "Qwen2VLForConditionalGeneration", "internvl": "InternVLForConditionalGeneration"}


@pytest.mark.parametrize("family", sorted(PER_IMAGE))
def test_every_tiny_family_runs_end_to_end_through_hf(family, bench, cache, tmp_path):
    rows = load_config(str(bench), "listing", cache_dir=cache)
    assert all(im.size == (320, 320) for row in rows for im in row["images"]), "PER_IMAGE assumes 320x320 images"
    ckpt = save_tiny(tmp_path / family, seed=0, num_layers=2, family=family)
    results = run_eval(EvalSettings(data=str(bench), model=f"hf:{ckpt}", out=str(tmp_path / "run"),
                                    configs=["listing"], limit=2, batch_size=2, progress=False, cache_dir=cache,
                                    model_options={"max_new_tokens": 3}))
    adapter = results["run"]["adapter"]
    assert (adapter["model_class"], adapter["family"]) == (MODEL_CLASS[family], family)
    records = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert len(records) == 2
    for r in records:
        n = r["controls"]["num_images"]
        assert n > 1 and r["prompt"].count(PROMPT_IMAGE[family]) == n
        assert r["info"]["image_tokens"] == PER_IMAGE[family] * n
        assert 1 <= r["info"]["output_tokens"] <= 3


def test_tiny_qwen2_vl_max_pixels_and_the_hub_processor_class(bench, cache, tmp_path):
    ckpt = save_tiny(tmp_path / "qwen", seed=0, num_layers=2, family="qwen2_vl")
    # As on the Hub: the stock processor class (it needs torchvision), loaded here without its video processor.
    assert json.loads((ckpt / "processor_config.json").read_text())["processor_class"] == "Qwen2VLProcessor"
    # --max-pixels is the Qwen2-VL knob: 56*56 pixels -> 2x2 patches of 28 px -> 2x2 merged tokens per image.
    small = run_eval(EvalSettings(data=str(bench), model=f"hf:{ckpt}", out=str(tmp_path / "small"),
                                  configs=["listing"], limit=2, batch_size=2, progress=False, cache_dir=cache,
                                  model_options={"max_new_tokens": 3, "max_pixels": 56 * 56}))
    assert small["run"]["adapter"]["options"]["max_pixels"] == 56 * 56
    for r in read_predictions(tmp_path / "small" / "predictions.jsonl"):
        assert r["info"]["image_tokens"] == 4 * r["controls"]["num_images"]


def test_tiny_internvl_max_patches_bounds_the_tiles(bench, cache, tmp_path):
    ckpt = save_tiny(tmp_path / "internvl", seed=0, num_layers=2, family="internvl")
    assert json.loads((ckpt / "processor_config.json").read_text())["processor_class"] == "InternVLProcessor"
    # --max-patches 4: grids 1x1 and 2x2 remain, 2x2 wins -> 4 tiles + thumbnail = 5 tiles x 4 tokens = 20.
    run = run_eval(EvalSettings(data=str(bench), model=f"hf:{ckpt}", out=str(tmp_path / "run"),
                                configs=["listing"], limit=2, batch_size=2, progress=False, cache_dir=cache,
                                model_options={"max_new_tokens": 3, "max_patches": 4}))
    assert run["run"]["adapter"]["processor_class"] == "InternVLProcessorWithoutVideo"
    for r in read_predictions(tmp_path / "run" / "predictions.jsonl"):
        assert r["info"]["image_tokens"] == 20 * r["controls"]["num_images"]


def test_a_flex_masked_folder_evaluates_on_cpu_and_mask_backend_switches_the_kernel(bench, cache, tmp_path, capsys):
    """A folder saved with a flex mask (as train.py writes it on a GPU) evaluated on this CPU through the CLI:
    several prompt shapes (batches of 2 and 1) each compile flex once, under the library's scoped settings."""
    import mimic.commands.evaluate  # noqa: F401  (registers `mimic eval`)
    from mimic.cli import main as cli
    from mimic.train_trl.masking import MASK_FILE, ImageMaskSpec

    model_dir = save_tiny(tmp_path / "model", seed=0, num_layers=2)
    (model_dir / MASK_FILE).write_text(json.dumps(ImageMaskSpec(layers=(1,), backend="flex_attention").to_dict()))
    common = ["eval", "--data", str(bench), "--model", f"hf:{model_dir}", "--configs", *CONFIGS, "--limit", "3",
              "--batch-size", "2", "--max-new-tokens", "3", "--no-progress", "--cache-dir", cache, "--bootstrap", "0"]
    outputs = {}
    for backend in (None, "sdpa"):
        run = tmp_path / f"run-{backend}"
        assert cli([*common, "--out", str(run), *(["--mask-backend", backend] if backend else [])]) == 0
        results = json.loads((run / "results.json").read_text())
        assert results["run"]["adapter"]["image_masking"] == {"layers": [1], "backend": backend or "flex_attention"}
        outputs[backend] = [r["output"] for r in read_predictions(run / "predictions.jsonl")]
    assert len(outputs[None]) == 6 and outputs[None] == outputs["sdpa"], "same mask, same greedy answers"

    capsys.readouterr()
    with pytest.raises(SystemExit) as bad:  # argparse's own choice check
        cli([*common, "--out", str(tmp_path / "bad"), "--mask-backend", "flash_attention_2"])
    assert bad.value.code == 2 and "--mask-backend" in capsys.readouterr().err
    plain = save_tiny(tmp_path / "plain", seed=0, num_layers=2)
    common[common.index(f"hf:{model_dir}")] = f"hf:{plain}"
    assert cli([*common, "--out", str(tmp_path / "plain-run"), "--mask-backend", "sdpa"]) == 2
    assert "not trained with per-image masks" in capsys.readouterr().err
