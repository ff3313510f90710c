"""Commands over generated question sets: `mimic generate`, `mimic stats`, `mimic verify`."""

from __future__ import annotations

from dataclasses import dataclass

from mimic.cli import check_numbers, command, opt
from mimic.commands.data import BENCH_CONFIG_NAMES, SOURCES, load_index


@dataclass
class GenerateOptions:
    config: str = opt(help="Benchmark config to generate.", choices=BENCH_CONFIG_NAMES)
    out: str = opt(help="Output JSON Lines file, one sample per line (no image bytes).", metavar="FILE.jsonl")
    source: str = opt("synthetic", help="Annotation format.", choices=SOURCES)
    annotations: str | None = opt(
        None,
        help="Annotations: COCO/synthetic JSON, Open Images box CSV, or an index written by `mimic index` "
        "(.parquet). Synthetic without it renders the default world.",
        metavar="PATH",
    )
    images: str | None = opt(None, help="Images folder of the annotations.", metavar="DIR")
    oi_classes: str | None = opt(None, help="openimages: class-descriptions-boxable.csv.", metavar="CSV")
    oi_hierarchy: str | None = opt(None, help="openimages: bbox_labels_600_hierarchy.json.", metavar="JSON")
    num: int | None = opt(None, help="Number of samples (default: the config's size at --scale).")
    scale: str = opt("small", help="Default size: small (demos, tests) or paper (Table 1).", choices=["small", "paper"])
    seed: int = opt(0, help="Base seed; the same annotations, config, controls and seed give identical output.")
    min_box_frac: float = opt(0.05, help="Eligibility: every box of a class must cover this fraction of the image.")
    num_images: int | None = opt(None, help="Control: images per sample (replaces the config's grid).")
    spread: int | None = opt(None, help="Control (counting, listing): images holding target instances.")
    distractors: int | None = opt(None, help="Control (counting, listing): images free of every target class.")
    concepts: int | None = opt(None, help="Control (counting): number of classes to count (k).")
    total_instances: int | None = opt(None, help="Control (single-concept counting): the total count T.")
    num_answer_classes: int | None = opt(None, help="Control (listing): number of classes in the answer.")
    strict: bool = opt(False, help="Fail when any control cell cannot be built (paper-faithful builds); by default "
                       "such cells are skipped with a warning and their samples go to the other cells.")
    include_catch_all: bool = opt(False, help="listing: also ask about catch-all categories (COCO's indoor and "
                                  "outdoor objects), left out by default.")
    variant: str | None = opt(None, help="Write matched twins of every sample instead (docs/diagnostics.md): "
                              "position (query block first/middle/last) or distractors (--levels). Make them "
                              "into folders with `mimic diagnose sweep --twins`.", choices=["position", "distractors"])
    levels: list[int] = opt([], help="--variant distractors: the numbers of distractors; missing ones are drawn "
                            "from the annotations (free of every target class).")
    max_distractors: int | None = opt(None, help="--variant distractors: levels 0..K (instead of --levels).")
    progress: bool = opt(True, help="Show a progress bar.")


def sweep_path(out) -> str:
    """Where `mimic generate --variant` records its sweep (levels, skipped samples, seeds) beside the twins."""
    return str(out) + ".sweep.json"


def grid_path(out) -> str:
    """Where `mimic generate` records the grid (skipped cells, shortfall) beside its JSON Lines file."""
    return str(out) + ".grid.json"


def warn_skipped(report) -> None:
    """One warning line per skipped cell, on stderr."""
    import sys

    for cell in report.skipped:
        print(f"warning: {cell.line()}", file=sys.stderr)
    if report.shortfall > 0:
        print(f"warning: {report.config}: {report.produced} of {report.requested} samples (every cell spent)",
              file=sys.stderr)


def warn_bad_images(builder) -> dict[str, str]:
    """Load the builder's index; one warning line on stderr when --skip-bad-images left images out. Returns
    {file name: problem} of those images."""
    import sys

    builder.load_index()
    bad = builder.bad_images
    if bad:
        name, problem = next(iter(sorted(bad.items())))
        print(f"warning: skipped {len(bad)} bad image file(s) (--skip-bad-images), e.g. {name} {problem}",
              file=sys.stderr)
    return bad


def overrides_of(o) -> dict:
    return {
        "num_images": o.num_images, "spread": o.spread, "distractors": o.distractors, "concepts": o.concepts,
        "total_instances": o.total_instances, "num_answer_classes": o.num_answer_classes,
    }


@command("generate", GenerateOptions)
def run_generate(o: GenerateOptions) -> int:
    """Generate one benchmark config as JSON Lines: questions, answers, image ids and every control.

    Each sample is checked by the verifier before it is written. Controls given here replace the config's
    grid; when the annotations cannot satisfy them, the error says which constraint failed. With --variant,
    each sample is replaced by its verified twins (one per level; samples that cannot give every level are
    skipped and counted in FILE.jsonl.sweep.json). Example:

      mimic generate --config counting_unbalanced --source coco --annotations instances_val2017.json \
          --num 50 --distractors 2 --variant distractors --levels 0 1 2 4 8 --out twins.jsonl
      mimic diagnose sweep --twins twins.jsonl --images val2017 --out sweeps/distractors
    """
    from mimic.builders.twins import distractor_levels
    from mimic.errors import ConfigError

    check_numbers(("--num", o.num, 1, None), ("--min-box-frac", o.min_box_frac, 0, 1),
                  ("--num-images", o.num_images, 1, None), ("--spread", o.spread, 1, None),
                  ("--distractors", o.distractors, 0, None), ("--concepts", o.concepts, 1, None),
                  ("--num-answer-classes", o.num_answer_classes, 1, None))
    if o.variant is None and (o.levels or o.max_distractors is not None):
        raise ConfigError("--levels and --max-distractors need --variant distractors")
    if o.variant == "position" and (o.levels or o.max_distractors is not None):
        raise ConfigError("--variant position has the levels first, middle, last; drop --levels/--max-distractors")
    levels = distractor_levels(o.levels, o.max_distractors) if o.variant == "distractors" else []
    from tqdm.auto import tqdm

    from mimic.builders.configs import get_config
    from mimic.builders.generate import GridReport, iter_samples, write_json, write_jsonl
    from mimic.builders.stats import format_table1, table1

    index = load_index(o.source, o.annotations, o.images, o.oi_classes, o.oi_hierarchy)
    cfg = get_config(o.config)
    total = cfg.num_samples(o.scale) if o.num is None else o.num
    report = GridReport(cfg.name)
    samples = iter_samples(index, cfg, num=total, seed=o.seed, overrides=overrides_of(o), min_box_frac=o.min_box_frac,
                           strict=o.strict, include_catch_all=o.include_catch_all, report=report)
    rows = [s.to_row() for s in tqdm(samples, total=total, desc=o.config, disable=not o.progress)]
    warn_skipped(report)
    if o.variant is not None:
        return _write_twins(o, index, rows, levels, report)
    path = write_jsonl(rows, o.out)
    write_json({cfg.name: report.to_dict()}, grid_path(o.out))
    print(format_table1(table1(rows, index)))
    print(f"\nwrote {len(rows)} verified samples to {path}")
    return 0


def _write_twins(o: GenerateOptions, index, rows: list[dict], levels: list[int], report) -> int:
    from mimic.builders.generate import write_json, write_jsonl
    from mimic.builders.twin_samples import sample_twins
    from mimic.errors import InfeasibleError

    twins, summary = sample_twins(index, rows, o.variant, levels, seed=o.seed, min_box_frac=o.min_box_frac)
    for reason, n in summary["skipped"].items():
        print(f"skipped {n} of {len(rows)} samples: {reason}")
    if not twins:
        raise InfeasibleError(f"{o.config}: none of the {len(rows)} samples can give every level "
                              f"{summary['levels']}; change the controls (e.g. --distractors) or the levels")
    path = write_jsonl(twins, o.out)
    write_json({report.config: report.to_dict()}, grid_path(o.out))
    write_json(summary, sweep_path(o.out))
    print(f"wrote {len(twins)} verified twins of {len(twins) // len(summary['levels'])} samples "
          f"(levels {', '.join(summary['levels'])}) to {path}")
    return 0


@dataclass
class StatsOptions:
    file: str = opt(help="A JSON Lines file written by `mimic generate`.", positional=True, metavar="FILE")
    annotations: str | None = opt(
        None, help="Annotations or index, to count all object instances per query (the paper's row).", metavar="PATH"
    )
    source: str = opt("coco", help="Format of --annotations.", choices=SOURCES)


@command("stats", StatsOptions)
def run_stats(o: StatsOptions) -> int:
    """Print the paper's Table 1 rows (queries, images, instances and images per query, words) for a set,
    and the control cells `mimic generate` skipped for it (recorded in FILE.grid.json)."""
    from mimic.builders.generate import read_jsonl
    from mimic.builders.rows import STATS_FIELDS, check_rows
    from mimic.builders.stats import format_table1, table1

    rows = read_jsonl(o.file)
    check_rows(rows, o.file, STATS_FIELDS)
    index = load_index(o.source, o.annotations) if o.annotations else None
    print(format_table1(table1(rows, index)))
    grid = format_grid(o.file)
    if grid:
        print(grid)
    return 0


def format_grid(jsonl) -> str:
    """The skipped cells and shortfall `mimic generate` recorded beside a JSON Lines file ("" if none)."""
    import json
    from pathlib import Path

    path = Path(grid_path(jsonl))
    if not path.is_file():
        return ""
    lines = []
    for config, grid in json.loads(path.read_text()).items():
        skipped = grid.get("skipped_cells") or []
        lines.append(f"\n{config}: {grid['produced']} of {grid['requested']} samples from "
                     f"{grid['cells'] - len(skipped)} of {grid['cells']} control cells")
        lines += [f"  skipped {c['controls']}: {c['reason']}" for c in skipped]
    return "\n".join(lines)


@dataclass
class VerifyOptions:
    file: str = opt(help="A JSON Lines file written by `mimic generate`.", positional=True, metavar="FILE")
    annotations: str = opt(help="The annotations (or index) the set was generated from.", metavar="PATH")
    source: str = opt("coco", help="Format of --annotations.", choices=SOURCES)
    images: str | None = opt(None, help="Images folder (not needed to verify).", metavar="DIR")
    oi_classes: str | None = opt(None, help="openimages: class-descriptions-boxable.csv.", metavar="CSV")
    oi_hierarchy: str | None = opt(None, help="openimages: bbox_labels_600_hierarchy.json.", metavar="JSON")
    min_box_frac: float = opt(0.05, help="Eligibility threshold the set was generated with.")


@command("verify", VerifyOptions)
def run_verify(o: VerifyOptions) -> int:
    """Re-verify every sample of a generated set against the annotations; exit 1 if any fails."""
    from mimic.builders.generate import read_jsonl
    from mimic.builders.rows import check_rows
    from mimic.builders.verify import check_sample

    check_numbers(("--min-box-frac", o.min_box_frac, 0, 1))
    rows = read_jsonl(o.file)
    check_rows(rows, o.file)  # before the (possibly long) read of the annotations
    index = load_index(o.source, o.annotations, o.images, o.oi_classes, o.oi_hierarchy)
    failed = 0
    for row in rows:
        problems = check_sample(index, row, o.min_box_frac)
        if problems:
            failed += 1
            print(f"FAIL {row.get('id')}: " + "; ".join(problems))
    print(f"{len(rows) - failed} of {len(rows)} samples verify")
    return 1 if failed else 0
