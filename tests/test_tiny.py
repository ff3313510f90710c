"""mimic.tiny: the offline tokenizer, the torchvision-free processor and the tiny random models of every family."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mimic.tiny import (
    CHAT_TEMPLATE,
    PilLlavaOnevisionProcessor,
    byte_level_tokenizer,
    load_processor,
    save_tiny,
    tiny_llava_onevision,
)


def _images(n, size=(20, 30)):
    return [Image.new("RGB", size, (40 * i, 100, 200 - 30 * i)) for i in range(n)]


def test_byte_level_tokenizer_round_trips_any_text():
    tok = byte_level_tokenizer()
    text = "Wie viele Äpfel? 3 🍎\n<image>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    # One token per UTF-8 byte of the plain text, the special token is a single id.
    assert ids.count(tok.convert_tokens_to_ids("<image>")) == 1
    assert len(ids) == len("Wie viele Äpfel? 3 🍎\n".encode()) + 1
    assert tok.pad_token_id == 0 and tok.eos_token == "<|im_end|>"


def test_processor_counts_image_tokens_like_llava_onevision():
    _, proc = tiny_llava_onevision()
    assert isinstance(proc, PilLlavaOnevisionProcessor)
    assert proc.chat_template == CHAT_TEMPLATE
    messages = [{"role": "user", "content": [{"type": "image"}] * 3 + [{"type": "text", "text": "How many?"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user <image><image><image>\nHow many?<|im_end|><|im_start|>assistant\n"
    enc = proc(text=[text], images=[_images(3)], return_tensors="pt")
    # Multi-image sample: (16/8)^2 grid tokens + 1 image_newline per image.
    assert int((enc["input_ids"] == proc.image_token_id).sum()) == 3 * 5
    assert enc["pixel_values"].shape[:1] == (3,) and enc["batch_num_images"].tolist() == [3]


def test_tiny_model_is_seeded_and_runs_forward_and_generate():
    model_a, proc = tiny_llava_onevision(seed=0, num_layers=2)
    model_b, _ = tiny_llava_onevision(seed=0, num_layers=2)
    model_c, _ = tiny_llava_onevision(seed=1, num_layers=2)
    sd_a, sd_c = model_a.state_dict(), model_c.state_dict()
    assert all(torch.equal(v, model_b.state_dict()[k]) for k, v in sd_a.items())
    assert any(not torch.equal(v, sd_c[k]) for k, v in sd_a.items())
    assert model_a.config.text_config.num_hidden_layers == 2

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Hi"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = proc(text=[text], images=[_images(2)], return_tensors="pt")
    with torch.no_grad():
        out = model_a(**enc)
    assert out.logits.shape == (1, enc["input_ids"].shape[1], len(proc.tokenizer))
    gen = model_a.generate(**enc, max_new_tokens=3, do_sample=False)
    assert gen.shape[1] <= enc["input_ids"].shape[1] + 3


def test_save_tiny_loads_back_with_from_pretrained_and_load_processor(tmp_path):
    from transformers import LlavaOnevisionForConditionalGeneration

    path = save_tiny(tmp_path / "tiny", seed=3, num_layers=2)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(path)  # a local folder from save_tiny
    proc = load_processor(path)
    # AutoProcessor gives a bare tokenizer for this processor class; load_processor must not return that.
    assert isinstance(proc, PilLlavaOnevisionProcessor)
    assert proc.num_image_tokens == 4 and proc.image_processor.size["height"] == 16
    reference, _ = tiny_llava_onevision(seed=3, num_layers=2)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())


def test_load_processor_raises_for_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        load_processor(tmp_path / "nothing-here")


def test_real_shape_config_has_the_checkpoints_shapes_and_token_counts():
    """The real 0.5B configuration, counted on the meta device (no weights): 894M parameters, 730 tokens per
    image of a multi-image sample, anyres for a single image."""
    from PIL import Image
    from transformers import LlavaOnevisionForConditionalGeneration

    from mimic.tiny import real_shape_config, real_shape_processor
    from mimic.train_trl.masking import image_token_counts

    proc = real_shape_processor()
    config = real_shape_config(proc.tokenizer)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads,
            text.intermediate_size, text.vocab_size) == (896, 24, 14, 2, 4864, 152000)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads, vision.intermediate_size,
            vision.image_size, vision.patch_size) == (1152, 26, 16, 4304, 384, 14)
    with torch.device("meta"):
        model = LlavaOnevisionForConditionalGeneration(config)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == 894

    images = [Image.new("RGB", (500, 375)), Image.new("RGB", (360, 480))]
    for pics in (images, images[:1]):
        messages = [{"role": "user", "content": [{"type": "image"}] * len(pics) + [{"type": "text", "text": "Hi"}]}]
        text_in = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = proc(text=[text_in], images=[pics], return_tensors="pt")
        counts = image_token_counts(config, enc["image_sizes"], enc["batch_num_images"].tolist())
        assert int((enc["input_ids"] == config.image_token_id).sum()) == sum(counts[0])
        if len(pics) == 2:
            assert counts == [[730, 730]]
        else:
            assert counts[0][0] > 730  # anyres: base crop + grid


def _runs(ids: list[int], token: int) -> list[int]:
    """Lengths of the maximal runs of `token` in `ids`, in order."""
    runs, n = [], 0
    for i in [*ids, None]:
        if i == token:
            n += 1
        elif n:
            runs, n = [*runs, n], 0
    return runs


def test_tiny_qwen2_vl_lays_out_image_tokens_like_qwen2_vl():
    from mimic.tiny import QWEN2_VL_CHAT_TEMPLATE, tiny_qwen2_vl

    model, proc = tiny_qwen2_vl(seed=0, num_layers=2)
    tok = proc.tokenizer
    assert proc.chat_template == QWEN2_VL_CHAT_TEMPLATE
    messages = [{"role": "user", "content": [{"type": "image"}] * 2 + [{"type": "text", "text": "How many?"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                    + "<|vision_start|><|image_pad|><|vision_end|>" * 2 + "How many?<|im_end|>\n<|im_start|>assistant\n")
    # smart_resize by hand (multiples of 28 px, pixel count in [56*56, 112*112], aspect ratio kept):
    # 320x200 rounds to 308x196, over the budget -> beta = sqrt(320*200/12544) = 2.259, h = floor(200/beta/28)*28
    # = 84, w = floor(320/beta/28)*28 = 140 -> 6x10 patches of 14 px -> 3x5 = 15 merged tokens.
    # 40x40 rounds to 28x28, under the minimum -> beta = sqrt(3136/1600) = 1.4, h = w = ceil(40*1.4/28)*28 = 56
    # -> 4x4 patches -> 2x2 = 4 tokens.
    enc = proc(text=[text], images=[[Image.new("RGB", (320, 200)), Image.new("RGB", (40, 40))]], return_tensors="pt")
    assert enc["image_grid_thw"].tolist() == [[1, 6, 10], [1, 4, 4]]
    ids = enc["input_ids"][0].tolist()
    assert _runs(ids, proc.image_token_id) == [15, 4]  # = t*h*w / merge_size**2 per image
    start, end = tok.convert_tokens_to_ids("<|vision_start|>"), tok.convert_tokens_to_ids("<|vision_end|>")
    assert ids.count(start) == ids.count(end) == 2
    assert model.config.image_token_id == proc.image_token_id and model.config.vision_start_token_id == start
    with torch.no_grad():
        out = model(**enc)
    assert out.logits.shape == (1, len(ids), len(tok))


def test_tiny_internvl_tiles_images_like_internvl():
    from mimic.tiny import INTERNVL_CHAT_TEMPLATE, tiny_internvl

    model, proc = tiny_internvl(seed=0, num_layers=2)
    tok = proc.tokenizer
    assert proc.chat_template == INTERNVL_CHAT_TEMPLATE and proc.image_seq_length == 4
    messages = [{"role": "user", "content": [{"type": "image"}] * 3 + [{"type": "text", "text": "How many?"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\n" + "<IMG_CONTEXT>\n" * 3 + "How many?<|im_end|>\n<|im_start|>assistant\n"
    # Tiles of 56 px, 1..12 per image, grid closest to the aspect ratio, plus a thumbnail when there is > 1 tile:
    # 320x240 (4:3) -> 4x3 = 12 tiles + 1; 100x60 (5:3, 5x3 = 15 > 12) -> 3x2 (ratio 1.5) = 6 + 1; 56x56 -> 1x1
    # (a square canvas, the 2x2 grid would cover over twice the image) -> 1 tile, no thumbnail.
    images = [Image.new("RGB", (320, 240)), Image.new("RGB", (100, 60)), Image.new("RGB", (56, 56))]
    enc = proc(text=[text], images=[images], return_tensors="pt")
    assert enc["pixel_values"].shape == (13 + 7 + 1, 3, 56, 56)
    ids = enc["input_ids"][0].tolist()
    assert _runs(ids, proc.image_token_id) == [4 * 13, 4 * 7, 4 * 1]  # 4 tokens per tile
    # Each image: <img> <IMG_CONTEXT> x (4 x tiles) </img>, then the template's newline.
    img, end_img = tok.convert_tokens_to_ids("<img>"), tok.convert_tokens_to_ids("</img>")
    assert (proc.start_image_token_id, proc.end_image_token_id) == (img, end_img)
    starts = [i for i, t in enumerate(ids) if t == img]
    assert len(starts) == 3
    assert [ids[s + 1 + n] for s, n in zip(starts, [52, 28, 4], strict=True)] == [end_img] * 3
    assert model.config.image_token_id == proc.image_token_id
    with torch.no_grad():
        out = model(**enc)
    assert out.logits.shape == (1, len(ids), len(tok))


@pytest.mark.parametrize("family", ["qwen2_vl", "internvl"])
def test_save_tiny_other_families_load_back(family, tmp_path):
    from transformers import AutoModelForImageTextToText

    from mimic.eval.models.hf import load_processor_without_torchvision
    from mimic.tiny import tiny_model

    path = save_tiny(tmp_path / family, seed=3, num_layers=2, family=family)
    model = AutoModelForImageTextToText.from_pretrained(path)  # the local folder just written
    reference, ref_proc = tiny_model(family, seed=3, num_layers=2)
    assert model.config.model_type == family
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())
    proc = load_processor_without_torchvision(str(path), family)
    text = proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}],
                                    add_generation_prompt=True, tokenize=False)
    images = [[Image.new("RGB", (300, 200))]]
    got, want = proc(text=[text], images=images, return_tensors="pt"), ref_proc(text=[text], images=images,
                                                                                 return_tensors="pt")
    # Same prompt ids (special token ids, tokens per tile/patch) and pixels as the in-memory processor.
    assert torch.equal(got["input_ids"], want["input_ids"]) and torch.equal(got["pixel_values"], want["pixel_values"])


def test_unknown_family_is_a_config_error(tmp_path):
    from mimic.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown tiny model family 'llava'; choose one of llava_onevision"):
        save_tiny(tmp_path / "x", family="llava")
    assert not (tmp_path / "x").exists()


def test_tiny_model_command_writes_each_family(tmp_path, capsys):
    import dataclasses
    import json

    import mimic.commands.train  # noqa: F401  (registers `mimic tiny-model`)
    from mimic.cli import main as cli
    from mimic.commands.train import TinyModelOptions
    from mimic.tiny import FAMILIES

    [family_field] = [f for f in dataclasses.fields(TinyModelOptions) if f.name == "family"]
    # The CLI lists the choices itself (importing mimic.tiny would load transformers for `mimic --help`).
    assert tuple(family_field.metadata["choices"]) == FAMILIES
    assert all(f in family_field.metadata["help"] for f in FAMILIES)

    assert cli(["tiny-model", "--out", str(tmp_path / "ivl"), "--family", "internvl", "--layers", "3",
                "--seed", "1"]) == 0
    assert "wrote the tiny InternVL (3 layers, seed 1)" in capsys.readouterr().out
    config = json.loads((tmp_path / "ivl" / "config.json").read_text())
    assert config["model_type"] == "internvl" and config["text_config"]["num_hidden_layers"] == 3
    assert cli(["tiny-model", "--out", str(tmp_path / "default"), "--layers", "2"]) == 0
    assert json.loads((tmp_path / "default" / "config.json").read_text())["model_type"] == "llava_onevision"

    with pytest.raises(SystemExit) as bad:  # argparse's own choice check
        cli(["tiny-model", "--out", str(tmp_path / "x"), "--family", "qwen2_5_vl"])
    assert bad.value.code == 2 and "invalid choice: 'qwen2_5_vl'" in capsys.readouterr().err
    assert cli(["tiny-model", "--out", str(tmp_path / "y"), "--family", "qwen2_vl", "--layers", "0"]) == 2
    assert "--layers must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
