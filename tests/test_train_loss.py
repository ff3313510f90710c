"""The loss without full-vocabulary logits equals the full computation; train.py's trainer never builds them."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mimic.tiny import tiny_llava_onevision
from mimic.train_trl.collator import MultiImageCollator
from mimic.train_trl.loss import causal_lm_loss, scored_positions
from mimic.train_trl.masking import enable_image_masking


def _rows():
    def images(n, seed):
        g = torch.Generator().manual_seed(seed)
        return [Image.fromarray(torch.randint(0, 256, (30, 24 + 5 * i, 3), generator=g, dtype=torch.uint8).numpy())
                for i in range(n)]

    def row(n, seed, q, a):
        return {"images": images(n, seed), "messages": [
            {"role": "user", "content": [{"type": "image"}] * n + [{"type": "text", "text": q}]},
            {"role": "assistant", "content": [{"type": "text", "text": a}]}]}

    return [row(3, 0, "How many dogs?", "3"), row(2, 1, "Which is odd?", "the cat"), row(4, 2, "List them.", "a, b")]


@pytest.fixture(scope="module")
def batch():
    _, proc = tiny_llava_onevision()
    return MultiImageCollator(proc, assistant_only_loss=True)(_rows())


def test_scored_positions_are_those_before_a_label():
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, 7, -100, -100, -100]])
    assert scored_positions(labels).tolist() == [0, 1, 2]


@pytest.mark.parametrize("num_items", [None, 11])
def test_loss_and_gradients_equal_the_full_logits_computation(batch, num_items):
    model, _ = tiny_llava_onevision(seed=3)
    enable_image_masking(model, [2, 3])
    model.train()
    kw = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    full = model(**batch, **kw)
    assert full.logits.shape[1] == batch["input_ids"].shape[1]
    full.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    ours = causal_lm_loss(model, batch, num_items_in_batch=kw.get("num_items_in_batch"))
    ours.loss.backward()
    # only the positions that predict a labelled token were projected through the LM head
    assert ours.logits.shape[1] == len(ours.positions) < batch["input_ids"].shape[1] // 3
    assert int(ours.num_tokens) == int((batch["labels"][:, 1:] != -100).sum())
    torch.testing.assert_close(ours.loss, full.loss, rtol=1e-6, atol=0)
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, grads[name], rtol=1e-5, atol=1e-7, msg=name)


def test_train_py_trainer_never_runs_the_full_lm_head(tmp_path):
    """SFTTrainer (TRL 1.16) replaces the loss forward with its fused LM head: the lm_head module never runs."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    model, proc = tiny_llava_onevision()
    handle = enable_image_masking(model, [2, 3])
    calls = []
    model.lm_head.register_forward_hook(lambda m, i, o: calls.append(tuple(o.shape)))
    ds = datasets.Dataset.from_list(_rows())
    args = SFTConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=3, use_cpu=True, bf16=False,
                     report_to="none", assistant_only_loss=True, gradient_checkpointing=False, logging_steps=1,
                     save_strategy="no")
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=proc,
                         data_collator=MultiImageCollator(proc, assistant_only_loss=True))
    trainer.train()
    assert handle.mask_builds == 1 and calls == []
