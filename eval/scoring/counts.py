"""Reading the count an answer states (Counting), and why that number was taken.

Candidates are the integers that count objects (`candidates`: not image indices nor counts of images,
hedges merged, per-image parts marked). A hedged candidate ("3 or 4", "between 3 and 5"), taken, makes
the answer wrong, never a failure. Runs of per-image parts are breakdowns.

The decision, in order:
1. An answer marker ("answer is", "answer:", "final answer/count/total") states the total: the first
   candidate after it in its sentence. Else a total marker ("total", "in total", "altogether", "overall",
   "in all", "combined", "=", "sum is", "count:") does, reading forwards ("a total of 4", "1 + 2 = 3")
   unless it ends its clause, then backwards ("4 dogs in total."). Markers on parts do not count.
   Several markers stating different totals: ambiguous.
2. Without a marker, the candidates that are not parts are the totals. One value: that is the total.
   Several values: when one of them, first or last, is the sum of all the others, it is a total with its
   breakdown ("3 dogs (2 brown, 1 white)"); otherwise ambiguous.
3. A total must agree with every breakdown of two or more parts stated around it ("3 dogs: one in image 1
   and two in image 3"); one that disagrees ("3 dogs: 2 in image 1 and 2 in image 2") is ambiguous.
4. Parts without a total are summed ("Image 1: 2 dogs. Image 2: 1 dog." -> 3).
5. No candidate: a refusal ("No idea.", "I cannot tell") fails; "no dogs", "none", "I don't see any"
   read as 0; anything else fails.
Ambiguous answers and refusals are parse failures; the reading says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .candidates import Cand, candidate_numbers, find_candidates
from .lexer import Tok, lex, sentence_ids
from .mentions import ClassIndex

__all__ = [
    "CountReading",
    "answer_markers",
    "candidate_numbers",
    "parse_count",
    "read_count",
    "read_count_tokens",
    "total_markers",
]

_SENTENCE_END = frozenset({".", "!", "?", ";", "\n"})
_CLAUSE_END = _SENTENCE_END | {",", ":"}
# After these a total marker ends its clause, so it reads backwards ("4 dogs in total.").
_MARKER_BREAK = frozenset({",", ".", ";", ":", "!", "?", "\n", ")", "("})
_ANSWER_NEXT = frozenset({":", "is", "=", "would", "will", "should", "was", "must"})
_FINAL_NEXT = frozenset({"answer", "count", "total", "number", "tally", "result"})
_TOTAL_WORDS = frozenset({"total", "totals", "altogether", "overall", "combined"})
_STATEMENT_WORDS = frozenset({"sum", "count", "tally", "result"})
_STATEMENT_NEXT = frozenset({":", "is", "=", "equals"})
# Refusals: a word, or two in a row.
_REFUSAL_WORDS = frozenset(
    {"unsure", "unable", "impossible", "unclear", "uncertain", "unknown", "undetermined", "indeterminate",
     "sorry", "unanswerable"}
)  # fmt: skip
_REFUSAL_PAIRS = frozenset(
    {("no", "idea"), ("no", "way"), ("no", "clue"), ("not", "sure"), ("dont", "know"), ("not", "know"),
     ("not", "possible"), ("not", "clear"), ("hard", "to"), ("difficult", "to"), ("not", "able"),
     ("no", "answer"), ("cannot", "tell"), ("cannot", "determine"), ("cannot", "count"), ("cannot", "say"),
     ("cannot", "answer"), ("cannot", "be"), ("cant", "tell"), ("cant", "determine"), ("cant", "count"),
     ("cant", "say"), ("cant", "answer"), ("cant", "be"), ("not", "determine"), ("no", "information"),
     ("not", "enough"), ("no", "certainty")}
)  # fmt: skip
_NEGATIONS_OF_ANY = frozenset({"not", "dont", "doesnt", "cannot", "cant", "isnt", "arent", "without", "never"})


@dataclass(frozen=True)
class CountReading:
    """What an answer states as its count.

    value: the count taken; None for a failure or a hedge. alternatives: a hedge's values ((3, 4) for
    "3 or 4", (3, 5) for "between 3 and 5"). rule: a short code of the decision (answer_marker,
    total_marker, single_number, total_with_breakdown, sum_of_parts, no_word, range, alternatives,
    ambiguous_totals, breakdown_mismatch, refusal, no_number). why: the decision in words.
    """

    value: int | None
    rule: str
    why: str
    alternatives: tuple[int, ...] = ()

    @property
    def failed(self) -> bool:
        return self.value is None and not self.alternatives

    @property
    def hedged(self) -> bool:
        return bool(self.alternatives)


def answer_markers(toks: Sequence[Tok]) -> list[int]:
    n = len(toks)
    out = []
    for i, t in enumerate(toks):
        nxt = toks[i + 1].text if i + 1 < n else ""
        if (t.text in ("answer", "answers") and nxt in _ANSWER_NEXT) or (t.text == "final" and nxt in _FINAL_NEXT):
            out.append(i)
    return out


def total_markers(toks: Sequence[Tok]) -> list[tuple[int, bool]]:
    """(index, may read backwards) for each total marker."""
    n = len(toks)
    out = []
    for i, t in enumerate(toks):
        w = t.text
        nxt = toks[i + 1].text if i + 1 < n else ""
        if w in _TOTAL_WORDS or (w == "all" and i > 0 and toks[i - 1].text == "in"):
            out.append((i, True))
        elif w in ("=", "equals") or (w in _STATEMENT_WORDS and nxt in _STATEMENT_NEXT):
            out.append((i, False))
    return out


def _marked(toks: Sequence[Tok], cands: list[Cand]) -> tuple[list[Cand], str]:
    """The candidates the markers state as totals (parts excluded), and the marker kind."""
    n = len(toks)
    sentence = sentence_ids(toks, _SENTENCE_END)
    clause = sentence_ids(toks, _CLAUSE_END)
    # next_in_sentence[i]: first candidate starting at or after i in i's sentence.
    next_in_sentence = [-1] * (n + 1)
    by_start = {c.start: k for k, c in enumerate(cands)}
    current = -1
    for i in range(n - 1, -1, -1):
        if i + 1 < n and sentence[i + 1] != sentence[i]:
            current = -1
        current = by_start.get(i, current)
        next_in_sentence[i] = current
    # prev_in_clause[i]: last candidate ending before i in i's clause.
    prev_in_clause = [-1] * n
    by_end = {c.end: k for k, c in enumerate(cands)}
    current = -1
    for i in range(n):
        if i and clause[i] != clause[i - 1]:
            current = -1
        prev_in_clause[i] = current
        current = by_end.get(i, current)

    found: dict[int, None] = {}
    for m in answer_markers(toks):
        k = next_in_sentence[m + 1] if m + 1 < n else -1
        if k >= 0 and not cands[k].part:
            found[k] = None
    if found:
        return [cands[k] for k in found], "answer_marker"
    for m, backwards in total_markers(toks):
        forward = next_in_sentence[m + 1] if m + 1 < n else -1
        backward = prev_in_clause[m] if backwards else -1
        ends_clause = m + 1 >= n or toks[m + 1].text in _MARKER_BREAK
        for k in (backward, forward) if ends_clause else (forward, backward):
            if k >= 0:
                if not cands[k].part:
                    found[k] = None
                break
    return [cands[k] for k in sorted(found)], "total_marker"


def _key(c: Cand) -> tuple[int, ...]:
    return c.alternatives or (c.value,)


def _breakdowns(cands: list[Cand], totals: list[Cand]) -> list[list[Cand]]:
    """Runs of two or more other candidates between the totals (restatements of the total left out)."""
    total_ids = {id(c) for c in totals}
    total_values = {_key(c) for c in totals}
    runs: list[list[Cand]] = [[]]
    for c in cands:
        if id(c) in total_ids:
            runs.append([])
        elif c.part or _key(c) not in total_values:
            runs[-1].append(c)
    return [r for r in runs if len(r) >= 2 and not any(c.hedge for c in r)]


def _taken(c: Cand, rule: str, why: str) -> CountReading:
    if c.hedge:
        kind = "a range" if c.hedge == "range" else "alternatives"
        return CountReading(None, c.hedge, f"hedged: {c.text()} is {kind}, not one count ({why})", c.alternatives)
    return CountReading(c.value, rule, why)


_MAX_SHOWN = 8  # numbers quoted in a `why`, so that a runaway answer keeps its record small


def _sum_text(run: Sequence[Cand]) -> str:
    terms = [str(c.value) for c in run[:_MAX_SHOWN]] + ([f"... ({len(run)} counts)"] if len(run) > _MAX_SHOWN else [])
    return " + ".join(terms) + f" = {sum(c.value for c in run)}"


def _decide(toks: Sequence[Tok], cands: list[Cand]) -> CountReading:
    marked, marker = _marked(toks, cands)
    if marked:
        totals, rule = marked, marker
        how = "stated by an answer marker" if marker == "answer_marker" else "stated by a total marker"
    else:
        totals, rule, how = [c for c in cands if not c.part], "single_number", "the only count stated"
    values = list(dict.fromkeys(_key(c) for c in totals))
    if len(values) > 1:
        if not marked and not any(c.hedge for c in cands):
            first, last = cands[0], cands[-1]
            if first.value == sum(c.value for c in cands[1:]):
                return CountReading(first.value, "total_with_breakdown",
                                    f"took {first.value}: a total followed by its breakdown {_sum_text(cands[1:])}")
            if last.value == sum(c.value for c in cands[:-1]):
                return CountReading(last.value, "total_with_breakdown",
                                    f"took {last.value}: a breakdown {_sum_text(cands[:-1])} followed by its total")
        distinct = list({_key(c): c for c in totals}.values())
        shown = ", ".join(c.text() for c in distinct[:_MAX_SHOWN]) + (", ..." if len(distinct) > _MAX_SHOWN else "")
        return CountReading(None, "ambiguous_totals", f"several totals ({shown}): ambiguous")
    if not values:  # parts only
        if any(c.hedge for c in cands):
            lows = sum(min(_key(c)) for c in cands)
            highs = sum(max(_key(c)) for c in cands)
            return CountReading(None, "range", "per-image counts with a hedge: a range of totals", (lows, highs))
        if len(cands) == 1:
            return CountReading(cands[0].value, "single_number", f"took {cands[0].value}: the only count stated")
        return CountReading(sum(c.value for c in cands), "sum_of_parts",
                            f"took the sum of the per-image counts {_sum_text(cands)}")
    total = totals[-1]
    runs = _breakdowns(cands, totals)
    for run in runs:
        if total.hedge or sum(c.value for c in run) != total.value:
            return CountReading(None, "breakdown_mismatch",
                                f"the total {total.text()} disagrees with its breakdown {_sum_text(run)}: ambiguous")
    if runs and rule == "single_number":
        rule, how = "total_with_breakdown", "a total agreeing with its breakdown " + _sum_text(runs[0])
    elif runs:
        how += ", agreeing with its breakdown " + _sum_text(runs[0])
    return _taken(total, rule, f"took {total.text()}: {how}")


def _no_number(toks: Sequence[Tok]) -> CountReading:
    n = len(toks)
    if not toks:
        return CountReading(None, "no_number", "the answer is empty")
    for i, t in enumerate(toks):
        if t.text in _REFUSAL_WORDS:
            return CountReading(None, "refusal", f"no count: a refusal ({t.text!r})")
        if i + 1 < n and (t.text, toks[i + 1].text) in _REFUSAL_PAIRS:
            return CountReading(None, "refusal", f"no count: a refusal ('{t.text} {toks[i + 1].text}')")
    for i, t in enumerate(toks):
        if t.text == "none" or (t.text == "no" and i + 1 < n and toks[i + 1].kind == "word"):
            return CountReading(0, "no_word", f"took 0 from {t.text!r}")
        if t.text == "any" and any(x.text in _NEGATIONS_OF_ANY for x in toks[max(0, i - 4) : i]):
            return CountReading(0, "no_word", "took 0 from a negated 'any'")
    return CountReading(None, "no_number", "no number that counts objects")


def read_count_tokens(
    toks: Sequence[Tok], index: ClassIndex | None = None, targets: frozenset[int] = frozenset()
) -> CountReading:
    """The count `toks` state (see the module docstring). With `index` and `targets` (class ids of the
    index), numbers bound to other classes are left out."""
    cands = find_candidates(toks, index, targets)
    return _decide(toks, cands) if cands else _no_number(toks)


def read_count(text: str, index: ClassIndex | None = None, targets: frozenset[int] = frozenset()) -> CountReading:
    """The count an answer states, with the rule that chose it."""
    return read_count_tokens(lex(text), index, targets)


def parse_count(text: str) -> int | None:
    """The count an answer states, or None (no count, a refusal, an ambiguous answer or a hedge).
    "There are 3 dogs." -> 3, "twenty-one" -> 21, "1 + 2 = 3" -> 3, "**Answer:** 4" -> 4, "no dogs" -> 0."""
    return read_count(text).value
