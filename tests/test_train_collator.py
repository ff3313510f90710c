"""MultiImageCollator on a hand-computed example (byte-level tokenizer: one token per character)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mimic.tiny import tiny_processor
from mimic.train_trl.collator import MultiImageCollator


@pytest.fixture(scope="module")
def proc():
    return tiny_processor()


def _row(n_images, question, answer):
    return {
        "images": [Image.new("RGB", (20 + i, 30), (50 * i, 80, 120)) for i in range(n_images)],
        "messages": [
            {"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": question}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
    }


# Rendered: "<|im_start|>user " + <image>*(5 per image) + "\n" + question + "<|im_end|>" + "<|im_start|>assistant "
#           + "\n" + answer + "<|im_end|>". Special tokens are one token each, every other character one token.
PREFIX = 1 + len("user ")          # 6 tokens before the first image
PER_IMAGE = (16 // 8) ** 2 + 1     # 4 grid tokens + image_newline


def _layout(n_images, question, answer):
    start = PREFIX + n_images * PER_IMAGE
    answer_at = start + 1 + len(question) + 1 + 1 + len("assistant ")
    total = answer_at + 1 + len(answer) + 1
    return start, answer_at, total


def test_image_ids_and_labels_match_hand_computed_values(proc):
    rows = [_row(2, "Hi?", "2"), _row(3, "Q", "ab")]
    batch = MultiImageCollator(proc, assistant_only_loss=True)(rows)
    assert set(batch) == {"input_ids", "attention_mask", "pixel_values", "image_sizes", "batch_num_images",
                          "labels", "image_ids"}
    _, ans_a, len_a = _layout(2, "Hi?", "2")
    _, ans_b, len_b = _layout(3, "Q", "ab")
    assert (len_a, len_b) == (35, 39)
    L = max(len_a, len_b)
    assert batch["input_ids"].shape == (2, L)

    expected_ids = torch.full((2, L), -1)
    expected_ids[0, 6:11], expected_ids[0, 11:16] = 0, 1
    expected_ids[1, 6:11], expected_ids[1, 11:16], expected_ids[1, 16:21] = 0, 1, 2
    assert torch.equal(batch["image_ids"], expected_ids)
    assert torch.equal(batch["image_ids"] >= 0, batch["input_ids"] == proc.image_token_id)

    eot = proc.tokenizer.convert_tokens_to_ids("<|im_end|>")
    expected_labels = torch.full((2, L), -100)
    for b, (at, ans) in enumerate([(ans_a, "2"), (ans_b, "ab")]):
        span = list("\n" + ans)
        expected_labels[b, at : at + len(span)] = torch.tensor(proc.tokenizer.convert_tokens_to_ids(
            [proc.tokenizer.convert_ids_to_tokens(i) for i in proc.tokenizer("\n" + ans)["input_ids"]]))
        expected_labels[b, at + len(span)] = eot  # the end-of-turn token stays in the loss
    assert torch.equal(batch["labels"], expected_labels)
    assert torch.equal(batch["attention_mask"][0], (torch.arange(L) < len_a).long())
    assert batch["pixel_values"].shape == (5, 1, 3, 16, 16) and batch["batch_num_images"].tolist() == [2, 3]


def test_without_assistant_only_loss_only_images_and_padding_are_ignored(proc):
    batch = MultiImageCollator(proc)([_row(2, "Hi?", "2"), _row(3, "Q", "ab")])
    labels, ids = batch["labels"], batch["input_ids"]
    ignored = labels == -100
    assert torch.equal(ignored, (batch["image_ids"] >= 0) | (batch["attention_mask"] == 0))
    assert torch.equal(labels[~ignored], ids[~ignored])


def test_dense_mask_option_and_no_image_ids(proc):
    from mimic.errors import ConfigError
    from mimic.train_trl.masking import ImageMaskSpec

    with pytest.raises(ConfigError, match="mask_spec"):
        MultiImageCollator(proc, dense_image_mask=True)
    collate = MultiImageCollator(proc, emit_image_ids=False, dense_image_mask=True, mask_spec=ImageMaskSpec((1,)))
    batch = collate([_row(2, "Hi?", "2")])
    assert "image_ids" not in batch
    m = batch["image_attention_mask"]
    assert m.shape == (1, 1, 35, 35) and m.dtype == torch.bool
    # second image's first token (position 11) sees only itself; the question after the images sees everything
    assert m[0, 0, 11].nonzero().flatten().tolist() == [11]
    assert m[0, 0, 16].nonzero().flatten().tolist() == list(range(17))
    # the spec's within_image reaches the dense mask: bidirectional lets the first token see its whole image
    bi = MultiImageCollator(proc, dense_image_mask=True, mask_spec=ImageMaskSpec((1,), within_image="bidirectional"))
    assert bi([_row(2, "Hi?", "2")])["image_attention_mask"][0, 0, 11].nonzero().flatten().tolist() == list(range(11, 16))


def test_unexpected_row_keys_raise(proc):
    row = _row(2, "Hi?", "2") | {"id": "x", "answer": "2"}
    with pytest.raises(KeyError, match=r"unexpected keys \['answer', 'id'\]"):
        MultiImageCollator(proc)([row])


def test_truncation_through_an_image_is_an_error(proc):
    with pytest.raises(ValueError, match="truncat"):  # the processor or our count check
        MultiImageCollator(proc, max_length=10)([_row(2, "Hi?", "2")])


def test_image_ids_from_counts_checks_every_row():
    from mimic.train_trl.masking import image_ids_from_counts

    ids = torch.tensor([[1, 9, 9, 9, 2], [9, 9, 3, 4, 5]])
    assert image_ids_from_counts(ids, 9, [[1, 2], [2]]).tolist() == [[-1, 0, 1, 1, -1], [0, 0, -1, -1, -1]]
    with pytest.raises(ValueError, match=r"sample 0: 3 <image> tokens but its images need 4"):
        image_ids_from_counts(ids, 9, [[2, 2], [2]])
