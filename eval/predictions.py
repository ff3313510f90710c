"""predictions.jsonl: one JSON line per scored sample, appended and flushed batch by batch.

A line holds: id, config, task, prompt, output (the raw answer), parsed, parse_failed, correct, score,
answer (gold), target_classes, controls (the row's control columns), details (the scorer's facts:
abs_error, per_class, tp/fp/fn, ...), sweep (twin rows of a matched sweep only: base_id, sweep_variant,
sweep_level, query_start), info (from the adapter: token counts, finish reason), latency_s
(the batch's wall time divided by its size) and batch_latency_s.

A batch is written with one `write` call, then flushed and fsynced, so an interruption loses at most the
batch being generated. A crash in the middle of that write can leave a partial last line: `read_predictions`
ignores it, and `PredictionWriter` cuts it off before appending.

A data-parallel run (`mimic.eval.runner`) gives every rank a shard file of its own, `shards/rank-NNNNN.jsonl`
in the run folder: the same lines after one header line, `{"shard": {"schema", "rank", "identity"}}`, that
says which run (model, adapter options, data, split) the shard belongs to, so that the merge can refuse a
shard of another run instead of mixing its answers in (`read_shard`).
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

__all__ = ["SHARD_SCHEMA", "PredictionWriter", "make_record", "read_predictions", "read_shard"]

SHARD_SCHEMA = "mimic-eval-shard/1"


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
    record = {
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
    if sample.get("base_id") is not None:  # a twin of a matched sweep: `mimic report` pairs them by base row
        record["sweep"] = {c: sample.get(c) for c in ("base_id", "sweep_variant", "sweep_level", "query_start")}
    return record


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


def read_shard(path: str | os.PathLike) -> tuple[dict | None, list[dict]]:
    """A rank's shard file: (its header, its records). (None, []) for a file without one complete line
    (a rank that was stopped while starting); DataError when the first line is not a shard header."""
    records = read_predictions(path)
    if not records:
        return None, []
    header = records[0].get("shard") if isinstance(records[0], dict) else None
    if not isinstance(header, dict) or header.get("schema") != SHARD_SCHEMA:
        raise DataError(f"{path}: not a shard of `mimic eval` (its first line is not a {SHARD_SCHEMA!r} header); "
                        "remove it or use another --out")
    return header, records[1:]


class PredictionWriter:
    """Appends batches of records to a predictions file (use as a context manager).

    header: for a shard file, the header line written first when the file is new (or holds no complete line).
    """

    def __init__(self, path: str | os.PathLike, header: Mapping | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = 0
        if self.path.exists():
            size = self.path.stat().st_size
            with open(self.path, "rb") as f:
                keep = _complete_length(f.read())
            if keep != size:  # a partial line from an interrupted write
                os.truncate(self.path, keep)
        self._file = open(self.path, "ab")  # noqa: SIM115 (closed by close()/__exit__)
        if header is not None and keep == 0:
            self.write_batch([{"shard": dict(header)}])

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
