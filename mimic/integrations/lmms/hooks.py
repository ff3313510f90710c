"""The lmms-eval task hooks of MIMIC (`tasks/utils.py` re-exports them): this package's data, prompt and scorer.

- `process_docs` adds each config's scorer vocabulary (`mimic.eval.data.answer_vocabulary` over the whole
  config, as `mimic eval` computes it) to every doc, so a doc can be scored on its own;
- `doc_to_visual`: the row's images, in order; `doc_to_text`: the row's question (the official prompt;
  chat formatting is the model's business, as in `mimic eval`);
- `process_results`: the `mimic eval` prediction record of the doc (`mimic.eval.predictions.make_record`:
  parsed answer, parse-failure flag, score, controls, scorer details), once per metric of the config;
- `aggregate_<metric>`: `mimic.eval.metrics.metric_value` over those records, the code behind the numbers in
  a `mimic eval` results.json, so both tools report the same scores for the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CONFIG_METRICS",
    "aggregate_accuracy",
    "aggregate_class_accuracy",
    "aggregate_mae",
    "aggregate_mean_f1",
    "aggregate_micro_f1",
    "aggregate_parse_failure_rate",
    "doc_to_target",
    "doc_to_text",
    "doc_to_visual",
    "process_docs",
    "process_results",
]

VOCABULARY_COLUMN = "candidate_classes"

# The metrics `mimic eval` reports per config (mimic.eval.aggregate drops class_accuracy where every sample
# has one class, i.e. everywhere but multi-concept Counting); the first is the config's Table 4 score.
CONFIG_METRICS: dict[str, tuple[str, ...]] = {
    "counting_balanced": ("accuracy", "mae", "parse_failure_rate"),
    "counting_unbalanced": ("accuracy", "mae", "parse_failure_rate"),
    "counting_multiconcept": ("accuracy", "mae", "class_accuracy", "parse_failure_rate"),
    "listing": ("micro_f1", "mean_f1", "accuracy", "parse_failure_rate"),
    "common": ("accuracy", "parse_failure_rate"),
    "odd_one": ("accuracy", "parse_failure_rate"),
}
LOWER_IS_BETTER = frozenset({"mae", "parse_failure_rate"})


def process_docs(dataset):
    """The config's docs with the scorer's class vocabulary added (the same for every doc of the config)."""
    from mimic.eval.data import EVAL_COLUMNS, answer_vocabulary, row_metadata

    missing = [c for c in EVAL_COLUMNS if c not in dataset.column_names]
    if missing:
        from mimic.errors import DataError

        raise DataError(f"lmms-eval task data lacks column(s) {', '.join(missing)}: not a MIMIC benchmark")
    vocabulary = list(answer_vocabulary(row_metadata(dataset)))
    return dataset.add_column(VOCABULARY_COLUMN, [vocabulary] * len(dataset))


def doc_to_visual(doc) -> list:
    return [im if im.mode == "RGB" else im.convert("RGB") for im in doc["images"]]


def doc_to_text(doc, lmms_eval_specific_kwargs=None) -> str:
    return doc["question"]


def doc_to_target(doc) -> str:
    return doc["answer"]


def process_results(doc, results: Sequence[str]) -> dict:
    """The prediction record of `doc` (as in predictions.jsonl) under each metric name of its config."""
    from mimic.eval.predictions import make_record
    from mimic.eval.scoring import score_answer

    output = results[0] if results else ""
    sample = {k: v for k, v in doc.items() if k not in ("images", VOCABULARY_COLUMN)}
    result = score_answer({**sample, VOCABULARY_COLUMN: tuple(doc[VOCABULARY_COLUMN])}, output)
    record = make_record(sample, doc["question"], output, result)
    return {name: record for name in CONFIG_METRICS[doc["config"]]}


def _aggregate(name: str, records: Sequence[dict]) -> float:
    from mimic.eval.metrics import metric_value, record_arrays

    return metric_value(name, record_arrays(list(records)))


def aggregate_accuracy(records):
    return _aggregate("accuracy", records)


def aggregate_mae(records):
    return _aggregate("mae", records)


def aggregate_class_accuracy(records):
    return _aggregate("class_accuracy", records)


def aggregate_micro_f1(records):
    return _aggregate("micro_f1", records)


def aggregate_mean_f1(records):
    return _aggregate("mean_f1", records)


def aggregate_parse_failure_rate(records):
    return _aggregate("parse_failure_rate", records)
