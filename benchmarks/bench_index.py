"""Index build and reload on COCO-train2017-sized annotations.

    .venv/bin/python benchmarks/bench_index.py [--images 118287] [--repeats 3]

Targets (issue 2): building the index takes at most 1.5x a bare `json.load` of the same file, measured
in this same run; reloading a saved index takes under 2 s. Reports the best of --repeats runs of each.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from coco_like import TRAIN2017_IMAGES, write_coco_like  # noqa: E402

from mimic.builders.index import AnnotationIndex  # noqa: E402
from mimic.builders.sources.coco import read_coco  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        out = None
        gc.collect()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=TRAIN2017_IMAGES)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    suffix = "" if args.images == TRAIN2017_IMAGES else f"_{args.images}"
    ann = write_coco_like(args.out_dir / f"coco_like_train2017{suffix}.json", args.images)

    def bare_json():
        with open(ann) as f:
            return json.load(f)

    t_json, data = best_of(bare_json, args.repeats)
    n_boxes = len(data["annotations"])
    del data
    t_index, index = best_of(lambda: read_coco(ann), args.repeats)
    path = index.save(args.out_dir / f"coco_like_index{suffix}.parquet")
    t_load, loaded = best_of(lambda: AnnotationIndex.load(path), args.repeats)
    assert loaded.num_rows == index.num_rows and loaded.num_images == index.num_images

    print(f"file          {ann} ({ann.stat().st_size / 1e6:.0f} MB, {index.num_images:,} images, {n_boxes:,} boxes)")
    print(f"json.load     {t_json:6.2f} s")
    print(f"build index   {t_index:6.2f} s  = {t_index / t_json:.2f}x json.load (target <= 1.5x)")
    print(f"reload index  {t_load:6.2f} s  (target < 2 s; {path.stat().st_size / 1e6:.1f} MB parquet)")


if __name__ == "__main__":
    main()
