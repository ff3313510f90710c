"""lmms-eval without a fork: the shipped task folder, `mimic lmms-eval path`, agreement with `mimic eval`, and
the `mimic_llava_ov` model entry point loading a masked `train.py` output (a tiny random LLaVA-OneVision)."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_demo_folder

from mimic.cli import main
from mimic.eval.api import Generation, ModelAdapter, register_model
from mimic.integrations.lmms import TASK_DIR, render_group_yaml, render_task_yaml, task_folder
from mimic.integrations.lmms.hooks import CONFIG_METRICS

pytest.importorskip("lmms_eval", reason="lmms-eval is installed by `make setup` (the lmms extra)")

CONFIGS = list(CONFIG_METRICS)
# One answer for every sample: right for some counts, a parse failure for the class tasks, so the scores
# compared below are neither all zero nor all one.
FIXED_ANSWER = "2"


@register_model("fixed-answer")
class FixedAnswer(ModelAdapter):
    """Answers TARGET to every request: `mimic eval`'s side of lmms-eval's `dummy` model."""

    takes_target = True
    needs_images = False

    def generate(self, requests):
        return [Generation(str(self.target)) for _ in requests]


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("lmms") / "bench"
    build_demo_folder(world, out, CONFIGS, num=6)
    return out


def _lmms_eval(args: list[str], cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    # Not from the checkout: lmms-eval reads `--tasks mimic` as a folder when the working directory has one
    # of that name (the package folder here).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lmms_eval", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def dummy_run(bench, tmp_path_factory):
    """lmms-eval's CLI with its `dummy` model on the demo folder through `mimic lmms-eval path --data`; the
    results file it wrote (also read by the report tests)."""
    root = tmp_path_factory.mktemp("lmms-run")
    folder = task_folder(str(bench), root / "tasks")
    done = _lmms_eval(["--model", "dummy", "--model_args", f"response={FIXED_ANSWER}", "--tasks", "mimic",
                       "--include_path", str(folder), "--output_path", str(root / "out"), "--batch_size", "4"],
                      root, {"HF_DATASETS_CACHE": str(root / "hf-cache")})
    files = glob.glob(str(root / "out" / "**" / "*_results.json"), recursive=True)
    # The CLI exits 0 even when tasks are not found: the results file is the evidence.
    assert len(files) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    return Path(files[0])


def test_shipped_task_folder_is_one_task_per_config_plus_the_group():
    for config in CONFIGS:
        assert (TASK_DIR / f"mimic_{config}.yaml").read_text() == render_task_yaml(config)
    assert (TASK_DIR / "mimic.yaml").read_text() == render_group_yaml(CONFIGS)
    template = (TASK_DIR / "_default_template_yaml").read_text()
    assert "dataset_path: mimic/bench" in template and "utils.process_results" in template
    assert (TASK_DIR / "utils.py").exists()


def test_lmms_eval_path_prints_the_shipped_folder_or_writes_one_for_data(bench, tmp_path, capsys):
    assert main(["lmms-eval", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(TASK_DIR)
    assert main(["lmms-eval", "path", "--data", str(bench), "--out", str(tmp_path / "t")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "t")
    listing = (tmp_path / "t" / "mimic_listing.yaml").read_text()
    assert f'include: "{TASK_DIR / "mimic_listing.yaml"}"' in listing
    assert str((bench / "listing").resolve()) in listing and "dataset_path: parquet" in listing
    assert main(["lmms-eval", "path", "--data", "org/other-mimic", "--out", str(tmp_path / "h")]) == 2
    assert main(["lmms-eval", "path", "--out", str(tmp_path / "x")]) == 2
    assert "apply to a task folder written for --data" in capsys.readouterr().err


def test_task_list_of_lmms_eval_sees_the_tasks(tmp_path):
    done = _lmms_eval(["--tasks", "list", "--include_path", str(TASK_DIR)], tmp_path)
    for config in CONFIGS:
        assert f"mimic_{config}" in done.stdout + done.stderr


def test_dummy_model_in_lmms_eval_agrees_with_mimic_eval(bench, dummy_run, tmp_path):
    lmms = json.loads(dummy_run.read_text())
    assert main(["eval", "--data", str(bench), "--model", f"fixed-answer:{FIXED_ANSWER}", "--out",
                 str(tmp_path / "run"), "--bootstrap", "0", "--no-progress"]) == 0
    ours = json.loads((tmp_path / "run" / "results.json").read_text())["configs"]
    assert set(ours) == set(CONFIGS)
    assert set(lmms["group_subtasks"]["mimic"]) == {f"mimic_{c}" for c in CONFIGS}
    values = []
    for config in CONFIGS:
        row = lmms["results"][f"mimic_{config}"]
        assert set(ours[config]["metrics"]) == set(CONFIG_METRICS[config])
        for metric, stats in ours[config]["metrics"].items():
            got = row[f"{metric},none"]
            if stats["value"] is None:  # no parsed count: mimic eval writes null, lmms-eval NaN
                assert got != got
            else:
                assert got == pytest.approx(stats["value"], abs=1e-12), (config, metric)
            values.append(got)
        assert lmms["n-samples"][f"mimic_{config}"]["effective"] == ours[config]["n"]
    assert 0 < sum(v for v in values if v == v) and any(v == 1.0 for v in values)


@pytest.fixture(scope="module")
def masked_checkpoint(tmp_path_factory):
    """A `train.py` output of a full run with the per-image mask: weights, processor, image_masking.json."""
    from mimic.tiny import save_tiny
    from mimic.train_trl.train import MASK_FILE

    folder = save_tiny(tmp_path_factory.mktemp("ckpt") / "masked", seed=0, num_layers=2)
    (folder / MASK_FILE).write_text(json.dumps({"layers": [1], "backend": "eager", "within_image": "causal",
                                                "single_image": False}))
    return folder


def test_registered_model_loads_a_masked_checkpoint_and_agrees_with_hf_adapter(bench, masked_checkpoint, tmp_path):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.models import get_model
    from lmms_eval.tasks import TaskManager

    cls = get_model("mimic_llava_ov")  # resolved through the `lmms_eval.models` entry point
    assert cls.__module__ == "mimic.integrations.lmms.model"
    lm = cls.create_from_arg_string(f"pretrained={masked_checkpoint},max_new_tokens=6,device=cpu")
    masking = lm.adapter.model._mimic_image_masking
    assert masking.spec.layers == (1,) and lm.adapter.model.config.text_config._attn_implementation == "mimic_image_eager"
    folder = task_folder(str(bench), tmp_path / "tasks")
    configs = ["counting_balanced", "listing"]
    out = simple_evaluate(model=lm, tasks=[f"mimic_{c}" for c in configs], limit=3, log_samples=True,
                          task_manager=TaskManager("ERROR", include_path=str(folder)), bootstrap_iters=0)
    assert masking.mask_builds >= 6  # the mask was applied in every prefill

    assert main(["eval", "--data", str(bench), "--model", f"hf:{masked_checkpoint}", "--configs", *configs,
                 "--limit", "3", "--batch-size", "1", "--max-new-tokens", "6", "--device", "cpu",
                 "--out", str(tmp_path / "run"), "--bootstrap", "0", "--no-progress"]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    ours = {r["id"]: r for r in records}
    for config in configs:
        samples = out["samples"][f"mimic_{config}"]
        assert len(samples) == 3
        for s in samples:
            rec = ours[s["doc"]["id"]]
            # The same checkpoint, mask, prompt and images: the same greedy answer, scored the same way.
            assert s["resps"][0][0] == rec["output"]
            first_metric = CONFIG_METRICS[config][0]
            assert s[first_metric]["parsed"] == rec["parsed"] and s[first_metric]["score"] == rec["score"]
