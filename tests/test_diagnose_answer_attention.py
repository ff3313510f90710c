"""`mimic diagnose answer-attention` on two tiny random LLaVA-OneVisions: shapes, shares, resume, plot."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import build_demo_folder

from mimic.errors import ConfigError
from mimic.eval.diagnostics.answer_attention import AnswerAttentionSettings, run_answer_attention
from mimic.tiny import save_tiny


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-answer-bench") / "bench"
    build_demo_folder(world, out, ("counting_balanced",), num=4)
    return out


def test_answer_attention_two_models(bench, cache, tmp_path):
    a = save_tiny(tmp_path / "a", seed=0, num_layers=3)
    b = save_tiny(tmp_path / "b", seed=1, num_layers=3)
    settings = AnswerAttentionSettings(data=str(bench), models=[f"hf:{a}", f"hf:{b}"], out=str(tmp_path / "ans"),
                                       samples=2, layer=2, model_options={"max_new_tokens": 3}, cache_dir=cache,
                                       progress=False)
    summary = run_answer_attention(settings)
    assert list(summary["models"]) == [f"hf:{a}", f"hf:{b}"] and len(summary["samples"]) == 2
    for per_sample in summary["models"].values():
        assert list(per_sample) == summary["samples"]
        for e in per_sample.values():
            n = 7  # counting_balanced: 7 images
            assert len(e["mass"]) == n and len(e["map"]) == n
            assert all(torch.tensor(m).shape == (2, 2) for m in e["map"])  # tiny: (16 / 8)^2 patches
            assert 0 < sum(e["mass"]) <= 1 + 1e-9
            # each map is its image's share without the newline token
            assert all(sum(map(sum, m)) < s + 1e-12 for m, s in zip(e["map"], e["mass"], strict=True))
            assert e["answer_tokens"] >= 1
    # the two random models attend differently
    first = summary["samples"][0]
    assert summary["models"][f"hf:{a}"][first]["mass"] != summary["models"][f"hf:{b}"][first]["mass"]
    assert (tmp_path / "ans" / "answer_attention.png").stat().st_size > 1000
    assert json.loads((tmp_path / "ans" / "answer_attention.json").read_text()) == json.loads(json.dumps(summary))
    # resume: nothing to redo, same numbers
    assert run_answer_attention(settings) == summary
    with pytest.raises(ConfigError, match="layers 0-2"):
        run_answer_attention(AnswerAttentionSettings(**{**vars(settings), "layer": 15, "out": str(tmp_path / "x")}))
