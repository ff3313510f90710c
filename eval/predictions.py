"""predictions.jsonl: one JSON line per scored sample, appended and flushed batch by batch.

A line holds: id, config, task, prompt, output (the raw answer), parsed, parse_failed, correct, score,
answer (gold), target_classes, controls (the row's control columns), details (the scorer's facts:
abs_error, per_class, tp/fp/fn, ...), info (from the adapter: token counts, finish reason), latency_s
(the batch's wall time divided by its size) and batch_latency_s.

A batch is written with one `write` call, then flushed and fsynced, so an interruption loses at most the
batch being generated. A crash in the middle of that write can leave a partial last line: `read_predictions`
ignores it, and `PredictionWriter` cuts it off before appending.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from mimic.errors import DataError
from mimic.eval.data import CONTROL_COLUMNS
from mimic.eval.scoring import ScoreResult

__all__ = ["PredictionWriter", "make_record", "read_predictions"]


def make_record(
    sample: Mapping[str, Any],
    prompt: str,
    output: str,
    result: ScoreResult,
    info: Mapping[str, Any] | None = None,
    latency_s: float | None = None,
    batch_latency_s: float | None = None,
) -> dict:
    """The predictions.jsonl line of one sample (a benchmark row without images) and its score."""
    return {
        "id": sample["id"],
        "config": sample["config"],
        "task": sample["task"],
        "prompt": prompt,
        "output": output,
        "parsed": result.parsed,
        "parse_failed": result.parse_failed,
        "correct": bool(result.correct),
        "score": float(result.score),
        "answer": sample.get("answer"),
        "target_classes": list(sample.get("target_classes") or []),
        "controls": {c: sample.get(c) for c in CONTROL_COLUMNS},
        "details": dict(result.details),
        "info": dict(info or {}),
        "latency_s": latency_s,
        "batch_latency_s": batch_latency_s,
    }


def _complete_length(data: bytes) -> int:
    """Bytes up to and including the last newline: the complete lines."""
    return data.rfind(b"\n") + 1


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """The complete lines of a predictions file ([] when it does not exist); a partial last line, left by
    a crash mid-write, is ignored. A corrupt complete line raises DataError naming its line number."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    records = []
    for lineno, line in enumerate(data[: _complete_length(data)].splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: not a JSON line ({err})") from None
    return records


class PredictionWriter:
    """Appends batches of records to a predictions file (use as a context manager)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                keep = _complete_length(f.read())
            if keep != size:  # a partial line from an interrupted write
                os.truncate(self.path, keep)
        self._file = open(self.path, "ab")  # noqa: SIM115 (closed by close()/__exit__)

    def write_batch(self, records: Iterable[Mapping]) -> None:
        data = b"".join(orjson.dumps(r, option=orjson.OPT_NON_STR_KEYS) + b"\n" for r in records)
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
