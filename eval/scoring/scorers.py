"""The scorers of the four tasks, in a registry, and `score_answer`, which picks one by the row's task."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mimic.eval.normalize import COCO_CLASSES, normalize_class_name
from mimic.registry import Registry

from .classes import read_class
from .counts import read_count, read_count_tokens
from .lexer import lex
from .lists import read_list
from .mentions import class_index, dedupe
from .multicount import parse_counts, read_counts
from .result import ScoreResult

__all__ = ["MAX_COUNT", "SCORERS", "TASKS", "score_answer"]

# Counts above this are nonsense: parsed (so not a parse failure) but never correct, and clipped to it
# for the absolute error so that one runaway answer cannot dominate a mean.
MAX_COUNT = 1000

Scorer = Callable[[dict, str], ScoreResult]
SCORERS: Registry[Scorer] = Registry("task")


def _sample_candidates(sample: dict, gold: Iterable[str]) -> tuple[str, ...]:
    """Gold names first (their spelling wins), then the sample's candidates, else COCO's 80 classes."""
    base = sample.get("candidate_classes") or COCO_CLASSES
    return dedupe([*gold, *(sample.get("target_classes") or []), *base])


def _gold_int(value: object) -> int:
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    parsed = read_count(text).value
    if parsed is None:
        raise ValueError(f"gold count {value!r} is not a number")
    return parsed


def _clip(count: int) -> int:
    return min(max(count, 0), MAX_COUNT)


@SCORERS.register("counting")
def score_counting(sample: dict, prediction: str) -> ScoreResult:
    targets = [str(c) for c in sample.get("target_classes") or []]
    answer_list = [str(a) for a in sample.get("answer_list") or []]
    if len(targets) > 1:
        return _score_multiconcept(sample, prediction, targets, answer_list)
    answer = str(sample.get("answer") or "").strip() or (answer_list[0] if answer_list else "")
    gold = _gold_int(answer)
    toks = lex(prediction)
    if targets:
        # Numbers bound to another class ("3 dogs and 1 cat") are not the target's count; the target is
        # class 0 of the index because the gold names come first.
        index = class_index(_sample_candidates(sample, targets), sample.get("source"))
        reading = read_count_tokens(toks, index, frozenset({0}))
    else:
        reading = read_count_tokens(toks)
    details = {"gold": gold, "taken": reading.value, "rule": reading.rule, "why": reading.why,
               "abs_error": None, "out_of_range": False}
    if reading.hedged:
        # A hedge is wrong; its error is that of its worst value, so hedging never lowers the error.
        details.update(taken=list(reading.alternatives),
                       abs_error=max(abs(_clip(v) - gold) for v in reading.alternatives))
        return ScoreResult(False, 0.0, list(reading.alternatives), details)
    value = reading.value
    if value is None:
        return ScoreResult(False, 0.0, None, details)
    out_of_range = not 0 <= value <= MAX_COUNT
    details.update(abs_error=abs(_clip(value) - gold), out_of_range=out_of_range)
    correct = value == gold and not out_of_range
    return ScoreResult(correct, float(correct), value, details)


def _score_multiconcept(sample: dict, prediction: str, targets: list[str], answer_list: list[str]) -> ScoreResult:
    if len(answer_list) == len(targets):
        gold = {t: _gold_int(a) for t, a in zip(targets, answer_list, strict=True)}
    else:
        parsed_gold = parse_counts(str(sample.get("answer", "")), targets)
        if any(v is None for v in parsed_gold.values()):
            raise ValueError(f"sample {sample.get('id')!r}: no gold count for every class in {targets}")
        gold = {t: int(v) for t, v in parsed_gold.items() if v is not None}
    toks = lex(prediction)
    readings = read_counts(toks, dedupe(targets), sample.get("candidate_classes"), sample.get("source"))
    pred = {t: (r.value if (r := readings.get(t)) is not None else None) for t in targets}
    hedged = {t: list(r.alternatives) for t in targets if (r := readings.get(t)) is not None and r.hedged}
    per_class = {t: pred[t] is not None and pred[t] == gold[t] for t in targets}
    missing = [t for t in targets if pred[t] is None and t not in hedged]
    abs_error = None if missing or hedged else sum(abs(_clip(pred[t]) - gold[t]) for t in targets) / len(targets)
    parsed = {t: v for t, v in pred.items() if v is not None} or (dict(hedged) if hedged else None)
    correct = all(per_class.values())
    why = {t: (r.why if (r := readings.get(t)) is not None else "no count for this class") for t in targets}
    rule = "per_class"
    if parsed is None:
        # Nothing for any class: say why as for one count (a refusal, no number), else that no count
        # could be tied to the classes.
        whole = read_count_tokens(toks)
        rule = whole.rule if whole.failed else "no_class_counts"
        why = {t: whole.why if whole.failed else "no count tied to this class" for t in targets}
    details = {"gold": gold, "taken": pred, "rule": rule, "why": why, "per_class": per_class,
               "missing": missing, "hedged": hedged, "abs_error": abs_error}
    return ScoreResult(correct, float(correct), parsed, details)


def _score_class(sample: dict, prediction: str) -> ScoreResult:
    targets = [str(c) for c in sample.get("target_classes") or []]
    gold = targets[0] if targets else str(sample.get("answer", ""))
    reading = read_class(prediction, _sample_candidates(sample, [gold]), sample.get("source"))
    taken = reading.taken
    correct = taken is not None and normalize_class_name(taken) == normalize_class_name(gold)
    details = {"gold": gold, "taken": list(reading.hedge) if reading.hedge else taken, "rule": reading.rule,
               "why": reading.why, "mentioned": list(reading.mentioned), "negated": list(reading.negated),
               "context": list(reading.context)}
    parsed = taken if taken is not None else (list(reading.hedge) or None)
    return ScoreResult(correct, float(correct), parsed, details)


@SCORERS.register("listing")
def score_listing(sample: dict, prediction: str) -> ScoreResult:
    gold_names = [str(c) for c in sample.get("answer_list") or sample.get("target_classes") or []]
    if not gold_names:
        gold_names = [a for a in str(sample.get("answer", "")).split(",") if a.strip()]
    gold = {normalize_class_name(g) for g in gold_names}
    reading = read_list(prediction, _sample_candidates(sample, gold_names), sample.get("category"),
                        sample.get("source"))
    names = reading.names
    predicted = {normalize_class_name(p) for p in names or []}
    tp = len(predicted & gold)
    fp, fn = len(predicted) - tp, len(gold) - tp
    denominator = 2 * tp + fp + fn
    f1 = 0.0 if names is None else (2 * tp / denominator if denominator else 1.0)
    details = {
        "gold": sorted(gold),
        "taken": names,
        "rule": "nothing_listed" if names is None else ("listed" if names else "none"),
        "why": reading.why,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "unknown": reading.unknown,
        "negated": reading.negated,
        "items": [list(r) for r in reading.items],
    }
    return ScoreResult(names is not None and predicted == gold, f1, names, details)


SCORERS.register("common")(_score_class)
SCORERS.register("odd_one")(_score_class)
TASKS: tuple[str, ...] = tuple(SCORERS.names())


def score_answer(sample: dict, prediction: str) -> ScoreResult:
    """Parse `prediction` for the task of `sample` (a benchmark row) and score it against the gold answer.

    Raises ValueError for an unknown task or a sample without a usable gold answer; never for the
    prediction, whatever its content (None counts as an empty answer)."""
    scorer = SCORERS.get(str(sample.get("task")))
    return scorer(sample, "" if prediction is None else str(prediction))
