"""Metrics over scored predictions, in a registry, with seeded bootstrap confidence intervals.

A metric is a statistic of per-sample arrays (`record_arrays`) evaluated on rows of sample indices, so the
point value (the indices 0..n-1) and every bootstrap resample (indices drawn with replacement) go
through the same code. Ratio metrics (micro F1, class accuracy, MAE over the parsed answers) are
recomputed on each resample from its sums, not averaged from per-sample values.

Metrics per task (`TASK_METRICS`; the first is the task's primary score, the one in Table 4):
- counting: accuracy (every count right), mae (mean absolute error of the parsed answers), class_accuracy
  (fraction of the individual class counts right: multi-concept), parse_failure_rate;
- listing: micro_f1 (2TP / (2TP + FP + FN) over the summed counts, as the official evaluation reports),
  mean_f1 (mean per-sample F1), accuracy (exact set), parse_failure_rate;
- common, odd_one: accuracy, parse_failure_rate.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mimic.registry import Registry

__all__ = [
    "METRICS",
    "PRIMARY_METRIC",
    "TASK_METRICS",
    "Metric",
    "bootstrap",
    "confidence_interval",
    "metric_value",
    "record_arrays",
    "register_metric",
    "rng_for",
]

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Metric:
    """name; description; statistic(arrays, idx) -> one value per row of `idx` (shape (B, n) -> (B,))."""

    name: str
    description: str
    statistic: Callable[[Arrays, np.ndarray], np.ndarray]


METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, description: str):
    def wrap(fn: Callable[[Arrays, np.ndarray], np.ndarray]) -> Callable[[Arrays, np.ndarray], np.ndarray]:
        METRICS.register(name)(Metric(name, description, fn))
        return fn

    return wrap


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), empty)


@register_metric("accuracy", "Fraction of samples answered exactly right.")
def _accuracy(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return a["correct"][idx].mean(axis=1)


@register_metric("mean_f1", "Mean of the per-sample F1 scores (Listing).")
def _mean_f1(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return a["score"][idx].mean(axis=1)


@register_metric("micro_f1", "2TP / (2TP + FP + FN) over the summed Listing counts (1 when all are 0).")
def _micro_f1(a: Arrays, idx: np.ndarray) -> np.ndarray:
    tp, fp, fn = (a[k][idx].sum(axis=1) for k in ("tp", "fp", "fn"))
    return _ratio(2 * tp, 2 * tp + fp + fn, 1.0)


@register_metric("mae", "Mean absolute count error over the parsed answers (failures left out).")
def _mae(a: Arrays, idx: np.ndarray) -> np.ndarray:
    err = a["abs_error"][idx]
    valid = ~np.isnan(err)
    return _ratio(np.where(valid, err, 0.0).sum(axis=1), valid.sum(axis=1), np.nan)


@register_metric("class_accuracy", "Fraction of individual class counts right (multi-concept Counting).")
def _class_accuracy(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return _ratio(a["classes_correct"][idx].sum(axis=1), a["classes"][idx].sum(axis=1), np.nan)


@register_metric("parse_failure_rate", "Fraction of answers from which nothing could be parsed.")
def _parse_failure_rate(a: Arrays, idx: np.ndarray) -> np.ndarray:
    return a["parse_failed"][idx].mean(axis=1)


TASK_METRICS: dict[str, tuple[str, ...]] = {
    "counting": ("accuracy", "mae", "class_accuracy", "parse_failure_rate"),
    "listing": ("micro_f1", "mean_f1", "accuracy", "parse_failure_rate"),
    "common": ("accuracy", "parse_failure_rate"),
    "odd_one": ("accuracy", "parse_failure_rate"),
}
PRIMARY_METRIC: dict[str, str] = {task: names[0] for task, names in TASK_METRICS.items()}


def record_arrays(records: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """Per-sample arrays of prediction records (the lines of predictions.jsonl)."""
    n = len(records)
    out = {
        "correct": np.fromiter((bool(r["correct"]) for r in records), float, n),
        "score": np.fromiter((float(r["score"]) for r in records), float, n),
        "parse_failed": np.fromiter((bool(r["parse_failed"]) for r in records), float, n),
    }
    details = [r.get("details") or {} for r in records]
    abs_error = [d.get("abs_error") for d in details]
    out["abs_error"] = np.array([np.nan if e is None else float(e) for e in abs_error], dtype=float)
    for key in ("tp", "fp", "fn"):
        out[key] = np.fromiter((float(d.get(key, 0)) for d in details), float, n)
    # Single-class counting: one class, right when the answer is; multi-concept: the per-class verdicts.
    per_class = [d.get("per_class") for d in details]
    out["classes"] = np.array([len(p) if p else 1 for p in per_class], dtype=float)
    out["classes_correct"] = np.array(
        [sum(map(bool, p.values())) if p else float(bool(r["correct"])) for p, r in zip(per_class, records, strict=True)],
        dtype=float,
    )
    return out


def metric_value(name: str, arrays: Arrays) -> float:
    """The point value of metric `name` over all samples."""
    n = len(arrays["correct"])
    if n == 0:
        return float("nan")
    return float(METRICS.get(name).statistic(arrays, np.arange(n)[None, :])[0])


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator for one bootstrap, from the run's seed and a stable key (config, breakdown cell), so
    that every interval is reproducible and independent of the order in which they are computed."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def bootstrap(
    names: Sequence[str], arrays: Arrays, resamples: int, rng: np.random.Generator, max_cells: int = 2_000_000
) -> dict[str, np.ndarray]:
    """`resamples` bootstrap values of each metric in `names`; all metrics share the same resamples."""
    n = len(arrays["correct"])
    out: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if n == 0 or resamples <= 0:
        return {name: np.full(max(resamples, 0), np.nan) for name in names}
    chunk = max(1, min(resamples, max_cells // n))  # bounds the (chunk, n) index matrix
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        for name in names:
            out[name].append(METRICS.get(name).statistic(arrays, idx))
        done += b
    return {name: np.concatenate(parts) for name, parts in out.items()}


def confidence_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of bootstrap `values` (NaNs ignored); (None, None) when there is none."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)
