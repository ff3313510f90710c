"""Reading per-class counts of a multi-concept Counting answer ("dog: 2, cat: 1").

The answer is split into segments (commas, semicolons, new lines, full stops, "and", brackets). A segment
that names one target class is read with the single-count reading ("dogs: 1 + 2 = 3"); one that names
several pairs numbers and classes in order ("2 dogs 1 cat"). A later segment overrides an earlier one for
the same class, unless only the earlier one sits in a sentence with an answer or total marker. With no
class named at all, a bare list of exactly k numbers is read in the order of the target classes.
"""

from __future__ import annotations

from collections.abc import Sequence

from mimic.eval.normalize import COCO_CLASSES

from .counts import CountReading, answer_markers, candidate_numbers, read_count_tokens, total_markers
from .lexer import Tok, lex, sentence_ids, split_spans
from .mentions import class_index, dedupe, find_mentions

__all__ = ["parse_counts", "read_counts"]

_SEGMENT_PUNCT = frozenset({",", ";", "\n", ".", "!", "?", "&", "/", "|", "\u2022", "\u00b7", "(", ")", "[", "]"})
_SEGMENT_WORDS = frozenset({"and", "but", "while", "whereas"})
_SENTENCE_END = frozenset({".", "!", "?", ";", "\n"})


def read_counts(
    toks: Sequence[Tok], targets: tuple[str, ...], candidates: Sequence[str] | None, source: str | None = None
) -> dict[str, CountReading | None]:
    """Per-target readings (None where the answer gives no count for the class)."""
    k = len(targets)
    index = class_index((*targets, *map(str, candidates or COCO_CLASSES)), source)
    # Targets come first in the index, so class ids below k are targets (ids follow `targets` order).
    mentions = [m for m in find_mentions(toks, index) if m.cls < k]
    result: dict[str, CountReading | None] = dict.fromkeys(targets)
    if not mentions:
        if k == 1:
            result[targets[0]] = read_count_tokens(toks)
            return result
        cands = candidate_numbers(toks)
        if len(cands) == k:  # a bare "2, 1" in the order of the target classes
            for t, c in zip(targets, cands, strict=True):
                result[t] = CountReading(c.value, "in_order", f"took {c.value}: a bare list in the order of the classes")
        return result

    sentence = sentence_ids(toks, _SENTENCE_END)
    first_marker: dict[int, int] = {}
    for m in sorted([*answer_markers(toks), *(i for i, _ in total_markers(toks))]):
        first_marker.setdefault(sentence[m], m)
    priority: dict[str, int] = {}
    m_i = 0
    for start, end in split_spans(toks, _SEGMENT_PUNCT, _SEGMENT_WORDS):
        seg_mentions = []
        while m_i < len(mentions) and mentions[m_i].start < end:
            if mentions[m_i].start >= start:
                seg_mentions.append(mentions[m_i])
            m_i += 1
        if not seg_mentions:
            continue
        marker = first_marker.get(sentence[start])
        rank = 1 if marker is not None and marker < end else 0
        seg = toks[start:end]
        named = list(dict.fromkeys(m.cls for m in seg_mentions))
        pairs: list[tuple[int, CountReading]] = []
        if len(named) == 1:
            reading = read_count_tokens(seg)
            if not reading.failed:
                pairs = [(named[0], reading)]
        else:
            cands = candidate_numbers(seg)
            if len(cands) == len(seg_mentions):
                pairs = [
                    (m.cls, CountReading(c.value, "paired", f"took {c.value}: paired in order with its class"))
                    for m, c in zip(seg_mentions, cands, strict=True)
                ]
        for cls, reading in pairs:
            name = targets[cls]
            if rank >= priority.get(name, -1):
                result[name], priority[name] = reading, rank
    return result


def parse_counts(
    text: str, classes: Sequence[str], candidates: Sequence[str] | None = None, source: str | None = None
) -> dict[str, int | None]:
    """Per-class counts of a multi-concept answer, keyed by the names in `classes` (None where the
    answer gives no count, or hedges). "dog: 2, cat: 1", "2 dogs and 1 cat", "dogs: two; cats: one" and a
    bare "2, 1" (in the order of `classes`) all give {"dog": 2, "cat": 1}. `candidates` (default: COCO)
    are the other class names, so that "hot dog" is not read as "dog"."""
    targets = dedupe(classes)
    out = read_counts(lex(text), targets, candidates, source)
    return {str(c): (r.value if (r := out.get(str(c))) is not None else None) for c in classes}
