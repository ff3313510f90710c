"""Embedding throughput: materializing a config against a plain copy of the same image bytes.

    .venv/bin/python benchmarks/bench_build.py [--num 600] [--repeats 3]

Target (issue 4): building a config reaches at least half the throughput of copying the same image
bytes (read every image of every row, write them to one file), measured side by side in this run. The
build includes generation, verification, planning, encoding and the parquet writes; the source JPEGs
are embedded as they are (no decode, no re-encode). Rows share images, and the build keeps recently
read files in memory; the line "no cache" shows the same build reading every embed from disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from mimic.builders.hub_folder import materialize
from mimic.builders.mimic_demo import MimicDemo
from mimic.builders.sources.synthetic import read_synthetic, render_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=600, help="rows of counting_unbalanced (2-35 images each)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    paths = render_world(args.out_dir / "world-300", num_images=300, seed=0, show_progress=False)
    index = read_synthetic(paths.annotations, paths.images)

    def builder():
        b = MimicDemo(config_name="counting_unbalanced", annotations=str(paths.annotations),
                      images_dir=str(paths.images), num_samples=args.num)
        b._index = index
        return b

    files = [paths.images / f for s in builder().samples() for f in s.file_names]
    total = sum(f.stat().st_size for f in files)
    best_copy = best_build = best_uncached = best_kept = float("inf")
    for _ in range(args.repeats):
        target = args.out_dir / "copy.bin"
        os.sync()  # both timings start with no dirty pages pending write-back
        t = time.perf_counter()
        with open(target, "wb") as out:
            for f in files:
                out.write(f.read_bytes())
        best_copy = min(best_copy, time.perf_counter() - t)
        target.unlink()

        dest = args.out_dir / "build"
        shutil.rmtree(dest, ignore_errors=True)
        os.sync()
        t = time.perf_counter()
        materialize(builder(), dest, progress=False)
        best_build = min(best_build, time.perf_counter() - t)

        # A rebuild of unchanged inputs keeps every shard, after digesting the images to prove them unchanged.
        t = time.perf_counter()
        kept = materialize(builder(), dest, progress=False)
        best_kept = min(best_kept, time.perf_counter() - t)
        assert kept["shards_written"] == 0

        shutil.rmtree(dest, ignore_errors=True)
        os.sync()
        t = time.perf_counter()
        materialize(builder(), dest, progress=False, cache_bytes=0)
        best_uncached = min(best_uncached, time.perf_counter() - t)
    mb = total / 1e6
    print(f"{args.num} rows, {len(files):,} image embeds, {mb:.0f} MB of JPEG bytes (best of {args.repeats})")
    print(f"plain copy   {best_copy:6.2f} s  {mb / best_copy:7.1f} MB/s")
    print(f"build config {best_build:6.2f} s  {mb / best_build:7.1f} MB/s  = {best_copy / best_build:.2f}x the copy "
          f"throughput (target >= 0.5x)")
    print(f"  no cache   {best_uncached:6.2f} s  {mb / best_uncached:7.1f} MB/s  = {best_copy / best_uncached:.2f}x "
          "(every embed read from disk)")
    print(f"  unchanged  {best_kept:6.2f} s  {mb / best_kept:7.1f} MB/s  (rebuild: every shard checked and kept)")


if __name__ == "__main__":
    main()
