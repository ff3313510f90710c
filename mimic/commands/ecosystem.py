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
