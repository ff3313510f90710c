"""`mimic diagnose attention` on a tiny random LLaVA-OneVision: normalisation, shapes, and the masking
invariant (inter-image mass exactly 0 in masked layers, not 0 in the others)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import build_demo_folder
from PIL import Image

from mimic.eval.diagnostics.attention import (
    AttentionSettings,
    attention_stats,
    run_attention,
    sample_attention,
)
from mimic.eval.families import FAMILIES
from mimic.tiny import tiny_llava_onevision
from mimic.train_trl.masking import enable_image_masking

CONFIGS = ("counting_balanced",)


def _batch(processor, n_images: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = [Image.fromarray((torch.rand(16, 16, 3, generator=g) * 255).to(torch.uint8).numpy()) for _ in
              range(n_images)]
    messages = [{"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": "how many?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=[images], return_tensors="pt")


def test_stats_normalise_and_follow_the_causal_mask():
    torch.manual_seed(0)
    ids = torch.tensor([-1, 0, 0, 1, 1, 1, -1, 2, 2, -1])
    scores = torch.randn(3, 10, 10).masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), float("-inf"))
    s = attention_stats(scores.softmax(-1), ids, 3)
    assert s["inter"] + s["intra"] == pytest.approx(1.0, abs=1e-12)
    m = torch.tensor(s["matrix"], dtype=torch.float64)
    assert m.shape == (3, 3)
    assert torch.allclose(m.sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.all(m.triu(1) == 0)  # causal: no image attends to a later one
    assert m[0, 0] == 1.0
    # by hand, with loops: per query, its vision keys' weights normalised, summed per image, heads averaged
    w = scores.softmax(-1).double()
    vis = [t for t in range(10) if ids[t] >= 0]
    rows: dict[int, list] = {0: [], 1: [], 2: []}
    inters = []
    for q in vis:
        per_head = []
        for h in range(3):
            tot = sum(w[h, q, k] for k in vis)
            per_head.append([sum(w[h, q, k] for k in vis if ids[k] == j) / tot for j in range(3)])
        f = torch.tensor(per_head).mean(0)
        rows[int(ids[q])].append(f)
        inters.append(1 - f[int(ids[q])])
    expected = torch.stack([torch.stack(rows[j]).mean(0) for j in range(3)])
    assert torch.allclose(m, expected, atol=1e-6)  # the per-image sums run in float32
    assert s["inter"] == pytest.approx(float(torch.stack(inters).mean()), abs=1e-6)


def test_masking_zeroes_inter_image_attention_in_its_layers_only():
    model, processor = tiny_llava_onevision(seed=0, num_layers=4, attn_implementation="eager")
    batch = _batch(processor, 4)
    family = FAMILIES.get("llava_onevision")
    ids = family.image_ids(model, processor, batch, [4])
    assert ids.max() == 3 and int((ids >= 0).sum()) == 4 * 5
    layers = family.text_layers(model)
    plain = sample_attention(model, batch, ids, layers)
    assert [entry["layer"] for entry in plain] == [0, 1, 2, 3]
    assert all(entry["inter"] > 0 for entry in plain)
    handle = enable_image_masking(model, [1, 3], backend="eager")
    try:
        masked = sample_attention(model, batch, ids, layers)
    finally:
        handle.remove()
    for entry in masked:
        assert entry["inter"] + entry["intra"] == pytest.approx(1.0, abs=1e-9)
        m = torch.tensor(entry["matrix"], dtype=torch.float64)
        assert m.shape == (4, 4) and torch.allclose(m.sum(1), torch.ones(4, dtype=torch.float64))
        if entry["layer"] in (1, 3):
            assert entry["inter"] == 0.0 and entry["intra"] == 1.0
            assert torch.equal(m, torch.eye(4, dtype=torch.float64))
        else:
            assert entry["inter"] > 0
    # layer 0 comes before any masked layer, so it sees the same inputs: same numbers as without masking
    assert masked[0]["inter"] == pytest.approx(plain[0]["inter"], rel=1e-6)


def test_sdpa_is_refused():
    model, processor = tiny_llava_onevision(seed=0, num_layers=2, attn_implementation="sdpa")
    batch = _batch(processor, 2)
    from mimic.errors import ConfigError

    with pytest.raises(ConfigError, match="eager"):
        family = FAMILIES.get("llava_onevision")
        sample_attention(model, batch, family.image_ids(model, processor, batch, [2]), family.text_layers(model))


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-attn-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=6)
    return out


def test_run_attention_writes_json_plots_and_resumes(bench, cache, tmp_path):
    from mimic.tiny import save_tiny

    tiny = save_tiny(tmp_path / "model", seed=0, num_layers=3)
    settings = AttentionSettings(data=str(bench), model=f"hf:{tiny}", out=str(tmp_path / "attn"), samples=3,
                                 progress=False, cache_dir=cache)
    summary = run_attention(settings)
    on_disk = json.loads((tmp_path / "attn" / "attention.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["samples"] == 3 and [entry["layer"] for entry in summary["layers"]] == [0, 1, 2]
    for entry in summary["layers"]:
        assert set(entry) >= {"layer", "inter", "intra", "matrix"}
        assert entry["inter"] + entry["intra"] == pytest.approx(1.0, abs=1e-9)
        n = summary["matrix_num_images"]
        assert len(entry["matrix"]) == n and all(abs(sum(r) - 1) < 1e-9 for r in entry["matrix"])
    for name in ("attention_by_layer.png", "attention_heatmaps.png"):
        assert (tmp_path / "attn" / name).stat().st_size > 1000
    lines = (tmp_path / "attn" / "attention_samples.jsonl").read_text().splitlines()
    assert len(lines) == 3
    # resume: one more sample computes only that one; the first three lines stay as they were
    again = run_attention(AttentionSettings(**{**vars(settings), "samples": 4}))
    after = (tmp_path / "attn" / "attention_samples.jsonl").read_text().splitlines()
    assert after[:3] == lines and len(after) == 4 and again["samples"] == 4

    # `mimic report` on the diagnose folder alone: a report of its own with the per-layer table and plots
    from mimic.cli import main

    assert main(["report", str(tmp_path / "attn"), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.startswith("# MIMIC evaluation report") and "## Diagnostics" in md and "| layer | inter | intra |" in md
    assert f"| 0 | {100 * again['layers'][0]['inter']:.1f} |" in md
    assert (tmp_path / "report" / "diag1_attention_by_layer.png").is_file()
