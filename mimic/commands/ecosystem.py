"""Commands that connect MIMIC to other tools: `mimic export vlmevalkit`, `mimic lmms-eval path`."""

from __future__ import annotations

from dataclasses import dataclass

from mimic.cli import command, opt


@dataclass
class ExportVlmevalkitOptions:
    data: str = opt(help="Benchmark: a Hub-layout folder (mimic build ...) or a Hub dataset id.", positional=True,
                    metavar="DIR_OR_ID")
    out: str = opt(help="The TSV to write; VLMEvalKit finds it as $LMUData/<Name>.tsv.", metavar="FILE.tsv")
    configs: list[str] = opt([], help="Configs to export (default: every config of the data).")
    split: str = opt("test", help="Dataset split.")
    image_paths: bool = opt(False, help="Write the images as files and list their absolute paths (column "
                            "image_path) instead of embedding base64 strings (column image).")
    images_dir: str | None = opt(None, help="With --image-paths: where the image files go (default: "
                                 "<FILE>_images beside the TSV).", metavar="DIR")
    cache_dir: str | None = opt(None, help="Where `datasets` caches the data as arrow files (default: "
                                "$HF_DATASETS_CACHE).", metavar="DIR")


@command("export vlmevalkit", ExportVlmevalkitOptions)
def run_export_vlmevalkit(o: ExportVlmevalkitOptions) -> int:
    """Write a benchmark as a VLMEvalKit custom VQA dataset (one TSV, multi-image rows, controls kept).

    Put the file at $LMUData/<Name>.tsv and VLMEvalKit's build_dataset("<Name>") reads it. Images are
    embedded as base64 (or, with --image-paths, written beside it and listed by absolute path); `category`
    is the MIMIC config, so VLMEvalKit scores each config separately. Example:

      mimic export vlmevalkit demo-out/mimic-demo --out ~/LMUData/MIMIC_demo.tsv
    """
    from mimic.integrations.vlmevalkit import export_vlmevalkit

    info = export_vlmevalkit(o.data, o.out, o.configs, o.split, o.image_paths, o.images_dir, o.cache_dir)
    where = f"; images under {info['images_dir']}" if info["images_dir"] else ""
    print(f"wrote {info['path']}: {info['rows']} rows, {info['images']} images, configs "
          f"{', '.join(info['configs'])}{where}")
    return 0


@dataclass
class LmmsEvalPathOptions:
    data: str | None = opt(None, help="The benchmark the tasks read: a Hub-layout folder or a Hub dataset id "
                           "(default: the Hub repo mimic/bench, the shipped task folder as it is).",
                           metavar="DIR_OR_ID")
    out: str | None = opt(None, help="With --data: where to write the task folder (default: one per data under "
                          "$XDG_CACHE_HOME/mimic/lmms-eval).", metavar="DIR")
    split: str = opt("test", help="With --data: the split the tasks evaluate.")


@command("lmms-eval path", LmmsEvalPathOptions)
def run_lmms_eval_path(o: LmmsEvalPathOptions) -> int:
    """Print the lmms-eval task folder of MIMIC (tasks mimic_<config> and the group mimic).

    Pass it to lmms-eval's --include_path; --data points the tasks at a local folder or another Hub repo
    without editing any YAML (a folder holding only that data source is written and printed). Examples:

      python -m lmms_eval --include_path "$(mimic lmms-eval path)" --tasks mimic --model llava_onevision ...
      python -m lmms_eval --include_path "$(mimic lmms-eval path --data demo-out/mimic-demo)" --tasks mimic \\
          --model mimic_llava_ov --model_args pretrained=runs/masked-lora
    """
    from mimic.errors import ConfigError
    from mimic.integrations.lmms import task_folder

    if o.data is None and (o.out is not None or o.split != "test"):
        raise ConfigError("--out and --split apply to a task folder written for --data")
    print(task_folder(o.data, o.out, o.split))
    return 0


@dataclass
class BrowseOptions:
    data: str = opt(help="Benchmark: a Hub-layout folder (mimic build ...) or a Hub dataset id.", positional=True,
                    metavar="DIR_OR_ID")
    configs: list[str] = opt([], help="Configs to load (default: every config of the data).")
    split: str = opt("test", help="Dataset split.")
    run: str | None = opt(None, help="A `mimic eval` run folder: adds each row's prediction and score and the "
                          "views wrong_answers and parse_failures.", metavar="DIR")
    annotations: str | None = opt(None, help="The COCO-format instances JSON the rows were built from (COCO, or "
                                  "the synthetic world's annotations.json): shows the target classes' boxes.",
                                  metavar="JSON")
    name: str | None = opt(None, help="FiftyOne dataset name (default: mimic-<folder>-<hash>); rebuilt if it "
                           "exists.")
    media_dir: str | None = opt(None, help="Where the images are written for FiftyOne (default: under "
                                "$XDG_CACHE_HOME/mimic/fiftyone-media).", metavar="DIR")
    port: int = opt(5151, help="Port of the FiftyOne App.")
    address: str = opt("127.0.0.1", help="Address the App listens on (0.0.0.0 to reach it from elsewhere).")
    launch: bool = opt(True, help="Open the App after building the dataset (--no-launch: only build it).")
    cache_dir: str | None = opt(None, help="Where `datasets` caches the data as arrow files (default: "
                                "$HF_DATASETS_CACHE).", metavar="DIR")


@command("browse", BrowseOptions)
def run_browse(o: BrowseOptions) -> int:
    """Look at a benchmark in the FiftyOne App: one group per row, one slice per image, every control a field.

    With --run, each row also shows the model's answer and score, and the saved views wrong_answers and
    parse_failures list the rows to look at; with --annotations, the target classes' boxes are drawn.
    The App serves until interrupted (Ctrl-C). Examples:

      mimic browse demo-out/mimic-demo --annotations demo-out/world/annotations.json --run eval-out/runs/random
      mimic browse bench --no-launch --name mimic-bench   # then: fiftyone app launch mimic-bench
    """
    from mimic.integrations.browse import SLICE_PREFIX, build_browse_dataset, launch_app

    for flag, value, kind in (("--run", o.run, "folder"), ("--annotations", o.annotations, "file")):
        if value is not None:
            from mimic.cli import check_paths

            check_paths((flag, value, kind))
    ds = build_browse_dataset(o.data, o.configs, o.split, o.name, o.media_dir, o.annotations, o.run, o.cache_dir)
    slices = sorted(ds.group_slices, key=lambda s: int(s.removeprefix(SLICE_PREFIX)))
    # Every row has an image_0, the default slice, so the dataset's own count is the number of rows.
    print(f"FiftyOne dataset {ds.name}: {ds.count()} rows, {ds.select_group_slices().count()} images in slices "
          f"{', '.join(slices)}; saved views: {', '.join(ds.list_saved_views()) or 'none'}")
    if not o.launch:
        return 0
    session = launch_app(ds, o.port, o.address)
    print(f"FiftyOne App: http://{o.address}:{o.port}/datasets/{ds.name} (Ctrl-C to stop)", flush=True)
    try:
        session.wait()
    except KeyboardInterrupt:
        pass
    return 0


@dataclass
class FetchOptions:
    source: str = opt(help="What to download: coco (COCO 2017) or openimages (Open Images V7) detections.",
                      positional=True, choices=["coco", "openimages"], metavar="SOURCE")
    out: str = opt(help="Download folder; the split lands in DIR/<split> (rerun to resume).", metavar="DIR")
    split: str = opt("validation", help="Split to download.", choices=["train", "validation", "test"])
    max_samples: int | None = opt(None, help="Download at most N images (a seeded random sample of the split).",
                                  metavar="N")
    classes: list[str] = opt([], help="Only images that hold at least one of these classes.")
    seed: int | None = opt(None, help="Seed of the --max-samples sample (default 0).")


@command("fetch", FetchOptions)
def run_fetch(o: FetchOptions) -> int:
    """Download COCO or Open Images detections through the FiftyOne zoo, ready for `mimic index`.

    Leaves the annotation files and images `mimic index` / `mimic build` read (COCO: labels.json + data/;
    Open Images: labels/detections.csv, metadata/classes.csv, metadata/hierarchy.json + data/) and prints the
    `mimic index` command for them. Downloads show their progress and resume when rerun. Example:

      mimic fetch coco --split validation --out data/coco --max-samples 500 --classes dog cat
    """
    from mimic.integrations.fetch import fetch

    files = fetch(o.source, o.split, o.out, o.max_samples, o.classes, o.seed)
    args = " ".join(f"{flag} {path}" for flag, path in files.items())
    print(f"downloaded {o.source} {o.split} into {o.out}\nnext: mimic index --source {o.source} {args} "
          f"--out {o.out}/{o.split}/index.parquet")
    return 0
