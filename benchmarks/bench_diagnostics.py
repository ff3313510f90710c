"""Time and peak memory per sample of each `mimic diagnose` analysis, to plan a run (docs/diagnostics.md).

    .venv/bin/python benchmarks/bench_diagnostics.py                            # every analysis, real 0.5B size
    .venv/bin/python benchmarks/bench_diagnostics.py --analyses attention --num-images 4 --work /tmp/bd
    .venv/bin/python benchmarks/bench_diagnostics.py --size tiny                # the tiny model: checks the script

The model has the exact shapes of llava-hf/llava-onevision-qwen2-0.5b-ov-hf (894M parameters, random weights
built in code: `mimic.tiny.real_shape_llava_onevision`; `--size tiny`: `mimic.tiny.save_tiny`), saved once
into the work folder so that every analysis loads it as `hf:<folder>`, as `mimic diagnose` does. The data is
a benchmark folder built from real COCO images (shared/data/coco-mini beside the checkout, or --coco; a
rendered synthetic world when neither is there: LLaVA-OV gives every image of a multi-image sample one
384 px base crop, so the token counts do not depend on the images): counting_unbalanced rows with N images
(3 query images at 10 images, the paper's pooling setting; 2 below that).

Rows, each in a fresh process (so that its peak memory is its own), each through the analysis's own
`run_*` function, as the CLI calls it:
- attention, one row per --num-images (default 4 and 10: Fig. 4 uses 4 images, and 10 is the pooling rows' size);
- pooling, one row per --pooling ARM:FACTOR (default tokens:1 and pixels:4), --scored-images images;
- stitch, both arms (multi-image and stitched) in one row, --scored-images images;
- answer-attention, one model, --scored-images images.
pooling, stitch and answer-attention generate --max-new-tokens tokens (random weights never stop early).

Per row: `s/sample` = (wall time of the run - model loading) / samples (stitch: both arms per sample);
`load s` = model loading (every arm loads the model once); `peak RSS` = the process's peak resident memory
(ru_maxrss; the weights are memory-mapped from the saved folder, so they count as they are read), `weights`
= the loaded model's parameters (`model_rss_gb` in the JSON: resident memory right after loading); on CUDA also `peak GPU` =
torch.cuda.max_memory_allocated and `model GPU` the allocation after loading. `tokens` = the longest
sequence the model was fed. The load average is recorded before and after each row (the CPU may be shared).
Rows of an earlier --out (same --size, --device, --dtype) are kept unless measured again, so analyses can be
measured one at a time.
`make bench-diagnostics` runs it; `make gpu-check` runs it at the real size on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANALYSES = ("attention", "pooling", "stitch", "answer-attention")
CONFIG = "counting_unbalanced"
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "bench_diagnostics.json"


def _default_coco() -> Path | None:
    for shared in (ROOT / "shared", ROOT.parent / "shared"):
        if (shared / "data" / "coco-mini" / "val2017").is_dir():
            return shared / "data" / "coco-mini"
    return None


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e9


# ---------------------------------------------------------------------------------------------------- setup


def save_model(size: str, directory: Path) -> None:
    """The model of `size` as an hf: folder (kept and reused when `directory` already holds one)."""
    if (directory / "config.json").exists():
        return
    if size == "tiny":
        from mimic.tiny import save_tiny

        save_tiny(directory)
        return
    import torch

    from mimic.tiny import real_shape_llava_onevision

    model, processor = real_shape_llava_onevision(seed=0, dtype=torch.bfloat16)
    tmp = directory.with_name(directory.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    tmp.rename(directory)  # a folder cut off mid-save is never taken for a model


def build_bench(coco: Path | None, work: Path, num_images: int, samples: int) -> Path:
    """A benchmark folder of `samples` counting_unbalanced rows with `num_images` images each."""
    from mimic.builders.cards import write_dataset_card
    from mimic.builders.hub_folder import materialize
    from mimic.builders.mimic_bench import MimicBench

    out = work / f"bench-{num_images}img-{samples}"
    if (out / "README.md").exists():
        return out
    if coco is not None:
        source, annotations, images = "coco", coco / "annotations" / "instances_val2017.json", coco / "val2017"
    else:
        from mimic.builders.sources.synthetic import render_world

        paths = render_world(work / "world", num_images=160, seed=0, show_progress=False)
        source, annotations, images = "synthetic", paths.annotations, paths.images
    spread = 3 if num_images >= 10 else min(2, num_images)
    builder = MimicBench(config_name=CONFIG, source=source, annotations=str(annotations), images_dir=str(images),
                         num_samples=samples, seed=0, controls={"num_images": num_images, "spread": spread})
    materialize(builder, out, progress=False)
    write_dataset_card(out, pretty_name="bench_diagnostics", summary=f"{samples} rows of {num_images} images")
    return out


# ------------------------------------------------------------------------------------------- one measurement


class _Probe:
    """Times every model load and records the memory after the first and the longest sequence fed."""

    def __init__(self, cuda: bool):
        import torch

        from mimic.eval.models.hf import HFModel

        self.cuda, self.load_s, self.loads, self.tokens = cuda, 0.0, 0, 0
        self.model_rss_gb = self.model_gpu_gb = self.weights_gb = None
        load = HFModel.load
        probe = self

        def timed_load(adapter):
            if adapter.model is not None:
                return load(adapter)
            t = time.perf_counter()
            out = load(adapter)
            if probe.cuda:
                torch.cuda.synchronize()
            probe.load_s += time.perf_counter() - t
            probe.loads += 1
            if probe.model_rss_gb is None:
                probe.model_rss_gb = _rss_gb()
                probe.weights_gb = sum(p.numel() * p.element_size() for p in adapter.model.parameters()) / 1e9
                probe.model_gpu_gb = torch.cuda.memory_allocated() / 2**30 if probe.cuda else None
            adapter.model.register_forward_pre_hook(probe.saw, with_kwargs=True)
            return out

        HFModel.load = timed_load

    def saw(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            self.tokens = max(self.tokens, int(ids.shape[-1]))


def run_analysis(row: dict) -> None:
    """The analysis of `row` through its own run_* function, as `mimic diagnose` calls it."""
    options = {"dtype": row["dtype"], "device": row["device"]}
    scored = {**options, "max_new_tokens": row["max_new_tokens"]}
    common = {"data": row["data"], "out": row["run_dir"], "progress": False, "overwrite": True}
    where = {"num_images": [str(row["images"])]}
    name = row["analysis"]
    if name == "attention":
        from mimic.eval.diagnostics.attention import AttentionSettings, run_attention

        run_attention(AttentionSettings(model=row["model"], configs=[CONFIG], where=where, limit=row["samples"],
                                        model_options=options, **common))
    elif name == "pooling":
        from mimic.eval.diagnostics.pooling import PoolingSettings, run_pooling

        run_pooling(PoolingSettings(model=row["model"], configs=[CONFIG], where=where, arms=[row["arm"]],
                                    factors=[row["factor"]], limit=row["samples"], batch_size=1, bootstrap=0,
                                    model_options=scored, **common))
    elif name == "stitch":
        from mimic.eval.diagnostics.stitch import StitchSettings, run_stitch

        run_stitch(StitchSettings(model=row["model"], configs=[CONFIG], where=where, limit=row["samples"],
                                  batch_size=1, bootstrap=0, model_options=scored, **common))
    elif name == "answer-attention":
        from mimic.eval.diagnostics.answer_attention import AnswerAttentionSettings, run_answer_attention

        run_answer_attention(AnswerAttentionSettings(models=[row["model"]], configs=[CONFIG], where=where,
                                                     limit=row["samples"], layer=row["layer"],
                                                     model_options=scored, **common))
    else:
        raise ValueError(f"unknown analysis {name!r}")


def measure(row: dict) -> dict:
    """Run one row in this process; its figures."""
    import torch

    cuda = row["device"].startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    probe = _Probe(cuda)
    base_rss = _rss_gb()
    shutil.rmtree(row["run_dir"], ignore_errors=True)
    t = time.perf_counter()
    run_analysis(row)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    return {
        "seconds": seconds, "load_seconds": probe.load_s, "model_loads": probe.loads,
        "seconds_per_sample": (seconds - probe.load_s) / row["samples"], "tokens": probe.tokens,
        "base_rss_gb": base_rss, "model_rss_gb": probe.model_rss_gb, "weights_gb": probe.weights_gb,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        "model_gpu_gb": probe.model_gpu_gb,
        "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------------------------- the table


def plan(args, model: str, benches: dict[int, Path], work: Path) -> list[dict]:
    base = {"size": args.size, "model": model, "samples": args.samples, "device": args.device, "dtype": args.dtype,
            "max_new_tokens": args.max_new_tokens}
    rows = []
    for analysis in args.analyses:
        if analysis == "attention":
            rows += [{"analysis": analysis, "key": f"attention {n} images", "images": n} for n in args.num_images]
        elif analysis == "pooling":
            for item in args.pooling:
                arm, factor = item.split(":")
                rows.append({"analysis": analysis, "key": f"pooling {arm} f={factor}", "images": args.scored_images,
                             "arm": arm, "factor": int(factor)})
        elif analysis == "stitch":
            rows.append({"analysis": analysis, "key": "stitch both arms", "images": args.scored_images})
        else:
            rows.append({"analysis": analysis, "key": f"answer-attention layer {args.layer}",
                         "images": args.scored_images, "layer": args.layer})
    for r in rows:
        r.update(base, data=str(benches[r["images"]]), run_dir=str(work / "runs" / r["key"].replace(" ", "_")))
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict], header: bool = True) -> None:
    if header:
        print("| analysis | images (tokens) | samples | s/sample | load s | peak RSS GB | weights GB | peak GPU GB "
              "| model GPU GB | load avg |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("timed_out"):
            print(f"| {r['key']} | {r['images']} | {r['samples']} | over {r['seconds']:.0f} s in all (stopped) "
                  "| | | | | | |")
            continue
        load = f"{r['load_avg_before']:.1f}-{r['load_avg_after']:.1f}"
        print(f"| {r['key']} | {r['images']} ({r['tokens']}) | {r['samples']} | {r['seconds_per_sample']:.1f} "
              f"| {r['load_seconds']:.1f} | {r['peak_rss_gb']:.2f} | {_fmt(r.get('weights_gb'), '.2f')} "
              f"| {_fmt(r.get('peak_gpu_gb'), '.2f')} | {_fmt(r.get('model_gpu_gb'), '.2f')} | {load} |", flush=True)


def run_row(row: dict, timeout: float | None) -> dict:
    before = os.getloadavg()[0]
    cmd = [sys.executable, __file__, "--one", json.dumps(row)]
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**row, "timed_out": True, "seconds": time.perf_counter() - t, "load_avg_before": before}
    if done.returncode != 0:
        raise SystemExit(f"{row['key']} failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, **figures, "load_avg_before": before, "load_avg_after": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["real", "tiny"], default="real",
                    help="real: the 0.5B shapes (894M parameters); tiny: the tiny model, to check the script.")
    ap.add_argument("--analyses", nargs="+", choices=ANALYSES, default=list(ANALYSES), help="Analyses to measure.")
    ap.add_argument("--samples", type=int, default=1, help="Samples per analysis (each row).")
    ap.add_argument("--num-images", type=int, nargs="+", default=[4, 10], help="attention: images per sample, a "
                    "row each.")
    ap.add_argument("--scored-images", type=int, default=10, help="pooling, stitch, answer-attention: images per "
                    "sample (10: the paper's pooling rows).")
    ap.add_argument("--pooling", nargs="+", default=["tokens:1", "pixels:4"], metavar="ARM:FACTOR",
                    help="pooling rows, one per arm and factor.")
    ap.add_argument("--max-new-tokens", type=int, default=4, help="Tokens generated per answer.")
    ap.add_argument("--layer", type=int, default=None, help="answer-attention layer (default 15; tiny: 2).")
    ap.add_argument("--device", default="auto", help="auto: cuda when available, else cpu.")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"],
                    help="Weights dtype (bfloat16: the real-shape tests' on CPU and what a GPU runs).")
    ap.add_argument("--coco", type=Path, default=_default_coco(), help="COCO folder with val2017/ and "
                    "annotations/instances_val2017.json (default: shared/data/coco-mini; none: a synthetic world).")
    ap.add_argument("--work", type=Path, default=None, help="Work folder for the model, benchmark and runs; kept "
                    "and reused when given (the model is saved once), a temporary one otherwise.")
    ap.add_argument("--timeout", type=float, default=900, help="Seconds a row may take before it is stopped and "
                    "recorded as such.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON of the figures (rows of an earlier file "
                    "are kept unless measured again).")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(measure(json.loads(args.one))))
        return
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device")
    if args.layer is None:
        args.layer = 15 if args.size == "real" else 2
    if args.samples < 1:
        ap.error("--samples must be at least 1")
    for item in args.pooling:
        arm, sep, factor = item.partition(":")
        if not sep or arm not in ("tokens", "pixels") or not factor.isdigit():
            ap.error(f"--pooling {item}: expected tokens:F or pixels:F")
    old = json.loads(args.out.read_text())["rows"] if args.out.exists() else []
    setup = {"size": args.size, "device": args.device, "dtype": args.dtype}
    other = [r["key"] for r in old if any(r.get(k) != v for k, v in setup.items())]
    if other:
        ap.error(f"--out {args.out} holds figures of another --size, --device or --dtype ({other[0]}); "
                 "give another --out")
    temp = args.work is None
    work = Path(tempfile.mkdtemp(prefix="bench-diag-")) if temp else args.work
    work.mkdir(parents=True, exist_ok=True)
    try:
        model_dir = work / f"model-{args.size}"
        if not (model_dir / "config.json").exists():
            subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                            "from bench_diagnostics import save_model; from pathlib import Path; "
                            "save_model(sys.argv[2], Path(sys.argv[3]))",
                            str(Path(__file__).parent), args.size, str(model_dir)], check=True)
        images = {n for n in args.num_images} if "attention" in args.analyses else set()
        if set(args.analyses) - {"attention"}:
            images.add(args.scored_images)
        benches = {n: build_bench(args.coco, work, n, args.samples) for n in sorted(images)}
        rows = plan(args, f"hf:{model_dir}", benches, work)
        print(f"{args.size} LLaVA-OneVision, {args.dtype}, {args.device}, torch {torch.__version__}, "
              f"data: {args.coco or 'synthetic world'}", flush=True)
        measured = []
        for row in rows:
            measured.append(run_row(row, args.timeout))
            print_table(measured[-1:], header=len(measured) == 1)
            keep = [r for r in old if r["key"] not in {m["key"] for m in measured}]
            from mimic.atomic import write_json

            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_json(args.out, {"size": args.size, "torch": torch.__version__, "cpu_count": os.cpu_count(),
                                  "rows": keep + measured})
        print()
        print_table(keep + measured)
        print(f"\nwrote {args.out}")
    finally:
        if temp:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
