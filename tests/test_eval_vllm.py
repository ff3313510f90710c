"""`vllm:` adapter up to the engine call: prompts identical to hf:'s, images per prompt from the data's largest
sample, engine options passed through, greedy sampling; without vLLM installed, a one-line error."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import build_demo_folder

import mimic.commands.evaluate  # noqa: F401
from mimic.cli import main
from mimic.errors import ConfigError
from mimic.eval.api import Request, create_model
from mimic.eval.data import load_config, row_metadata
from mimic.eval.models.hf import HFModel
from mimic.eval.models.vllm import VLLMModel
from mimic.tiny import save_tiny

CONFIGS = ("counting_unbalanced", "common")
HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-vllm-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=4)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", num_layers=2)


def _requests(bench, cache, config):
    ds = load_config(str(bench), config, cache_dir=cache)
    rows = row_metadata(ds)
    return rows, [Request(id=r["id"], config=config, task=r["task"], question=r["question"], images=ims, sample=r)
                  for r, ims in zip(rows, ds["images"], strict=True)]


def test_prompts_images_and_engine_arguments(bench, cache, tiny):
    model = create_model(f"vllm:{tiny}", {"tensor_parallel_size": 2, "data_parallel_size": 2,
                                          "max_model_len": 4096, "max_new_tokens": 7})
    assert isinstance(model, VLLMModel)
    hf = HFModel(str(tiny), HFModel.Options())
    largest = 0
    for config in CONFIGS:
        rows, requests = _requests(bench, cache, config)
        model.prepare(config, rows)
        largest = max(largest, *(r["num_images"] for r in rows))
        inputs = model.inputs(requests)
        for req, item in zip(requests, inputs, strict=True):
            assert item["prompt"] == hf.prompt(req)  # the same chat template rendering as hf:
            assert item["prompt"].count("<image>") == len(item["multi_modal_data"]["image"]) == req.sample["num_images"]
            assert all(im.mode == "RGB" for im in item["multi_modal_data"]["image"])
    kwargs = model.engine_kwargs()
    assert kwargs["limit_mm_per_prompt"] == {"image": largest} and largest > 2
    assert (kwargs["model"], kwargs["tensor_parallel_size"], kwargs["data_parallel_size"], kwargs["max_model_len"]) \
        == (str(tiny), 2, 2, 4096)
    assert "max_num_seqs" not in kwargs and "revision" not in kwargs
    # Parallelism and memory settings do not change answers: a resumed run may change them.
    assert model.identity()["options"].keys() == {"max_new_tokens", "dtype", "revision", "max_model_len"}
    assert create_model(f"vllm:{tiny}", {"limit_images": 40}).engine_kwargs()["limit_mm_per_prompt"] == {"image": 40}
    with pytest.raises(ConfigError, match="no image count known"):
        create_model(f"vllm:{tiny}").engine_kwargs()
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        create_model(f"vllm:{tiny}", {"gpu_memory_utilization": 1.5})
    with pytest.raises(ConfigError, match="needs a target"):
        create_model("vllm")


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed: the engine is tested where it runs")
def test_without_vllm_eval_stops_in_one_line(bench, cache, tiny, tmp_path, capsys):
    code = main(["eval", "--data", str(bench), "--model", f"vllm:{tiny}", "--out", str(tmp_path / "run"),
                 "--limit", "2", "--no-progress", "--cache-dir", cache, "--tensor-parallel-size", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "vllm: cannot import vLLM" in err and "openai:" in err


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (it needs its own CUDA build of torch)")
def test_engine_generates_greedily(bench, cache, tiny, tmp_path):  # pragma: no cover - GPU machines only
    from mimic.eval.runner import EvalSettings, run_eval

    results = run_eval(EvalSettings(data=str(bench), model=f"vllm:{tiny}", out=str(tmp_path / "run"), limit=2,
                                    progress=False, cache_dir=cache, model_options={"max_new_tokens": 4}))
    assert results["run"]["adapter"]["engine"] == "vllm"
    assert {c: s["n"] for c, s in results["configs"].items()} == dict.fromkeys(CONFIGS, 2)
