"""Which numbers of an answer are candidate counts, and what each one is (Counting).

Numbers that index or count images are not candidates: "image 2", "Image #3", "images 1 and 3", "7 images",
"3 of the images", "3 out of 5 pictures", ordinals ("the third image", "2nd"), list enumerators at the
start of a line ("1. ..."), the image column of a markdown table, per-image counts ("one in each image",
"2 dogs per image"), "1 in one" (one image), the pronoun "one" ("a black one"), non-integers ("2.5"), and
subset counts ("2 of them") unless nothing else is left.
"1 + 2 + 1" is one candidate worth its sum. When the caller knows the classes, a number bound to another
class ("1 cat" when dogs are counted, "cats: 2") is not a candidate either.

Two candidates joined as a range or as alternatives ("2-3", "3 to 5", "between 3 and 5", "3 or 4", "3,
maybe 4") are one hedged candidate. A candidate next to a reference to one image ("image 1: 2 dogs", "one
in image 1", "2 in the first", "1 in another") is a per-image part.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from .lexer import Tok, sentence_ids, split_spans
from .mentions import ClassIndex, find_mentions

__all__ = ["Cand", "candidate_numbers", "find_candidates"]

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
_DETERMINERS = frozenset({"a", "an", "the", "this", "that", "each", "every", "which", "another", "other", "any"})
_SENTENCE_END = frozenset({".", "!", "?", ";", "\n"})
_SEGMENT_PUNCT = frozenset({",", ";", ".", "!", "?", "\n", "(", ")", "[", "]", "|"})
_SEGMENT_WORDS = frozenset({"and", "but", "while", "whereas", "so", "plus"})
# Hedges: what may stand between two numbers of a range or of alternatives.
_RANGE_JOINS = (("-",), ("to",), ("through",))
_ALTERNATIVE_WORDS = frozenset({"or", "maybe", "possibly", "perhaps", "probably", "potentially"})
_HEDGE_FILLERS = _ALTERNATIVE_WORDS | {",", "even", "likely", "either", "about", "around", "roughly"}
# Image references other than "image N" and ordinals.
_OTHER_IMAGE_REFS = frozenset({"another"})


@dataclass
class Cand:
    """A candidate count: a number, a chain's sum or a hedge, with the tokens it spans."""

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
    """toks[i] counts images: "7 images", "3 of the images", "3 out of 5 pictures"."""
    n = len(toks)
    k = i + 1
    while k < n and k < i + 6 and (toks[k].text in _IMAGE_COUNT_GAP or toks[k].kind == "num"):
        k += 1
    return k < n and toks[k].text in _IMAGE_WORDS


def _subset(toks: Sequence[Tok], i: int) -> bool:
    """toks[i] counts a subset: "2 of them"."""
    return i + 2 < len(toks) and toks[i + 1].text == "of" and toks[i + 2].text in _SUBSET_WORDS


def _pronoun_one(toks: Sequence[Tok], i: int) -> bool:
    """toks[i] is the pronoun "one": "a black one", "the other one", "this one"."""
    if toks[i].text != "one":
        return False
    k = i - 1
    if k >= 1 and toks[k].kind == "word" and toks[k].text not in _DETERMINERS:
        k -= 1  # one adjective: "a black one"
    return k >= 0 and toks[k].text in _DETERMINERS


def _per_image(toks: Sequence[Tok], i: int) -> bool:
    """toks[i] is a count per image: "one in each image", "one dog in each", "2 dogs per image"."""
    words = [t.text for t in toks[i + 1 : i + 4]]
    if words[:1] in (["each"], ["per"]) or words[:2] in (["in", "each"], ["in", "every"], ["on", "each"]):
        return True
    return len(words) >= 2 and toks[i + 1].kind == "word" and (
        words[1] in ("each", "per") or words[1:3] in (["in", "each"], ["in", "every"], ["on", "each"])
    )


def _excluded_numbers(toks: Sequence[Tok]) -> tuple[list[bool], dict[int, int], list[int]]:
    """Which tokens are not candidate counts, the references to one image ({first token: last}), and the
    subset counts ("3 of them"), which count only when nothing else does."""
    n = len(toks)
    excluded = [t.kind != "num" or t.value is None for t in toks]
    refs: dict[int, int] = {}
    subsets: list[int] = []
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
        elif _subset(toks, i):
            excluded[i] = True
            subsets.append(i)
        elif _pronoun_one(toks, i):
            excluded[i] = True
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
    return excluded, refs, subsets


def candidate_numbers(toks: Sequence[Tok]) -> list[Cand]:
    """Candidate counts in text order, before hedges, classes and parts are looked at."""
    return _chains(toks, _excluded_numbers(toks)[0])


def _chains(toks: Sequence[Tok], excluded: list[bool]) -> list[Cand]:
    """Candidate counts in text order; "a + b + c" chains without "=" collapse into their sum."""
    n = len(toks)
    cands: list[Cand] = []
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
            cands.append(Cand(toks[i].value or 0, i, i))
        elif not (j + 1 < n and toks[j + 1].text == "="):
            cands.append(Cand(total, i, j))
        # else: "1 + 2 = 3": the terms are working, the number after "=" is the candidate
        i = j + 1
    return cands


def _hedge_kind(toks: Sequence[Tok], a: Cand, b: Cand) -> str:
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


def _merge_hedges(toks: Sequence[Tok], cands: list[Cand]) -> list[Cand]:
    out: list[Cand] = []
    for c in cands:
        prev = out[-1] if out else None
        kind = _hedge_kind(toks, prev, c) if prev is not None and prev.end == prev.start else ""
        if prev is not None and kind and c.end == c.start:
            values = prev.alternatives or (prev.value,)
            out[-1] = Cand(prev.value, prev.start, c.end, (*values, c.value), prev.hedge or kind)
        else:
            out.append(c)
    return out


def _bind_other_classes(toks: Sequence[Tok], cands: list[Cand], index: ClassIndex, targets: frozenset[int]):
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


def _mark_parts(toks: Sequence[Tok], cands: list[Cand], refs: dict[int, int]) -> None:
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


def find_candidates(
    toks: Sequence[Tok], index: ClassIndex | None = None, targets: frozenset[int] = frozenset()
) -> list[Cand]:
    """The candidate counts of `toks` in text order, hedges merged and parts marked. With `index` and
    `targets` (class ids of the index), numbers bound to other classes are left out."""
    excluded, refs, subsets = _excluded_numbers(toks)
    for attempt in range(2):
        cands = _merge_hedges(toks, _chains(toks, excluded))
        if index is not None and targets:
            cands = _bind_other_classes(toks, cands, index, targets)
        if cands or not subsets or attempt:
            break
        for i in subsets:  # nothing else: "Only 1 image contains dogs: 3 of them."
            excluded[i] = False
    _mark_parts(toks, cands, refs)
    return cands
