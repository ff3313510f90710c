"""Aggregation: per-config scores, declared breakdowns and the paper's Table 4, as data.

Everything returned here is plain JSON-able data; reports render it, nothing is only printed.

Per config (`summarize_config`): n, every metric of the task (`mimic.eval.metrics.TASK_METRICS`) with a
bootstrap interval, parse failures with their reasons (the scorer's `rule`: refusal, ambiguous_totals,
...; see docs/scoring.md), and

- `breakdowns`: one per control column (`BREAKDOWN_COLUMNS`: num_images, num_query_images,
  num_distractors, num_concepts, total_instances, category, template_id, connector_id; plus target_class
  for Common and Odd-One), each a list of cells {value, n, score, ci_low, ci_high, accuracy,
  parse_failure_rate, ...} in value order. `score` is the task's primary metric (named by `metric`).
- `cross_breakdowns`: two-column cells for the paper's curves (`CROSS_BREAKDOWNS`): Counting by
  (num_query_images, num_images) for Fig. 1 left and (total_instances, num_query_images) for Fig. 1
  middle.
- `per_class` (Counting): accuracy of each class's count over every (sample, class) pair.

Table 4 (`table4`): Common, Counting, Odd-One, Listing and their average, as in the paper. The paper's
Counting column is the balanced split ("Unless otherwise specified, all results for Counting subtask
correspond to the balanced split", section 5.1), so Counting here is `counting_balanced` accuracy; the
unbalanced and multi-concept configs are reported beside it (`extra`), not mixed in. Listing is micro F1,
as the official evaluation computes it. The average is the mean of the four columns present (`complete`
says whether all four were); its interval comes from averaging the columns' bootstrap resamples, which
are independent because the configs are disjoint samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mimic.eval.data import CONTROL_COLUMNS
from mimic.eval.metrics import (
    PRIMARY_METRIC,
    TASK_METRICS,
    bootstrap,
    confidence_interval,
    metric_value,
    record_arrays,
    rng_for,
)

__all__ = [
    "BREAKDOWN_COLUMNS",
    "CROSS_BREAKDOWNS",
    "TABLE4_COLUMNS",
    "TABLE4_EXTRA",
    "AggregateSettings",
    "summarize_config",
    "summarize_run",
    "table4",
]

BREAKDOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "counting": CONTROL_COLUMNS,
    "listing": CONTROL_COLUMNS,
    "common": (*CONTROL_COLUMNS, "target_class"),
    "odd_one": (*CONTROL_COLUMNS, "target_class"),
}
# (line column, x column): one curve per value of the first, over the second.
CROSS_BREAKDOWNS: dict[str, tuple[tuple[str, str], ...]] = {
    "counting": (("num_query_images", "num_images"), ("total_instances", "num_query_images")),
    "listing": (("num_query_images", "num_images"),),
}
# (column name, config) of the paper's Table 4, in its order.
TABLE4_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Common", "common"),
    ("Counting", "counting_balanced"),
    ("Odd-One", "odd_one"),
    ("Listing", "listing"),
)
TABLE4_EXTRA: tuple[tuple[str, str], ...] = (
    ("Counting (unbalanced)", "counting_unbalanced"),
    ("Counting (multi-concept)", "counting_multiconcept"),
)


@dataclass(frozen=True)
class AggregateSettings:
    """resamples: bootstrap resamples per interval (0: no intervals). seed: bootstrap seed.
    confidence: interval coverage."""

    resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self):
        if self.resamples < 0:
            raise ValueError(f"resamples must be >= 0, got {self.resamples}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")


def _cell_value(record: Mapping, column: str):
    if column == "target_class":
        targets = record.get("target_classes") or []
        return str(targets[0]) if targets else None
    return (record.get("controls") or {}).get(column)


def _sort_key(value) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(_sort_key(v) for v in value)
    return (isinstance(value, str), value if value is not None else "")


def _metric_names(task: str, arrays: Mapping[str, np.ndarray]) -> list[str]:
    names = list(TASK_METRICS[task])
    if "class_accuracy" in names and not (arrays["classes"] > 1).any():
        names.remove("class_accuracy")  # single-class counting: it would repeat the accuracy
    return names


def _stats(task: str, records: Sequence[Mapping], settings: AggregateSettings, key: str, names=None):
    """(metrics dict with intervals, bootstrap values of the primary metric)."""
    arrays = record_arrays(records)
    names = names or _metric_names(task, arrays)
    dists = bootstrap(names, arrays, settings.resamples, rng_for(settings.seed, key))
    metrics = {}
    for name in names:
        low, high = confidence_interval(dists[name], settings.confidence) if settings.resamples else (None, None)
        metrics[name] = {"value": _finite(metric_value(name, arrays)), "ci_low": low, "ci_high": high}
    return metrics, dists[PRIMARY_METRIC[task]], arrays


def _finite(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def _cell(task: str, value, records: Sequence[Mapping], settings: AggregateSettings, key: str) -> dict:
    primary = PRIMARY_METRIC[task]
    metrics, _, arrays = _stats(task, records, settings, key)
    cell = {
        "value": value,
        "n": len(records),
        "score": metrics[primary]["value"],
        "ci_low": metrics[primary]["ci_low"],
        "ci_high": metrics[primary]["ci_high"],
        "accuracy": _finite(metric_value("accuracy", arrays)),
        "parse_failure_rate": _finite(metric_value("parse_failure_rate", arrays)),
    }
    for extra in ("mae", "mean_f1", "class_accuracy"):
        if extra in metrics:
            cell[extra] = metrics[extra]["value"]
    return cell


def _group(records: Sequence[Mapping], columns: Sequence[str]) -> list[tuple[object, list[Mapping]]]:
    groups: dict[object, list[Mapping]] = {}
    for r in records:
        values = tuple(_cell_value(r, c) for c in columns)
        if any(v is None for v in values):
            continue
        groups.setdefault(values if len(columns) > 1 else values[0], []).append(r)
    return sorted(groups.items(), key=lambda kv: _sort_key(kv[0]))


def _per_class(records: Sequence[Mapping], settings: AggregateSettings, config: str) -> list[dict]:
    """Counting: accuracy of each class's count, over every (sample, class) pair that asks for it."""
    verdicts: dict[str, list[float]] = {}
    for r in records:
        per_class = (r.get("details") or {}).get("per_class")
        if per_class:
            for cls, ok in per_class.items():
                verdicts.setdefault(str(cls), []).append(float(bool(ok)))
        elif r.get("target_classes"):
            verdicts.setdefault(str(r["target_classes"][0]), []).append(float(bool(r["correct"])))
    cells = []
    for cls in sorted(verdicts):
        arrays = {"correct": np.asarray(verdicts[cls])}
        dist = bootstrap(["accuracy"], arrays, settings.resamples, rng_for(settings.seed, f"{config}/class={cls}"))
        low, high = confidence_interval(dist["accuracy"], settings.confidence) if settings.resamples else (None, None)
        cells.append({"value": cls, "n": len(verdicts[cls]), "accuracy": float(arrays["correct"].mean()),
                      "ci_low": low, "ci_high": high})
    return cells


def _failure_reasons(records: Sequence[Mapping]) -> dict[str, int]:
    """{the scorer's rule: count} over the parse failures, most frequent first (refusal, ambiguous_totals,
    ...). Records scored before rules were recorded count in `parse_failures` only."""
    rules = ((r.get("details") or {}).get("rule") for r in records if r.get("parse_failed"))
    reasons = Counter(str(rule) for rule in rules if rule)
    return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def summarize_config(
    config: str, records: Sequence[Mapping], settings: AggregateSettings | None = None
) -> tuple[dict, np.ndarray]:
    """(summary of one config's predictions, bootstrap values of its primary score)."""
    settings = settings or AggregateSettings()
    if not records:
        raise ValueError(f"config {config!r}: no predictions to summarize")
    tasks = {r["task"] for r in records}
    if len(tasks) != 1:
        raise ValueError(f"config {config!r}: predictions of several tasks {sorted(tasks)}")
    (task,) = tasks
    primary = PRIMARY_METRIC[task]
    metrics, primary_dist, arrays = _stats(task, records, settings, config)
    failures = int(arrays["parse_failed"].sum())
    summary: dict = {
        "config": config,
        "task": task,
        "n": len(records),
        "metric": primary,
        "score": metrics[primary]["value"],
        "ci_low": metrics[primary]["ci_low"],
        "ci_high": metrics[primary]["ci_high"],
        "metrics": metrics,
        "parse_failures": failures,
        "parse_failure_rate": failures / len(records),
        "parse_failure_reasons": _failure_reasons(records),
        "breakdowns": [],
        "cross_breakdowns": [],
    }
    for column in BREAKDOWN_COLUMNS[task]:
        cells = [
            _cell(task, value, group, settings, f"{config}/{column}={value}")
            for value, group in _group(records, [column])
        ]
        summary["breakdowns"].append({"column": column, "metric": primary, "cells": cells})
    for columns in CROSS_BREAKDOWNS.get(task, ()):
        cells = [
            _cell(task, list(value), group, settings, f"{config}/{columns[0]}={value[0]}/{columns[1]}={value[1]}")
            for value, group in _group(records, columns)
        ]
        summary["cross_breakdowns"].append({"columns": list(columns), "metric": primary, "cells": cells})
    if task == "counting":
        summary["per_class"] = _per_class(records, settings, config)
    return summary, primary_dist


def table4(summaries: Mapping[str, dict], dists: Mapping[str, np.ndarray], confidence: float = 0.95) -> dict:
    """The paper's Table 4 from config summaries (see the module docstring for the definitions)."""

    def column(name: str, config: str) -> dict:
        s = summaries.get(config)
        if s is None:
            return {"name": name, "config": config, "metric": None, "value": None, "ci_low": None,
                    "ci_high": None, "n": 0}
        return {"name": name, "config": config, "metric": s["metric"], "value": s["score"],
                "ci_low": s["ci_low"], "ci_high": s["ci_high"], "n": s["n"]}

    columns = [column(n, c) for n, c in TABLE4_COLUMNS]
    present = [c for c in columns if c["value"] is not None]
    average: dict = {"value": None, "ci_low": None, "ci_high": None, "complete": len(present) == len(columns),
                     "of": [c["name"] for c in present]}
    if present:
        average["value"] = float(np.mean([c["value"] for c in present]))
        samples = [dists[c["config"]] for c in present if c["config"] in dists]
        if len(samples) == len(present) and all(s.size for s in samples):
            size = min(s.size for s in samples)
            average["ci_low"], average["ci_high"] = confidence_interval(
                np.mean([s[:size] for s in samples], axis=0), confidence
            )
    return {
        "columns": columns,
        "average": average,
        "extra": [column(n, c) for n, c in TABLE4_EXTRA],
        "scale": "fraction",
        "definition": (
            "Common, Odd-One: accuracy; Counting: counting_balanced accuracy (the paper's Table 4 uses the "
            "balanced split); Listing: micro F1; Avg.: mean of the columns present."
        ),
    }


def summarize_run(
    records_by_config: Mapping[str, Sequence[Mapping]], settings: AggregateSettings | None = None
) -> dict:
    """{"configs": {config: summary}, "table4": ...} for the configs with predictions."""
    settings = settings or AggregateSettings()
    summaries, dists = {}, {}
    for config, records in records_by_config.items():
        if records:
            summaries[config], dists[config] = summarize_config(config, records, settings)
    return {
        "configs": summaries,
        "table4": table4(summaries, dists, settings.confidence),
        "aggregation": {"resamples": settings.resamples, "seed": settings.seed, "confidence": settings.confidence,
                        "interval": "bootstrap percentile"},
    }
