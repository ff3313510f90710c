"""Pieces shared by the diagnostics: the `hf:` adapter they need, row selection, JSON and plot output."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimic.errors import ConfigError
from mimic.eval.api import Request, parse_model_spec

__all__ = ["Selection", "family_of", "hf_target", "parse_where", "requests_of", "run_arm", "save_figure", "select_rows"]


def hf_target(spec: str, analysis: str) -> str:
    """The checkpoint of an `hf:` spec; the diagnostics look inside the model, which only `hf:` allows."""
    name, target = parse_model_spec(spec)
    if name != "hf" or not target:
        raise ConfigError(f"--model {spec}: `mimic diagnose {analysis}` needs an hf:<checkpoint> model "
                          "(it reads or changes the model's internals)")
    return target


def family_of(adapter, analysis: str):
    """The loaded adapter's `Family`, checked to support `analysis` (one line naming the family otherwise)."""
    if adapter.family is None:
        raise ConfigError(f"mimic diagnose {analysis.replace('_', '-')}: hf:{adapter.target} is a "
                          f"{adapter._model_type!r} model, not one of the known families; its image tokens "
                          "cannot be told apart")
    adapter.family.check(analysis, str(adapter.target))
    return adapter.family


def parse_where(items: Sequence[str]) -> dict[str, list[str]]:
    """`["num_images=10", "num_query_images=3,4"]` -> {"num_images": ["10"], "num_query_images": ["3", "4"]}."""
    where: dict[str, list[str]] = {}
    for item in items:
        col, sep, values = item.partition("=")
        if not sep or not col or not values:
            raise ConfigError(f"--where {item!r}: expected COLUMN=VALUE[,VALUE...]")
        where.setdefault(col.strip(), []).extend(v.strip() for v in values.split(","))
    return where


@dataclass
class Selection:
    """The rows of one config that an analysis runs on: the dataset (for images) and their row indices."""

    config: str
    dataset: Any
    rows: list[dict]
    indices: list[int]


def select_rows(data: str, configs: Sequence[str], split: str, limit: int | None, where: Mapping[str, Sequence[str]],
                cache_dir: str | None) -> list[Selection]:
    """The first `limit` rows of each config that match `where`; ConfigError when no row matches at all."""
    from mimic.eval.data import load_config, resolve_configs, row_metadata
    from mimic.eval.runner import row_matches

    out = []
    for config in resolve_configs(data, list(configs)):
        ds = load_config(data, config, split, cache_dir)
        rows = row_metadata(ds)
        idx = [i for i, r in enumerate(rows) if row_matches(r, where)][:limit]
        if idx:
            out.append(Selection(config, ds, rows, idx))
    if not out:
        shown = " ".join(f"{k}={','.join(v)}" for k, v in where.items())
        raise ConfigError(f"{data}: no row of the configs {list(configs) or 'all'} matches --where {shown}")
    return out


def requests_of(sel: Selection, indices: Sequence[int]) -> Iterator[Request]:
    images = sel.dataset.select_columns(["images"])[list(indices)]["images"]
    for i, ims in zip(indices, images, strict=True):
        row = sel.rows[i]
        yield Request(id=row["id"], config=sel.config, task=row["task"], question=row["question"], images=ims,
                      sample=row)


def run_arm(settings: Any, adapter: Any, run_dir: Path, label: str) -> tuple[dict, list[dict]]:
    """One arm of a scored analysis as an ordinary, resumable `mimic eval` run in `run_dir` with `adapter`
    (closed afterwards); `settings` carries the eval options every scored analysis shares. Returns the run's
    results and its prediction records."""
    from mimic.eval.aggregate import AggregateSettings
    from mimic.eval.predictions import read_predictions
    from mimic.eval.runner import PREDICTIONS_FILE, EvalSettings, run_eval

    try:
        results = run_eval(EvalSettings(
            data=settings.data, model=settings.model, out=str(run_dir), configs=list(settings.configs),
            limit=settings.limit, batch_size=settings.batch_size, split=settings.split, label=label,
            overwrite=settings.overwrite, progress=settings.progress,
            aggregate=AggregateSettings(resamples=settings.bootstrap, seed=settings.bootstrap_seed),
            cache_dir=settings.cache_dir, where=settings.where), model=adapter)
    finally:
        adapter.close()
    return results, read_predictions(Path(run_dir) / PREDICTIONS_FILE)


def new_figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig, path: str | Path) -> Path:
    from mimic.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return Path(path)
