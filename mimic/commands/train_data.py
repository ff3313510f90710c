"""Commands for the training set: `mimic build train`, `mimic check-overlap`."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass

from mimic.cli import check_numbers, check_paths, command, opt
from mimic.commands.data import TRAIN_TASK_NAMES as TASKS


@dataclass
class BuildTrainOptions:
    out: str = opt(help="Output Hub-layout folder (README.md + <task>/train-*.parquet).", metavar="DIR")
    oi_boxes: str | None = opt(None, help="Open Images box CSV (e.g. oidv6-train-annotations-bbox.csv) or its "
                               "index (.parquet).", metavar="CSV")
    oi_classes: str | None = opt(None, help="class-descriptions-boxable.csv.", metavar="CSV")
    oi_hierarchy: str | None = opt(None, help="bbox_labels_600_hierarchy.json (Listing categories).", metavar="JSON")
    oi_images: str | None = opt(None, help="Folder of the Open Images JPEGs (<ImageID>.jpg); listed images that "
                                "are missing are skipped and counted.", metavar="DIR")
    source: str = opt("openimages", help="Annotation source; synthetic builds a demo training set from the world "
                      "(--world), coco is refused unless --allow-coco.", choices=["openimages", "synthetic", "coco"])
    world: str | None = opt(None, help="synthetic: a world folder from `mimic world` (default: the cached default "
                            "world).", metavar="DIR")
    tasks: list[str] = opt(TASKS, help="Tasks to build (each a config; the card adds `all`).", choices=TASKS)
    per_task: int | None = opt(None, help="Samples per task (default: --scale's size; paper: 50,000).")
    scale: str = opt("small", help="Default size per task: small or paper (50,000).", choices=["small", "paper"])
    max_images: int = opt(10, help="Most images in one sample.")
    seed: int = opt(0, help="Base seed; same inputs and seed give byte-identical parquet files.")
    option_rate: float = opt(0.3, help="Share of turns asked as lettered-option questions.")
    followup_rate: float = opt(0.5, help="Share of Listing/Common/Odd-One samples with a follow-up counting turn.")
    export: list[str] = opt([], help="Also write other formats: llava (LLaVA-NeXT JSON under <out>/llava/).",
                            choices=["llava"])
    allow_coco: bool = opt(False, help="Allow COCO as a training source (it is the benchmark's source).")
    strict: bool = opt(False, help="All or nothing: fail when any control cell cannot be built. By default such "
                       "cells are skipped with a warning and recorded in the card.")
    include_catch_all: bool = opt(False, help="listing: also ask about the broad or mixed hierarchy nodes "
                                  "(docs/tasks.md), left out by default.")
    max_shard_mb: int = opt(500, help="Largest parquet shard, in MB of embedded image bytes.")
    num_proc: int = opt(1, help="Worker processes: with several --tasks, whole tasks (generation, verification, "
                        "shards) are built in parallel; with one, its parquet shards are written in parallel. The "
                        "files are byte-identical whatever the number.")
    repo_id: str = opt("mimic/train", help="Repo id the card's loading example uses.")
    skip_bad_images: bool = opt(False, help="Leave out (and count, in the build record) image files that are not "
                                "readable images of the annotated size; by default the first one stops the build.")
    progress: bool = opt(True, help="Show progress bars.")


@command("build train", BuildTrainOptions, lock="out")
def run_build_train(o: BuildTrainOptions) -> int:
    """Build the MIMIC training set (TRL conversational vision format) into a Hub-layout folder.

    Samples come from Open Images V7 boxes through the benchmark's generators and verifier, up to
    --max-images images each, with multi-turn conversations and lettered options. Resumable and atomic
    per shard, like `mimic build bench`.
    """
    from pathlib import Path

    from mimic.builders.cards import write_dataset_card
    from mimic.builders.generate import write_json
    from mimic.builders.hub_folder import materialize
    from mimic.builders.mimic_train import MimicTrain
    from mimic.builders.stats import format_table1
    from mimic.commands.generate import warn_bad_images, warn_skipped
    from mimic.commands.hub import world_files
    from mimic.errors import ConfigError, InfeasibleError, MimicError

    check_numbers(("--num-proc", o.num_proc, 1, None), ("--per-task", o.per_task, 1, None),
                  ("--max-shard-mb", o.max_shard_mb, 1, None), ("--option-rate", o.option_rate, 0, 1),
                  ("--followup-rate", o.followup_rate, 0, 1))
    if o.source == "coco" and not o.allow_coco:
        raise ConfigError("--source coco: COCO is the evaluation benchmark's source, and training on it would leak "
                          "evaluation images; use Open Images, or --allow-coco for a COCO split you know is disjoint")
    annotations, images = o.oi_boxes, o.oi_images
    if o.source == "synthetic" and o.world:
        check_paths(("--world", o.world, "path"))
        annotations, images = map(str, world_files(o.world))
    elif o.source != "synthetic" and (annotations is None or images is None):
        raise ConfigError("--oi-boxes and --oi-images are required (or --source synthetic)")
    checks = [("--oi-boxes", o.oi_boxes, "file"), ("--oi-images", o.oi_images, "folder"),
              ("--oi-classes", o.oi_classes, "file"), ("--oi-hierarchy", o.oi_hierarchy, "file"),
              ("--world", o.world, "path")]
    check_paths(*[(flag, value, kind) for flag, value, kind in checks if value is not None])
    if o.source == "openimages" and not annotations.endswith(".parquet"):
        missing = [flag for flag, v in (("--oi-classes", o.oi_classes), ("--oi-hierarchy", o.oi_hierarchy)) if v is None]
        if missing:
            raise ConfigError(f"--oi-boxes {annotations} (a box CSV) needs {' and '.join(missing)} (or give an index "
                              "written by `mimic index`)")
    def make_builder(task: str) -> MimicTrain:
        return MimicTrain(
            config_name=task, source=o.source, annotations=annotations, oi_classes=o.oi_classes,
            oi_hierarchy=o.oi_hierarchy, images_dir=images, per_task=o.per_task, scale=o.scale,
            max_images=o.max_images, seed=o.seed, option_rate=o.option_rate, followup_rate=o.followup_rate,
            allow_coco=o.allow_coco, strict=o.strict, include_catch_all=o.include_catch_all,
            skip_bad_images=o.skip_bad_images,
        )

    # The index once, before any task (and before worker processes fork, which then share it).
    first = make_builder(o.tasks[0])
    index, missing = first.load_index(), first.missing_image_ids
    if index.num_images == 0 and missing:
        raise ConfigError(f"--oi-images {images}: none of the {len(missing):,} images listed in {annotations} is "
                          f"there (e.g. image {missing[0]}); is it the right folder?")
    bad = warn_bad_images(first)
    # Several tasks and processes: whole tasks (generation and shards) in parallel; one task: its shards.
    task_procs = min(o.num_proc, len(o.tasks))
    shard_procs = o.num_proc if task_procs == 1 else 1

    def build(task: str) -> dict:
        builder = make_builder(task)
        builder._index, builder.missing_image_ids, builder.bad_images = index, missing, bad
        try:
            record = materialize(builder, o.out, split="train", max_shard_bytes=o.max_shard_mb * 1024 * 1024,
                                 progress=o.progress and task_procs == 1, num_proc=shard_procs)
        except InfeasibleError as e:
            if o.strict:
                raise
            return {"task": task, "infeasible": str(e)}
        llava = None
        if "llava" in o.export:
            llava = str(write_json(builder.llava_records(), Path(o.out) / "llava" / f"{task}.json"))
        return {"task": task, "record": record, "grids": list(builder.grids.values()), "llava": llava}

    if task_procs > 1:
        import multiprocessing

        from tqdm.auto import tqdm

        ctx = multiprocessing.get_context("fork")  # the workers inherit the index and `build`
        global _BUILD
        _BUILD = build
        with ctx.Pool(task_procs) as pool:
            outcomes = list(tqdm(pool.imap(_build_in_worker, o.tasks), total=len(o.tasks), unit="task",
                                 desc=f"building {len(o.tasks)} tasks in {task_procs} processes",
                                 disable=not o.progress))
        for outcome in outcomes:
            if "error" in outcome:
                raise MimicError(outcome["error"])
    else:
        outcomes = [build(task) for task in o.tasks]
    tables = {}
    failed = []
    for outcome in outcomes:  # reported in task order, however the work was spread
        task = outcome["task"]
        if "infeasible" in outcome:
            print(f"error: {outcome['infeasible']}", file=sys.stderr)  # this task cannot be built; the others are
            failed.append(task)
            continue
        for grid in outcome["grids"]:
            warn_skipped(grid)
        record = outcome["record"]
        tables[task] = record["table1"]
        print(f"{task}: {record['num_rows']} rows in {record['num_shards']} shard(s)")
        if outcome["llava"]:
            print(f"  LLaVA-NeXT format: {outcome['llava']} (image paths relative to {images})")
    if not tables:
        raise InfeasibleError(f"no task of {', '.join(o.tasks)} can be built from {annotations}")
    if missing:
        print(f"skipped {len(missing)} images listed in the annotations but missing on disk, e.g. {missing[:3]}")
    from mimic.builders.categories import left_out_categories, listing_categories

    listed = "listing" in tables and index is not None
    card = write_dataset_card(
        o.out, listing_categories=listing_categories(index, o.include_catch_all) if listed else None,
        left_out_categories=left_out_categories(index) if listed and not o.include_catch_all else None,
        pretty_name="MIMIC training set", template="train.md", all_config=True, repo_id=o.repo_id,
        summary=f"Multi-image training conversations from {o.source} annotations.",
        build_command="mimic " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    print("\n" + format_table1(tables))
    print(f"\nwrote {o.out} (card: {card})")
    return 1 if failed else 0  # the tasks that could be built are in the folder


_BUILD = None  # `mimic build train`'s task builder, set before its worker processes fork


def _build_in_worker(task: str) -> dict:
    from mimic.errors import MimicError

    try:
        return _BUILD(task)
    except MimicError as err:  # sent back as text: subclasses with their own __init__ do not unpickle
        return {"task": task, "error": str(err)}


@dataclass
class OverlapOptions:
    train: str = opt(help="A training folder (Hub layout).", metavar="DIR")
    bench: str = opt(help="A benchmark folder (Hub layout).", metavar="DIR")
    json_out: str | None = opt(None, help="Also write the overlapping (source, image id) pairs as JSON.",
                               metavar="FILE")


@command("check-overlap", OverlapOptions)
def run_check_overlap(o: OverlapOptions) -> int:
    """Report images shared by a training and a benchmark folder; exit 1 if there is any.

    No evaluation image may be trained on. Images are compared as (source, image id) pairs.
    """
    from mimic.builders.hub_folder import image_keys

    train, bench = image_keys(o.train), image_keys(o.bench)
    shared = sorted(train & bench)
    print(f"training images: {len(train):,}; benchmark images: {len(bench):,}; shared: {len(shared):,}")
    for source, image_id in shared[:10]:
        print(f"  {source} {image_id}")
    if o.json_out:
        from mimic.atomic import atomic_path

        with atomic_path(o.json_out) as tmp:
            tmp.write_text(json.dumps([list(k) for k in shared]))
    return 1 if shared else 0
