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
    balanced_rows,
    chance_stats,
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


def _by_hand(w: torch.Tensor, ids: torch.Tensor, n: int):
    """The statistic with loops: per vision query, its weights on the other vision keys renormalised per
    head, summed per image, heads averaged; queries without such a key are skipped."""
    vis = [t for t in range(len(ids)) if ids[t] >= 0]
    rows: dict[int, list] = {j: [] for j in range(n)}
    inters = []
    for q in vis:
        others = [k for k in vis if k != q]
        per_head = []
        for h in range(w.shape[0]):
            tot = sum(float(w[h, q, k]) for k in others)
            if tot == 0:
                break
            per_head.append([sum(float(w[h, q, k]) for k in others if ids[k] == j) / tot for j in range(n)])
        else:
            f = torch.tensor(per_head, dtype=torch.float64).mean(0)
            rows[int(ids[q])].append(f)
            inters.append(1 - f[int(ids[q])])
    matrix = torch.stack([torch.stack(rows[j]).mean(0) for j in range(n)])
    return float(torch.stack(inters).mean()), matrix, len(inters)


def test_stats_normalise_and_follow_the_causal_mask():
    torch.manual_seed(0)
    ids = torch.tensor([-1, 0, 0, 1, 1, 1, -1, 2, 2, -1])
    scores = torch.randn(3, 10, 10).masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), float("-inf"))
    w = scores.softmax(-1)
    s = attention_stats(w, ids, 3, chunk=2)  # small chunks: the chunked loop must cover every query
    assert s["inter"] + s["intra"] == pytest.approx(1.0, abs=1e-12)
    m = torch.tensor(s["matrix"], dtype=torch.float64)
    assert m.shape == (3, 3)
    assert torch.allclose(m.sum(1), torch.ones(3, dtype=torch.float64))
    assert torch.all(m.triu(1) == 0)  # causal: no image attends to a later one
    assert m[0, 0] == 1.0
    # the first vision token has no other vision key before it: 6 of the 7 vision queries count
    inter, expected, counted = _by_hand(w, ids, 3)
    assert s["queries"] == counted == 6
    assert torch.allclose(m, expected, atol=1e-12)
    assert s["inter"] == pytest.approx(inter, abs=1e-12)
    # the query's own key is left out: a head that puts all its weight on itself would otherwise count
    # as intra; with the diagonal boosted, the shares must not move towards the own image
    boosted = w.clone()
    boosted[:, torch.arange(10), torch.arange(10)] += 5.0
    assert attention_stats(boosted, ids, 3)["inter"] == pytest.approx(s["inter"], abs=1e-12)
    assert torch.equal(w, scores.softmax(-1))  # the weights are not changed in place


def test_chance_by_hand_and_as_uniform_attention():
    # text, image 0 (2 tokens), text, image 1 (3 tokens), image 2 (1 token)
    ids = torch.tensor([-1, 0, 0, -1, 1, 1, 1, 2])
    c = chance_stats(ids, 3)
    # counted queries (vision tokens before / of other images): 0b: 1/0 -> inter 0; 1a: 2/2 -> 1;
    # 1b: 3 before, 2 other -> 2/3; 1c: 4 before, 2 other -> 1/2; 2a: 5 before, all other -> 1
    assert c["queries"] == 5
    assert c["inter"] == pytest.approx((0 + 1 + 2 / 3 + 1 / 2 + 1) / 5, abs=1e-15)
    expected_matrix = [[1.0, 0.0, 0.0], [(1 + 2 / 3 + 2 / 4) / 3, (0 + 1 / 3 + 2 / 4) / 3, 0.0], [2 / 5, 3 / 5, 0.0]]
    assert torch.allclose(torch.tensor(c["matrix"], dtype=torch.float64),
                          torch.tensor(expected_matrix, dtype=torch.float64), atol=1e-15)
    # the same as the real statistic applied to uniform causal attention (over every key, text included)
    L = len(ids)
    uniform = torch.ones(L, L, dtype=torch.float64).tril()
    uniform = (uniform / uniform.sum(-1, keepdim=True)).expand(2, L, L)
    u = attention_stats(uniform, ids, 3)
    assert u["inter"] == pytest.approx(c["inter"], abs=1e-12) and u["queries"] == c["queries"]
    assert torch.allclose(torch.tensor(u["matrix"]), torch.tensor(c["matrix"]), atol=1e-12)


def test_chance_on_a_real_sized_layout_matches_uniform_attention():
    # 3 images of 730 tokens between text, as LLaVA-OV lays them out (small enough for an L x L matrix)
    ids = torch.cat([torch.full((14,), -1), *(torch.full((730,), k) for k in range(3)), torch.full((20,), -1)])
    L = len(ids)
    uniform = torch.ones(L, L, dtype=torch.float64).tril()
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None]
    assert attention_stats(uniform, ids, 3)["inter"] == pytest.approx(chance_stats(ids, 3)["inter"], abs=1e-12)


def test_rows_are_taken_in_rounds_and_a_shortfall_is_reported(caplog):
    from mimic.eval.diagnostics.common import Selection

    def sel(name, n, images=4):
        rows = [{"id": f"{name}-{i}", "num_images": images} for i in range(n)]
        return Selection(name, None, rows, list(range(n)))

    a, b, one = sel("a", 5), sel("b", 3), sel("c", 4, images=1)
    chosen, used = balanced_rows([a, b, one], 4, "attention")
    assert [(s.config, i) for s, i in chosen] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert used == {"a": 2, "b": 2} and not caplog.records
    # b has 3 rows: 3 full rounds, then no more (a alone would skew the mix); the warning gives the number used
    chosen, used = balanced_rows([a, b], 50, "attention")
    assert used == {"a": 3, "b": 3}
    assert "using 6" in caplog.text and "--limit 50" in caplog.text


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
    # masked: each image's first token sees no other vision token and is not counted (4 x 4 of 20 remain)
    assert [e["queries"] for e in masked] == [19, 16, 19, 16]


def _lm_head_positions(model):
    """Every call of the vocabulary projection's number of positions."""
    calls: list[int] = []
    handle = model.get_output_embeddings().register_forward_hook(lambda m, a, out: calls.append(out.shape[1]))
    return calls, handle


def test_no_logits_over_the_sequence():
    model, processor = tiny_llava_onevision(seed=0, num_layers=2, attn_implementation="eager")
    batch = _batch(processor, 3)
    family = FAMILIES.get("llava_onevision")
    calls, handle = _lm_head_positions(model)
    try:
        sample_attention(model, batch, family.image_ids(model, processor, batch, [3]), family.text_layers(model))
    finally:
        handle.remove()
    assert calls == [1] and batch["input_ids"].shape[1] > 1


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
    settings = AttentionSettings(data=str(bench), model=f"hf:{tiny}", out=str(tmp_path / "attn"), limit=3,
                                 progress=False, cache_dir=cache)
    summary = run_attention(settings)
    assert summary["rows_used"] == {"counting_balanced": 3} and summary["limit"] == 3
    # 7 images of 5 tokens: the uniform reference from the layout of each sample
    records = [json.loads(line) for line in (tmp_path / "attn" / "attention_samples.jsonl").read_text().splitlines()]
    assert all(r["image_token_counts"] == [5] * 7 for r in records)
    ids = torch.arange(7).repeat_interleave(5)
    assert summary["chance_inter"] == pytest.approx(chance_stats(ids, 7)["inter"], abs=1e-12)
    assert 0.5 < summary["chance_inter"] < 1
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
    again = run_attention(AttentionSettings(**{**vars(settings), "limit": 4}))
    after = (tmp_path / "attn" / "attention_samples.jsonl").read_text().splitlines()
    assert after[:3] == lines and len(after) == 4 and again["samples"] == 4

    # `mimic report` on the diagnose folder alone: a report of its own with the per-layer table and plots
    from mimic.cli import main

    assert main(["report", str(tmp_path / "attn"), "--out", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.startswith("# MIMIC evaluation report") and "## Diagnostics" in md and "| layer | inter | intra |" in md
    assert f"| 0 | {100 * again['layers'][0]['inter']:.1f} |" in md
    assert f"gives inter {100 * again['chance_inter']:.1f}" in md and "counting_balanced 4" in md
    assert (tmp_path / "report" / "diag1_attention_by_layer.png").is_file()


def test_configs_keep_the_paper_rows(monkeypatch, tmp_path):
    import mimic.eval.diagnostics.attention as attention
    from mimic.cli import main

    seen = []

    def fake(settings):
        seen.append(settings)
        return {"chance_inter": 0.5, "layers": [], "rows_used": {}, "samples": 0}

    import mimic.eval.data as data

    monkeypatch.setattr(attention, "run_attention", fake)
    # a benchmark holding the default configs and one more (no model or data is read: run_attention is faked)
    monkeypatch.setattr(data, "config_names", lambda d: ["counting_balanced", "listing", "common", "odd_one"])
    base = ["diagnose", "attention", "--data", "d", "--model", "hf:m", "--out", str(tmp_path)]
    assert main(base) == 0
    assert main([*base, "--configs", "listing", "--limit", "7"]) == 0
    assert main([*base, "--where", "num_images=6"]) == 0
    assert [(s.configs, s.where, s.limit) for s in seen] == [
        (["listing", "common", "odd_one"], {"num_images": ["4"]}, 50),
        (["listing"], {"num_images": ["4"]}, 7),
        (["listing", "common", "odd_one"], {"num_images": ["6"]}, 50),
    ]
    # a benchmark without some of the default configs uses those it holds (with a warning), none: an error
    monkeypatch.setattr(data, "config_names", lambda d: ["counting_balanced", "odd_one"])
    assert main(base) == 0 and seen[-1].configs == ["odd_one"]
    monkeypatch.setattr(data, "config_names", lambda d: ["counting_balanced"])
    assert main(base) == 2
