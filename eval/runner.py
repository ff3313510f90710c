"""The evaluation runner: data + model adapter -> predictions.jsonl (resumable) -> results.json.

A run folder holds:

    run.json           what the predictions were produced with (model spec, adapter options that change
                       answers, data, split); a rerun with other values is refused instead of mixing
    predictions.jsonl  one scored line per sample, appended batch by batch (`mimic.eval.predictions`)
    results.json       scores, breakdowns and Table 4 (`mimic.eval.aggregate`) plus the run's metadata,
                       written atomically at the end

A rerun on the same folder skips every sample already in predictions.jsonl, so an interrupted run loses
at most the batch it was generating. Batches never span configs.

One run at a time: the run holds the folder's lock (`mimic.locks.FolderLock`, `.mimic.lock`) from before it
reads the folder until results.json is written, and a second run into it is refused. The model loads before
anything is written, so a model that cannot load leaves the folder as it was.

Batches are length-grouped: a config's selected samples are ordered by image count (most first, then row
order) and cut into batches of `batch_size`, so a batch holds samples with about as many image tokens and
padding costs little. The plan depends only on the data, `limit` and `batch_size`; a rerun generates, per
planned batch, the samples not yet done (after a crash, whole batches), so it forms the batches an
uninterrupted run would have formed.

Data parallel: launched by `accelerate launch [--multi_gpu] --num_processes N -m mimic.eval ...` (or `mimic
eval --num-processes N`, which launches that), every process holds its own model replica (its own GPU on
CUDA; gloo on CPU). Rank 0 takes the lock (a no-op when the launcher holds it for its ranks), checks the run
folder and deals the pending batches round-robin: rank r takes batches r, r+N, r+2N, ... Each rank appends
its answers to its own shard file, `shards/rank-NNNNN.jsonl`, fsynced per batch. When all are done, rank 0 merges the shards and predictions.jsonl into predictions.jsonl
(sorted by config, then row: the same file whatever the number of processes), removes the shards, and
writes results.json. An interrupted run resumes with any number of processes, since what is done is read
from every file. A shard whose header names another model, data or split is refused, never mixed in.

`limit` keeps the first N rows of each config; configs cycle through their control cells row by row, so
the first rows cover every cell evenly. The adapter's `prepare` and the scorer's class vocabulary always
see the whole config, so a limit changes which samples are scored, never how.
"""

from __future__ import annotations

import dataclasses
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

import orjson

from mimic.atomic import atomic_path, write_json
from mimic.errors import ConfigError, DataError, MimicError
from mimic.eval.aggregate import AggregateSettings, summarize_run
from mimic.eval.api import MODELS, ModelAdapter, Request, create_model, parse_model_spec
from mimic.eval.data import answer_vocabulary, load_config, resolve_configs, row_metadata
from mimic.eval.predictions import SHARD_SCHEMA, PredictionWriter, make_record, read_predictions, read_shard
from mimic.eval.scoring import score_answer
from mimic.locks import FolderLock

__all__ = [
    "PREDICTIONS_FILE",
    "RESULTS_FILE",
    "RESULTS_SCHEMA",
    "RUN_FILE",
    "SHARDS_DIR",
    "EvalSettings",
    "check_eval",
    "default_label",
    "plan_batches",
    "read_run_records",
    "row_matches",
    "load_results",
    "run_eval",
]

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
PREDICTIONS_FILE = "predictions.jsonl"
RESULTS_FILE = "results.json"
RESULTS_SCHEMA = "mimic-eval-results/1"
SHARDS_DIR = "shards"


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


def _resumed_run(out: Path, identity: dict, overwrite: bool) -> dict | None:
    """run.json of the folder's earlier predictions when they were made the same way (None: nothing to resume,
    or --overwrite); ConfigError when they are another run's. Reads only."""
    run_path, pred_path = out / RUN_FILE, out / PREDICTIONS_FILE
    if overwrite or not (run_path.exists() and (pred_path.exists() or _shard_paths(out))):
        return None
    run = read_json(run_path)
    old = run.get("identity", {})
    if old != identity:
        diff = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
        raise ConfigError(
            f"{out} holds predictions of another run (differs in: {', '.join(diff)}; there: "
            f"{json.dumps({k: old.get(k) for k in diff})}); use another --out, or --overwrite to discard them"
        )
    return run


def _start_run_folder(out: Path, identity: dict, overwrite: bool, resumed: dict | None) -> dict:
    """Write run.json (after discarding earlier predictions with `overwrite`), unless resuming `resumed`."""
    if resumed is not None:
        return resumed
    if overwrite:
        (out / PREDICTIONS_FILE).unlink(missing_ok=True)
        (out / RESULTS_FILE).unlink(missing_ok=True)
        for shard in _shard_paths(out):
            shard.unlink()
    run = {"identity": identity, "created": _now()}
    write_json(out / RUN_FILE, run)
    return run


@dataclass
class _ConfigPlan:
    config: str
    dataset: Any
    rows: list[dict]
    selected: list[int]
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


def plan_batches(rows: list[dict], selected: list[int], batch_size: int) -> list[list[int]]:
    """A config's batches (row indices): the selected rows by image count, most first, then row order,
    cut into runs of `batch_size` (length-grouped batches: little padding, largest batches first)."""
    order = sorted(selected, key=lambda i: (-int(rows[i].get("num_images") or 0), i))
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def _shard_paths(out: Path) -> list[Path]:
    return sorted((out / SHARDS_DIR).glob("rank-*.jsonl"))


def _shard_path(out: Path, rank: int) -> Path:
    return out / SHARDS_DIR / f"rank-{rank:05d}.jsonl"


def read_run_records(out: str | os.PathLike, identity: dict | None = None) -> list[dict]:
    """Every prediction of a run folder: predictions.jsonl, then the rank shards of an unfinished
    data-parallel run. With `identity`, a shard of another run raises ConfigError naming it."""
    out = Path(out)
    records = read_predictions(out / PREDICTIONS_FILE)
    for path in _shard_paths(out):
        header, shard_records = read_shard(path)
        if header is None:
            continue
        theirs = header.get("identity") or {}
        if identity is not None and theirs != identity:
            diff = sorted(k for k in set(theirs) | set(identity) if theirs.get(k) != identity.get(k))
            raise ConfigError(
                f"{path}: a shard of another run (differs in: {', '.join(diff)}; the shard's: "
                f"{json.dumps({k: theirs.get(k) for k in diff})}; this run's: "
                f"{json.dumps({k: identity.get(k) for k in diff})}); it cannot be merged: remove {out / SHARDS_DIR}, "
                "use another --out, or --overwrite"
            )
        records += shard_records
    return records


def _merge(out: Path, identity: dict, plans: list[_ConfigPlan]) -> list[dict]:
    """Fold the shards into predictions.jsonl (one line per id, in config then row order; lines of samples
    outside this run's selection after them, in file order), then remove the shards."""
    position = {plan.rows[i]["id"]: (p, i) for p, plan in enumerate(plans) for i in plan.selected}
    unique: dict[str, dict] = {}
    for r in read_run_records(out, identity):
        unique.setdefault(r["id"], r)  # predictions.jsonl first: a line there wins over a leftover copy
    tail = (len(plans), 0)
    records = sorted(unique.values(), key=lambda r: position.get(r["id"], tail))
    data = b"".join(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS) + b"\n" for r in records)
    pred_path, shards = out / PREDICTIONS_FILE, _shard_paths(out)
    if not pred_path.exists() or pred_path.read_bytes() != data:
        with atomic_path(pred_path) as tmp:
            Path(tmp).write_bytes(data)
    # Only once predictions.jsonl holds their lines: a crash before this point leaves copies, not losses.
    for shard in shards:
        shard.unlink()
    if (out / SHARDS_DIR).is_dir() and not any((out / SHARDS_DIR).iterdir()):
        (out / SHARDS_DIR).rmdir()
    return records


class _Ranks:
    """The processes of a data-parallel run; one process is rank 0 of 1 and needs no collectives.

    Under a launcher (`accelerate launch`, torchrun: WORLD_SIZE > 1) accelerate's `PartialState` sets up
    torch.distributed: gloo on CPU, NCCL with one device per rank on CUDA. The runner's own messages (the
    batch plan, results, errors) go over a gloo group, whatever the replicas' backend.
    """

    def __init__(self, cpu: bool):
        self.rank, self.world, self.device, self._group = 0, 1, None, None
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return
        import torch.distributed as dist
        from accelerate import PartialState

        state = PartialState(cpu=cpu)
        self.rank, self.world, self.device = state.process_index, state.num_processes, state.device
        if self.world > 1:
            # Ranks wait here for the slowest one at the end of a run of hours: no 30-minute default timeout.
            self._group = dist.new_group(backend="gloo", timeout=_dt.timedelta(hours=48))

    def share(self, fn):
        """fn() on rank 0, its result given to every rank; an error there is raised on every rank."""
        if self.world == 1:
            return fn()
        import torch.distributed as dist

        box: list = [None]
        failure: BaseException | None = None
        if self.rank == 0:
            try:
                box[0] = ("ok", fn())
            except BaseException as err:  # every rank must hear of it, or the others wait forever
                failure = err
                box[0] = ("user" if isinstance(err, MimicError) else "bug", f"{type(err).__name__}: {err}")
        dist.broadcast_object_list(box, src=0, group=self._group)
        if failure is not None:
            raise failure
        kind, value = box[0]
        if kind == "user":
            raise MimicError(value.split(": ", 1)[1])
        if kind == "bug":
            raise RuntimeError(f"rank 0 failed: {value}")
        return value

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(group=self._group)


def _wants_cpu(options: Mapping[str, Any]) -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return True  # not launched: no process group
    import torch

    device = str(options.get("device") or "auto")
    return device.startswith("cpu") or not torch.cuda.is_available()


def _replica_options(settings: EvalSettings, ranks: _Ranks) -> dict:
    """The model options of this rank's replica: on CUDA, its own device (the launcher's local rank)."""
    options = dict(settings.model_options)
    if ranks.world == 1:
        return options
    if options.get("device_map"):
        raise ConfigError("--device-map spreads one model over the GPUs; with several processes each process holds "
                          "a whole replica on its own GPU: drop one of them")
    cls = MODELS.get(parse_model_spec(settings.model)[0])
    fields = {f.name for f in dataclasses.fields(cls.Options)} if dataclasses.is_dataclass(cls.Options) else set()
    if "device" in fields and ranks.device is not None and ranks.device.type == "cuda" \
            and options.get("device") in (None, "auto", "cuda"):
        options["device"] = str(ranks.device)
    return options


def _load_plans(settings: EvalSettings) -> list[_ConfigPlan]:
    plans = []
    for config in resolve_configs(settings.data, settings.configs):
        ds = load_config(settings.data, config, settings.split, settings.cache_dir)
        rows = row_metadata(ds)
        selected = [i for i, row in enumerate(rows) if row_matches(row, settings.where)][: settings.limit]
        plans.append(_ConfigPlan(config, ds, rows, selected, answer_vocabulary(rows)))
    return plans


def check_eval(settings: EvalSettings) -> None:
    """Every check `run_eval` makes before it generates, writing nothing: the model spec and options, the
    data (configs, files, columns), and a run folder that holds another run's predictions or shards.
    `mimic eval --num-processes` calls it before launching, so a bad input fails in one line."""
    parse_model_spec(settings.model)
    _load_plans(settings)
    model = create_model(settings.model, settings.model_options)
    out = Path(settings.out)
    if settings.overwrite or not out.exists():
        return
    identity = _identity(settings, model)
    _resumed_run(out, identity, settings.overwrite)
    read_run_records(out, identity)


def run_eval(settings: EvalSettings, model: ModelAdapter | None = None) -> dict:
    """Run (or resume) an evaluation and return results.json's content (also written to the folder).

    `model`: an adapter instance to use instead of creating one from `settings.model` (its spec must still
    name it, for the records); the caller then owns it and closes it. Under a launcher every rank calls
    this and gets the same results (see the module docstring).
    """
    from tqdm.auto import tqdm

    parse_model_spec(settings.model)  # a bad spec fails before any data is read
    # The data is checked (configs, files, columns) before a model is loaded or the run folder is touched,
    # so a bad --data leaves nothing behind.
    plans = _load_plans(settings)
    ranks = _Ranks(cpu=_wants_cpu(settings.model_options))
    out = Path(settings.out)
    owns_model = model is None
    if model is None:
        model = create_model(settings.model, _replica_options(settings, ranks))
    # Rank 0 holds the run folder for the whole run (a no-op under `mimic eval --num-processes`, whose
    # launcher holds it); the other ranks only write their own shards and end before rank 0 releases it.
    lock = FolderLock(out, "--out")
    try:
        identity = _identity(settings, model)

        def survey() -> tuple[dict | None, list[tuple[int, list[int]]]]:
            lock.acquire()
            resumed = _resumed_run(out, identity, settings.overwrite)
            done = set() if settings.overwrite else {r["id"] for r in read_run_records(out, identity)}
            batches = []
            for p, plan in enumerate(plans):
                for batch in plan_batches(plan.rows, plan.selected, settings.batch_size):
                    pending = [i for i in batch if plan.rows[i]["id"] not in done]
                    if pending:
                        batches.append((p, pending))
            total = sum(len(b) for _, b in batches)
            logger.info("%s: %d samples to generate (%d batches over %d process(es)), %d already done", out, total,
                        len(batches), ranks.world, sum(len(p.selected) for p in plans) - total)
            return resumed, batches

        resumed, batches = ranks.share(survey)
        mine = batches[ranks.rank :: ranks.world]
        # Every config is shown to the adapter before any generation: an engine sized from the data (vllm:'s
        # images per prompt) sees the largest sample of the whole run.
        if mine:
            for plan in plans:
                model.prepare(plan.config, plan.rows)
            model.load()
        # Nothing is written before every replica has loaded: a failed load (a typo in --model) leaves the
        # folder as it was, and a rank that fails here ends the launch before rank 0 gets past the barrier.
        ranks.barrier()
        run = ranks.share(lambda: _start_run_folder(out, identity, settings.overwrite, resumed))
        if ranks.world == 1:
            writer = PredictionWriter(out / PREDICTIONS_FILE)
        else:
            writer = PredictionWriter(_shard_path(out, ranks.rank),
                                      header={"schema": SHARD_SCHEMA, "rank": ranks.rank, "identity": identity})
        desc = f"eval {default_label(settings.model)}" + (f" [rank 0 of {ranks.world}]" if ranks.world > 1 else "")
        bar = tqdm(total=sum(len(b) for _, b in mine), desc=desc, unit="sample",
                   disable=not settings.progress or ranks.rank != 0)
        with writer:
            images, current = None, None
            for p, idx in mine:
                plan = plans[p]
                if current != p:
                    images = plan.dataset.select_columns(["images"]) if model.needs_images else None
                    current = p
                _run_batch(plan, idx, images, model, writer, bar)
        bar.close()
        ranks.barrier()

        def finish() -> dict:
            records = _merge(out, identity, plans)
            results = _results(settings, model, run, plans, records)
            write_json(out / RESULTS_FILE, results)
            return results

        return ranks.share(finish)
    finally:
        lock.release()
        if owns_model:
            model.close()


def _run_batch(plan: _ConfigPlan, idx: list[int], images, model: ModelAdapter, writer: PredictionWriter,
               bar) -> None:
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
    records = list({r["id"]: r for r in read_run_records(run_dir)}.values()) if _shard_paths(run_dir) \
        else read_predictions(run_dir / PREDICTIONS_FILE)
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
