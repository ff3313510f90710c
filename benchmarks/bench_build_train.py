"""`mimic build train` at scale on the synthetic world: rows per second and peak memory, 1 vs N processes.

    .venv/bin/python benchmarks/bench_build_train.py [--per-task 5000] [--images 2000] [--num-proc 1 2]

Each build runs `mimic build train --source synthetic` as its own process (all four tasks, --per-task rows
each, up to 10 images a row) into benchmarks/out/. Peak memory is the largest sum of the proportional set
sizes (PSS: shared pages split between the processes that share them) of the build and its worker
processes, sampled every 0.1 s. CPU s is the user + system time of the build and its workers: on a machine
shared with other jobs, rows per CPU second says what the wall time cannot. The files of every build are compared byte for byte with the first one.

The paper's scale is --per-task 50000 (200,000 rows). The synthetic JPEGs are ~18 kB, so that would write
about 20 GB; memory per row is what matters for extrapolating: the image bytes are streamed (16 rows at a
time), the samples' metadata is held per task.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil


def tree_pss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*/*.parquet"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-task", type=int, default=5000, help="rows per task (four tasks)")
    ap.add_argument("--images", type=int, default=2000, help="scenes in the synthetic world")
    ap.add_argument("--num-proc", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--max-shard-mb", type=int, default=50, help="shard size (paper scale: the default 500)")
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    mimic = [sys.executable, "-c", "import sys; from mimic.cli import main; sys.exit(main(sys.argv[1:]))"]
    world = args.out_dir / f"world-{args.images}"
    if not (world / "annotations.json").exists():
        subprocess.run([*mimic, "world", "--out", str(world), "--images", str(args.images)], check=True)
    first = None
    print(f"{'procs':>5} {'rows':>7} {'seconds':>8} {'rows/s':>7} {'CPU s':>6} {'rows/CPU s':>10} {'peak PSS MB':>11}  "
          "identical")
    for n in args.num_proc:
        out = args.out_dir / f"train-{args.per_task}-np{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [*mimic, "build", "train", "--source", "synthetic", "--world", str(world), "--out", str(out),
               "--per-task", str(args.per_task), "--max-shard-mb", str(args.max_shard_mb), "--num-proc", str(n),
               "--no-progress"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        ps, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            peak = max(peak, tree_pss(ps))
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the build and its workers (all waited for)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if proc.returncode != 0:
            sys.exit(f"build failed: {' '.join(cmd)}")
        files = digest(out)
        first = first or files
        rows = 4 * args.per_task
        print(f"{n:>5} {rows:>7} {seconds:>8.1f} {rows / seconds:>7.0f} {cpu:>6.1f} {rows / cpu:>10.0f} "
              f"{peak / 2**20:>11.0f}  {files == first} "
              f"({len(files)} shards)")
        if n != args.num_proc[0]:
            shutil.rmtree(out)


if __name__ == "__main__":
    main()
