"""MIMIC in lmms-eval, with no fork: a task folder shipped as package data and a model entry point.

`task_folder()` is the shipped folder (`tasks/`): one task `mimic_<config>` per benchmark config plus the group
`mimic`, reading the Hub repo `DEFAULT_DATA`. `task_folder(data)` writes a folder for other data (a local
Hub-layout folder or another Hub id): its YAML files include the shipped ones and change only where the data
comes from, so nobody edits YAML. `mimic lmms-eval path [--data ...]` prints either:

    python -m lmms_eval --include_path "$(mimic lmms-eval path --data bench)" --tasks mimic --model ...

A local folder is read by its parquet files' absolute paths (as `mimic.builders.hub_folder.load_split` reads
it), not by `load_dataset(folder, config)`, whose cache is keyed by the folder's base name.

The model `mimic_llava_ov` (`mimic.integrations.lmms.model`) is registered through the `lmms_eval.models`
entry point (`manifest`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from mimic.integrations.lmms.hooks import CONFIG_METRICS, LOWER_IS_BETTER

__all__ = ["DEFAULT_DATA", "GROUP", "TASK_DIR", "manifest", "render_task_yaml", "task_folder", "task_name"]

TASK_DIR = Path(__file__).resolve().parent / "tasks"
DEFAULT_DATA = "mimic/bench"
GROUP = "mimic"
MODEL_ID = "mimic_llava_ov"


def task_name(config: str) -> str:
    return f"{GROUP}_{config}"


def render_task_yaml(config: str) -> str:
    """The shipped YAML of one config's task (tests check the files against it)."""
    lines = ["include: _default_template_yaml", f"task: {task_name(config)}", f"dataset_name: {config}",
             "metric_list:"]
    for metric in CONFIG_METRICS[config]:
        lines += [f"  - metric: {metric}", f"    aggregation: !function utils.aggregate_{metric}",
                  f"    higher_is_better: {'false' if metric in LOWER_IS_BETTER else 'true'}"]
    return "\n".join(lines) + "\n"


def render_group_yaml(configs) -> str:
    return "\n".join([f"group: {GROUP}", "task:", *(f"  - {task_name(c)}" for c in configs)]) + "\n"


def _default_out(data: str) -> Path:
    from mimic.builders.sources.synthetic import default_cache_dir

    key = str(Path(data).resolve()) if os.path.exists(data) else data
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return default_cache_dir() / "lmms-eval" / f"{Path(key).name or 'data'}-{digest}"


def task_folder(data: str | None = None, out: str | os.PathLike | None = None, split: str = "test") -> Path:
    """The folder to pass to lmms-eval's --include_path for `data` (default: the shipped one, Hub repo).

    For other data, the folder is written to `out` (default: under `$XDG_CACHE_HOME/mimic/lmms-eval`, one per
    data path or id) with a task per config the data holds and the `mimic` group over them.
    """
    from mimic.atomic import atomic_path
    from mimic.eval.data import config_names

    if data is None or (data == DEFAULT_DATA and out is None):
        return TASK_DIR
    configs = [c for c in config_names(data) if c in CONFIG_METRICS]
    if not configs:
        from mimic.errors import DataError

        raise DataError(f"{data}: none of its configs is a MIMIC benchmark config ({', '.join(CONFIG_METRICS)})")
    folder = Path(out) if out is not None else _default_out(data)
    folder.mkdir(parents=True, exist_ok=True)
    local = os.path.isdir(data)
    for config in configs:
        # Paths and ids as JSON strings, which YAML reads as they are (spaces, colons, "#").
        lines = [f"include: {json.dumps(str(TASK_DIR / (task_name(config) + '.yaml')))}"]
        if local:
            from mimic.builders.hub_folder import _data_files

            files = _data_files(data, config).get(split)
            if not files:
                from mimic.errors import DataError

                raise DataError(f"{data}: config {config!r} has no {split!r} split")
            # dataset_name: null, or the parquet builder would look for a config of that name.
            lines += ["dataset_path: parquet", "dataset_name: null", "dataset_kwargs:", "  data_files:",
                      f"    {json.dumps(split)}:", *(f"      - {json.dumps(os.path.abspath(f))}" for f in files)]
        else:
            lines += [f"dataset_path: {json.dumps(data)}"]
        if split != "test":
            lines += [f"test_split: {json.dumps(split)}"]
        with atomic_path(folder / f"{task_name(config)}.yaml") as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(folder / f"{GROUP}.yaml") as tmp:
        tmp.write_text(render_group_yaml(configs))
    return folder


def manifest():
    """The `lmms_eval.models` entry point: `--model mimic_llava_ov`."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path="mimic.integrations.lmms.model.MimicLlavaOV")
