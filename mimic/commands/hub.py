"""Commands that materialize and publish datasets: `mimic build bench`, `mimic build demo`, `mimic push`."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass

from mimic.cli import check_numbers, check_paths, check_repo_id, command, opt
from mimic.commands.data import BENCH_CONFIG_NAMES as CONFIG_NAMES


@dataclass
class BuildBenchOptions:
    coco_annotations: str = opt(help="COCO instances JSON (e.g. instances_val2017.json) or its index (.parquet).",
                                metavar="JSON")
    coco_images: str = opt(help="Folder of the COCO images named in the annotations.", metavar="DIR")
    out: str = opt(help="Output Hub-layout folder (README.md + <config>/test-*.parquet).", metavar="DIR")
    configs: list[str] = opt(CONFIG_NAMES, help="Configs to build.", choices=CONFIG_NAMES)
    scale: str = opt("small", help="Size per config: small (demos) or paper (Table 1 sizes).", choices=["small", "paper"])
    num: int | None = opt(None, help="Rows per config (replaces --scale's size).")
    seed: int = opt(0, help="Base seed; same annotations, configs and seed give byte-identical parquet files.")
    min_box_frac: float = opt(0.05, help="Eligibility: every box of a class must cover this fraction of its image.")
    max_shard_mb: int = opt(500, help="Largest parquet shard, in MB of embedded image bytes.")
    repo_id: str = opt("mimic/bench", help="Repo id the card's loading example uses.")
    strict: bool = opt(False, help="All or nothing (paper-faithful builds): fail when any control cell cannot be "
                       "built. By default such cells are skipped with a warning and recorded in the card.")
    include_catch_all: bool = opt(False, help="listing: also ask about COCO's catch-all categories (indoor and "
                                  "outdoor objects), left out by default.")
    skip_bad_images: bool = opt(False, help="Leave out (and count, in the build record) image files that are not "
                                "readable images of the annotated size; by default the first one stops the build.")
    progress: bool = opt(True, help="Show progress bars.")


@dataclass
class BuildDemoOptions:
    out: str = opt(help="Output Hub-layout folder.", metavar="DIR")
    world: str | None = opt(
        None, help="A world rendered by `mimic world` (its folder or annotations.json); default: render the "
        "default world into the cache.", metavar="DIR")
    configs: list[str] = opt(CONFIG_NAMES, help="Configs to build.", choices=CONFIG_NAMES)
    scale: str = opt("small", help="Size per config.", choices=["small", "paper"])
    num: int | None = opt(None, help="Rows per config (replaces --scale's size).")
    seed: int = opt(0, help="Base seed.")
    max_shard_mb: int = opt(500, help="Largest parquet shard, in MB of embedded image bytes.")
    repo_id: str = opt("mimic/demo", help="Repo id the card's loading example uses.")
    skip_bad_images: bool = opt(False, help="Leave out (and count, in the build record) image files that are not "
                                "readable images of the annotated size; by default the first one stops the build.")
    progress: bool = opt(True, help="Show progress bars.")


def _build(builder_cls, o, *, source: str, annotations, images, min_box_frac: float, pretty_name: str, summary: str):
    from mimic.builders.cards import write_dataset_card
    from mimic.builders.hub_folder import materialize
    from mimic.builders.stats import format_table1
    from mimic.commands.generate import warn_bad_images, warn_skipped
    from mimic.errors import InfeasibleError

    check_numbers(("--num", o.num, 1, None), ("--max-shard-mb", o.max_shard_mb, 1, None))
    tables = {}
    failed = []
    index = None
    bad: dict[str, str] = {}
    strict = getattr(o, "strict", False)
    for name in o.configs:
        builder = builder_cls(
            config_name=name, source=source, annotations=annotations, images_dir=images, scale=o.scale,
            num_samples=o.num, seed=o.seed, min_box_frac=min_box_frac, strict=strict,
            include_catch_all=getattr(o, "include_catch_all", False), skip_bad_images=o.skip_bad_images,
        )
        if index is not None:
            builder._index, builder.bad_images = index, bad  # one parse of the annotations for all configs
        else:
            bad = warn_bad_images(builder)
        try:
            record = materialize(builder, o.out, max_shard_bytes=o.max_shard_mb * 1024 * 1024, progress=o.progress)
        except InfeasibleError as e:
            if strict:
                raise
            # One config the annotations cannot hold at all does not stop the others.
            print(f"error: {e}", file=sys.stderr)
            failed.append(name)
            index = builder.load_index()
            continue
        index = builder.load_index()
        warn_skipped(builder.grid)
        tables[name] = record["table1"]
        kept = f", {record['shards_kept']} kept from an earlier run" if record["shards_kept"] else ""
        print(f"{name}: {record['num_rows']} rows in {record['num_shards']} shard(s){kept}")
    if not tables:
        from mimic.errors import InfeasibleError

        raise InfeasibleError(f"no config of {', '.join(o.configs)} can be built from {annotations}")
    from mimic.builders.categories import left_out_categories, listing_categories

    listed = "listing" in tables and index is not None
    card = write_dataset_card(
        o.out, listing_categories=listing_categories(index, getattr(o, "include_catch_all", False)) if listed else None,
        left_out_categories=left_out_categories(index) if listed and not getattr(o, "include_catch_all", False) else None,
        pretty_name=pretty_name, summary=summary, repo_id=o.repo_id,
        build_command="mimic " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    print("\n" + format_table1(tables))
    print(f"\nwrote {o.out} (card: {card})")
    print(f'load it with: datasets.load_dataset("{o.out}", "{next(iter(tables))}", split="test")')
    return failed


@command("build bench", BuildBenchOptions, lock="out")
def run_build_bench(o: BuildBenchOptions) -> int:
    """Build the MIMIC benchmark from COCO into a Hub-layout folder that `load_dataset` reads.

    Each config becomes <out>/<config>/test-*.parquet with the source JPEG bytes embedded unchanged, and
    README.md is the dataset card (YAML `configs:`, the Table 1 statistics of this build, how to load and
    cite). Interrupted builds resume: finished shards are kept, the rest are written. Control cells the
    annotations cannot meet are skipped with a warning (see --strict); a config with no buildable cell is
    reported and the others are built (exit status 1).
    """
    from mimic.builders.mimic_bench import MimicBench

    check_numbers(("--min-box-frac", o.min_box_frac, 0, 1))
    check_paths(("--coco-annotations", o.coco_annotations, "file"), ("--coco-images", o.coco_images, "folder"))
    failed = _build(MimicBench, o, source="coco", annotations=o.coco_annotations, images=o.coco_images,
                    min_box_frac=o.min_box_frac, pretty_name="MIMIC benchmark",
                    summary="The MIMIC evaluation benchmark, generated from MS-COCO annotations.")
    return 1 if failed else 0  # the configs that could be built are in the folder


@command("build demo", BuildDemoOptions, lock="out")
def run_build_demo(o: BuildDemoOptions) -> int:
    """Build the benchmark's configs on the synthetic world (no download) into a Hub-layout folder."""

    from mimic.builders.mimic_demo import MimicDemo

    annotations = images = None
    if o.world is not None:
        check_paths(("--world", o.world, "path"))
        annotations, images = world_files(o.world)
    _build(MimicDemo, o, source="synthetic", annotations=annotations and str(annotations),
           images=images and str(images), min_box_frac=0.05, pretty_name="MIMIC demo (synthetic world)",
           summary="The MIMIC benchmark's configs on mimic-vlm's rendered synthetic world: a small, "
           "download-free stand-in for trying pipelines end to end.")
    return 0


def world_files(world: str):
    """(annotations.json, images folder) of a `--world` folder or its annotations file; ConfigError naming
    the flag when either is not there."""
    from pathlib import Path

    from mimic.errors import ConfigError

    p = Path(world)
    annotations = p / "annotations.json" if p.is_dir() else p
    images = annotations.parent / "images"
    if not annotations.is_file():
        raise ConfigError(f"--world {world}: no annotations.json in it; give a folder written by `mimic world`")
    if not images.is_dir():
        raise ConfigError(f"--world {world}: no images/ folder beside {annotations.name}; give a folder written by "
                          "`mimic world` (annotations.json and images/)")
    return annotations, images


@dataclass
class PushOptions:
    folder: str = opt(help="A Hub-layout folder written by `mimic build`.", positional=True, metavar="DIR")
    repo: str = opt(help="Target dataset repo on the Hub.", metavar="ORG/NAME")
    private: bool = opt(False, help="Create the repo as private (when it does not exist yet).")
    dry_run: bool = opt(False, help="List what would be uploaded and stop; touches no network.")
    message: str = opt("Upload MIMIC dataset", help="Commit message.")


@command("push", PushOptions)
def run_push(o: PushOptions) -> int:
    """Upload a Hub-layout dataset folder (card + parquet shards) to the Hugging Face Hub.

    The token comes from the usual places (HF_TOKEN, or `hf auth login`); it is never printed.
    """
    from mimic.builders.publish import push_folder

    check_repo_id(o.repo)
    push_folder(o.folder, o.repo, private=o.private, dry_run=o.dry_run, message=o.message)
    return 0


@dataclass
class ShowOptions:
    data: str = opt(help="A Hub-layout folder or a Hub dataset id.", positional=True, metavar="DIR_OR_ID")
    configs: list[str] = opt([], help="Configs to show (default: all in the card).")
    rows: int = opt(2, help="Rows to print per config.")


SHOW_COLUMNS = ("images", "question", "answer", "num_images", "num_query_images", "num_distractors")


@command("show", ShowOptions)
def run_show(o: ShowOptions) -> int:
    """Load a MIMIC dataset (benchmark or training folder, or a Hub id) and print a few rows of each config."""
    from mimic.eval.data import config_splits, load_config, resolve_configs

    check_numbers(("--rows", o.rows, 0, None))
    for name in resolve_configs(o.data, o.configs):
        splits = config_splits(o.data, name)
        split = "test" if "test" in splits else next(iter(splits), "test")
        # load_config reads a local folder by its file paths: a folder rebuilt in place is never served stale.
        ds = load_config(o.data, name, split, columns=SHOW_COLUMNS)
        print(f"\n== {name}: {len(ds)} rows ==")
        for row in ds.select(range(min(o.rows, len(ds)))):
            sizes = ", ".join(f"{im.width}x{im.height}" for im in row["images"][:3])
            more = f" (+{len(row['images']) - 3} more)" if len(row["images"]) > 3 else ""
            print(f"- [{row['num_images']} images: {sizes}{more}; spread {row['num_query_images']}, "
                  f"distractors {row['num_distractors']}]")
            print(f"  Q: {row['question']}\n  A: {row['answer']}")
    return 0
