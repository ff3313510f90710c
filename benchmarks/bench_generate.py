"""Generation speed: the paper-sized benchmark from COCO-train2017-sized annotations, without reading images.

    .venv/bin/python benchmarks/bench_generate.py [--small-images 10000]

Targets (issue 3): the 13,800 queries of Table 1 (counting balanced 5,000 + unbalanced 5,800 + common,
odd-one, listing 1,000 each) in under 30 s on a 2-core machine, and a time per query that does not grow
with the size of the index (a 10K-image index against the 118K-image one). Every sample is verified,
as in normal generation.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from coco_like import TRAIN2017_IMAGES, write_coco_like  # noqa: E402

from mimic.builders.generate import generate  # noqa: E402
from mimic.builders.index import AnnotationIndex  # noqa: E402
from mimic.builders.sources.coco import read_coco  # noqa: E402

PAPER_CONFIGS = ("counting_balanced", "counting_unbalanced", "common", "odd_one", "listing")


def index_for(out_dir: Path, images: int) -> AnnotationIndex:
    suffix = "" if images == TRAIN2017_IMAGES else f"_{images}"
    cached = out_dir / f"coco_like_index{suffix}.parquet"
    if cached.exists():
        return AnnotationIndex.load(cached)
    index = read_coco(write_coco_like(out_dir / f"coco_like_train2017{suffix}.json", images))
    index.save(cached)
    return index


def run(index: AnnotationIndex) -> dict[str, tuple[int, float]]:
    """Generate every paper config once; the first call on an index also builds its lookups (O(images))."""
    out = {}
    for name in PAPER_CONFIGS:
        t = time.perf_counter()
        samples = generate(index, name, scale="paper", seed=0)
        out[name] = (len(samples), time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/out"))
    ap.add_argument("--small-images", type=int, default=10_000)
    args = ap.parse_args()
    cold, warm = {}, {}
    for images in (TRAIN2017_IMAGES, args.small_images):
        index = index_for(args.out_dir, images)
        cold[images] = run(index)  # includes the one-time per-index lookups (eligible lists, scene groups)
        warm[images] = run(index)  # the same work again: the per-query cost alone
        for label, results in (("first run", cold[images]), ("second run", warm[images])):
            total_n = sum(n for n, _ in results.values())
            total_t = sum(t for _, t in results.values())
            print(f"\nindex of {index.num_images:,} images, {label}: {total_n:,} queries in {total_t:.1f} s "
                  f"({1000 * total_t / total_n:.2f} ms/query; target < 30 s for the 118K index)")
            for name, (n, t) in results.items():
                print(f"  {name:<22} {n:>6,} queries {t:6.2f} s  {1000 * t / n:6.2f} ms/query")

    def per_query(results):
        return sum(t for _, t in results.values()) / sum(n for n, _ in results.values())

    for label, results in (("first run", cold), ("second run", warm)):
        big, small = per_query(results[TRAIN2017_IMAGES]), per_query(results[args.small_images])
        print(f"{label}: ms/query 118K vs {args.small_images // 1000}K index: {1000 * big:.2f} vs {1000 * small:.2f} "
              f"(ratio {big / small:.2f})")


if __name__ == "__main__":
    main()
