"""The evaluation runner: data + model adapter -> predictions.jsonl (resumable) -> results.json.

A run folder holds:

    run.json           what the predictions were produced with (model spec, adapter options that change
                       answers, data, split); a rerun with other values is refused instead of mixing
    predictions.jsonl  one scored line per sample, appended batch by batch (`mimic.eval.predictions`)
    results.json       scores, breakdowns and Table 4 (`mimic.eval.aggregate`) plus the run's metadata,
                       written atomically at the end

A rerun on the same folder skips every sample already in predictions.jsonl, so an interrupted run loses
at most the batch it was generating. Batches never span configs, and a config's pending samples are
batched in row order, so a resumed run forms the same batches as an uninterrupted one.

`limit` keeps the first N rows of each config; configs cycle through their control cells row by row, so
the first rows cover every cell evenly. The adapter's `prepare` and the scorer's class vocabulary always
see the whole config, so a limit changes which samples are scored, never how.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimic.atomic import atomic_path
from mimic.errors import ConfigError, DataError
from mimic.eval.aggregate import AggregateSettings, summarize_run
from mimic.eval.api import ModelAdapter, Request, create_model, parse_model_spec
from mimic.eval.data import answer_vocabulary, load_config, resolve_configs, row_metadata
from mimic.eval.predictions import PredictionWriter, make_record, read_predictions
from mimic.eval.scoring import score_answer

__all__ = [
    "PREDICTIONS_FILE",
    "RESULTS_FILE",
    "RESULTS_SCHEMA",
    "RUN_FILE",
    "EvalSettings",
    "default_label",
    "row_matches",
    "load_results",
    "run_eval",
    "write_json_atomic",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.jsonl"
RESULTS_FILE = "results.json"
RESULTS_SCHEMA = "mimic-eval-results/1"


@dataclass
class EvalSettings:
    """One evaluation run.

    data: a Hub-layout folder or Hub dataset id. model: a model spec (`mimic.eval.api`). out: the run folder.
    configs: configs to evaluate (empty: all of the data's). limit: first N rows per config (None: all).
    batch_size: samples per `generate` call (and per append to predictions.jsonl). split: dataset split.
    label: the run's name in reports (default: from the model spec). model_options: adapter options by name
    (None values mean the adapter default). overwrite: discard the folder's earlier predictions.
    progress: show a progress bar. aggregate: bootstrap settings of results.json. cache_dir: where
    `datasets` keeps its arrow cache of the data (default: HF_DATASETS_CACHE).
    """

    data: str
    model: str
    out: str
    configs: list[str] = field(default_factory=list)
    limit: int | None = None
    batch_size: int = 8
    split: str = "test"
    label: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    progress: bool = True
    aggregate: AggregateSettings = field(default_factory=AggregateSettings)
    cache_dir: str | None = None
    # Control filter: column -> allowed values (as strings); only matching rows are evaluated (the diagnostics
    # use it for the paper's settings, e.g. num_query_images=3, num_images=10).
    where: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")


def row_matches(row: Mapping[str, Any], where: Mapping[str, Sequence[str]]) -> bool:
    """Whether every column named in `where` holds one of its allowed values (compared as strings)."""
    return all(str(row.get(col)) in {str(v) for v in allowed} for col, allowed in where.items())


def default_label(spec: str) -> str:
    """A short run name: the spec, with a local checkpoint path reduced to its folder name."""
    name, _, target = spec.partition(":")
    if target and os.path.exists(target):
        path = Path(target).resolve()
        # A checkpoint saved as <run>/model is better named after the run.
        return f"{name}:{path.parent.name if path.name in ('model', 'checkpoint') else path.name}"
    return spec


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as JSON atomically and durably (`mimic.atomic.atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, allow_nan=False)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file of a run folder; DataError naming it when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); delete it or use another --out") from None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _data_key(data: str) -> str:
    return str(Path(data).resolve()) if os.path.exists(data) else data


def _identity(settings: EvalSettings, model: ModelAdapter) -> dict:
    identity = {"model": settings.model, "data": _data_key(settings.data), "split": settings.split,
                "adapter": model.identity()}
    return json.loads(json.dumps(identity))  # the form it has once read back from run.json


def _start_run_folder(out: Path, identity: dict, overwrite: bool) -> dict:
    """Check that the folder's predictions were made the same way (or discard them); returns run.json."""
    run_path, pred_path = out / RUN_FILE, out / PREDICTIONS_FILE
    if overwrite:
        pred_path.unlink(missing_ok=True)
        (out / RESULTS_FILE).unlink(missing_ok=True)
    if run_path.exists() and pred_path.exists():
        run = read_json(run_path)
        old = run.get("identity", {})
        if old != identity:
            diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            raise ConfigError(
                f"{out} holds predictions of another run (differs in: {', '.join(diff)}; there: "
                f"{json.dumps({k: old.get(k) for k in diff})}); use another --out, or --overwrite to discard them"
            )
        return run
    run = {"identity": identity, "created": _now()}
    write_json_atomic(run_path, run)
    return run


@dataclass
class _ConfigPlan:
    config: str
    dataset: Any
    rows: list[dict]
    selected: list[int]
    pending: list[int]
    vocabulary: tuple[str, ...]


def _versions() -> dict:
    import datasets
    import transformers

    from mimic import __version__

    versions = {"mimic": __version__, "python": platform.python_version(), "datasets": datasets.__version__,
                "transformers": transformers.__version__}
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:  # torch is a dependency, but the baselines do not need it
        versions["torch"] = None
    return versions


def run_eval(settings: EvalSettings, model: ModelAdapter | None = None) -> dict:
    """Run (or resume) an evaluation and return results.json's content (also written to the folder).

    `model`: an adapter instance to use instead of creating one from `settings.model` (its spec must still
    name it, for the records); the caller then owns it and closes it.
    """
    from tqdm.auto import tqdm

    parse_model_spec(settings.model)  # a bad spec fails before any data is read
    # The data is checked (configs, files, columns) before a model is loaded or the run folder is touched,
    # so a bad --data leaves nothing behind.
    plans = []
    for config in resolve_configs(settings.data, settings.configs):
        ds = load_config(settings.data, config, settings.split, settings.cache_dir)
        rows = row_metadata(ds)
        selected = [i for i, row in enumerate(rows) if row_matches(row, settings.where)][: settings.limit]
        plans.append(_ConfigPlan(config, ds, rows, selected, [], answer_vocabulary(rows)))
    out = Path(settings.out)
    owns_model = model is None
    if model is None:
        model = create_model(settings.model, settings.model_options)
    try:
        out.mkdir(parents=True, exist_ok=True)
        run = _start_run_folder(out, _identity(settings, model), settings.overwrite)
        pred_path = out / PREDICTIONS_FILE
        done = {r["id"] for r in read_predictions(pred_path)}
        for plan in plans:
            plan.pending = [i for i in plan.selected if plan.rows[i]["id"] not in done]
        total = sum(len(p.pending) for p in plans)
        logger.info("%s: %d samples to generate, %d already done", out, total, sum(len(p.selected) for p in plans) - total)
        bar = tqdm(total=total, desc=f"eval {default_label(settings.model)}", unit="sample",
                   disable=not settings.progress)
        with PredictionWriter(pred_path) as writer:
            for plan in plans:
                if plan.pending:
                    _run_config(plan, model, settings.batch_size, writer, bar)
        bar.close()
        results = _results(settings, model, run, plans, read_predictions(pred_path))
        write_json_atomic(out / RESULTS_FILE, results)
        return results
    finally:
        if owns_model:
            model.close()


def _run_config(plan: _ConfigPlan, model: ModelAdapter, batch_size: int, writer: PredictionWriter, bar) -> None:
    model.prepare(plan.config, plan.rows)
    images = plan.dataset.select_columns(["images"]) if model.needs_images else None
    for start in range(0, len(plan.pending), batch_size):
        idx = plan.pending[start : start + batch_size]
        batch_images = images[idx]["images"] if images is not None else [[] for _ in idx]
        requests = [
            Request(id=plan.rows[i]["id"], config=plan.config, task=plan.rows[i]["task"],
                    question=plan.rows[i]["question"], images=ims, sample=plan.rows[i])
            for i, ims in zip(idx, batch_images, strict=True)
        ]
        prompts = [model.prompt(r) for r in requests]
        t0 = time.perf_counter()
        generations = model.generate(requests)
        elapsed = time.perf_counter() - t0
        if len(generations) != len(requests):
            raise RuntimeError(f"model {model.name!r} returned {len(generations)} answers for {len(requests)} requests")
        records = []
        for req, prompt, gen in zip(requests, prompts, generations, strict=True):
            sample = {**req.sample, "candidate_classes": plan.vocabulary}
            result = score_answer(sample, gen.text)
            records.append(make_record(req.sample, prompt, gen.text, result, gen.info,
                                       latency_s=elapsed / len(requests), batch_latency_s=elapsed))
        writer.write_batch(records)
        bar.update(len(records))


def _results(settings: EvalSettings, model: ModelAdapter, run: Mapping, plans: list[_ConfigPlan],
             records: list[dict]) -> dict:
    by_id = {r["id"]: r for r in records}
    by_config, missing = {}, {}
    for plan in plans:
        ids = [plan.rows[i]["id"] for i in plan.selected]
        # Row order, not file order: the bootstrap's resamples index this list.
        by_config[plan.config] = [by_id[i] for i in ids if i in by_id]
        if len(by_config[plan.config]) < len(ids):
            missing[plan.config] = len(ids) - len(by_config[plan.config])
    selected_rows = [plan.rows[i] for plan in plans for i in plan.selected]
    adapter = model.describe()
    old_path = Path(settings.out) / RESULTS_FILE
    if old_path.exists():
        # A resumed run with nothing left to generate never loads its model: keep what the run that did
        # load it recorded (model class, dtype, device, ...); what this run knows wins.
        old_adapter = (read_json(old_path).get("run") or {}).get("adapter") or {}
        adapter = {**old_adapter, **adapter}
    meta = {
        "model": settings.model,
        "adapter": adapter,
        "data": settings.data,
        "data_resolved": _data_key(settings.data),
        "split": settings.split,
        "configs": [p.config for p in plans],
        "limit": settings.limit,
        "batch_size": settings.batch_size,
        "num_samples": {p.config: len(p.selected) for p in plans},
        "num_rows": {p.config: len(p.rows) for p in plans},
        "missing": missing,
        "generator_version": sorted({str(r.get("generator_version")) for r in selected_rows}),
        "source": sorted({str(r.get("source")) for r in selected_rows}),
        "source_split": sorted({str(r["source_split"]) for r in selected_rows if r.get("source_split")}),
        "scoring_vocabulary_size": {p.config: len(p.vocabulary) for p in plans},
        "versions": _versions(),
        "created": run.get("created"),
        "date": _now(),
    }
    return {
        "schema": RESULTS_SCHEMA,
        "label": settings.label or default_label(settings.model),
        "run": meta,
        **summarize_run(by_config, settings.aggregate),
    }


def load_results(run_dir: str | os.PathLike, aggregate: AggregateSettings | None = None) -> dict:
    """results.json of a run folder; recomputed from predictions.jsonl when `aggregate` is given or when
    results.json is missing (an interrupted run), with whatever predictions the folder holds."""
    run_dir = Path(run_dir)
    results_path = run_dir / RESULTS_FILE
    if aggregate is None and results_path.exists():
        results = read_json(results_path)
        if not isinstance(results, dict) or results.get("schema") != RESULTS_SCHEMA:
            found = results.get("schema") if isinstance(results, dict) else type(results).__name__
            raise DataError(f"{results_path}: not a results file of `mimic eval` (schema {found!r}, expected "
                            f"{RESULTS_SCHEMA!r})")
        return results
    records = read_predictions(run_dir / PREDICTIONS_FILE)
    if not records and not results_path.exists():
        raise ConfigError(f"{run_dir}: no {RESULTS_FILE} and no predictions: not a run folder")
    old = read_json(results_path) if results_path.exists() else {}
    run = read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).exists() else {}
    by_config: dict[str, list[dict]] = {}
    for lineno, r in enumerate(records, 1):
        if not isinstance(r, dict) or not {"id", "config"} <= set(r):
            raise DataError(f"{run_dir / PREDICTIONS_FILE}: record {lineno} lacks its id or config: not written by "
                            "`mimic eval`")
        by_config.setdefault(r["config"], []).append(r)
    # Keep one line per id (the last), in the order of first appearance.
    for config, recs in by_config.items():
        by_config[config] = list({r["id"]: r for r in recs}.values())
    meta = dict(old.get("run") or {"model": run.get("identity", {}).get("model"), "created": run.get("created")})
    meta["recomputed"] = _now()
    spec = meta.get("model") or run_dir.name
    return {
        "schema": RESULTS_SCHEMA,
        "label": old.get("label") or default_label(str(spec)),
        "run": meta,
        **summarize_run(by_config, aggregate or AggregateSettings()),
    }
