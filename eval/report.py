"""Reports over one or more runs: a markdown file and PNG plots, from the runs' results.json data.

`write_report(runs, out_dir)` writes

- report.md: the runs; Table 4 twice (tasks as rows with one column block per run, so models sit side
  by side, and the paper's orientation with one row per run), with bootstrap 95% intervals; every
  config's metrics, parse failures, per-class counting accuracy; a breakdown table for every control
  column that varies in a config; the Fig. 1 curves as tables.
- table4.png: Table 4 as grouped bars with interval whiskers.
- fig1_counting.png: the paper's Fig. 1, one row per run: left, counting_unbalanced accuracy against the
  total number of images, one line per number of query images; middle, counting_balanced accuracy
  against the spread (query images), one line per total number of instances; right,
  counting_multiconcept accuracy against the number of concepts.
- fig6_num_images.png: the paper's Fig. 6: Listing (micro F1), Odd-One and Common against the number of
  images, one line per run.

Plots use matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so reports
can be written from any thread or process, headless.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from mimic.atomic import atomic_path
from mimic.errors import ConfigError
from mimic.eval.aggregate import TABLE4_COLUMNS, TABLE4_EXTRA

__all__ = ["REPORT_FILES", "format_ci", "format_pct", "table4_markdown", "write_report"]

REPORT_FILES = ("report.md", "table4.png", "fig1_counting.png", "fig6_num_images.png")
_DASH = "\u2014"


def format_pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal, as the paper prints scores ("44.7"); a dash for none."""
    return _DASH if x is None else f"{100 * x:.1f}"


def format_ci(low: float | None, high: float | None) -> str:
    return _DASH if low is None or high is None else f"[{100 * low:.1f}, {100 * high:.1f}]"


def _labels(runs: Sequence[Mapping], labels: Sequence[str] | None) -> list[str]:
    names = list(labels) if labels else [str(r.get("label") or f"run {i + 1}") for i, r in enumerate(runs)]
    if len(names) != len(runs):
        raise ConfigError(f"labels: {len(names)} labels for {len(runs)} runs")
    seen: dict[str, int] = {}
    out = []
    for name in names:  # duplicate labels would make columns indistinguishable
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return out


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _table4_cells(result: Mapping) -> list[dict]:
    t4 = result.get("table4") or {}
    cols = {c["name"]: c for c in t4.get("columns", []) + t4.get("extra", [])}
    avg = t4.get("average") or {}
    main = [cols.get(name, {"value": None}) for name, _ in TABLE4_COLUMNS]
    avg_cell = {"value": avg.get("value"), "ci_low": avg.get("ci_low"), "ci_high": avg.get("ci_high"),
                "incomplete": not avg.get("complete", True)}
    return main + [avg_cell] + [cols.get(name, {"value": None}) for name, _ in TABLE4_EXTRA]


def table4_markdown(runs: Sequence[Mapping], labels: Sequence[str] | None = None) -> tuple[str, str]:
    """(tasks-as-rows table with a column block per run, paper-layout table with a row per run)."""
    names = _labels(runs, labels)
    row_names = [n for n, _ in TABLE4_COLUMNS] + ["Avg."] + [n for n, _ in TABLE4_EXTRA]
    cells = [_table4_cells(r) for r in runs]
    header = ["Task"] + [h for name in names for h in (name, f"{name} 95% CI")]
    rows = []
    for i, row_name in enumerate(row_names):
        row = [row_name]
        for c in cells:
            mark = "*" if c[i].get("incomplete") and c[i].get("value") is not None else ""
            row += [format_pct(c[i].get("value")) + mark, format_ci(c[i].get("ci_low"), c[i].get("ci_high"))]
        rows.append(row)
    side_by_side = _md_table(header, rows)
    k = len(TABLE4_COLUMNS) + 1
    paper_rows = []
    for name, c in zip(names, cells, strict=True):
        paper_rows.append([name] + [
            f"{format_pct(x.get('value'))}{'*' if x.get('incomplete') and x.get('value') is not None else ''} "
            f"{format_ci(x.get('ci_low'), x.get('ci_high'))}"
            for x in c[:k]
        ])
    paper = _md_table(["Model"] + [n for n, _ in TABLE4_COLUMNS] + ["Avg."], paper_rows)
    return side_by_side, paper


def _configs_in_order(runs: Sequence[Mapping]) -> list[str]:
    order: dict[str, None] = {}
    for r in runs:
        order.update(dict.fromkeys((r.get("configs") or {}).keys()))
    return list(order)


def _value_key(v) -> tuple:
    if isinstance(v, list):
        return tuple(_value_key(x) for x in v)
    return (isinstance(v, str), v)


def _breakdown(summary: Mapping | None, column: str) -> dict:
    for b in (summary or {}).get("breakdowns", []):
        if b["column"] == column:
            return {_freeze(c["value"]): c for c in b["cells"]}
    return {}


def _cross(summary: Mapping | None, columns: Sequence[str]) -> dict:
    for b in (summary or {}).get("cross_breakdowns", []):
        if list(b["columns"]) == list(columns):
            return {_freeze(c["value"]): c for c in b["cells"]}
    return {}


def _freeze(v):
    return tuple(v) if isinstance(v, list) else v


def _run_header(runs: Sequence[Mapping], names: Sequence[str]) -> str:
    rows = []
    for name, r in zip(names, runs, strict=True):
        meta = r.get("run") or {}
        n = sum(s.get("n", 0) for s in (r.get("configs") or {}).values())
        versions = meta.get("versions") or {}
        rows.append([
            name, f"`{meta.get('model', '?')}`", f"`{meta.get('data', '?')}`",
            ", ".join(meta.get("generator_version") or []) or "?", str(n),
            str(meta.get("limit") or "all"), str(versions.get("mimic", "?")), str(meta.get("date", "?")),
        ])
    return _md_table(["Run", "Model", "Data", "Generator", "Samples", "Limit/config", "mimic", "Date"], rows,
                     "llllrrll")


def _config_section(config: str, runs: Sequence[Mapping], names: Sequence[str]) -> list[str]:
    summaries = [(r.get("configs") or {}).get(config) for r in runs]
    present = [s for s in summaries if s]
    task = present[0]["task"]
    metric = present[0]["metric"]
    out = [f"### {config} ({task}; score = {metric})", ""]
    metric_names: dict[str, None] = {}
    for s in present:
        metric_names.update(dict.fromkeys(s["metrics"]))
    rows = []
    for m in metric_names:
        row = [m]
        for s in summaries:
            cell = (s or {}).get("metrics", {}).get(m)
            if cell is None:
                row.append(_DASH)
            elif m == "mae":  # an error in counts, not a percentage
                value = _DASH if cell["value"] is None else f"{cell['value']:.2f}"
                ci = "" if cell["ci_low"] is None else f" [{cell['ci_low']:.2f}, {cell['ci_high']:.2f}]"
                row.append(value + ci)
            else:
                row.append(f"{format_pct(cell['value'])} {format_ci(cell['ci_low'], cell['ci_high'])}")
        rows.append(row)
    rows.append(["parse failures"] + [
        _DASH if s is None else f"{s['parse_failures']}/{s['n']} ({format_pct(s['parse_failure_rate'])}%)"
        + "".join(f"; {rule} {k}" for rule, k in (s.get("parse_failure_reasons") or {}).items())
        for s in summaries
    ])
    out += [_md_table(["Metric"] + list(names), rows), ""]

    columns: dict[str, None] = {}
    for s in present:
        columns.update(dict.fromkeys(b["column"] for b in s["breakdowns"]))
    constant = []
    for column in columns:
        per_run = [_breakdown(s, column) for s in summaries]
        values = sorted({v for cells in per_run for v in cells}, key=_value_key)
        if len(values) < 2:
            if values:
                constant.append(f"{column} = {values[0]}")
            continue
        header = [column] + [h for name in names for h in (f"{name} n", f"{name} score [95% CI]",
                                                          f"{name} parse fail")]
        rows = []
        for v in values:
            row = [str(v)]
            for cells in per_run:
                c = cells.get(v)
                row += ([_DASH] * 3 if c is None else
                        [str(c["n"]), f"{format_pct(c['score'])} {format_ci(c['ci_low'], c['ci_high'])}",
                         format_pct(c["parse_failure_rate"])])
            rows.append(row)
        caption = f"By {column}:"
        if column == "num_distractors":
            # Each cell holds other rows (more distractors also means other spreads and images), so this
            # understates the effect of distractors; the matched sweep is `mimic diagnose sweep`.
            caption = ("By num_distractors (a breakdown, not a matched sweep: the rows differ between cells; "
                       "see docs/diagnostics.md for the matched distractor sweep):")
        out += [caption, "", _md_table(header, rows), ""]
    if constant:
        out += [f"Constant in this config: {', '.join(constant)}.", ""]

    for s_cross in present[0].get("cross_breakdowns", []):
        line_col, x_col = s_cross["columns"]
        for name, s in zip(names, summaries, strict=True):
            cells = _cross(s, [line_col, x_col])
            if not cells:
                continue
            lines = sorted({k[0] for k in cells}, key=_value_key)
            xs = sorted({k[1] for k in cells}, key=_value_key)
            if len(xs) < 2:  # one column: the same numbers as the one-column breakdown above
                continue
            rows = [[f"{line_col} = {lv}"] + [
                _DASH if (lv, x) not in cells else f"{format_pct(cells[(lv, x)]['score'])} ({cells[(lv, x)]['n']})"
                for x in xs
            ] for lv in lines]
            out += [f"{name}: score by {line_col} (rows) and {x_col} (columns), n in brackets:", "",
                    _md_table([f"{line_col} \\ {x_col}"] + [str(x) for x in xs], rows), ""]

    if any(s.get("per_class") for s in present):
        classes = sorted({c["value"] for s in present for c in s.get("per_class", [])})
        per_run = [{c["value"]: c for c in (s or {}).get("per_class", [])} for s in summaries]
        rows = [[cls] + [x for cells in per_run for x in (
            [_DASH] * 3 if cls not in cells else
            [str(cells[cls]["n"]), format_pct(cells[cls]["accuracy"]),
             format_ci(cells[cls]["ci_low"], cells[cls]["ci_high"])])] for cls in classes]
        header = ["class"] + [h for name in names for h in (f"{name} n", f"{name} acc.", f"{name} 95% CI")]
        out += ["Per-class count accuracy (every (sample, class) pair):", "", _md_table(header, rows), ""]
    return out


def _plot_curve(ax, cells: Sequence[tuple[float, Mapping]], label: str | None, band: bool = True) -> None:
    """One line of scores (%) over x, with its interval as a light band."""
    from matplotlib.ticker import MaxNLocator

    xs = [x for x, _ in cells]
    ys = [100 * c["score"] if c["score"] is not None else float("nan") for _, c in cells]
    line = ax.plot(xs, ys, marker="o", markersize=3, label=label)[0]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # controls are counts
    lows = [c.get("ci_low") for _, c in cells]
    highs = [c.get("ci_high") for _, c in cells]
    if band and all(v is not None for v in lows + highs) and len(xs) > 1:
        ax.fill_between(xs, [100 * v for v in lows], [100 * v for v in highs], color=line.get_color(), alpha=0.12,
                        linewidth=0)


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fig1(runs: Sequence[Mapping], names: Sequence[str], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 3.8 * len(runs)), layout="constrained")
    axes = fig.subplots(len(runs), 3, squeeze=False)
    panels = (
        ("counting_unbalanced", ("num_query_images", "num_images"), "Unbalanced", "total images", "query images"),
        ("counting_balanced", ("total_instances", "num_query_images"), "Balanced", "query images (spread)",
         "instances"),
    )
    for row, (name, result) in enumerate(zip(names, runs, strict=True)):
        configs = result.get("configs") or {}
        for col, (config, columns, title, xlabel, legend) in enumerate(panels):
            ax = axes[row][col]
            cells = _cross(configs.get(config), columns)
            lines = sorted({k[0] for k in cells}, key=_value_key)
            for lv in lines:
                pts = sorted(((k[1], c) for k, c in cells.items() if k[0] == lv and _numeric(k[1])),
                             key=lambda p: p[0])
                if pts:
                    # Bands of many crossing lines hide each other; intervals are in report.md.
                    _plot_curve(ax, pts, f"{lv}", band=len(lines) <= 4)
            ax.set_title(f"{name}: {title} ({config})", fontsize=9)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("accuracy (%)")
            if lines:
                ax.legend(title=legend, fontsize=7, title_fontsize=7)
            else:
                ax.text(0.5, 0.5, f"no {config} predictions", ha="center", va="center", transform=ax.transAxes)
        ax = axes[row][2]
        cells = _breakdown(configs.get("counting_multiconcept"), "num_concepts")
        pts = sorted(((k, c) for k, c in cells.items() if _numeric(k)), key=lambda p: p[0])
        if pts:
            _plot_curve(ax, pts, name)
        else:
            ax.text(0.5, 0.5, "no counting_multiconcept predictions", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_title(f"{name}: Multi-concept (counting_multiconcept)", fontsize=9)
        ax.set_xlabel("concepts (classes to count)")
        ax.set_ylabel("accuracy (%)")
        for a in axes[row]:
            a.set_ylim(-2, 102)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    # The temporary name has no .png suffix, so the format is named.
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def _fig6(runs: Sequence[Mapping], names: Sequence[str], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (config, title) in zip(axes, (("listing", "Listing (micro F1)"), ("odd_one", "Odd-One (accuracy)"),
                                          ("common", "Common (accuracy)")), strict=True):
        any_line = False
        for name, result in zip(names, runs, strict=True):
            cells = _breakdown((result.get("configs") or {}).get(config), "num_images")
            pts = sorted(((k, c) for k, c in cells.items() if _numeric(k)), key=lambda p: p[0])
            if pts:
                _plot_curve(ax, pts, name)
                any_line = True
        ax.set_title(title)
        ax.set_xlabel("number of images")
        ax.set_ylabel("score (%)")
        ax.set_ylim(-2, 102)
        if any_line:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, f"no {config} predictions", ha="center", va="center", transform=ax.transAxes)
    _save(fig, path)


def _table4_plot(runs: Sequence[Mapping], names: Sequence[str], path: Path) -> None:
    from matplotlib.figure import Figure

    groups = [n for n, _ in TABLE4_COLUMNS] + ["Avg."]
    k = len(groups)
    fig = Figure(figsize=(min(16.0, 4 + 0.5 * k * len(runs)), 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(runs))
    for i, (name, result) in enumerate(zip(names, runs, strict=True)):
        cells = _table4_cells(result)[:k]
        xs = [g + (i - (len(runs) - 1) / 2) * width for g in range(k)]
        ys = [100 * c["value"] if c.get("value") is not None else 0.0 for c in cells]
        err_low = [100 * (c["value"] - c["ci_low"]) if c.get("ci_low") is not None else 0.0 for c in cells]
        err_high = [100 * (c["ci_high"] - c["value"]) if c.get("ci_high") is not None else 0.0 for c in cells]
        ax.bar(xs, ys, width=width, label=name, yerr=[err_low, err_high], capsize=2)
    ax.set_xticks(range(k), groups)
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 105)
    ax.set_title("MIMIC Table 4 (95% bootstrap intervals)")
    ax.legend(fontsize=7)
    _save(fig, path)


def write_report(
    runs: Sequence[Mapping], out_dir: str | os.PathLike, labels: Sequence[str] | None = None,
    title: str = "MIMIC evaluation report",
) -> dict[str, Path]:
    """Write report.md and the plots for `runs` (results.json contents) into `out_dir`; returns the paths."""
    if not runs:
        raise ConfigError("runs: no runs to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = _labels(runs, labels)
    side_by_side, paper = table4_markdown(runs, names)
    definition = (runs[0].get("table4") or {}).get("definition", "")
    lines = [f"# {title}", "", "## Runs", "", _run_header(runs, names), "",
             "## Table 4", "",
             f"Scores in %, with bootstrap 95% intervals. {definition} "
             "\\* marks an average over fewer than the four tasks.", "",
             side_by_side, "", "Paper layout:", "", paper, "", "![Table 4](table4.png)", "",
             "## Figures", "",
             "Fig. 1 (counting: unbalanced, balanced, multi-concept):", "", "![Fig. 1](fig1_counting.png)", "",
             "Fig. 6 (score against the number of images):", "", "![Fig. 6](fig6_num_images.png)", "",
             "## Configs and breakdowns", "",
             "Each breakdown cell: n samples, the config's score, its bootstrap 95% interval and the "
             "parse-failure rate (%).", ""]
    for config in _configs_in_order(runs):
        lines += _config_section(config, runs, names)
    paths = {name: out / name for name in REPORT_FILES}
    with atomic_path(paths["report.md"]) as tmp:
        tmp.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    _table4_plot(runs, names, paths["table4.png"])
    _fig1(runs, names, paths["fig1_counting.png"])
    _fig6(runs, names, paths["fig6_num_images.png"])
    return paths
