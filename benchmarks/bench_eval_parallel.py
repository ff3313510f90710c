"""Data-parallel `mimic eval` on CPU: 1 process vs N, a tiny random LLaVA-OneVision through the real hf: adapter.

    .venv/bin/python benchmarks/bench_eval_parallel.py [--num 24] [--processes 1 2] [--batch-size 4]

Builds a demo benchmark on the synthetic world (--num rows of each of the six configs) and a tiny random
model, then runs `python -m mimic.eval ... --num-processes N` (accelerate's launcher; gloo between the ranks)
for each N into a fresh folder, and reports the wall time of the whole command (process start, model
loading, generation, merge, results), samples per second, the speed-up over the first N, and whether
predictions.jsonl (timings left out) and the scores in results.json are identical to the first run's.
Starting N processes costs seconds (the launcher, N interpreters importing torch, N model loads), so each N
also runs with `--limit 1` and the steady rate is (samples - 6) / (wall - wall at --limit 1): the speed-up
a long run approaches.

Every process gets --threads CPU threads (OMP_NUM_THREADS; the launcher gives N > 1 processes one each by
default). With one thread each, N processes use N cores where one process uses one: the speed-up is that of
the data parallelism alone. `--threads 0` leaves the single process torch's default (all cores), which on
a busy shared machine is often slower than one thread (OpenMP threads spin while waiting for a core).
"""

from __future__ import annotations

import argparse
import json
import os
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
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per process (0: torch's default)")
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
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
    print(f"{'procs':>5} {'samples':>7} {'wall s':>7} {'samples/s':>9} {'speed-up':>8} {'start s':>7} "
          f"{'steady/s':>8} {'speed-up':>8}  identical")
    for n in args.processes:
        out = root / f"run-np{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "mimic.eval", "--data", str(bench), "--model", f"hf:{model}", "--out", str(out),
               "--batch-size", str(args.batch_size), "--max-new-tokens", str(args.max_new_tokens), "--no-progress",
               "--cache-dir", str(cache), "--num-processes", str(n)]
        walls = []
        for extra in (["--limit", "1"], []):
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            subprocess.run(cmd + extra, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            walls.append(time.perf_counter() - t0)
        small, wall = walls
        records = read_predictions(out / "predictions.jsonl")
        results = json.loads((out / "results.json").read_text())
        scores = {k: v for k, v in results.items() if k != "run"}  # every score, not the timestamps
        steady = (len(records) - len(results["configs"])) / max(wall - small, 1e-9)
        if first is None:
            first = (wall, stable(records), scores, steady)
        same = stable(records) == first[1] and scores == first[2]
        print(f"{n:>5} {len(records):>7} {wall:>7.1f} {len(records) / wall:>9.1f} {first[0] / wall:>7.2f}x "
              f"{small:>7.1f} {steady:>8.1f} {steady / first[3]:>7.2f}x  {same}")


if __name__ == "__main__":
    main()
