"""Data-parallel `mimic eval` on CPU: 1 process vs N, a tiny random LLaVA-OneVision through the real hf: adapter.

    .venv/bin/python benchmarks/bench_eval_parallel.py [--num 24] [--processes 1 2] [--batch-size 4]

Builds a demo benchmark on the synthetic world (--num rows of each of the six configs) and a tiny random
model, then runs `python -m mimic.eval ... --num-processes N` (accelerate's launcher; gloo between the ranks)
for each N into a fresh folder, and reports the wall time of the whole command (process start, model
loading, generation, merge, results), samples per second, the speed-up over the first N, and whether
predictions.jsonl (timings left out) and the scores in results.json are identical to the first run's.

One process uses torch's default CPU threads; the launcher gives each of N > 1 processes one thread
(OMP_NUM_THREADS=1), so on a 2-core machine both settings use both cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mimic.eval.predictions import read_predictions


def stable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("latency_s", "batch_latency_s")} for r in records]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=24, help="rows per config (six configs)")
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    mimic = [sys.executable, "-c", "import sys; from mimic.cli import main; sys.exit(main(sys.argv[1:]))"]
    root = args.out_dir / "eval-parallel"
    world, bench, model = root / "world", root / f"bench-{args.num}", root / "tiny"
    if not (world / "annotations.json").exists():
        subprocess.run([*mimic, "world", "--out", str(world), "--images", "300"], check=True,
                       stdout=subprocess.DEVNULL)
    if not (bench / "README.md").exists():
        subprocess.run([*mimic, "build", "demo", "--world", str(world), "--out", str(bench), "--num", str(args.num),
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    if not (model / "config.json").exists():
        from mimic.tiny import save_tiny

        save_tiny(model, num_layers=4)
    cache = root / "hf-cache"
    first = None
    print(f"{'procs':>5} {'samples':>7} {'wall s':>7} {'samples/s':>9} {'speed-up':>8}  identical")
    for n in args.processes:
        out = root / f"run-np{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "mimic.eval", "--data", str(bench), "--model", f"hf:{model}", "--out", str(out),
               "--batch-size", str(args.batch_size), "--max-new-tokens", str(args.max_new_tokens), "--no-progress",
               "--cache-dir", str(cache), "--num-processes", str(n)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        records = read_predictions(out / "predictions.jsonl")
        results = json.loads((out / "results.json").read_text())
        scores = {k: results[k] for k in ("configs", "table4", "breakdowns")}
        if first is None:
            first = (wall, stable(records), scores)
        same = stable(records) == first[1] and scores == first[2]
        print(f"{n:>5} {len(records):>7} {wall:>7.1f} {len(records) / wall:>9.1f} {first[0] / wall:>7.2f}x  {same}")


if __name__ == "__main__":
    main()
