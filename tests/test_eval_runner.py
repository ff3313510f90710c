"""The runner: resume after a crash (nothing redone, same predictions as an uninterrupted run), partial
lines, refusing to mix runs, limits, and the `mimic eval` / `mimic report` commands."""

from __future__ import annotations

import json

import pytest
from conftest import build_demo_folder

import mimic.commands.evaluate  # noqa: F401  (registers `mimic eval` and `mimic report`)
from mimic.builders.cards import write_dataset_card
from mimic.builders.hub_folder import materialize
from mimic.builders.mimic_demo import MimicDemo
from mimic.cli import main
from mimic.errors import ConfigError
from mimic.eval.models.hf import HFModel
from mimic.eval.predictions import PredictionWriter, read_predictions
from mimic.eval.runner import EvalSettings, run_eval
from mimic.tiny import save_tiny

CONFIGS = ("counting_unbalanced", "common")


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-runner-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=10)
    return out


class Crash(RuntimeError):
    pass


class RecordingHF(HFModel):
    """The real hf adapter, remembering which samples it was asked for and crashing on call `crash_on`."""

    def __init__(self, target, options=None, crash_on: int | None = None):
        super().__init__(target, options)
        self.seen: list[str] = []
        self.calls = 0
        self.crash_on = crash_on

    def generate(self, requests):
        self.calls += 1
        if self.calls == self.crash_on:
            raise Crash("simulated crash")
        self.seen += [r.id for r in requests]
        return super().generate(requests)


def _stable(records):
    """Predictions without the timing fields, which differ between any two runs."""
    return [{k: v for k, v in r.items() if k not in ("latency_s", "batch_latency_s")} for r in records]


def test_resume_after_a_crash_redoes_nothing_and_matches_an_uninterrupted_run(bench, cache, tmp_path):
    tiny = save_tiny(tmp_path / "tiny", num_layers=2)
    spec = f"hf:{tiny}"
    base = dict(data=str(bench), model=spec, configs=["common"], limit=6, batch_size=2, progress=False,
                model_options={"max_new_tokens": 3}, cache_dir=cache)
    opts = HFModel.Options(max_new_tokens=3)

    reference = RecordingHF(str(tiny), opts)
    run_eval(EvalSettings(out=str(tmp_path / "ref"), **base), model=reference)
    assert reference.calls == 3

    crashing = RecordingHF(str(tiny), opts, crash_on=2)
    with pytest.raises(Crash):
        run_eval(EvalSettings(out=str(tmp_path / "run"), **base), model=crashing)
    first = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert [r["id"] for r in first] == crashing.seen and len(first) == 2  # the finished batch, nothing else
    assert not (tmp_path / "run" / "results.json").exists()

    resumed = RecordingHF(str(tiny), opts)
    results = run_eval(EvalSettings(out=str(tmp_path / "run"), **base), model=resumed)
    assert not set(resumed.seen) & set(crashing.seen)  # finished samples are not generated again
    assert len(resumed.seen) == 4
    final = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert _stable(final) == _stable(read_predictions(tmp_path / "ref" / "predictions.jsonl"))
    assert results["configs"]["common"]["n"] == 6

    # A third run has nothing left to do: it never loads the model, and keeps what the last one recorded.
    idle = RecordingHF(str(tiny), opts)
    again = run_eval(EvalSettings(out=str(tmp_path / "run"), **base), model=idle)
    assert idle.calls == 0 and idle.model is None
    assert len(read_predictions(tmp_path / "run" / "predictions.jsonl")) == 6
    assert again["run"]["adapter"]["model_class"] == "LlavaOnevisionForConditionalGeneration"
    assert again["configs"] == results["configs"]


def test_partial_last_line_is_dropped_and_redone(bench, cache, tmp_path):
    out = tmp_path / "run"
    settings = EvalSettings(data=str(bench), model="random", out=str(out), configs=["common"], limit=5,
                            batch_size=2, progress=False, cache_dir=cache)
    run_eval(settings)
    path = out / "predictions.jsonl"
    complete = path.read_bytes()
    lines = complete.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]) + lines[3][:25])  # a crash in the middle of writing line 4
    assert [r["id"] for r in read_predictions(path)] == [json.loads(x)["id"] for x in lines[:3]]
    run_eval(settings)
    assert path.read_bytes().count(b"\n") == 5
    assert _stable(read_predictions(path)) == _stable([json.loads(x) for x in lines])

    with PredictionWriter(tmp_path / "p.jsonl") as w:
        w.write_batch([{"id": "a"}])
    (tmp_path / "p.jsonl").write_bytes(b'{"id": "a"}\nnot json\n')
    with pytest.raises(ValueError, match="p.jsonl:2"):
        read_predictions(tmp_path / "p.jsonl")


def test_a_run_folder_refuses_another_model_unless_overwritten(bench, cache, tmp_path):
    out = str(tmp_path / "run")
    common = dict(data=str(bench), out=out, configs=["common"], limit=3, progress=False, cache_dir=cache)
    run_eval(EvalSettings(model="random", **common))
    with pytest.raises(ConfigError, match="differs in: adapter, model"):
        run_eval(EvalSettings(model="prior", **common))
    with pytest.raises(ConfigError, match=r"differs in: adapter;.*\"seed\": 0"):
        run_eval(EvalSettings(model="random", model_options={"seed": 3}, **common))
    results = run_eval(EvalSettings(model="prior", overwrite=True, **common))
    assert results["run"]["model"] == "prior"
    records = read_predictions(tmp_path / "run" / "predictions.jsonl")
    assert len(records) == 3 and len({r["output"] for r in records}) == 1  # the prior's one answer only


def test_raising_the_limit_extends_a_run(bench, cache, tmp_path):
    common = dict(data=str(bench), model="oracle", out=str(tmp_path / "run"), progress=False, cache_dir=cache)
    small = run_eval(EvalSettings(limit=2, **common))
    assert {c: s["n"] for c, s in small["configs"].items()} == {"counting_unbalanced": 2, "common": 2}
    full = run_eval(EvalSettings(**common))
    assert {c: s["n"] for c, s in full["configs"].items()} == {"counting_unbalanced": 10, "common": 10}
    assert len(read_predictions(tmp_path / "run" / "predictions.jsonl")) == 20
    # A smaller limit again scores only its samples, though more are on disk.
    again = run_eval(EvalSettings(limit=2, **common))
    assert again["configs"]["common"]["n"] == 2 and again["run"]["limit"] == 2


def test_cli_eval_and_report(bench, cache, tmp_path, capsys):
    for model in ("oracle", "random"):
        assert main(["eval", "--data", str(bench), "--model", model, "--out", str(tmp_path / model),
                     "--limit", "4", "--no-progress", "--bootstrap", "200", "--cache-dir", cache]) == 0
    text = capsys.readouterr().out
    assert "| oracle | " in text and "100.0 [100.0, 100.0]" in text
    results = json.loads((tmp_path / "oracle" / "results.json").read_text())
    assert results["run"]["limit"] == 4 and results["aggregation"]["resamples"] == 200
    assert main(["report", str(tmp_path / "oracle"), str(tmp_path / "random"), "--out", str(tmp_path / "rep"),
                 "--labels", "gold", "chance"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| Task | gold | gold 95% CI | chance | chance 95% CI |" in md
    for name in ("table4.png", "fig1_counting.png", "fig6_num_images.png"):
        assert (tmp_path / "rep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["eval", "--data", str(bench), "--model", "oracel", "--out", str(tmp_path / "x")]) == 2
    assert "Did you mean 'oracle'?" in capsys.readouterr().err
    assert main(["eval", "--data", str(bench), "--model", "random", "--max-new-tokens", "3",
                 "--out", str(tmp_path / "x")]) == 2
    assert "do not apply to model 'random'" in capsys.readouterr().err


def test_two_data_folders_with_the_same_name_do_not_share_a_cache(world, cache, tmp_path):
    # load_dataset on a folder keys its cache by the folder's base name: a second "bench" would read the
    # first one's rows. The runner loads local folders by file path, so each run sees its own data.
    paths, index = world
    sizes = {"a": 3, "b": 5}
    for sub, num in sizes.items():
        b = MimicDemo(config_name="common", annotations=str(paths.annotations), images_dir=str(paths.images),
                      num_samples=num, seed=num)
        b._index = index
        materialize(b, tmp_path / sub / "bench", progress=False)
        write_dataset_card(tmp_path / sub / "bench", pretty_name="t", summary="t")
    for sub, num in sizes.items():
        results = run_eval(EvalSettings(data=str(tmp_path / sub / "bench"), model="oracle",
                                        out=str(tmp_path / f"run-{sub}"), progress=False, cache_dir=cache))
        assert results["configs"]["common"]["n"] == num
