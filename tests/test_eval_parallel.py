"""Data-parallel `mimic eval`: 2 processes (gloo, through accelerate's launcher) give what 1 process gives,
a run interrupted with one process count resumes with another, a shard of another run is refused, a second
eval into a running launch's folder is refused, and the ranks of a killed launcher die with it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import build_demo_folder

import mimic.commands.evaluate  # noqa: F401  (registers `mimic eval`)
from mimic.cli import main
from mimic.commands.evaluate import EvalOptions, eval_argv
from mimic.errors import ConfigError
from mimic.eval.api import create_model
from mimic.eval.models.hf import HFModel
from mimic.eval.predictions import SHARD_SCHEMA, PredictionWriter, read_predictions, read_shard
from mimic.eval.runner import EvalSettings, _identity, load_results, plan_batches, run_eval
from mimic.locks import LOCK_FILE
from mimic.tiny import save_tiny

CONFIGS = ("counting_unbalanced", "common")
LIMIT, BATCH, TOKENS = 6, 2, 4


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval-parallel-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=LIMIT)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model", num_layers=2)


@pytest.fixture(scope="module")
def reference(bench, tiny, cache, tmp_path_factory):
    """A one-process run of the tiny model: the records every other run must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "run"
    results = run_eval(_settings(bench, tiny, cache, out))
    return results, read_predictions(out / "predictions.jsonl")


def _settings(bench, tiny, cache, out, **kw) -> EvalSettings:
    return EvalSettings(data=str(bench), model=f"hf:{tiny}", out=str(out), limit=LIMIT, batch_size=BATCH,
                        progress=False, model_options={"max_new_tokens": TOKENS}, cache_dir=cache, **kw)


def _cli(bench, tiny, cache, out, processes: int) -> list[str]:
    return [sys.executable, "-m", "mimic.eval", "--data", str(bench), "--model", f"hf:{tiny}", "--out",
            str(out), "--limit", str(LIMIT), "--batch-size", str(BATCH), "--max-new-tokens", str(TOKENS),
            "--no-progress", "--bootstrap", "1000", "--cache-dir", cache, "--num-processes", str(processes)]


def _stable(records):
    return [{k: v for k, v in r.items() if k not in ("latency_s", "batch_latency_s")} for r in records]


def _same_results(a: dict, b: dict) -> None:
    """Every score (configs with their breakdowns, Table 4, aggregation settings); not the run's timestamps."""
    assert {k: v for k, v in a.items() if k != "run"} == {k: v for k, v in b.items() if k != "run"}
    assert a["configs"] and a["table4"]


class Crash(RuntimeError):
    pass


class CrashingHF(HFModel):
    def __init__(self, target, options, crash_on: int):
        super().__init__(target, options)
        self.calls, self.crash_on = 0, crash_on

    def generate(self, requests):
        self.calls += 1
        if self.calls == self.crash_on:
            raise Crash("simulated crash")
        return super().generate(requests)


def test_batches_are_grouped_by_image_count_and_cover_the_selection():
    rows = [{"num_images": n} for n in (2, 5, 3, 5, 2, 3, 4)]
    batches = plan_batches(rows, list(range(7)), 3)
    assert batches == [[1, 3, 6], [2, 5, 0], [4]]
    assert plan_batches(rows, [0, 4, 6], 2) == [[6, 0], [4]]


def test_two_processes_give_the_one_process_result(bench, tiny, cache, reference, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(_cli(bench, tiny, cache, out, 2), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("Table 4") == 1  # rank 0 alone reports
    results = json.loads((out / "results.json").read_text())
    ref_results, ref_records = reference
    assert _stable(read_predictions(out / "predictions.jsonl")) == _stable(ref_records)
    _same_results(results, ref_results)
    assert not (out / "shards").exists()  # merged and removed


def _ranks_of(launcher: int) -> list[int]:
    """The pids of the `mimic.eval` processes whose parent is `launcher`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _parent(int(entry)) == launcher:
            with contextlib.suppress(OSError):
                if b"mimic.eval" in open(f"/proc/{entry}/cmdline", "rb").read():  # noqa: SIM115
                    pids.append(int(entry))
    return pids


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait for a reaper that never comes in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table in /proc")
def test_killed_two_process_run_resumes_with_one_and_a_crashed_one_with_two(bench, tiny, cache, reference,
                                                                             tmp_path, capsys, caplog):
    ref_results, ref_records = reference
    # A two-process run killed (SIGKILL, the launcher's process group) as soon as answers reach the shards.
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(bench, tiny, cache, out, 2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    refused = ranks = None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if refused is None and (out / LOCK_FILE).exists():
                # A second eval into the folder, while the launcher holds it: refused at once, in one line.
                code = main(["eval", "--data", str(bench), "--model", "random", "--out", str(out), "--no-progress",
                             "--cache-dir", cache])
                refused = (code, capsys.readouterr().err.strip())
            shards = sorted((out / "shards").glob("rank-*.jsonl")) if (out / "shards").exists() else []
            if refused and sum(len(read_shard(p)[1]) for p in shards) >= 1:
                ranks = _ranks_of(proc.pid)
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be interrupted"
    code, err = refused
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"--out {out}: in use by pid {proc.pid} on {socket.gethostname()}, started " in err
    # The ranks run in sessions of their own (torch's launcher starts them so): killing the launcher's group
    # does not reach them; they die with their parent.
    assert len(ranks) == 2 and all(os.getsid(r) != proc.pid for r in ranks)
    gone_by = time.monotonic() + 10
    while any(_running(r) for r in ranks) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert not [r for r in ranks if _running(r)], "ranks outlived their launcher"
    assert not (out / "results.json").exists()
    done = {r["id"] for p in (out / "shards").glob("rank-*.jsonl") for r in read_shard(p)[1]}
    assert 1 <= len(done) < len(ref_records)
    headers = [read_shard(p)[0] for p in (out / "shards").glob("rank-*.jsonl")]
    assert all(h["schema"] == SHARD_SCHEMA and h["identity"]["model"] == f"hf:{tiny}" for h in headers if h)

    partial = load_results(out)  # `mimic report` on the interrupted run reads the shards
    assert sum(c["n"] for c in partial["configs"].values()) == len(done)

    with caplog.at_level(logging.WARNING, logger="mimic.locks"):
        results = run_eval(_settings(bench, tiny, cache, out))  # one process now, in the dead launcher's folder
    assert f"taking over the lock of pid {proc.pid}" in caplog.text
    assert _stable(read_predictions(out / "predictions.jsonl")) == _stable(ref_records)
    _same_results(results, ref_results)
    assert not (out / "shards").exists() and not (out / LOCK_FILE).exists()

    # A one-process run that crashes after its first batch, resumed by two processes.
    out = tmp_path / "crashed"
    crashing = CrashingHF(str(tiny), HFModel.Options(max_new_tokens=TOKENS), crash_on=2)
    with pytest.raises(Crash):
        run_eval(_settings(bench, tiny, cache, out), model=crashing)
    assert len(read_predictions(out / "predictions.jsonl")) == BATCH
    proc2 = subprocess.run(_cli(bench, tiny, cache, out, 2), capture_output=True, text=True, timeout=600)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    assert _stable(read_predictions(out / "predictions.jsonl")) == _stable(ref_records)
    _same_results(json.loads((out / "results.json").read_text()), ref_results)


def test_merge_refuses_a_shard_of_another_model_or_dataset(bench, world, cache, tmp_path, capsys):
    out = tmp_path / "run"
    base = dict(data=str(bench), out=str(out), configs=["common"], limit=4, batch_size=2, progress=False,
                cache_dir=cache)
    run_eval(EvalSettings(model="random", **base))
    ours = _identity(EvalSettings(model="random", **base), create_model("random"))
    other_model = _identity(EvalSettings(model="prior", **base), create_model("prior"))
    other_data = {**ours, "data": str(tmp_path / "other-bench")}
    shard = out / "shards" / "rank-00001.jsonl"
    for identity, differs in ((other_model, "adapter, model"), (other_data, "data")):
        shard.unlink(missing_ok=True)
        with PredictionWriter(shard, header={"schema": SHARD_SCHEMA, "rank": 1, "identity": identity}) as w:
            w.write_batch([{"id": "x", "config": "common"}])
        before = (out / "predictions.jsonl").read_bytes()
        with pytest.raises(ConfigError, match=rf"rank-00001.jsonl: a shard of another run \(differs in: {differs};"):
            run_eval(EvalSettings(model="random", **base))
        assert (out / "predictions.jsonl").read_bytes() == before and shard.exists()  # nothing merged
        # The CLI says it in one line, exit code 2, and `--num-processes` says it before launching anything.
        for extra in ([], ["--num-processes", "2"]):
            code = main(["eval", "--data", str(bench), "--model", "random", "--out", str(out), "--configs", "common",
                         "--limit", "4", "--batch-size", "2", "--no-progress", "--cache-dir", cache, *extra])
            err = capsys.readouterr().err.strip()
            assert code == 2 and len(err.splitlines()) == 1 and "a shard of another run" in err
    # A shard of the same run (say, a rank of an interrupted run) is merged.
    shard.unlink()
    with PredictionWriter(shard, header={"schema": SHARD_SCHEMA, "rank": 1, "identity": ours}):
        pass
    assert read_shard(shard)[0]["rank"] == 1
    run_eval(EvalSettings(model="random", **base))
    assert not shard.exists()


def test_num_processes_must_fit_the_cores_and_the_memory(tiny, monkeypatch):
    from mimic.commands import evaluate

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    weights = sum(p.stat().st_size for p in tiny.rglob("*.safetensors"))
    assert weights > 0 and evaluate._checkpoint_bytes(f"hf:{tiny}") == weights
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(ConfigError, match=rf"--num-processes {cores + 1}: .* this process may use {cores} core"):
        evaluate._check_num_processes(cores + 1, None, f"hf:{tiny}")
    # Memory for one replica (its weights and a process) but not two: refused in one line, before launching.
    monkeypatch.setattr(evaluate, "_available_memory", lambda: weights + evaluate._PROCESS_BYTES + 1)
    evaluate._check_num_processes(1, "cpu", f"hf:{tiny}")
    if cores >= 2:
        with pytest.raises(ConfigError, match=r"--num-processes 2: 2 replicas need at least .* GiB is available"):
            evaluate._check_num_processes(2, "cpu", f"hf:{tiny}")


def test_eval_argv_gives_the_same_options_back():
    from mimic.cli import build_parser

    o = EvalOptions(data="d", model="hf:m", out="o", configs=["a", "b"], limit=3, progress=False, num_processes=4,
                    max_new_tokens=5, bootstrap=10)
    ns = build_parser().parse_args(["eval", *eval_argv(o)])
    again = EvalOptions(**{k: v for k, v in vars(ns).items() if k != "command"})
    assert again == EvalOptions(**{**vars(o), "num_processes": None})


def test_a_failing_rank_ends_the_launch_in_one_line_of_ours(bench, cache, tmp_path):
    # The checkpoint is only read by the ranks (the launching process checks data, options and the run folder).
    cmd = [sys.executable, "-m", "mimic.eval", "--data", str(bench), "--model", f"hf:{tmp_path / 'no-model'}",
           "--out", str(tmp_path / "run"), "--limit", "1", "--no-progress", "--cache-dir", cache,
           "--num-processes", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    lines = [x for x in proc.stderr.splitlines() if x.startswith("mimic eval: error:")]
    assert proc.returncode == 2
    # Each rank's own line (the launcher may stop the second rank before it gets to say it), then ours.
    assert 1 <= len(lines) - 1 <= 2 and all("cannot read the checkpoint's config" in x for x in lines[:-1])
    assert "--num-processes 2: the launched processes failed" in lines[2] and proc.stderr.strip().endswith(lines[2])
    assert not (tmp_path / "run").exists()  # the ranks failed to load the model: nothing was written
