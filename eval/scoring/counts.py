"""Reading the count an answer states (Counting), and why that number was taken.

Candidates. Every integer that counts objects is a candidate. Numbers that index or count images are
not: "image 2", "Image #3", "images 1 and 3", "7 images", "3 of the images", "3 out of 5 pictures",
ordinals ("the third image", "2nd"), list enumerators at the start of a line ("1. ..."), per-image counts
("one in each image"), "1 in one" (one image), subset counts ("2 of them") and non-integers ("2.5").
"1 + 2 + 1" is one candidate worth its sum. When the caller knows the classes, a number bound to another
class ("1 cat" when dogs are counted, "cats: 2") is not a candidate either.

Hedges. Two candidates joined as a range or as alternatives ("2-3", "3 to 5", "between 3 and 5",
"3 or 4", "3, maybe 4") are one hedged candidate: taken, it makes the answer wrong, never a failure.

Parts. A candidate next to a reference to one image ("image 1: 2 dogs", "one in image 1", "2 in the
first", "1 in another") is a per-image part; runs of parts are breakdowns.

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

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from .lexer import Tok, lex, sentence_ids, split_spans
from .mentions import ClassIndex, find_mentions

__all__ = [
    "CountReading",
    "answer_markers",
    "candidate_numbers",
    "parse_count",
    "read_count",
    "read_count_tokens",
    "total_markers",
]

_IMAGE_WORDS_SINGULAR = frozenset({"image", "img", "picture", "pic", "photo", "photograph", "frame", "panel"})
_IMAGE_WORDS_PLURAL = frozenset({"images", "imgs", "pictures", "pics", "photos", "photographs", "frames", "panels"})
_IMAGE_WORDS = _IMAGE_WORDS_SINGULAR | _IMAGE_WORDS_PLURAL
_INDEX_MARKS = frozenset({"#", "number", "no", "nr", "num"})
_RUN_JOINERS = frozenset({",", "&", "and", "to", "through", "or", "/", "-"})
# Words between a number and an image word that keep the number a count of images ("3 of the 5 images").
_IMAGE_COUNT_GAP = frozenset(
    {"of", "the", "these", "those", "out", "different", "separate", "distinct", "given", "provided", "other",
     "individual", "remaining", "all", "your", "my"}
)  # fmt: skip
_SUBSET_WORDS = frozenset({"them", "these", "those"})
_SENTENCE_END = frozenset({".", "!", "?", ";", "\n"})
_CLAUSE_END = _SENTENCE_END | {",", ":"}
_SEGMENT_PUNCT = frozenset({",", ";", ".", "!", "?", "\n", "(", ")", "[", "]", "|"})
_SEGMENT_WORDS = frozenset({"and", "but", "while", "whereas", "so", "plus"})
# After these a total marker ends its clause, so it reads backwards ("4 dogs in total.").
_MARKER_BREAK = frozenset({",", ".", ";", ":", "!", "?", "\n", ")", "("})
_ANSWER_NEXT = frozenset({":", "is", "=", "would", "will", "should", "was", "must"})
_FINAL_NEXT = frozenset({"answer", "count", "total", "number", "tally", "result"})
_TOTAL_WORDS = frozenset({"total", "totals", "altogether", "overall", "combined"})
_STATEMENT_WORDS = frozenset({"sum", "count", "tally", "result"})
_STATEMENT_NEXT = frozenset({":", "is", "=", "equals"})
# Hedges: what may stand between two numbers of a range or of alternatives.
_RANGE_JOINS = (("-",), ("to",), ("through",))
_ALTERNATIVE_WORDS = frozenset({"or", "maybe", "possibly", "perhaps", "probably", "potentially"})
_HEDGE_FILLERS = _ALTERNATIVE_WORDS | {",", "even", "likely", "either", "about", "around", "roughly"}
# Image references other than "image N" and ordinals.
_OTHER_IMAGE_REFS = frozenset({"another"})
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


@dataclass
class _Cand:
    value: int  # for a hedge: its first value
    start: int  # first token (a chain or a hedge spans several)
    end: int  # last token, inclusive
    alternatives: tuple[int, ...] = ()
    hedge: str = ""  # "range" | "alternatives"
    part: bool = False  # counts the objects of one image

    def text(self) -> str:
        if self.hedge == "range":
            return f"{self.alternatives[0]}-{self.alternatives[-1]}"
        if self.hedge:
            return " or ".join(map(str, self.alternatives))
        return str(self.value)


def _image_index_before(toks: Sequence[Tok], i: int) -> int | None:
    """Index of the image word that makes toks[i] an image index ("image 2", "image #2", "image no. 2")."""
    k = i - 1
    if k >= 1 and toks[k].text == "." and toks[k - 1].text in ("no", "nr", "num"):
        k -= 2
    elif k >= 0 and toks[k].text in _INDEX_MARKS:
        k -= 1
    if k >= 0 and toks[k].text in _IMAGE_WORDS:
        return k
    return None


def _counts_images(toks: Sequence[Tok], i: int) -> bool:
    """toks[i] counts images or a subset: "7 images", "3 of the images", "3 out of 5 pictures", "2 of them"."""
    n = len(toks)
    k = i + 1
    while k < n and k < i + 6 and (toks[k].text in _IMAGE_COUNT_GAP or toks[k].kind == "num"):
        k += 1
    if k < n and toks[k].text in _IMAGE_WORDS:
        return True
    return i + 2 < n and toks[i + 1].text == "of" and toks[i + 2].text in _SUBSET_WORDS


def _per_image(toks: Sequence[Tok], i: int) -> bool:
    """toks[i] is a count per image: "one in each image", "one dog in each", "2 dogs per image"."""
    words = [t.text for t in toks[i + 1 : i + 4]]
    if words[:1] in (["each"], ["per"]) or words[:2] in (["in", "each"], ["in", "every"], ["on", "each"]):
        return True
    return len(words) >= 2 and toks[i + 1].kind == "word" and (
        words[1] in ("each", "per") or words[1:3] in (["in", "each"], ["in", "every"], ["on", "each"])
    )


def _excluded_numbers(toks: Sequence[Tok]) -> tuple[list[bool], dict[int, int]]:
    """Which tokens are not candidate counts, and the references to one image ({first token: last})."""
    n = len(toks)
    excluded = [t.kind != "num" or t.value is None for t in toks]
    refs: dict[int, int] = {}
    for i, t in enumerate(toks):
        if t.kind == "ord":
            nxt = toks[i + 1].text if i + 1 < n else ""
            refs[i] = i + 1 if nxt in _IMAGE_WORDS_SINGULAR else i  # "the third image", "the second"
            continue
        if t.text in _OTHER_IMAGE_REFS:
            refs[i] = i
            continue
        if t.kind != "num" or excluded[i]:
            continue
        nxt = toks[i + 1].text if i + 1 < n else ""
        image_word = _image_index_before(toks, i)
        if image_word is not None:
            excluded[i] = True
            if toks[image_word].text in _IMAGE_WORDS_SINGULAR:
                refs[image_word] = i
            else:  # "images 1, 2 and 3", "images 1-3": a set of images, not one
                j = i
                while True:
                    k = j + 1
                    if k < n and toks[k].text in _RUN_JOINERS:
                        k += 1
                    if k < n and toks[k].text == "and":
                        k += 1
                    if k < n and toks[k].kind == "num":
                        excluded[k] = True
                        j = k
                    else:
                        break
        elif _counts_images(toks, i):
            excluded[i] = True
            if t.value == 1 and nxt in _IMAGE_WORDS_SINGULAR:
                refs[i] = i + 1  # "in one image"
        elif (
            (i == 0 or toks[i - 1].text == "\n")
            and nxt in (".", ")")
            and i + 2 < n
            and toks[i + 2].text != "\n"
        ):
            excluded[i] = True  # "1. Image 1: ..." list enumerator
        elif _per_image(toks, i):
            excluded[i] = True  # "one in each image", "2 dogs per image": a per-image count
        elif (
            i >= 1
            and toks[i - 1].text == "|"
            and (i == 1 or toks[i - 2].text == "\n")
            and nxt == "|"
            and i + 2 < n
            and toks[i + 2].kind == "num"
        ):
            excluded[i] = True  # "| 1 | 2 |": the first cell of a table row numbers the image
            refs[i] = i
        elif i > 0 and toks[i - 1].text in ("in", "from") and (i + 1 >= n or toks[i + 1].kind == "punct"):
            excluded[i] = True  # "1 in one, 2 in another": "one" is an image
            refs[i] = i
    return excluded, refs


def candidate_numbers(toks: Sequence[Tok]) -> list[_Cand]:
    """Candidate counts in text order, before hedges, classes and parts are looked at."""
    return _chains(toks, _excluded_numbers(toks)[0])


def _chains(toks: Sequence[Tok], excluded: list[bool]) -> list[_Cand]:
    """Candidate counts in text order; "a + b + c" chains without "=" collapse into their sum."""
    n = len(toks)
    cands: list[_Cand] = []
    i = 0
    while i < n:
        if excluded[i]:
            i += 1
            continue
        j = i
        total = toks[i].value or 0
        while j + 2 < n and toks[j + 1].text in ("+", "plus") and toks[j + 2].kind == "num" and not excluded[j + 2]:
            j += 2
            total += toks[j].value or 0
        if j == i:
            cands.append(_Cand(toks[i].value or 0, i, i))
        elif not (j + 1 < n and toks[j + 1].text == "="):
            cands.append(_Cand(total, i, j))
        # else: "1 + 2 = 3": the terms are working, the number after "=" is the candidate
        i = j + 1
    return cands


def _hedge_kind(toks: Sequence[Tok], a: _Cand, b: _Cand) -> str:
    """"range", "alternatives" or "" for two neighbouring candidates."""
    gap = [t.text for t in toks[a.end + 1 : b.start]]
    if not gap or len(gap) > 4:
        return ""
    if toks[a.end + 1].kind == "word" and gap[0] not in _HEDGE_FILLERS and gap[0] not in ("to", "and", "through"):
        gap = gap[1:]  # the noun of the first number: "3 dogs or 4"
    if tuple(gap) in _RANGE_JOINS:
        return "range"
    if gap == ["and"] and a.start > 0 and toks[a.start - 1].text == "between":
        return "range"
    if gap and set(gap) <= _HEDGE_FILLERS and set(gap) & _ALTERNATIVE_WORDS:
        return "alternatives"
    return ""


def _merge_hedges(toks: Sequence[Tok], cands: list[_Cand]) -> list[_Cand]:
    out: list[_Cand] = []
    for c in cands:
        prev = out[-1] if out else None
        kind = _hedge_kind(toks, prev, c) if prev is not None and prev.end == prev.start else ""
        if prev is not None and kind and c.end == c.start:
            values = prev.alternatives or (prev.value,)
            out[-1] = _Cand(prev.value, prev.start, c.end, (*values, c.value), prev.hedge or kind)
        else:
            out.append(c)
    return out


def _bind_other_classes(toks: Sequence[Tok], cands: list[_Cand], index: ClassIndex, targets: frozenset[int]):
    """Drop the candidates that count a class other than the targets ("1 cat", "cats: 2")."""
    mentions = find_mentions(toks, index)
    by_start = {m.start: m for m in mentions}
    by_end = {m.end: m for m in mentions}
    keep = []
    for c in cands:
        cls = None
        k = c.end + 1
        for _ in range(3):  # the class after the number, past up to two words: "2 small brown cats"
            if k in by_start:
                cls = by_start[k].cls
                break
            if k >= len(toks) or toks[k].kind != "word":
                break
            k += 1
        if cls is None and c.start >= 2 and toks[c.start - 1].text in (":", "=", "-") and c.start - 1 in by_end:
            cls = by_end[c.start - 1].cls  # "cats: 2"
        if cls is None or cls in targets:
            keep.append(c)
    return keep


def _mark_parts(toks: Sequence[Tok], cands: list[_Cand], refs: dict[int, int]) -> None:
    """Attach each one-image reference to the nearest candidate of its segment, or, when its segment
    has none, to the next candidate of its sentence ("In image 1, there are 2 dogs")."""
    if not refs or not cands:
        return
    n = len(toks)
    segment = [0] * n
    for s, (start, end) in enumerate(split_spans(toks, _SEGMENT_PUNCT, _SEGMENT_WORDS)):
        for i in range(start, end):
            segment[i] = s + 1  # 0: a separator
    sentence = sentence_ids(toks, _SENTENCE_END)
    starts = [c.start for c in cands]
    by_segment: dict[int, list[int]] = {}  # segment -> positions in `cands`, in order
    for k, c in enumerate(cands):
        by_segment.setdefault(segment[c.start], []).append(k)
    seg_starts = {seg: [starts[k] for k in ks] for seg, ks in by_segment.items()}
    for ref, last in sorted(refs.items()):
        ks = by_segment.get(segment[ref]) if segment[ref] else None
        if ks:
            # The nearest candidate of the segment; on a tie the one after ("5 dogs after image 1 had 2").
            pos = bisect.bisect_right(seg_starts[segment[ref]], last)
            after = cands[ks[pos]] if pos < len(ks) else None
            before = cands[ks[pos - 1]] if pos > 0 and cands[ks[pos - 1]].end < ref else None
            if after is not None and (before is None or after.start - last <= ref - before.end):
                after.part = True
            elif before is not None:
                before.part = True
            continue
        if segment[ref]:
            pos = bisect.bisect_right(starts, ref)
            if pos < len(cands) and sentence[cands[pos].start] == sentence[ref]:
                cands[pos].part = True


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


def _marked(toks: Sequence[Tok], cands: list[_Cand]) -> tuple[list[_Cand], str]:
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


def _key(c: _Cand) -> tuple[int, ...]:
    return c.alternatives or (c.value,)


def _breakdowns(cands: list[_Cand], totals: list[_Cand]) -> list[list[_Cand]]:
    """Runs of two or more other candidates between the totals (restatements of the total left out)."""
    total_ids = {id(c) for c in totals}
    total_values = {_key(c) for c in totals}
    runs: list[list[_Cand]] = [[]]
    for c in cands:
        if id(c) in total_ids:
            runs.append([])
        elif c.part or _key(c) not in total_values:
            runs[-1].append(c)
    return [r for r in runs if len(r) >= 2 and not any(c.hedge for c in r)]


def _taken(c: _Cand, rule: str, why: str) -> CountReading:
    if c.hedge:
        kind = "a range" if c.hedge == "range" else "alternatives"
        return CountReading(None, c.hedge, f"hedged: {c.text()} is {kind}, not one count ({why})", c.alternatives)
    return CountReading(c.value, rule, why)


_MAX_SHOWN = 8  # numbers quoted in a `why`, so that a runaway answer keeps its record small


def _sum_text(run: Sequence[_Cand]) -> str:
    terms = [str(c.value) for c in run[:_MAX_SHOWN]] + ([f"... ({len(run)} counts)"] if len(run) > _MAX_SHOWN else [])
    return " + ".join(terms) + f" = {sum(c.value for c in run)}"


def _decide(toks: Sequence[Tok], cands: list[_Cand]) -> CountReading:
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
    excluded, refs = _excluded_numbers(toks)
    cands = _merge_hedges(toks, _chains(toks, excluded))
    if index is not None and targets:
        cands = _bind_other_classes(toks, cands, index, targets)
    if not cands:
        return _no_number(toks)
    _mark_parts(toks, cands, refs)
    return _decide(toks, cands)


def read_count(text: str, index: ClassIndex | None = None, targets: frozenset[int] = frozenset()) -> CountReading:
    """The count an answer states, with the rule that chose it."""
    return read_count_tokens(lex(text), index, targets)


def parse_count(text: str) -> int | None:
    """The count an answer states, or None (no count, a refusal, an ambiguous answer or a hedge).
    "There are 3 dogs." -> 3, "twenty-one" -> 21, "1 + 2 = 3" -> 3, "**Answer:** 4" -> 4, "no dogs" -> 0."""
    return read_count(text).value
