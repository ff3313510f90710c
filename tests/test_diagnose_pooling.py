"""`mimic diagnose pooling` on a tiny random LLaVA-OneVision: f = 1 equals a plain `mimic eval`, pooling
shortens the sequence by f (ceil per image), the pixel control keeps the token count and removes f times the
information at the encoder's resolution (real COCO images, the real LLaVA-OV processor geometry)."""

from __future__ import annotations

import csv
import json
import logging
import math

import numpy as np
import pytest
import torch
from conftest import COCO_MINI, build_demo_folder, need
from PIL import Image

from mimic.cli import main
from mimic.errors import ConfigError, DataError
from mimic.eval.diagnostics.pooling import (
    PoolingSettings,
    _factor_entry,
    control_images,
    kept_summary,
    pixel_control,
    pool_tokens,
    run_pooling,
    shrink_placeholders,
)
from mimic.eval.families import FAMILIES
from mimic.eval.predictions import read_predictions
from mimic.eval.runner import EvalSettings, run_eval
from mimic.tiny import real_shape_processor, save_tiny, tiny_processor

LLAVA_OV = FAMILIES.get("llava_onevision")
BICUBIC = Image.Resampling.BICUBIC

CONFIGS = ("counting_balanced",)


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag-pool-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=6)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0, num_layers=2)


def test_pool_tokens_by_hand():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)
    assert torch.equal(pool_tokens(x, 1), x)
    p = pool_tokens(x, 2)
    assert p.shape == (2, 3, 3)
    assert torch.equal(p[:, 0], (x[:, 0] + x[:, 1]) / 2)
    assert torch.equal(p[:, 2], x[:, 4])  # the last window holds one token
    assert pool_tokens(x, 16).shape == (2, 1, 3) and torch.allclose(pool_tokens(x, 16)[:, 0], x.mean(1))


def test_shrink_placeholders_keeps_text_and_left_padding():
    img, pad = 9, 0
    ids = torch.tensor([[pad, pad, 5, img, img, img, img, 6, 7], [5, img, img, img, img, img, img, 6, 7]])
    mask = (ids != pad).long()
    out, m = shrink_placeholders(ids, mask, img, [[2, 2], [3, 3]], [[1, 1], [2, 2]], pad)
    assert out.tolist() == [[pad, pad, 5, img, img, 6, 7], [5, img, img, img, img, 6, 7]]
    assert m.tolist() == [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]]


def test_pixel_control_keeps_size_and_loses_detail():
    g = torch.Generator().manual_seed(0)
    im = Image.fromarray((torch.rand(48, 32, 3, generator=g) * 255).to(torch.uint8).numpy())
    assert pixel_control(im, 1, (16, 24)) == (im, (16, 24))
    blurred, small = pixel_control(im, 16, (16, 24))
    assert blurred.size == (16, 24) and small == (4, 6)
    a = np.asarray(im.resize((16, 24), BICUBIC)).astype(float)
    assert np.abs(a - np.asarray(blurred).astype(float)).mean() > 10  # noise does not survive a 4x down-and-up


@pytest.fixture(scope="module")
def coco_images():
    root = need(COCO_MINI / "val2017")
    return [Image.open(p) for p in sorted(root.glob("*.jpg"))]


def _content(pixel_values, encoder_size) -> np.ndarray:
    """The image's own area of one LLaVA-OV crop (C, side, side), (H, W, C) in [0, 255] (SigLIP mean/std 0.5)."""
    w, h = encoder_size
    side = pixel_values.shape[-1]
    top, left = (side - h) // 2, (side - w) // 2
    x = pixel_values[:, top:top + h, left:left + w].permute(1, 2, 0).numpy().astype(np.float64)
    return (x * 0.5 + 0.5) * 255


def test_control_is_fed_at_the_encoder_size_unscaled(coco_images):
    processor = real_shape_processor()
    ims = coco_images[:4]
    for f in (2, 4, 16):
        controls, fed = control_images(LLAVA_OV, processor, ims, f)
        assert [list(c.size) for c in controls] == fed["encoder_sizes"]
        pv = processor.image_processor([controls], return_tensors="pt")["pixel_values"]
        for k, (c, size) in enumerate(zip(controls, fed["encoder_sizes"], strict=True)):
            # the processor pads the control to a square and leaves its pixels as they are: no second resize
            assert np.abs(_content(pv[k, 0], size) - np.asarray(c)).max() < 1e-3
    # and the original reaches the encoder at that same size, so f = 1 (the original, untouched) is comparable
    assert LLAVA_OV.encoder_size(processor, (640, 426), 10) == (384, 256)


def test_kept_share_at_the_encoder_on_coco(coco_images):
    processor = real_shape_processor()
    groups = [coco_images[i:i + 10] for i in range(0, 40, 10)]
    kept = {}
    for f in (1, 2, 4, 8, 16):
        summary = kept_summary([control_images(LLAVA_OV, processor, g, f)[1] for g in groups])
        assert summary["images"] == 40
        kept[f] = summary["kept"]
        assert summary["kept"] == pytest.approx((summary["control_side"] / summary["encoder_side"]) ** 2, rel=0.02)
    assert kept[1] == 1.0
    assert kept[2] == pytest.approx(0.5, abs=0.01)
    assert kept[4] == pytest.approx(0.25, abs=0.002)
    assert kept[8] == pytest.approx(1 / 8, abs=0.003)
    assert kept[16] == pytest.approx(1 / 16, abs=0.002)


def _old_control(image, factor):
    """The earlier control: the original image down- and upsampled, the processor shrinking it afterwards."""
    s, (w, h) = math.sqrt(factor), image.size
    return image.resize((round(w / s), round(h / s)), BICUBIC).resize((w, h), BICUBIC)


def _left_for(x: np.ndarray, factor: int) -> float:
    """Mean absolute detail a down-and-up sampling by sqrt(factor) per side still removes from `x` (H, W, 3)."""
    im = Image.fromarray(np.clip(x.round(), 0, 255).astype(np.uint8))
    return float(np.abs(x - np.asarray(_old_control(im, factor)).astype(np.float64)).mean())


def test_control_removes_the_information_at_the_encoder_where_the_old_one_did_not(coco_images):
    """Measured on what the encoder receives (the processor's pixel values): after the control at f, a second
    down-and-up sampling by sqrt(f) at the encoder finds little left to remove; after the old control (the
    original image down-sampled, then shrunk by the processor) most of the detail at that scale is still there."""
    processor = real_shape_processor()
    ims = [im.convert("RGB") for im in coco_images[:6]]
    sizes = [LLAVA_OV.encoder_size(processor, im.size, len(ims)) for im in ims]

    def at_encoder(images):
        pv = processor.image_processor([images], return_tensors="pt")["pixel_values"]
        return [_content(pv[k, 0], size) for k, size in enumerate(sizes)]

    original = at_encoder(ims)

    def left(images, f):  # mean over the images of the detail left at that scale, relative to the original
        return np.mean([_left_for(y, f) / _left_for(x, f) for x, y in zip(original, images, strict=True)])

    for f in (2, 4, 8, 16):
        assert left(at_encoder(control_images(LLAVA_OV, processor, ims, f)[0]), f) < 0.4  # measured 0.23-0.33
        assert left(at_encoder([_old_control(im, f) for im in ims]), f) > 0.5  # measured 0.55-0.73


def test_pixel_records_must_be_there():
    results = {"configs": {"c": {"n": 1, "metric": "m", "score": 1.0, "ci_low": 1.0, "ci_high": 1.0}}}
    good = {"controls": {"num_images": 2}, "info": {"image_tokens": 10, "pixel_control": {
        "factor": 4, "sizes": [[640, 426], [426, 640]], "encoder_sizes": [[384, 256], [256, 384]],
        "control_sizes": [[192, 128], [128, 192]]}}}
    entry = _factor_entry("pixels", 4, "run", results, [good])
    assert entry["kept"] == 0.25 and entry["encoder_side"] == pytest.approx(math.sqrt(384 * 256))
    assert entry["encoder_size"] == [320, 320] and entry["images"] == 2 and entry["vision_tokens_per_image"] == 5
    with pytest.raises(DataError, match="--overwrite"):
        _factor_entry("pixels", 4, "run", results, [{**good, "info": {"image_tokens": 10}}])
    with pytest.raises(DataError, match="--overwrite"):
        _factor_entry("pixels", 2, "run", results, [good])


def test_pooling_runs_invariant_and_token_counts(bench, cache, tiny, tmp_path):
    spec = f"hf:{tiny}"
    opts = {"max_new_tokens": 4}
    plain = tmp_path / "plain"
    run_eval(EvalSettings(data=str(bench), model=spec, out=str(plain), configs=list(CONFIGS), limit=3, batch_size=2,
                          progress=False, model_options=opts, cache_dir=cache))
    settings = PoolingSettings(data=str(bench), model=spec, out=str(tmp_path / "pool"), configs=list(CONFIGS),
                               factors=[1, 2, 4], limit=3, batch_size=2, model_options=opts, cache_dir=cache,
                               progress=False, bootstrap=50)
    summary = run_pooling(settings)
    ref = read_predictions(plain / "predictions.jsonl")
    f1 = read_predictions(tmp_path / "pool" / "tokens-f1" / "predictions.jsonl")
    # the invariant: f = 1 through the hook and the placeholder code is exactly a plain eval
    assert [(r["id"], r["output"]) for r in f1] == [(r["id"], r["output"]) for r in ref]
    assert [r["info"]["input_tokens"] for r in f1] == [r["info"]["input_tokens"] for r in ref]
    pixels_f1 = read_predictions(tmp_path / "pool" / "pixels-f1" / "predictions.jsonl")
    assert [(r["id"], r["output"]) for r in pixels_f1] == [(r["id"], r["output"]) for r in ref]
    by_id = {r["id"]: r for r in ref}
    for f in (1, 2, 4):
        for arm in ("tokens", "pixels"):
            recs = read_predictions(tmp_path / "pool" / f"{arm}-f{f}" / "predictions.jsonl")
            assert len(recs) == 3
            for r in recs:
                n, base = r["controls"]["num_images"], by_id[r["id"]]["info"]
                # tiny model: T = 4 grid tokens + 1 newline per image
                want = n * (math.ceil(4 / f) + 1) if arm == "tokens" else 5 * n
                assert r["info"]["image_tokens"] == want
                assert r["info"]["input_tokens"] == base["input_tokens"] - (base["image_tokens"] - want)
    assert summary["factors"] == [1, 2, 4] and set(summary["arms"]) == {"tokens", "pixels"}
    toks = [e["vision_tokens_per_image"] for e in summary["arms"]["tokens"]]
    assert toks == [5, 3, 2]
    assert [e["vision_tokens_per_image"] for e in summary["arms"]["pixels"]] == [5, 5, 5]
    assert summary["rows"] == {"counting_balanced": 3} and summary["where"] == {}
    assert "kept" not in summary["arms"]["tokens"][0] and summary["arms"]["pixels"][0]["kept"] == 1.0
    for e in summary["arms"]["tokens"] + summary["arms"]["pixels"]:
        s = e["configs"]["counting_balanced"]
        assert s["n"] == 3 and 0 <= s["score"] <= 1 and s["ci_low"] <= s["score"] <= s["ci_high"]
    on_disk = json.loads((tmp_path / "pool" / "pooling.json").read_text())
    assert on_disk["arms"]["tokens"][0]["configs"] == summary["arms"]["tokens"][0]["configs"]
    assert (tmp_path / "pool" / "pooling.png").stat().st_size > 1000
    with open(tmp_path / "pool" / "pooling.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["arm"], r["factor"], r["config"]) for r in rows] == [
        (arm, str(f), "counting_balanced") for arm in ("tokens", "pixels") for f in (1, 2, 4)]
    assert [float(r["vision_tokens_per_image"]) for r in rows[:3]] == [5, 3, 2] and rows[0]["kept"] == ""
    for r, e in zip(rows, summary["arms"]["tokens"] + summary["arms"]["pixels"], strict=True):
        s = e["configs"]["counting_balanced"]
        assert float(r["score"]) == s["score"] and float(r["ci_low"]) == s["ci_low"]
        assert r["kept"] == ("" if "kept" not in e else str(e["kept"]))
    # resumable: a rerun generates nothing new and gives the same summary
    again = run_pooling(settings)
    assert again == summary


@pytest.fixture(scope="module")
def coco_bench(tmp_path_factory):
    root = need(COCO_MINI)
    out = tmp_path_factory.mktemp("coco-bench") / "bench"
    assert main(["build", "bench", "--coco-annotations", str(root / "annotations" / "instances_val2017.json"),
                 "--coco-images", str(root / "val2017"), "--out", str(out), "--configs", "counting_balanced",
                 "--num", "4", "--no-progress"]) == 0
    return out


def test_pixel_arm_records_what_it_fed_on_coco(coco_bench, cache, tiny, tmp_path):
    import datasets

    settings = PoolingSettings(data=str(coco_bench), model=f"hf:{tiny}", out=str(tmp_path / "pool"),
                               configs=["counting_balanced"], factors=[1, 4], arms=["pixels"], limit=3,
                               batch_size=3, model_options={"max_new_tokens": 2}, cache_dir=cache, progress=False,
                               bootstrap=0)
    summary = run_pooling(settings)
    ds = datasets.load_dataset(str(coco_bench), "counting_balanced", split="test", cache_dir=cache)
    images = {r["id"]: r["images"] for r in ds}
    processor = tiny_processor()
    for entry in summary["arms"]["pixels"]:
        f = entry["factor"]
        recs = read_predictions(tmp_path / "pool" / f"pixels-f{f}" / "predictions.jsonl")
        assert entry["rows"] == 3 and entry["images"] == sum(len(images[r["id"]]) for r in recs) == 21
        for r in recs:
            fed, ims = r["info"]["pixel_control"], images[r["id"]]
            assert fed["factor"] == f and fed["sizes"] == [list(im.size) for im in ims]  # COCO, 640 px or so
            assert fed["encoder_sizes"] == [list(LLAVA_OV.encoder_size(processor, im.size, 7)) for im in ims]
        assert entry["kept"] == kept_summary([r["info"]["pixel_control"] for r in recs])["kept"]
    f1, f4 = summary["arms"]["pixels"]
    assert f1["kept"] == 1.0 and f1["encoder_side"] == f1["control_side"] < 16
    # the tiny model sees 16 px: halving 11 or 12 px sides rounds, so 1/4 only up to that rounding
    assert f4["kept"] == pytest.approx(0.25, abs=0.03) and f4["encoder_side"] == f1["encoder_side"]
    from mimic.eval.diagnostics.report import diagnostics_markdown

    md = diagnostics_markdown([tmp_path / "pool"], tmp_path / "report")
    assert f"| pixels | 4 | 5 | {f4['kept']:.3f} | counting_balanced |" in md
    assert "| pixels | 1 | 5 | 1.000 | counting_balanced |" in md
    # a pixel run of the earlier control (its identity has no "control") is refused, not resumed
    run_json = tmp_path / "pool" / "pixels-f4" / "run.json"
    run = json.loads(run_json.read_text())
    del run["identity"]["adapter"]["diagnostic"]["control"]
    run_json.write_text(json.dumps(run))
    with pytest.raises(ConfigError, match="holds predictions of another run"):
        run_pooling(settings)


def test_command_keeps_the_paper_filter_with_configs(coco_bench, cache, tiny, tmp_path, capsys, caplog):
    args = ["diagnose", "pooling", "--data", str(coco_bench), "--model", f"hf:{tiny}", "--cache-dir", cache,
            "--configs", "counting_balanced", "--factors", "1", "--arms", "pixels", "--limit", "9",
            "--max-new-tokens", "2", "--bootstrap", "0", "--no-progress"]
    # --configs alone keeps num_query_images=3, num_images=10, which no row of this 7-image build matches
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    out, err = capsys.readouterr()
    assert "filter num_query_images=3 num_images=10 (the paper default" in out
    assert "num_images=10" in err
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--where", "num_images=7", "--out", str(tmp_path / "b")]) == 0
    assert "filter num_images=7;" in capsys.readouterr().out
    assert "counting_balanced: 4 rows match the filter, fewer than --limit 9; all 4 used" in caplog.text
    assert json.loads((tmp_path / "b" / "pooling.json").read_text())["rows"] == {"counting_balanced": 4}
