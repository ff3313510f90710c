"""Commands that evaluate models and report on runs: `mimic eval`, `mimic report`."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mimic.cli import command, opt
from mimic.errors import ConfigError, MimicError

__all__ = ["EvalOptions", "ReportOptions", "eval_argv", "run_eval_command", "run_report_command"]

_DTYPES = ["auto", "float32", "bfloat16", "float16"]


@dataclass
class EvalOptions:
    # What to evaluate, where the run goes.
    data: str = opt(help="Benchmark: a Hub-layout folder (mimic build ...) or a Hub dataset id.", metavar="DIR_OR_ID")
    model: str = opt(help="Model spec: hf:<model id or path>, vllm:<model id or path>, openai:<served model name>, "
                     "oracle, random or prior.",
                     metavar="SPEC")
    out: str = opt(help="Run folder: run.json, predictions.jsonl (resumable) and results.json.", metavar="DIR")
    configs: list[str] = opt([], help="Configs to evaluate (default: every config of the data).")
    limit: int | None = opt(None, help="Evaluate only the first N rows of each config (they cover every control "
                            "cell evenly).")
    batch_size: int = opt(8, help="Samples per generate call; predictions.jsonl grows by one batch at a time.")
    num_processes: int | None = opt(None, help="Data-parallel processes, each with its own model replica (one per "
                                    "GPU on CUDA, gloo on CPU): launches `accelerate launch --multi_gpu "
                                    "--num_processes N -m mimic.eval ...` with the other options. Under a launcher, "
                                    "default: the launcher's count.")
    split: str = opt("test", help="Dataset split.")
    label: str | None = opt(None, help="The run's name in reports (default: from the model spec).")
    overwrite: bool = opt(False, help="Discard the run folder's earlier predictions instead of resuming.")
    cache_dir: str | None = opt(None, help="Where `datasets` caches the data as arrow files (default: "
                                "$HF_DATASETS_CACHE).", metavar="DIR")
    # Generation and loading (hf:, openai:).
    max_new_tokens: int | None = opt(None, help="Most tokens per answer (default 64).")
    dtype: str | None = opt(None, help="hf: weights dtype; auto = bfloat16 on CUDA when supported, float32 on CPU.",
                            choices=_DTYPES)
    device: str | None = opt(None, help="hf: device (auto, cpu, cuda, cuda:1, ...).")
    device_map: str | None = opt(None, help="hf: from_pretrained device_map to shard a large model (e.g. auto).")
    attn_implementation: str | None = opt(None, help="hf: attention kernel (sdpa, eager, flash_attention_2).")
    mask_backend: str | None = opt(None, help="hf:DIR trained with per-image masks (train.py output): the kernel "
                                   "that applies them (default: the one it was trained with).",
                                   choices=["sdpa", "eager", "flex_attention"])
    revision: str | None = opt(None, help="hf: Hub revision of the checkpoint.")
    min_pixels: int | None = opt(None, help="hf, Qwen2-VL: fewest pixels per image (default: the checkpoint's).")
    max_pixels: int | None = opt(None, help="hf, Qwen2-VL: most pixels per image (default: the checkpoint's).")
    max_patches: int | None = opt(None, help="hf, InternVL: most 448x448 tiles per image (default: the "
                                  "checkpoint's).")
    base_url: str | None = opt(None, help="openai: API base URL (default: $OPENAI_BASE_URL, else the OpenAI API).")
    api_key_env: str | None = opt(None, help="openai: name of the environment variable holding the API key "
                                  "(default: OPENAI_API_KEY). The key itself is never an option, so it stays out "
                                  "of shell history and process lists.", metavar="VAR")
    timeout: float | None = opt(None, help="openai: seconds per HTTP request (default 120).")
    max_retries: int | None = opt(None, help="openai: retries after 429/5xx, timeouts, dropped connections "
                                  "(default 3).")
    concurrency: int | None = opt(None, help="openai: parallel requests per batch (default 4).")
    seed: int | None = opt(None, help="random: seed of the guesses (default 0).")
    # vllm: (the offline engine).
    tensor_parallel_size: int | None = opt(None, help="vllm: GPUs one model is split over (default 1).")
    data_parallel_size: int | None = opt(None, help="vllm: model replicas vLLM runs (default 1).")
    gpu_memory_utilization: float | None = opt(None, help="vllm: share of each GPU's memory vLLM may use "
                                               "(default 0.9).")
    max_model_len: int | None = opt(None, help="vllm: longest prompt + answer in tokens (default: the model's).")
    max_num_seqs: int | None = opt(None, help="vllm: most sequences batched at once (default: vLLM's).")
    limit_images: int | None = opt(None, help="vllm: images per prompt the engine reserves room for (default: the "
                                   "largest sample of the data).")
    enforce_eager: bool | None = opt(None, help="vllm: run without CUDA graphs (default: with them).")
    # Aggregation.
    bootstrap: int = opt(1000, help="Bootstrap resamples per confidence interval (0: none).")
    bootstrap_seed: int = opt(0, help="Seed of the bootstrap resamples.")
    progress: bool = opt(True, help="Show a progress bar.")


def _model_options(o: EvalOptions) -> dict:
    api_key = None
    if o.api_key_env:
        api_key = os.environ.get(o.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {o.api_key_env}: that environment variable is not set")
    return {
        "max_new_tokens": o.max_new_tokens, "dtype": o.dtype, "device": o.device, "device_map": o.device_map,
        "attn_implementation": o.attn_implementation, "mask_backend": o.mask_backend, "revision": o.revision, "min_pixels": o.min_pixels,
        "max_pixels": o.max_pixels, "max_patches": o.max_patches, "base_url": o.base_url, "api_key": api_key,
        "timeout_s": o.timeout, "max_retries": o.max_retries, "concurrency": o.concurrency, "seed": o.seed,
        "tensor_parallel_size": o.tensor_parallel_size, "data_parallel_size": o.data_parallel_size,
        "gpu_memory_utilization": o.gpu_memory_utilization, "max_model_len": o.max_model_len,
        "max_num_seqs": o.max_num_seqs, "limit_images": o.limit_images, "enforce_eager": o.enforce_eager,
    }


def _print_summary(results: dict) -> None:
    from mimic.eval.report import format_ci, format_pct, table4_markdown

    print(f"\n{results['label']}: {results['run']['model']} on {results['run']['data']}")
    for name, s in results["configs"].items():
        print(f"  {name:<22} n={s['n']:<5} {s['metric']:<9} {format_pct(s['score']):>5} "
              f"{format_ci(s['ci_low'], s['ci_high']):<14} parse failures {s['parse_failures']}/{s['n']}")
    print("\nTable 4 (%, bootstrap 95% CI):\n")
    print(table4_markdown([results])[1])


@command("eval", EvalOptions)
def run_eval_command(o: EvalOptions) -> int:
    """Evaluate a model on MIMIC configs: predictions.jsonl (resumable), results.json with breakdowns.

    Rerunning with the same --out resumes: samples already in predictions.jsonl are skipped, so an
    interruption loses at most one batch. results.json holds the scores with bootstrap intervals, the
    paper's Table 4, a breakdown per control column and the run's metadata. Examples:

      mimic eval --data demo-out/mimic-demo --model random --out runs/random
      mimic eval --data bench --model hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf --out runs/ov05
      mimic eval --data bench --model hf:llava-hf/llava-onevision-qwen2-7b-ov-hf --out runs/ov7 --num-processes 8
      mimic eval --data bench --model vllm:llava-hf/llava-onevision-qwen2-7b-ov-hf --out runs/ov7-vllm
      OPENAI_BASE_URL=http://localhost:8000/v1 mimic eval --data bench --model openai:Qwen/Qwen2-VL-7B-Instruct --out runs/q7
    """
    from mimic.eval.aggregate import AggregateSettings
    from mimic.eval.runner import RESULTS_FILE, EvalSettings, run_eval

    for flag, value in (("--limit", o.limit), ("--batch-size", o.batch_size), ("--num-processes", o.num_processes)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if o.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be 0 (no intervals) or more, got {o.bootstrap}")
    aggregate = AggregateSettings(resamples=o.bootstrap, seed=o.bootstrap_seed)
    settings = EvalSettings(
        data=o.data, model=o.model, out=o.out, configs=list(o.configs), limit=o.limit, batch_size=o.batch_size,
        split=o.split, label=o.label, model_options=_model_options(o), overwrite=o.overwrite, progress=o.progress,
        aggregate=aggregate, cache_dir=o.cache_dir,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))  # set by accelerate launch / torchrun in each process
    if o.num_processes is not None and launched > 1 and o.num_processes != launched:
        raise ConfigError(f"--num-processes {o.num_processes}, but the launcher started {launched} processes")
    if o.num_processes is not None and o.num_processes > 1 and launched == 1:
        return _launch(o, settings)
    try:
        results = run_eval(settings)
    finally:
        _end_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        _print_summary(results)
        print(f"\nwrote {os.path.join(o.out, RESULTS_FILE)}")
    return 0


def _end_process_group() -> None:
    import sys

    if "torch.distributed" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def eval_argv(o: EvalOptions) -> list[str]:
    """The `mimic eval` arguments that give `o` again, without --num-processes (what each launched process
    gets)."""
    import dataclasses

    argv: list[str] = []
    for f in dataclasses.fields(o):
        value, flag = getattr(o, f.name), "--" + f.name.replace("_", "-")
        if f.name == "num_processes" or value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            if value:
                argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def _launch(o: EvalOptions, settings) -> int:
    """`mimic eval --num-processes N`: check everything here, then start N ranks with accelerate's launcher.

    This process holds the run folder's lock for the whole launch and lends it to its ranks; they die with
    it (`mimic.locks.die_with_parent`), so a killed launcher leaves no rank writing into an unlocked folder.
    """
    import socket

    from mimic.eval.runner import check_eval
    from mimic.locks import FolderLock, launching

    n = o.num_processes
    _check_num_processes(n, o.device, o.model)
    with FolderLock(o.out, "--out") as lock:
        check_eval(settings)  # bad input fails here, in one line, before N processes start
        with socket.socket() as s:  # a free port for the ranks' rendezvous (29500 may be taken by another job)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # `accelerate launch` run here rather than in another interpreter: one torch import less before the
        # ranks, and the ranks are children of this process (which their lock and their lifetime rely on).
        from accelerate.commands.launch import launch_command, launch_command_parser

        args = launch_command_parser().parse_args(
            ["--multi_gpu", "--num_processes", str(n), "--num_machines", "1", "--mixed_precision", "no",
             "--dynamo_backend", "no", "--main_process_port", str(port), "-m", "mimic.eval", *eval_argv(o)])
        try:
            with launching(lock):
                launch_command(args)
        except Exception as err:  # torch.distributed.elastic's ChildFailedError: a rank exited with an error
            raise MimicError(f"--num-processes {n}: the launched processes failed ({type(err).__name__}); their "
                             "errors are above. Rerun the same command to resume.") from err
    return 0


# What a rank costs beyond its weights (the interpreter with torch, transformers and datasets imported): a
# low estimate, so that a refusal is never wrong; a count it lets through may still run out of memory.
_PROCESS_BYTES = 512 * 2**20


def _check_num_processes(n: int, device: str | None, model: str) -> None:
    """ConfigError when this machine cannot hold `n` replicas: more than its GPUs on CUDA; on CPU, more than
    its cores or than its available memory holds (the checkpoint's files and a process per replica)."""
    if (device or "auto").startswith(("auto", "cuda")):
        import torch

        if torch.cuda.is_available():
            if n > torch.cuda.device_count():
                raise ConfigError(f"--num-processes {n}: one process per GPU, and this machine has "
                                  f"{torch.cuda.device_count()}")
            return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n > cores:
        raise ConfigError(f"--num-processes {n}: each process is a replica on its own core, and this process may "
                          f"use {cores} core(s)")
    available = _available_memory()
    need = n * (_checkpoint_bytes(model) + _PROCESS_BYTES)
    if available is not None and need > available:
        raise ConfigError(f"--num-processes {n}: {n} replicas need at least {need / 2**30:.1f} GiB of memory (the "
                          f"checkpoint's files and a process each), and {available / 2**30:.1f} GiB is available")


def _checkpoint_bytes(model: str) -> int:
    """The weight files of a local checkpoint (hf:DIR, vllm:DIR); 0 when they are not on disk here."""
    from pathlib import Path

    _, _, target = model.partition(":")
    folder = Path(target) if target else None
    if folder is None or not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin", ".pt", ".pth")
               and p.is_file())


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@dataclass
class ReportOptions:
    out: str = opt(help="Output folder for report.md and the PNG plots.", metavar="DIR")
    runs: list[str] = opt([], help="Run folders written by `mimic eval`, and folders written by `mimic diagnose` "
                          "(a Diagnostics section).", positional=True, metavar="RUN")
    labels: list[str] = opt([], help="Names of the runs in the report, in order (default: each run's label).")
    title: str = opt("MIMIC evaluation report", help="Title of report.md.")
    bootstrap: int | None = opt(None, help="Recompute the scores from predictions.jsonl with this many bootstrap "
                                "resamples (default: use each run's results.json).")
    bootstrap_seed: int = opt(0, help="Seed of the resamples when recomputing.")
    lmms_eval: list[str] = opt([], help="lmms-eval results (a *_results.json, or an --output_path folder: one run "
                               "each) of the external benchmarks: laid out as the paper's Tables 3/8 and 2 in "
                               "external.md, beside its published rows.", metavar="RESULTS")


@command("report", ReportOptions)
def run_report_command(o: ReportOptions) -> int:
    """Write a markdown report and PNG plots (Table 4, Fig. 1, Fig. 6) comparing evaluation runs.

    report.md holds Table 4 with bootstrap 95% intervals (one column block per run), every config's metrics
    and parse failures, and a breakdown table for every control column; table4.png, fig1_counting.png and
    fig6_num_images.png plot them. Runs over the twin folders of `mimic diagnose sweep` add a "Matched
    sweeps" section (sweeps.json, sweeps.png): the levels compared on the same base rows, with paired
    bootstrap intervals. Example: mimic report runs/* --out report
    """
    from mimic.eval.aggregate import AggregateSettings
    from mimic.eval.report import table4_markdown, write_report
    from mimic.eval.runner import load_results

    if not o.runs and not o.lmms_eval:
        raise ConfigError("give run folders of `mimic eval`, --lmms-eval results, or both")
    if o.lmms_eval:
        from mimic.atomic import atomic_path
        from mimic.eval.external import external_markdown, read_lmms_results

        text = external_markdown([read_lmms_results(p) for p in o.lmms_eval])
        path = os.path.join(o.out, "external.md")
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        print(text.split("\n## MuirBench")[0])
        print(f"wrote {path}")
        if not o.runs:
            return 0
    aggregate = None
    if o.bootstrap is not None:
        if o.bootstrap < 0:
            raise ConfigError(f"--bootstrap must be 0 (no intervals) or more, got {o.bootstrap}")
        aggregate = AggregateSettings(resamples=o.bootstrap, seed=o.bootstrap_seed)
    from mimic.eval.diagnostics.report import is_diagnostic, write_diagnostics

    # folders written by `mimic diagnose` become a Diagnostics section instead of runs
    diagnostics = [run for run in o.runs if is_diagnostic(run)]
    runs = [load_results(run, aggregate) for run in o.runs if not is_diagnostic(run)]
    if o.labels and len(o.labels) != len(runs):
        raise ConfigError(f"--labels gives {len(o.labels)} names for {len(runs)} runs")
    written: list = []
    if runs:
        paths = write_report(runs, o.out, labels=o.labels or None, title=o.title)
        print(table4_markdown(runs, o.labels or None)[1])
        written += list(paths.values())
        from mimic.eval.paired import SWEEP_FILES, write_sweeps

        run_dirs = [run for run in o.runs if not is_diagnostic(run)]
        if write_sweeps(run_dirs, o.out, aggregate or AggregateSettings(seed=o.bootstrap_seed)):
            written += [os.path.join(o.out, name) for name in SWEEP_FILES]
    if diagnostics:
        report = write_diagnostics(diagnostics, o.out, o.title, append=bool(runs))
        written += [] if runs else [report]
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0
