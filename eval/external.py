"""The paper's external multi-image benchmarks (Tables 2, 3 and 8) from lmms-eval result files.

`make eval-external MODEL=...` runs lmms-eval's stock tasks; `mimic report --lmms-eval RESULTS...` reads the
`*_results.json` files lmms-eval wrote (and, for MuirBench's subtasks, the `*_samples_muirbench.jsonl` file
written beside them with --log_samples) and lays them out as the paper does, our runs beside the paper's
published rows, which are written down once here with their source (table and row).

Columns and the lmms-eval 0.7.3 tasks that fill them (`EXTERNAL_COLUMNS`):

| Paper column | lmms-eval task | metric                      |
|--------------|----------------|-----------------------------|
| MuirBench    | muirbench      | muirbench_score_overall     |
| Blink        | blink (group)  | blink_acc                   |
| MMIU         | (none)         | lmms-eval 0.7.3 has no MMIU task: the column stays empty for our runs |
| MIRB         | mirb           | mirb_score                  |
| MMT (val)    | mmt_val        | accuracy                    |
| NLVR2        | (none)         | no standalone task; NLVR2 is only a part of llava_interleave_bench_in_domain |

A task is found by its name, or, for the metrics only one benchmark has (all but `accuracy`), by its metric
in a results file that holds exactly one task with it (a local copy of the task under another name).
Scores are percentages; lmms-eval's MuirBench, Blink and MIRB report fractions, MMT percentages. The average
is over the columns a run has (the paper averages all six), and says how many.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mimic.errors import ConfigError, DataError

__all__ = [
    "EXTERNAL_COLUMNS",
    "MUIRBENCH_SUBTASKS",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "ExternalRun",
    "PaperRow",
    "external_markdown",
    "read_lmms_results",
]


@dataclass(frozen=True)
class Column:
    name: str
    task: str | None
    metric: str | None
    scale: float = 100.0


EXTERNAL_COLUMNS: tuple[Column, ...] = (
    Column("MuirBench", "muirbench", "muirbench_score_overall"),
    Column("Blink", "blink", "blink_acc"),
    Column("MMIU", None, None),
    Column("MIRB", "mirb", "mirb_score"),
    Column("MMT (val)", "mmt_val", "accuracy", scale=1.0),
    Column("NLVR2", None, None),
)
# lmms-eval tasks `make eval-external` runs (the columns that have one).
EXTERNAL_TASKS: tuple[str, ...] = tuple(c.task for c in EXTERNAL_COLUMNS if c.task)

# Table 2's columns: MuirBench's `task` values, in the paper's order, and the paper's short headers.
MUIRBENCH_SUBTASKS: tuple[tuple[str, str], ...] = (
    ("Geographic.", "Geographic Understanding"),
    ("Counting", "Counting"),
    ("Action", "Action Understanding"),
    ("Grounding", "Visual Grounding"),
    ("Matching", "Image-Text Matching"),
    ("Ordering", "Ordering"),
    ("Scene", "Scene Understanding"),
    ("Difference", "Difference Spotting"),
    ("Cartoon", "Cartoon Understanding"),
    ("Diagram", "Diagram Understanding"),
    ("Attribute", "Attribute Similarity"),
    ("Retrieval", "Visual Retrieval"),
)


@dataclass(frozen=True)
class PaperRow:
    """A published row: its model, where it is printed (table, 1-based row), its values (None: '-')."""

    model: str
    table: str
    row: int
    values: tuple[float | None, ...]

    @property
    def source(self) -> str:
        return f"paper {self.table}, row {self.row}"


# Model names as printed, except the text extraction's "LLA-VA" spelt LLaVA again; "Ours" rows name their base
# model in brackets (the paper groups them under it).
# Table 2 (MuirBench subtasks), in the paper's row order; None where the paper prints '-'.
PAPER_TABLE2: tuple[PaperRow, ...] = (
    PaperRow('Random Choice', "Table 2", 1, (25.0, 21.0, 23.4, 25.0, 24.1, 22.8, 25.0, 23.2, 25.0, 29.6, 20.0, 21.3, 24.0)),
    PaperRow('Human', "Table 2", 2, (98.0, 94.9, 97.6, 85.7, 94.8, 87.5, 94.6, 92.9, 82.1, 98.99, 87.6, 86.3, 93.2)),
    PaperRow('GPT-4o (OpenAI, 2023)', "Table 2", 3, (56.0, 49.2, 44.5, 36.9, 86.9, 23.44, 71.5, 60.3, 51.3, 88.7, 56.1, 80.1, 68.0)),
    PaperRow('Gemini Pro (Team et al., 2023)', "Table 2", 4, (48.0, 28.6, 36.0, 28.6, 66.6, 12.5, 59.1, 45.3, 47.4, 64.8, 41.3, 43.8, 49.4)),
    PaperRow('Mantis-8b-Defics2 (Jiang et al., 2024b)', "Table 2", 5, (26.0, 38.5, 33.5, 26.2, 53.9, 18.8, 57.0, 28.8, 38.5, 67.6, 48.5, 35.6, 44.5)),
    PaperRow('Defics-9B-Instruct (Laurençon et al., 2023)', "Table 2", 6, (35.0, 21.8, 26.2, 26.2, 24.8, 15.6, 56.5, 27.6, 39.7, 25.4, 17.9, 17.1, 35.4)),
    PaperRow('Emu2-Chat(37B) (Sun et al., 2024)', "Table 2", 7, (34.0, 31.2, 27.4, 26.2, 37.3, 15.6, 48.4, 32.6, 43.6, 37.7, 31.6, 24.0, 33.6)),
    PaperRow('VILVA1.5-13B (Lin et al., 2024)', "Table 2", 8, (31.0, 19.7, 28.7, 25.0, 40.9, 10.9, 56.5, 24.7, 30.8, 42.7, 24.5, 30.1, 33.1)),
    PaperRow('LLaVA-NeXT-34B (Liu et al., 2024b)', "Table 2", 9, (12.0, 36.3, 26.2, 33.3, 37.9, 21.9, 54.3, 22.1, 41.0, 38.2, 38.3, 25.0, 33.3)),
    PaperRow('LLaVA-v1.5-7B (Liu et al., 2024a)', "Table 2", 10, (20.0, 23.1, 27.4, 14.3, 23.5, 23.4, 35.0, 20.0, 24.4, 25.1, 23.0, 19.9, 23.5)),
    PaperRow('LLaVA-v1.5-13B (Liu et al., 2024a)', "Table 2", 11, (20.0, 25.2, 29.3, 14.3, 20.3, 20.3, 36.6, 20.0, 25.6, 31.7, 23.0, 20.9, 24.4)),
    PaperRow('CogVLM (Wang et al., 2024c)', "Table 2", 12, (13.0, 14.1, 26.2, 16.7, 21.3, 12.5, 41.4, 19.7, 41.0, 19.6, 16.3, 15.8, 20.9)),
    PaperRow('MiniGPT-4-v2 (Chen et al., 2023)', "Table 2", 13, (13.0, 12.0, 14.0, 25.0, 17.0, 18.8, 14.5, 20.0, 21.8, 21.6, 17.4, 14.7, 17.4)),
    PaperRow('Qwen2-VL-7B (Wang et al., 2024b)', "Table 2", 14, (12.0, 38.9, 42.7, 28.5, 57.5, 10.9, 75.3, 32.9, 38.5, 49.2, 46.4, 26.7, 43.0)),
    PaperRow('Qwen2-VL-2B (Wang et al., 2024b)', "Table 2", 15, (14.0, 27.8, 35.4, 26.2, 34.3, 10.9, 51.1, 19.4, 39.7, 21.4, 31.1, 15.4, 27.2)),
    PaperRow('InternVL2-8B (Chen et al., 2024a)', "Table 2", 16, (17.0, 30.3, 34.7, 28.5, 43.5, 17.2, 60.2, 26.2, 46.2, 46.5, 42.8, 33.6, 37.9)),
    PaperRow('InternVL2-2B (Chen et al., 2024a)', "Table 2", 17, (17.0, 21.8, 26.8, 26.2, 31.7, 10.9, 52.2, 17.4, 35.9, 21.6, 16.8, 13.7, 24.3)),
    PaperRow('LLaVA-OV-0.5B (Li et al., 2024a)', "Table 2", 18, (22.0, 20.9, 31.1, 25.0, 30.2, 7.8, 46.7, 24.1, 42.3, 25.1, 23.9, 20.5, 26.8)),
    PaperRow('Ours [LLaVA-OV-0.5B]', "Table 2", 19, (43.0, 20.5, 41.4, 22.6, 38.4, 9.4, 52.7, 22.1, 37.2, 39.4, 29.6, 32.5, 33.6)),
    PaperRow('Ours (Masked) [LLaVA-OV-0.5B]', "Table 2", 20, (31.0, 17.5, 40.8, 33.3, 37.3, 14.1, 53.8, 21.5, 42.3, 34.9, 28.1, 32.9, 32.5)),
    PaperRow('LLaVA-OV-7B (Li et al., 2024a)', "Table 2", 21, (43.3, 24.8, 36.6, 29.7, 45.3, 17.2, 71.5, 30.0, 35.9, 54.2, 32.7, 46.2, 41.7)),
    PaperRow('Ours (Masked) [LLaVA-OV-7B]', "Table 2", 22, (44.0, 35.9, 51.2, 42.9, 59.9, 12.5, 71.0, 43.5, 38.5, 62.1, 52.0, 48.6, 51.3)),
)
# Table 8 (= Table 3 plus the LLaVA-OV-1.5B rows), in the paper's row order.
PAPER_TABLE3: tuple[PaperRow, ...] = (
    PaperRow('GPT-4V', "Table 8", 1, (62.3, 54.6, None, 53.1, 64.3, None, None)),
    PaperRow('InternVL2-Llama3-76B (Chen et al., 2024a)', "Table 8", 2, (51.2, 56.8, 44.2, 58.2, 67.4, None, None)),
    PaperRow('LLaVA-v1.5-7B', "Table 8", 3, (20.0, 37.1, 19.2, 28.5, None, None, None)),
    PaperRow('InternVL2-2B (Chen et al., 2024a)', "Table 8", 4, (24.3, 16.3, 13.6, 25.0, 46.7, 18.9, 24.1)),
    PaperRow('InternVL2-8B (Chen et al., 2024a)', "Table 8", 5, (37.9, 23.4, 36.8, 48.6, 57.9, 8.7, 35.6)),
    PaperRow('Qwen2VL-2B (Wang et al., 2024b)', "Table 8", 6, (27.2, 12.7, 38.7, 45.9, 51.9, 41.6, 36.3)),
    PaperRow('Qwen2VL-7B (Wang et al., 2024b)', "Table 8", 7, (43.0, 17.7, 52.6, 60.8, 61.7, 41.5, 46.2)),
    PaperRow('LLaVA-OV-0.5B (Li et al., 2024a)', "Table 8", 8, (26.8, 40.4, 34.2, 31.8, 41.1, 61.2, 39.3)),
    PaperRow('Ours [LLaVA-OV-0.5B]', "Table 8", 9, (33.6, 38.9, 37.2, 32.8, 45.6, 68.0, 42.7)),
    PaperRow('Ours (masked) [LLaVA-OV-0.5B]', "Table 8", 10, (32.5, 39.1, 36.3, 28.5, 45.9, 65.1, 41.2)),
    PaperRow('LLaVA-OV-1.5B (Li et al., 2024a)', "Table 8", 11, (31.1, 36.4, 33.4, 37.7, 47.5, 70.9, 42.8)),
    PaperRow('Ours [LLaVA-OV-1.5B]', "Table 8", 12, (39.7, 40.0, 38.9, 36.0, 48.8, 73.7, 46.2)),
    PaperRow('Ours (masked) [LLaVA-OV-1.5B]', "Table 8", 13, (32.3, 42.2, 35.5, 30.6, 48.1, 69.0, 43.0)),
    PaperRow('LLaVA-OV-7B (Li et al., 2024a)', "Table 8", 14, (41.7, 50.4, 45.0, 47.2, 56.6, 84.2, 54.2)),
    PaperRow('Ours (masked) [LLaVA-OV-7B]', "Table 8", 15, (51.3, 51.9, 45.5, 51.0, 55.3, 87.3, 57.1)),
)


@dataclass
class ExternalRun:
    """One model's lmms-eval results: column -> percentage, MuirBench subtask -> percentage."""

    label: str
    scores: dict[str, float] = field(default_factory=dict)
    muirbench_subtasks: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def _results_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.rglob("*_results.json"))
        if files:
            return files
        raise ConfigError(f"--lmms-eval {path}: no *_results.json under it (lmms-eval's --output_path)")
    raise ConfigError(f"--lmms-eval {path}: no such file or folder")


def _label(data: dict, fallback: str) -> str:
    config = data.get("config") or {}
    args = str(config.get("model_args") or "")
    pretrained = next((a.split("=", 1)[1] for a in args.split(",") if a.startswith("pretrained=")), None)
    model = data.get("model_name") or config.get("model") or fallback
    return f"{model}:{pretrained}" if pretrained else (f"{model} ({args})" if args else str(model))


def _metric(task_results: dict, metric: str) -> float | None:
    # Keys are "<metric>,<filter>": "none" without a filter, the filter's name otherwise (MuirBench:
    # "flexible-extract"); the unfiltered value wins when both are there.
    values = {k.split(",", 1)[1]: v for k, v in task_results.items()
              if k.split(",", 1)[0] == metric and "," in k and isinstance(v, (int, float))}
    if not values:
        return None
    return float(values.get("none", next(iter(values.values()))))


def _find(results: dict, column: Column) -> tuple[str, float] | None:
    if column.task in results and _metric(results[column.task], column.metric) is not None:
        return column.task, _metric(results[column.task], column.metric)
    if column.metric == "accuracy":
        return None  # too common a name to pick a task by
    holders = [t for t, r in results.items() if _metric(r, column.metric) is not None]
    return (holders[0], _metric(results[holders[0]], column.metric)) if len(holders) == 1 else None


def _muirbench_subtasks(results_file: Path, task: str, metric: str) -> dict[str, float]:
    """Per-subtask accuracy from the samples lmms-eval logged beside `results_file`, scored by lmms-eval's own
    MuirBench aggregation on each subtask's samples."""
    from lmms_eval.tasks.muirbench.utils import muir_aggregation

    stamp = results_file.name.removesuffix("_results.json")
    samples = results_file.with_name(f"{stamp}_samples_{task}.jsonl")
    if not samples.exists():
        return {}
    by_task: dict[str, list[dict]] = {}
    for line in samples.read_text().splitlines():
        if line.strip():
            item = json.loads(line)[metric]
            by_task.setdefault(item["task"], []).append(item)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its own table
        return {name: 100.0 * muir_aggregation(items) for name, items in by_task.items()}


def read_lmms_results(path: str | os.PathLike, label: str | None = None) -> ExternalRun:
    """One run from an lmms-eval results file, or a folder of them (later files win where they overlap)."""
    files = _results_files(Path(path))
    run = ExternalRun(label or "")
    for file in files:
        try:
            data = json.loads(file.read_text())
            results = data["results"]
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{file}: not a results file of lmms-eval ({err})") from None
        run.label = run.label or _label(data, file.parent.name)
        run.files.append(str(file))
        for column in EXTERNAL_COLUMNS:
            if column.metric is None:
                continue
            found = _find(results, column)
            if found is not None:
                task, value = found
                run.scores[column.name] = value * column.scale
                if column.name == "MuirBench":
                    run.muirbench_subtasks.update(_muirbench_subtasks(file, task, column.metric))
    return run


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def _average(values: Sequence[float | None]) -> tuple[float | None, int]:
    present = [v for v in values if v is not None]
    return (sum(present) / len(present) if present else None), len(present)


def external_markdown(runs: Sequence[ExternalRun], paper: bool = True) -> str:
    """Table 3 (with Table 8's rows) and Table 2 as markdown: our runs first, then the paper's rows."""
    names = [c.name for c in EXTERNAL_COLUMNS]
    out = ["## Multi-image benchmarks (paper Tables 3 and 8)", "",
           "| Model | " + " | ".join(names) + " | Avg. | Source |", "|" + "---|" * (len(names) + 3)]
    for run in runs:
        values = [run.scores.get(n) for n in names]
        avg, n = _average(values)
        note = f" (of {n})" if n and n < len(names) else ""
        out.append(f"| {run.label} | " + " | ".join(map(_fmt, values)) + f" | {_fmt(avg)}{note} | this run |")
    if paper:
        for row in PAPER_TABLE3:
            out.append(f"| {row.model} | " + " | ".join(map(_fmt, row.values)) + f" | {row.source} |")
    out += ["", "MMIU and NLVR2 have no task in lmms-eval 0.7.3, so our runs leave them empty (see README).", ""]
    heads = [h for h, _ in MUIRBENCH_SUBTASKS]
    out += ["## MuirBench subtasks (paper Table 2)", "",
            "| Model | " + " | ".join(heads) + " | Overall | Source |", "|" + "---|" * (len(heads) + 3)]
    for run in runs:
        subs = [run.muirbench_subtasks.get(task) for _, task in MUIRBENCH_SUBTASKS]
        out.append(f"| {run.label} | " + " | ".join(map(_fmt, subs)) +
                   f" | {_fmt(run.scores.get('MuirBench'))} | this run |")
    if paper:
        for row in PAPER_TABLE2:
            out.append(f"| {row.model} | " + " | ".join(map(_fmt, row.values)) + f" | {row.source} |")
    return "\n".join(out) + "\n"
