"""The `hf:` adapter end to end: a tiny random LLaVA-OneVision saved with `save_tiny`, loaded back through
`hf:<path>` (AutoModelForImageTextToText + the torchvision-free processor), run by the real runner."""

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


# The Qwen2-VL chat template (images as <|vision_start|><|image_pad|><|vision_end|>, in content order, after
# the default system turn), reduced to what image+text prompts use.
QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _save_tiny_qwen2_vl(directory):
    """A randomly initialised 2-layer Qwen2-VL and its processor, saved like a Hub checkpoint."""
    from transformers import Qwen2Tokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.convert_slow_tokenizer import bytes_to_unicode
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

    from mimic.eval.models.hf import without_video_processor

    vocab = {"<|endoftext|>": 0, **{sym: i + 1 for i, sym in enumerate(bytes_to_unicode().values())}}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": [
        "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]})
    # 28 px per merged token: images become 2x2 .. 4x4 merged tokens (min/max pixels of the checkpoint).
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112)
    processor = without_video_processor(Qwen2VLProcessor)(image_processor=image_processor, tokenizer=tok,
                                                 chat_template=QWEN2_VL_TEMPLATE)
    ids = tok.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, pad_token_id=0,
                         bos_token_id=None, eos_token_id=ids("<|im_end|>")),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
    )
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)
    # As on the Hub: the stock processor class, which needs torchvision for its video processor.
    path = directory / "processor_config.json"
    path.write_text(path.read_text().replace('"Qwen2VLProcessorWithoutVideo"', '"Qwen2VLProcessor"'))
    assert '"Qwen2VLProcessor"' in path.read_text()
    return directory


def test_tiny_qwen2_vl_through_the_same_adapter(bench, cache, tmp_path):
    ckpt = _save_tiny_qwen2_vl(tmp_path / "qwen")
    results = run_eval(EvalSettings(data=str(bench), model=f"hf:{ckpt}", out=str(tmp_path / "run"),
                                    configs=["listing"], limit=2, batch_size=2, progress=False, cache_dir=cache,
                                    model_options={"max_new_tokens": 3}))
    assert results["run"]["adapter"]["model_class"] == "Qwen2VLForConditionalGeneration"
    assert results["run"]["adapter"]["family"] == "qwen2_vl"
    records = read_predictions(tmp_path / "run" / "predictions.jsonl")
    for r in records:
        n = r["controls"]["num_images"]
        assert r["prompt"].count("<|vision_start|><|image_pad|><|vision_end|>") == n
        # 320x320 images at most 112*112 pixels: 112x112 -> 8x8 patches of 14 -> 4x4 merged tokens each.
        assert r["info"]["image_tokens"] == 16 * n

    # --max-pixels is the Qwen2-VL knob: 56*56 pixels -> 2x2 merged tokens per image.
    small = run_eval(EvalSettings(data=str(bench), model=f"hf:{ckpt}", out=str(tmp_path / "small"),
                                  configs=["listing"], limit=2, batch_size=2, progress=False, cache_dir=cache,
                                  model_options={"max_new_tokens": 3, "max_pixels": 56 * 56}))
    assert small["run"]["adapter"]["options"]["max_pixels"] == 56 * 56
    for r in read_predictions(tmp_path / "small" / "predictions.jsonl"):
        assert r["info"]["image_tokens"] == 4 * r["controls"]["num_images"]


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
