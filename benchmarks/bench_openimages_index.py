"""Time `read_openimages` on a box CSV the size of Open Images V7 train (14.6M boxes, 1.74M images).

    .venv/bin/python benchmarks/bench_openimages_index.py --rows 14600000 --out-dir benchmarks/out

(the defaults; `--rows 1000000` for a quick run). The first run writes the CSV once into `--out-dir`
(about 1.2 GB for the 13 V7 columns, cached next to a `.json` stamp; `--xclick` adds the 8 XClick columns
that the real oidv6 train file also carries, about 2 GB; written with numpy + pyarrow, no Python loop
per row):
sorted by ImageID then LabelName like the official file, 16-hex-digit image ids, a long-tailed number
of boxes per image (mean ~8.4), a few distinct classes per image drawn from a Zipf-like distribution over
the real 601 boxable MIDs (the most frequent real classes first: Man, Clothing, Person, Human face, ...),
Source mixing xclick/activemil/freeform, Confidence 1, coordinates with 6 decimals as in the official
file, the five attribute flags at plausible rates, with -1 ("not annotated", a value the reader must
accept) on the activemil rows.

Then it runs `read_openimages` in a fresh child process, so neither the CSV generation nor this parent
counts, and reports wall seconds and the child's peak RSS (`resource.getrusage().ru_maxrss`).
Target on a 2-core machine: under 60 s and under 6 GB.

The class list and hierarchy are the real ones from `../shared/data/openimages-sample`; without that
folder, `--classes/--hierarchy` must name them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "openimages-sample"
GENERATOR_VERSION = 1
BOXES_PER_IMAGE = 8.4
# The most frequent boxable classes of the real train set, roughly in order (the rest follow Zipf).
TOP_CLASSES = [
    "Man", "Clothing", "Person", "Human face", "Woman", "Tree", "Footwear", "Human hair", "Human arm",
    "Wheel", "Window", "Human head", "Building", "Car", "Girl", "Human nose", "Flower", "Plant",
    "Human hand", "Boy", "Human leg", "Human eye", "Suit", "Human mouth", "Land vehicle", "Glasses",
]  # fmt: skip
SOURCES = np.array(["xclick", "activemil", "freeform"])
SOURCE_P = [0.56, 0.42, 0.02]
FLAG_P = {"IsOccluded": 0.55, "IsTruncated": 0.28, "IsGroupOf": 0.06, "IsDepiction": 0.05, "IsInside": 0.01}


# ---------------------------------------------------------------------------------------------- generation
def _fixed_width_strings(mat: np.ndarray) -> pa.StringArray:
    """(n, w) uint8 ASCII -> a StringArray of n strings of width w, without a Python loop."""
    n, w = mat.shape
    offsets = np.arange(0, w * (n + 1), w, dtype=np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(mat).tobytes())
    )


def _hex_ids(values: np.ndarray) -> pa.StringArray:
    hexchars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    b = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    out = np.empty((len(values), 16), dtype=np.uint8)
    out[:, 0::2] = hexchars[b >> 4]
    out[:, 1::2] = hexchars[b & 15]
    return _fixed_width_strings(out)


def _decimals6(micro: np.ndarray) -> pa.StringArray:
    """Integers 0..1_000_000 (millionths) -> "0.071905" / "1.000000", as in the official CSV."""
    out = np.empty((len(micro), 8), dtype=np.uint8)
    out[:, 0] = np.where(micro >= 1_000_000, ord("1"), ord("0"))
    out[:, 1] = ord(".")
    frac = np.where(micro >= 1_000_000, 0, micro)
    for k in range(6):
        out[:, 7 - k] = 48 + (frac // 10**k) % 10
    return _fixed_width_strings(out)


XCLICK_COLUMNS = [f"XClick{k}{a}" for a in "XY" for k in range(1, 5)]


def write_boxes_csv(
    path: Path, rows: int, mids: list[str], names: list[str], seed: int = 0, xclick: bool = False
) -> dict:
    rng = np.random.default_rng(seed)
    n_cls = len(mids)
    # Long-tailed boxes per image: 1 + negative binomial (mean 7.4, heavy tail), cut to exactly `rows`.
    guess = int(rows / BOXES_PER_IMAGE * 1.2) + 16
    per_image = 1 + rng.negative_binomial(0.8, 0.8 / (0.8 + BOXES_PER_IMAGE - 1), size=guess)
    per_image = np.minimum(per_image, 600)
    ends = np.cumsum(per_image)
    n_img = int(np.searchsorted(ends, rows) + 1)
    per_image = per_image[:n_img].copy()
    per_image[-1] -= int(ends[n_img - 1] - rows)
    # Distinct sorted 64-bit ids: the official ImageIDs are 16 hex digits.
    ids = np.unique(rng.integers(0, 2**63, size=int(n_img * 1.01) + 16, dtype=np.int64).astype(np.uint64))
    ids = np.sort(rng.choice(ids, size=n_img, replace=False))

    # Class popularity: real top classes first, then a random order of the rest; Zipf-like weights.
    by_name = {n: k for k, n in enumerate(names)}
    top = [by_name[n] for n in TOP_CLASSES if n in by_name]
    rest = rng.permutation([k for k in range(n_cls) if k not in set(top)])
    ranked = np.array(top + rest.tolist(), dtype=np.int64)
    weights = 1.0 / (np.arange(n_cls) + 3.0) ** 1.3
    cls_p = np.empty(n_cls)
    cls_p[ranked] = weights / weights.sum()
    mid_sort_rank = np.argsort(np.argsort(np.array(mids)))  # LabelName string order, for the row order
    distinct = np.minimum(np.minimum(per_image, 1 + rng.poisson(1.8, size=n_img)), 8)

    schema = pa.schema(
        [
            ("ImageID", pa.string()),
            ("Source", pa.string()),
            ("LabelName", pa.string()),
            ("Confidence", pa.int8()),
        ]
        + [(c, pa.string()) for c in ("XMin", "XMax", "YMin", "YMax")]
        + [(c, pa.int8()) for c in FLAG_P]
        + [(c, pa.string()) for c in (XCLICK_COLUMNS if xclick else [])]
    )
    mids_arr = pa.array(mids, type=pa.string())
    src_arr = pa.array(SOURCES.tolist(), type=pa.string())
    tmp = path.with_name(path.name + ".tmp")
    chunk_images = 200_000
    # The official header is unquoted (pyarrow's writer would quote it): write it by hand.
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=1 << 20)
    with open(tmp, "wb") as sink, pacsv.CSVWriter(sink, schema, write_options=opts) as writer:
        sink.write((",".join(schema.names) + "\n").encode())
        for lo in range(0, n_img, chunk_images):
            hi = min(lo + chunk_images, n_img)
            counts = per_image[lo:hi]
            n = int(counts.sum())
            row_img = np.repeat(np.arange(hi - lo), counts)
            cand = rng.choice(n_cls, size=(hi - lo, 8), p=cls_p)
            slot = (rng.random(n) * distinct[lo:hi][row_img]).astype(np.int64)
            row_cls = cand[row_img, slot]
            order = np.lexsort((mid_sort_rank[row_cls], row_img))
            row_img, row_cls = row_img[order], row_cls[order]

            w = np.clip(rng.beta(0.9, 1.6, size=n), 0.004, 1.0)
            h = np.clip(rng.beta(0.9, 1.6, size=n), 0.004, 1.0)
            x0 = rng.random(n) * (1.0 - w)
            y0 = rng.random(n) * (1.0 - h)
            mic = lambda v: np.clip(np.round(v * 1e6), 0, 1e6).astype(np.int64)  # noqa: E731
            src = rng.choice(3, size=n, p=SOURCE_P)
            cols = {
                "ImageID": _hex_ids(ids[lo:hi]).take(pa.array(row_img)),
                "Source": src_arr.take(pa.array(src)),
                "LabelName": mids_arr.take(pa.array(row_cls)),
                "Confidence": pa.array(np.ones(n, dtype=np.int8)),
                "XMin": _decimals6(mic(x0)),
                "XMax": _decimals6(mic(x0 + w)),
                "YMin": _decimals6(mic(y0)),
                "YMax": _decimals6(mic(y0 + h)),
            }
            not_annotated = src == 1
            for c, p in FLAG_P.items():
                f = (rng.random(n) < p).astype(np.int8)
                if c != "IsGroupOf":
                    f[not_annotated] = -1
                cols[c] = pa.array(f)
            if xclick:  # extreme points clicked on the box edges (xclick rows only; -1 elsewhere)
                clicked = pa.array(src == 0)
                for a, (v0, size) in (("X", (x0, w)), ("Y", (y0, h))):
                    pts = [v0, v0 + size, v0 + rng.random(n) * size, v0 + rng.random(n) * size]
                    for k, v in enumerate(pts, start=1):
                        cols[f"XClick{k}{a}"] = pc.if_else(clicked, _decimals6(mic(v)), pa.scalar("-1"))
            writer.write_table(pa.table(cols, schema=schema))
    os.replace(tmp, path)
    return {
        "rows": rows,
        "images": n_img,
        "seed": seed,
        "xclick": xclick,
        "generator_version": GENERATOR_VERSION,
    }


def ensure_csv(out_dir: Path, rows: int, classes: Path, seed: int = 0, xclick: bool = False) -> Path:
    path = out_dir / f"oi-boxes-{rows}{'-xclick' if xclick else ''}.csv"
    stamp = path.with_suffix(".json")
    want = {"rows": rows, "seed": seed, "xclick": xclick, "generator_version": GENERATOR_VERSION}
    if path.is_file() and stamp.is_file():
        have = json.loads(stamp.read_text())
        if all(have.get(k) == v for k, v in want.items()):
            print(f"using cached {path} ({path.stat().st_size / 1e9:.2f} GB, {have['images']:,} images)")
            return path
    with open(classes, encoding="utf-8") as f:
        pairs = [row for row in csv.reader(f) if row]
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = write_boxes_csv(path, rows, [p[0] for p in pairs], [p[1] for p in pairs], seed=seed, xclick=xclick)
    stamp.write_text(json.dumps(info))
    print(
        f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB, {info['rows']:,} rows, {info['images']:,} images) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return path


# ---------------------------------------------------------------------------------------------- timing
def child(csv_path: str, classes: str, hierarchy: str) -> None:
    from mimic.builders.sources.openimages import read_openimages

    t0 = time.perf_counter()
    index = read_openimages(csv_path, classes, hierarchy)
    seconds = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = index.summary()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_gb": rss_kb * 1024 / 1e9,
                "images": index.num_images,
                "rows": index.num_rows,
                "instances": s["instances"],
                "crowd_rows": s["crowd_rows"],
                "depiction_rows": s["depiction_rows"],
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=14_600_000, help="Boxes in the generated CSV.")
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "out"), help="Where the CSV is cached.")
    ap.add_argument("--classes", default=str(SHARED / "class-descriptions-boxable.csv"))
    ap.add_argument("--hierarchy", default=str(SHARED / "bbox_labels_600_hierarchy.json"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--xclick",
        action="store_true",
        help="Add the 8 XClick columns of the real oidv6 train file (21 columns, ~2.2 GB at full size).",
    )
    ap.add_argument("--child", nargs=3, metavar=("CSV", "CLASSES", "HIERARCHY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    for p in (args.classes, args.hierarchy):
        if not Path(p).is_file():
            print(
                f"error: {p} not found (the real Open Images metadata); pass --classes/--hierarchy",
                file=sys.stderr,
            )
            return 2
    csv_path = ensure_csv(
        Path(args.out_dir), args.rows, Path(args.classes), seed=args.seed, xclick=args.xclick
    )
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(csv_path), args.classes, args.hierarchy],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return proc.returncode
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"read_openimages: {r['seconds']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB "
        f"(child total {time.perf_counter() - t0:.1f} s incl. start-up); "
        f"{r['images']:,} images, {r['rows']:,} (image, class) rows, {r['instances']:,} non-crowd instances, "
        f"{r['crowd_rows']:,} crowd rows, {r['depiction_rows']:,} depiction rows; CPUs: {os.cpu_count()}"
    )
    ok = r["seconds"] < 60 and r["peak_rss_gb"] < 6
    print("target (< 60 s, < 6 GB):", "met" if ok else "MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
