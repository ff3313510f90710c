"""Matched sweeps in `mimic report`: the levels of a sweep compared on the same base rows.

Twin rows (`mimic.builders.twins`) carry `base_id` and `sweep_level`, and their prediction records carry
them as `sweep` (`mimic.eval.predictions`). For each (model, variant, config) of the runs given:

- the base ids present at every level (`n_base_ids`; ids missing at some level, e.g. from a `--limit`ed
  run, are left out and counted in `unpaired_base_ids`);
- each level's score (the task's primary metric, `mimic.eval.metrics`) on exactly those base ids;
- each level against the reference level (`first`, or the fewest distractors): the paired difference of
  scores, its bootstrap interval from resampling base ids (one resample draws the same base ids at every
  level, so the between-row variance cancels), and the base ids that only one of the two levels gets right
  (`better`, `worse`).

Runs are grouped by their model spec, so three position runs of one model (first, middle, last) form one
sweep and two models' runs form two. The same twin in two runs of one model is an error, not a choice.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mimic.builders.twins import POSITIONS
from mimic.errors import DataError
from mimic.eval.aggregate import AggregateSettings
from mimic.eval.metrics import METRICS, PRIMARY_METRIC, confidence_interval, record_arrays, rng_for

__all__ = ["SWEEP_FILES", "compare_sweeps", "sweeps_markdown", "write_sweeps"]

SWEEP_FILES = ("sweeps.json", "sweeps.png")


def _level_order(variant: str, levels) -> list[str]:
    if variant == "position":
        return [p for p in POSITIONS if p in levels] + sorted(set(levels) - set(POSITIONS))
    return sorted(levels, key=lambda v: (not str(v).isdigit(), int(v) if str(v).isdigit() else 0, str(v)))


def _statistic(metric: str, arrays: Mapping[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    return METRICS.get(metric).statistic(arrays, idx)


def _compare(key: tuple, by_level: dict[str, dict[str, dict]], settings: AggregateSettings) -> dict:
    model, variant, config = key
    levels = _level_order(variant, by_level)
    all_ids = set().union(*(set(m) for m in by_level.values()))
    common = sorted(set.intersection(*(set(m) for m in by_level.values())))
    tasks = {r["task"] for m in by_level.values() for r in m.values()}
    if len(tasks) != 1:
        raise DataError(f"sweep {config} of {model}: records of several tasks {sorted(tasks)}")
    (task,) = tasks
    metric = PRIMARY_METRIC[task]
    entry = {"model": model, "variant": variant, "config": config, "task": task, "metric": metric,
             "levels": levels, "reference": levels[0], "n_base_ids": len(common),
             "unpaired_base_ids": len(all_ids) - len(common), "scores": [], "differences": [],
             "interval": "paired bootstrap over base ids, percentile", "resamples": settings.resamples,
             "confidence": settings.confidence}
    if not common:
        return entry
    n = len(common)
    arrays = {lv: record_arrays([by_level[lv][b] for b in common]) for lv in levels}
    point = {lv: float(_statistic(metric, arrays[lv], np.arange(n)[None, :])[0]) for lv in levels}
    boot = {lv: np.empty(0) for lv in levels}
    if settings.resamples:
        # one index matrix for every level: the pairing is what makes the difference's interval narrow
        idx = rng_for(settings.seed, f"sweep/{model}/{variant}/{config}").integers(0, n, size=(settings.resamples, n))
        boot = {lv: _statistic(metric, arrays[lv], idx) for lv in levels}
    for lv in levels:
        low, high = confidence_interval(boot[lv], settings.confidence) if settings.resamples else (None, None)
        entry["scores"].append({"level": lv, "n": n, "score": point[lv], "ci_low": low, "ci_high": high})
    ref = levels[0]
    for lv in levels[1:]:
        low, high = (confidence_interval(boot[lv] - boot[ref], settings.confidence) if settings.resamples
                     else (None, None))
        right, right_ref = arrays[lv]["correct"] > 0, arrays[ref]["correct"] > 0
        entry["differences"].append({
            "level": lv, "vs": ref, "n_pairs": n, "difference": point[lv] - point[ref], "ci_low": low,
            "ci_high": high, "better": int((right & ~right_ref).sum()), "worse": int((~right & right_ref).sum())})
    return entry


def compare_sweeps(runs: Sequence[tuple[str, Sequence[Mapping]]],
                   settings: AggregateSettings | None = None) -> list[dict]:
    """One entry per (model, variant, config) with twin records (see the module doc); `runs` holds
    (model spec, prediction records) per run. [] when no record is a twin."""
    settings = settings or AggregateSettings()
    groups: dict[tuple, dict[str, dict[str, dict]]] = {}
    for model, records in runs:
        for r in records:
            sweep = r.get("sweep")
            if not sweep:
                continue
            key = (str(model), str(sweep["sweep_variant"]), str(r["config"]))
            level = groups.setdefault(key, {}).setdefault(str(sweep["sweep_level"]), {})
            base = str(sweep["base_id"])
            if base in level:
                raise DataError(f"twin {r['id']} ({key[2]}, level {sweep['sweep_level']}) of {model} is in two of the "
                                "runs given; give each sweep level of a model once")
            level[base] = r
    return [_compare(key, groups[key], settings) for key in sorted(groups)]


def _pct(x) -> str:
    return "\u2014" if x is None else f"{100 * x:.1f}"


def _signed(x) -> str:
    return "\u2014" if x is None else f"{100 * x:+.1f}"


def sweeps_markdown(entries: Sequence[Mapping]) -> str:
    """The "Matched sweeps" section of report.md."""
    lines = ["## Matched sweeps", "",
             "Every level on the same base rows (twins sharing `base_id`); scores in %, differences in points "
             "against the reference level with paired bootstrap 95% intervals (base ids resampled). better / "
             "worse: base rows answered exactly right only at this level / only at the reference.", ""]
    for e in entries:
        lines += [f"### {e['variant']} sweep: {e['config']} ({e['metric']}), {e['model']}", "",
                  f"{e['n_base_ids']} base rows at every level"
                  + (f"; {e['unpaired_base_ids']} base rows missing at some level left out" if e["unpaired_base_ids"]
                     else "") + ".", ""]
        diffs = {d["level"]: d for d in e["differences"]}
        lines += [f"| level | n | score [95% CI] | vs {e['reference']} [95% CI] | better / worse |",
                  "| :--- | ---: | ---: | ---: | ---: |"]
        for s in e["scores"]:
            d = diffs.get(s["level"])
            vs = (_DASH_ROW if d is None else
                  f"{_signed(d['difference'])} [{_signed(d['ci_low'])}, {_signed(d['ci_high'])}] | "
                  f"{d['better']} / {d['worse']}")
            lines.append(f"| {s['level']} | {s['n']} | {_pct(s['score'])} [{_pct(s['ci_low'])}, {_pct(s['ci_high'])}] "
                         f"| {vs} |")
        lines.append("")
    lines += ["![Matched sweeps](sweeps.png)", ""]
    return "\n".join(lines)


_DASH_ROW = "reference | \u2014"


def _plot(entries: Sequence[Mapping], path: Path) -> None:
    from matplotlib.figure import Figure

    from mimic.atomic import atomic_path

    panels: dict[tuple[str, str], list[Mapping]] = {}
    for e in entries:
        panels.setdefault((e["variant"], e["config"]), []).append(e)
    fig = Figure(figsize=(5 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, ((variant, config), group) in zip(axes, panels.items(), strict=True):
        for e in group:
            pts = [s for s in e["scores"] if s["score"] is not None]
            numeric = variant == "distractors" and all(str(s["level"]).isdigit() for s in pts)
            xs = [int(s["level"]) if numeric else k for k, s in enumerate(pts)]
            ys = [100 * s["score"] for s in pts]
            err = [[100 * (s["score"] - s["ci_low"]) if s["ci_low"] is not None else 0 for s in pts],
                   [100 * (s["ci_high"] - s["score"]) if s["ci_high"] is not None else 0 for s in pts]]
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{e['model']} (n={e['n_base_ids']})")
            if numeric:
                ax.set_xticks(xs)  # the levels asked for, not a float axis between them
            else:
                ax.set_xticks(xs, [s["level"] for s in pts])
        ax.set_title(f"{config}: {variant} (same base rows)", fontsize=9)
        ax.set_xlabel("query block position" if variant == "position" else "distractors")
        ax.set_ylabel(f"{group[0]['metric']} (%)")
        ax.set_ylim(-2, 102)
        ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def write_sweeps(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike,
                 settings: AggregateSettings | None = None) -> list[dict]:
    """OUT/sweeps.json, OUT/sweeps.png and the section appended to OUT/report.md, for the twins among the
    runs' predictions; [] (nothing written) when there are none."""
    from mimic.atomic import atomic_path, write_json
    from mimic.eval.runner import RESULTS_FILE, read_json, read_run_records

    runs = []
    for d in run_dirs:
        results = read_json(Path(d) / RESULTS_FILE) if (Path(d) / RESULTS_FILE).exists() else {}
        model = (results.get("run") or {}).get("model") or str(d)
        records = list({r["id"]: r for r in read_run_records(d)}.values())  # a resumed run: the last line wins
        runs.append((model, records))
    entries = compare_sweeps(runs, settings)
    if not entries:
        return []
    out = Path(out)
    write_json(out / "sweeps.json", {"sweeps": entries})
    _plot(entries, out / "sweeps.png")
    report = out / "report.md"
    head = report.read_text(encoding="utf-8").rstrip() + "\n\n" if report.exists() else ""
    with atomic_path(report) as tmp:
        Path(tmp).write_text(head + sweeps_markdown(entries), encoding="utf-8")
    return entries
