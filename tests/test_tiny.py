"""mimic.tiny: the offline tokenizer, the torchvision-free processor and the tiny random LLaVA-OneVision."""

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
