"""Answer parsing and scoring for the four MIMIC tasks (Counting, Listing, Common, Odd-One).

Open-ended answers are parsed into a normalised value and compared with the sample's gold answer.
The official evaluation substring-matches class names ("category" counts as "cat"), takes the first
number of a count answer and splits lists only on ", "; this module replaces all three.

Pipeline: `normalize_text` (unicode, case, markdown) -> a lexer that yields word, number, ordinal and
punctuation tokens, with English number words merged into numbers -> task parsers -> `score_answer`.
Every regex is precompiled and free of nested quantifiers, and every pass over the tokens is linear,
so even a 100k-character answer takes well under a second.

Policies (each is tested in tests/test_scoring.py):

Counting, several numbers in one answer. Numbers that index or count images are not candidates:
"image 2", "Image #3", "images 1 and 3", "7 images", ordinals ("first", "2nd"), list enumerators at the
start of a line ("1. ...", "2) ..."), per-image counts ("one in each image") and non-integers ("2.5").
A chain "1 + 2 + 1" is one candidate worth its sum. Then, in order:
  1. an answer marker ("answer is", "answer:", "final answer/count/total"): the first candidate after
     the last such marker, in the same sentence;
  2. a total marker ("total", "in total", "altogether", "overall", "in all", "combined", "= ",
     "sum is", "count:"): the last such marker that yields a number; it reads forwards ("in total, 4",
     "a total of 4", "1 + 2 = 3") unless it ends its clause, then backwards ("4 dogs in total.");
  3. otherwise the last candidate number in the text;
  4. otherwise "no"/"none" ("there are no dogs") reads as 0.
Negative and absurd (> MAX_COUNT) counts are parsed, never correct, and clipped for the absolute error.
When a single-class answer also counts other candidate classes ("3 dogs and 1 cat"), the target's count
is read per class, as in multi-concept counting below.

Class names (Common, Odd-One, Listing). Text and candidate names are matched as whole token
sequences, never substrings ("category" is not "cat"), with the longest match winning ("hot dog" is
not "dog"). A candidate is recognised by its normalised name, its plural/singular forms (irregular ones
too: people, mice, knives, sheep), and known synonyms (tv/television, couch/sofa, ...); an exact
candidate name beats another class's synonym. A mention is negated, and ignored, when a negation word
("not", "no", "without", "isn't", ...) occurs within the three tokens before it, inside the same clause.
A singular mention directly followed by another class ("dog bed") is a modifier and ignored.
When a Common/Odd-One answer names several classes, the first one named after the last answer marker
("answer is", "answer:", "class is", "odd one out:") wins, else the first one named; the result records
`ambiguous=True` and every class mentioned.

Lists. Items are split on commas, semicolons, colons, full stops, new lines, "&", "/", "|", bullets and
the words "and"/"or" (a "1." enumerator becomes a number-only item and is dropped; a "-" or "*" bullet is
markup). Each item yields the candidate classes it names. An item that names no candidate and has one to
three content words (after fillers such as "the", "some", "etc" and the category's own name) is an
unknown item and counts as a false positive; longer items are commentary and ignored; an item that ends
in ":" is a header. Duplicates are removed.

Multi-concept counting. The answer is split into segments (commas, semicolons, new lines, full stops,
"and", brackets); a segment that names one target class is read with the counting policy ("dogs: 1 + 2
= 3"), one that names several pairs numbers and classes in order ("2 dogs 1 cat"). A later segment
overrides an earlier one for the same class, unless only the earlier one sits in a sentence with an
answer or total marker. With no class named at all, a bare list of exactly k numbers is read in the
order of `target_classes`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from .normalize import (
    COCO_CLASSES,
    NUMBER_SCALES,
    NUMBER_TEENS,
    NUMBER_TENS,
    NUMBER_UNITS,
    ORDINAL_WORDS,
    class_aliases,
    normalize_class_name,
    normalize_text,
    plural_forms,
    singular_forms,
)

__all__ = [
    "MAX_COUNT",
    "TASKS",
    "ScoreResult",
    "mean_absolute_error",
    "micro_f1",
    "normalize_class_name",
    "parse_class",
    "parse_count",
    "parse_counts",
    "parse_list",
    "score_answer",
]

TASKS: tuple[str, ...] = ("counting", "listing", "common", "odd_one")
# Counts above this are treated as nonsense: parsed (so not a parse failure) but never correct, and
# clipped to it for the absolute error so one runaway answer cannot dominate a mean.
MAX_COUNT = 1000
# Digit strings longer than this are not converted (Python refuses int() on > 4300 digits, and no count
# is that long); they read as this sentinel, which is above MAX_COUNT.
_MAX_DIGITS = 18
_HUGE = 10**_MAX_DIGITS


@dataclass(frozen=True)
class ScoreResult:
    """The score of one prediction.

    correct: exact correctness (Listing: predicted set == gold set).
    score: 1.0/0.0 for accuracy tasks, per-sample F1 for Listing.
    parsed: the normalised answer: int (Counting), dict[str, int] (multi-concept Counting), the
        candidate class name (Common, Odd-One), a sorted list of names (Listing); None when nothing
        could be parsed.
    details: task-specific facts: gold, abs_error, per_class, tp/fp/fn, ambiguous, method, ...
    """

    correct: bool
    score: float
    parsed: object | None
    details: dict = field(default_factory=dict)

    @property
    def parse_failed(self) -> bool:
        return self.parsed is None


# --------------------------------------------------------------------------------------------------
# Lexer


class _Tok(NamedTuple):
    kind: str  # "word" | "num" | "ord" | "punct"
    text: str
    value: int | None = None  # numbers: the integer, None when not an integer ("2.5")


# A number: optional minus sign only at the start of a word ("-3", not the range "1-2"), thousands
# groups ("1,000") or plain digits, an optional decimal part, and letters glued to it ("2nd", "3x").
_TOKEN_RE = re.compile(
    r"(?P<num>(?:(?<![^\s(\[])-)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?[^\W\d_]*)"
    r"|(?P<word>[^\W\d_]+)"
    r"|(?P<punct>[.,;:!?=+#&/|()\[\]\n\u2022\u00b7])"
)
# Splits a matched number into sign+digits, decimal part and glued letters.
_NUM_PARTS_RE = re.compile(r"(-?[\d,]+)(\.\d+)?(\D*)")
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
_SCALE_STARTERS = frozenset(NUMBER_SCALES) | {"dozen"}
_MULTIPLICATIVES = {"once": 1, "twice": 2, "thrice": 3}


def _number_value(token: str, frac: str | None) -> int | None:
    negative = token.startswith("-")
    digits = token.lstrip("-").replace(",", "")
    if frac and frac.strip(".0"):
        return None  # a non-integer is never a count
    value = _HUGE if len(digits) > _MAX_DIGITS else int(digits)
    return -value if negative else value


def _raw_tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    append = toks.append
    for m in _TOKEN_RE.finditer(normalize_text(text)):
        kind, token = m.lastgroup, m.group()
        if kind != "num":
            append(_Tok(kind, token))  # type: ignore[arg-type]
            continue
        if token.isdigit() and len(token) <= _MAX_DIGITS:  # the common case, without the sub-regex
            append(_Tok("num", token, int(token)))
            continue
        num, frac, suffix = _NUM_PARTS_RE.fullmatch(token).groups()  # type: ignore[union-attr]
        value = _number_value(num, frac)
        if suffix in _ORDINAL_SUFFIXES:
            append(_Tok("ord", token, value))
            continue
        append(_Tok("num", num, value))
        if suffix:  # "3x", "2dogs": the letters are a word of their own
            append(_Tok("word", suffix))
    return toks


def _read_number_words(toks: Sequence[_Tok], i: int) -> tuple[int | None, int]:
    """Read an English number phrase starting at toks[i] ("twenty one", "one hundred and five",
    "a dozen"); return (value, index after it), or (None, i) when there is none.

    A small state machine: a unit may follow nothing, a tens word or a scale; "one two" is two numbers.
    """
    total = current = 0
    last: str | None = None
    j, n = i, len(toks)
    while j < n and toks[j].kind == "word":
        w = toks[j].text
        nxt = toks[j + 1].text if j + 1 < n else ""
        if w in ("a", "an") and last is None and nxt in _SCALE_STARTERS:
            current, last = 1, "article"
        elif w in NUMBER_UNITS and (last in (None, "scale") or (last == "tens" and NUMBER_UNITS[w] > 0)):
            current, last = current + NUMBER_UNITS[w], "unit"
        elif w in NUMBER_TEENS and last in (None, "scale"):
            current, last = current + NUMBER_TEENS[w], "teen"
        elif w in NUMBER_TENS and last in (None, "scale"):
            current, last = current + NUMBER_TENS[w], "tens"
        elif w == "hundred" and last in ("unit", "teen", "article"):
            current, last = current * 100, "scale"
        elif w in NUMBER_SCALES and w != "hundred" and last not in (None, "dozen"):
            total, current, last = total + current * NUMBER_SCALES[w], 0, "scale"
        elif w == "dozen" and last in (None, "unit", "article"):
            current, last = (current or 1) * 12, "dozen"
        elif (
            w == "and"
            and last == "scale"
            and (nxt in NUMBER_UNITS or nxt in NUMBER_TEENS or nxt in NUMBER_TENS)
        ):
            pass  # "one hundred and five"
        else:
            break
        j += 1
    if last in (None, "article"):
        return None, i
    return total + current, j


def _lex(text: str) -> list[_Tok]:
    """Tokens of `text` with number words merged into "num" tokens and ordinal words as "ord"."""
    raw = _raw_tokens(text)
    out: list[_Tok] = []
    i, n = 0, len(raw)
    while i < n:
        t = raw[i]
        if t.kind == "word":
            if t.text in _MULTIPLICATIVES:
                out.append(_Tok("num", t.text, _MULTIPLICATIVES[t.text]))
                i += 1
                continue
            if t.text in ORDINAL_WORDS:
                out.append(_Tok("ord", t.text))
                i += 1
                continue
            value, j = _read_number_words(raw, i)
            if value is not None:
                out.append(_Tok("num", " ".join(x.text for x in raw[i:j]), value))
                i = j
                continue
        out.append(t)
        i += 1
    return out


# --------------------------------------------------------------------------------------------------
# Counting

_IMAGE_WORDS_SINGULAR = frozenset({"image", "img", "picture", "pic", "photo", "photograph", "frame", "panel"})
_IMAGE_WORDS_PLURAL = frozenset(
    {"images", "imgs", "pictures", "pics", "photos", "photographs", "frames", "panels"}
)
_IMAGE_WORDS = _IMAGE_WORDS_SINGULAR | _IMAGE_WORDS_PLURAL
_INDEX_MARKS = frozenset({"#", "number", "no", "nr", "num"})
_RUN_JOINERS = frozenset({",", "&", "and", "to", "through", "or", "/"})
_SENTENCE_END = frozenset({".", "!", "?", ";", "\n"})
_CLAUSE_END = _SENTENCE_END | {",", ":"}
# After these a total marker ends its clause, so it reads backwards ("4 dogs in total.").
_MARKER_BREAK = frozenset({",", ".", ";", ":", "!", "?", "\n", ")", "("})
_ANSWER_NEXT = frozenset({":", "is", "=", "would", "will", "should", "was", "must"})
_FINAL_NEXT = frozenset({"answer", "count", "total", "number", "tally", "result"})
_TOTAL_WORDS = frozenset({"total", "totals", "altogether", "overall", "combined"})
_STATEMENT_WORDS = frozenset({"sum", "count", "tally", "result"})
_STATEMENT_NEXT = frozenset({":", "is", "=", "equals"})


class _Cand(NamedTuple):
    value: int
    start: int  # first token (a chain spans several)
    end: int  # last token, inclusive


def _image_index_before(toks: Sequence[_Tok], i: int) -> str | None:
    """The image word that makes toks[i] an image index ("image 2", "image #2", "image no. 2")."""
    k = i - 1
    if k >= 1 and toks[k].text == "." and toks[k - 1].text in ("no", "nr", "num"):
        k -= 2
    elif k >= 0 and toks[k].text in _INDEX_MARKS:
        k -= 1
    if k >= 0 and toks[k].text in _IMAGE_WORDS:
        return toks[k].text
    return None


def _excluded_numbers(toks: Sequence[_Tok]) -> list[bool]:
    """Mark the number tokens that are not candidate counts (see the module docstring)."""
    n = len(toks)
    excluded = [t.kind != "num" or t.value is None for t in toks]
    for i, t in enumerate(toks):
        if t.kind != "num" or excluded[i]:
            continue
        nxt = toks[i + 1].text if i + 1 < n else ""
        image_word = _image_index_before(toks, i)
        if image_word is not None:
            excluded[i] = True
            if image_word in _IMAGE_WORDS_PLURAL:  # "images 1, 2 and 3", "images 1-3"
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
        elif nxt in _IMAGE_WORDS:  # "7 images": counts images, not objects
            excluded[i] = True
        elif (
            (i == 0 or toks[i - 1].text == "\n")
            and nxt in (".", ")")
            and i + 2 < n
            and toks[i + 2].text != "\n"
        ):
            excluded[i] = True  # "1. Image 1: ..." list enumerator
        elif nxt in ("each", "per") or (nxt == "in" and i + 2 < n and toks[i + 2].text in ("each", "every")):
            excluded[i] = True  # "one in each image": a per-image count
    return excluded


def _count_candidates(toks: Sequence[_Tok]) -> list[_Cand]:
    """Candidate counts in text order; "a + b + c" chains without "=" collapse into their sum."""
    excluded = _excluded_numbers(toks)
    n = len(toks)
    cands: list[_Cand] = []
    i = 0
    while i < n:
        if excluded[i]:
            i += 1
            continue
        j = i
        total = toks[i].value or 0
        while (
            j + 2 < n
            and toks[j + 1].text in ("+", "plus")
            and toks[j + 2].kind == "num"
            and not excluded[j + 2]
        ):
            j += 2
            total += toks[j].value or 0
        if j == i:
            cands.append(_Cand(toks[i].value or 0, i, i))
        elif not (j + 1 < n and toks[j + 1].text == "="):
            cands.append(_Cand(total, i, j))
        # else: "1 + 2 = 3": the terms are working, the number after "=" is the candidate
        i = j + 1
    return cands


def _answer_markers(toks: Sequence[_Tok]) -> list[int]:
    n = len(toks)
    out = []
    for i, t in enumerate(toks):
        nxt = toks[i + 1].text if i + 1 < n else ""
        if (t.text in ("answer", "answers") and nxt in _ANSWER_NEXT) or (
            t.text == "final" and nxt in _FINAL_NEXT
        ):
            out.append(i)
    return out


def _total_markers(toks: Sequence[_Tok]) -> list[tuple[int, bool]]:
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


def _sentence_ids(toks: Sequence[_Tok], ends: frozenset[str]) -> list[int]:
    """Sentence (or clause) number of every token. A new line right after ":" or "=" does not end the
    sentence, so "Answer:\\n3" keeps the number with its marker."""
    ids = []
    current = 0
    last_visible = ""
    for t in toks:
        ids.append(current)
        if t.kind == "punct" and t.text in ends and not (t.text == "\n" and last_visible in (":", "=")):
            current += 1
        if t.text != "\n":
            last_visible = t.text
    return ids


def _parse_count_tokens(toks: Sequence[_Tok]) -> tuple[int | None, str]:
    """The count stated by `toks` and the rule that chose it (see the module docstring)."""
    n = len(toks)
    cands = _count_candidates(toks)
    if cands:
        sentence = _sentence_ids(toks, _SENTENCE_END)
        clause = _sentence_ids(toks, _CLAUSE_END)
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

        for m in reversed(_answer_markers(toks)):
            k = next_in_sentence[m + 1] if m + 1 < n else -1
            if k >= 0:
                return cands[k].value, "answer_marker"
        for m, backwards in reversed(_total_markers(toks)):
            forward = next_in_sentence[m + 1] if m + 1 < n else -1
            backward = prev_in_clause[m] if backwards else -1
            ends_clause = m + 1 >= n or toks[m + 1].text in _MARKER_BREAK
            for k in (backward, forward) if ends_clause else (forward, backward):
                if k >= 0:
                    return cands[k].value, "total_marker"
        return max(cands, key=lambda c: c.end).value, "last_number"
    for i, t in enumerate(toks):
        if t.text == "none" or (t.text == "no" and i + 1 < n and toks[i + 1].kind == "word"):
            return 0, "no_word"
    return None, "unparsed"


def parse_count(text: str) -> int | None:
    """The count an answer states, or None. "There are 3 dogs." -> 3, "twenty-one" -> 21,
    "1 + 2 = 3" -> 3, "**Answer:** 4" -> 4, "no dogs" -> 0. See the module docstring for the policy."""
    return _parse_count_tokens(_lex(text))[0]


# --------------------------------------------------------------------------------------------------
# Class names

_NEGATIONS = frozenset(
    {"not", "no", "never", "without", "nor", "neither", "isnt", "arent", "wasnt", "werent", "dont", "doesnt",
     "didnt", "cannot", "cant", "wont", "hasnt", "havent", "hadnt", "lacks", "lacking", "except", "excluding",
     "non"}
)  # fmt: skip
# A negation does not reach across these: "no dog but a cat" names the cat.
_CLAUSE_WORDS = frozenset(
    {"but", "and", "or", "however", "although", "though", "while", "whereas", "instead"}
)
_NEGATION_WINDOW = 3
# Words after which a Common/Odd-One answer is stated ("the answer is", "the common class is", "out: ").
_CLASS_MARKER_WORDS = frozenset({"answer", "class", "category", "object", "out"})
_CLASS_MARKER_NEXT = frozenset({":", "is", "=", "would", "will", "was", "must", "should"})


@dataclass(frozen=True)
class _ClassIndex:
    classes: tuple[str, ...]  # candidates as given, deduplicated by normalised name
    keys: tuple[str, ...]  # their normalised names
    phrases: dict[tuple[str, ...], tuple[int, bool]]  # token sequence -> (class, spelled as plural)
    max_len: int


class _Mention(NamedTuple):
    start: int
    end: int  # exclusive
    cls: int
    plural: bool
    negated: bool


def _dedupe(names: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for name in names:
        key = normalize_class_name(str(name))
        if key and key not in seen:
            seen.add(key)
            out.append(str(name))
    return tuple(out)


def _spellings(phrase: str) -> list[tuple[str, bool]]:
    """(spelling, is plural) for a normalised phrase: itself, plural and singular forms of its head."""
    head, _, last = phrase.rpartition(" ")
    prefix = head + " " if head else ""
    out = [(phrase, False)]
    out += [(prefix + w, True) for w in sorted(plural_forms(last)) if w != last]
    out += [(prefix + w, False) for w in sorted(singular_forms(last)) if w != last]
    return out


@lru_cache(maxsize=256)
def _class_index(candidates: tuple[str, ...]) -> _ClassIndex:
    """Phrase table for `candidates`. Ranks settle collisions: exact name (0) < its inflections (1) <
    synonyms (2) < their inflections (3); a tie between two classes makes the phrase ambiguous, and it
    is dropped rather than guessed."""
    classes = _dedupe(candidates)
    keys = tuple(normalize_class_name(c) for c in classes)
    best: dict[tuple[str, ...], tuple[int, int, bool]] = {}
    clashes: set[tuple[str, ...]] = set()

    def add(spelling: str, rank: int, cls: int, plural: bool) -> None:
        phrase = tuple(spelling.split())
        old = best.get(phrase)
        if old is None or rank < old[0]:
            best[phrase] = (rank, cls, plural)
            clashes.discard(phrase)
        elif rank == old[0] and old[1] != cls:
            clashes.add(phrase)

    for cls, key in enumerate(keys):
        for spelling, plural in _spellings(key):
            add(spelling, 0 if spelling == key else 1, cls, plural)
        for alias in sorted(class_aliases(key)):
            for spelling, plural in _spellings(alias):
                add(spelling, 2 if spelling == alias else 3, cls, plural)
    phrases = {p: (cls, plural) for p, (_, cls, plural) in best.items() if p not in clashes}
    return _ClassIndex(classes, keys, phrases, max((len(p) for p in phrases), default=1))


def _is_negated(toks: Sequence[_Tok], i: int, floor: int) -> bool:
    """Whether a negation word sits within the few tokens before toks[i], in the same clause and
    after the previous mention (`floor`)."""
    k, seen = i - 1, 0
    while k >= floor and seen < _NEGATION_WINDOW:
        t = toks[k]
        if t.kind == "punct" or t.text in _CLAUSE_WORDS:
            return False
        if t.text in _NEGATIONS:
            return True
        k, seen = k - 1, seen + 1
    return False


def _find_mentions(toks: Sequence[_Tok], index: _ClassIndex) -> list[_Mention]:
    """Class mentions, scanning left to right and taking the longest phrase at each position."""
    out: list[_Mention] = []
    n, i, floor = len(toks), 0, 0
    while i < n:
        if toks[i].kind != "word":
            i += 1
            continue
        words: list[str] = []
        j = i
        while j < n and len(words) < index.max_len and toks[j].kind == "word":
            words.append(toks[j].text)
            j += 1
        for length in range(len(words), 0, -1):
            entry = index.phrases.get(tuple(words[:length]))
            if entry is not None:
                out.append(_Mention(i, i + length, entry[0], entry[1], _is_negated(toks, i, floor)))
                i = floor = i + length
                break
        else:
            i += 1
    return out


def _drop_modifiers(mentions: list[_Mention]) -> list[_Mention]:
    """Drop a singular class name used as a modifier of the next one ("dog bed" names a bed)."""
    keep = []
    for i, a in enumerate(mentions):
        b = mentions[i + 1] if i + 1 < len(mentions) else None
        if b is not None and b.start == a.end and not a.plural and a.cls != b.cls:
            continue
        keep.append(a)
    return keep


def _class_anchor(toks: Sequence[_Tok]) -> int | None:
    """Token index just after the last answer marker for a class answer, if any."""
    anchor = None
    for i in range(len(toks) - 1):
        if toks[i].text in _CLASS_MARKER_WORDS and toks[i + 1].text in _CLASS_MARKER_NEXT:
            anchor = i + 2
    return anchor


def _parse_class_detail(text: str, candidates: Sequence[str]) -> tuple[str | None, list[str]]:
    index = _class_index(tuple(map(str, candidates)))
    toks = _lex(text)
    mentions = [m for m in _drop_modifiers(_find_mentions(toks, index)) if not m.negated]
    order: list[int] = []
    for m in mentions:
        if m.cls not in order:
            order.append(m.cls)
    if not order:
        return None, []
    chosen = order[0]
    if len(order) > 1:
        anchor = _class_anchor(toks)
        after = [m.cls for m in mentions if anchor is not None and m.start >= anchor]
        if after:
            chosen = after[0]
    return index.classes[chosen], [index.classes[c] for c in order]


def parse_class(text: str, candidates: Sequence[str]) -> str | None:
    """The candidate class an answer names (as spelled in `candidates`), or None.

    Several classes: the first after the last answer marker, else the first named."""
    return _parse_class_detail(text, candidates)[0]


# --------------------------------------------------------------------------------------------------
# Lists

_ITEM_PUNCT = frozenset(
    {",", ";", ":", ".", "!", "?", "\n", "&", "/", "|", "\u2022", "\u00b7", "(", ")", "[", "]"}
)
_ITEM_WORDS = frozenset({"and", "or", "plus"})
# Words that never make an unknown item on their own: fillers, lead-ins and the question's vocabulary.
_LIST_FILLER = frozenset(
    {"a", "an", "the", "some", "several", "many", "few", "also", "other", "others", "etc", "more", "various",
     "maybe", "possibly", "probably", "perhaps", "likely", "i", "we", "you", "it", "they", "there", "here",
     "is", "are", "was", "were", "be", "can", "could", "see", "seen", "visible", "present", "shown", "show",
     "shows", "include", "includes", "including", "contain", "contains", "containing", "in", "on", "of",
     "at", "with", "from", "to", "for", "this", "these", "those", "that", "which", "image", "images",
     "picture", "pictures", "photo", "photos", "list", "category", "categories", "sub", "subcategory",
     "subcategories", "answer", "final", "following", "item", "items", "object", "objects", "class",
     "classes", "none", "nothing", "no", "na", "only", "all", "both", "each", "such", "as", "like",
     "identified", "found", "detected", "appear", "appears", "given", "provided", "names", "name"}
)  # fmt: skip
_MAX_UNKNOWN_WORDS = 3
_NONE_WORDS = frozenset({"none", "no", "nothing"})


def _split_spans(toks: Sequence[_Tok], puncts: frozenset[str], words: frozenset[str]) -> list[tuple[int, int]]:
    """[start, end) token spans between separators (punctuation in `puncts`, words in `words`)."""
    spans, start = [], 0
    for i, t in enumerate(toks):
        if (t.kind == "punct" and t.text in puncts) or (t.kind == "word" and t.text in words):
            if i > start:
                spans.append((start, i))
            start = i + 1
    if start < len(toks):
        spans.append((start, len(toks)))
    return spans


def _items(toks: Sequence[_Tok]) -> list[tuple[int, int]]:
    """[start, end) token spans of list items."""
    return _split_spans(toks, _ITEM_PUNCT, _ITEM_WORDS)


def _ignored_words(category: str | None) -> frozenset[str]:
    """The category's own words and their plural forms: "vehicles: car" must not list "vehicles"."""
    words: set[str] = set()
    for w in normalize_class_name(category or "").split():
        words |= {w} | plural_forms(w) | singular_forms(w)
    return frozenset(words)


def _parse_list_detail(
    text: str, candidates: Sequence[str], category: str | None = None
) -> tuple[list[str] | None, list[str]]:
    """(sorted names, unknown items); names is None when the answer lists nothing and does not say
    "none" either."""
    index = _class_index(tuple(map(str, candidates)))
    toks = _lex(text)
    mentions = _drop_modifiers(_find_mentions(toks, index))
    ignored = _ignored_words(category)
    known: dict[int, None] = {}
    unknown: dict[str, None] = {}
    m_i = covered = 0
    for start, end in _items(toks):
        # An item inside a mention that spans a separator ("salt and pepper shakers") is named.
        named = start < covered
        while m_i < len(mentions) and mentions[m_i].start < end:
            m = mentions[m_i]
            named = True
            covered = max(covered, m.end)
            if not m.negated:
                known[m.cls] = None
            m_i += 1
        if named or (end < len(toks) and toks[end].text == ":"):
            continue  # a named (maybe negated) class, or a header such as "Vehicles:"
        words = [
            t.text
            for t in toks[start:end]
            if t.kind == "word" and len(t.text) > 1 and t.text not in _LIST_FILLER and t.text not in ignored
        ]
        if 0 < len(words) <= _MAX_UNKNOWN_WORDS:
            unknown[" ".join(words)] = None
    names = sorted([index.classes[c] for c in known] + list(unknown))
    if not names and not any(t.text in _NONE_WORDS for t in toks):
        return None, []
    return names, list(unknown)


def parse_list(text: str, candidates: Sequence[str]) -> list[str]:
    """Sorted, deduplicated names listed by an answer: candidate classes (as spelled in `candidates`)
    and unknown items (normalised text; they count as false positives). Empty when nothing is listed."""
    return _parse_list_detail(text, candidates)[0] or []


# --------------------------------------------------------------------------------------------------
# Multi-concept counting

_SEGMENT_PUNCT = frozenset(
    {",", ";", "\n", ".", "!", "?", "&", "/", "|", "\u2022", "\u00b7", "(", ")", "[", "]"}
)
_SEGMENT_WORDS = frozenset({"and", "but", "while", "whereas"})


def _segments(toks: Sequence[_Tok]) -> list[tuple[int, int]]:
    return _split_spans(toks, _SEGMENT_PUNCT, _SEGMENT_WORDS)


def _parse_counts_detail(
    toks: Sequence[_Tok], targets: tuple[str, ...], candidates: Sequence[str] | None
) -> tuple[dict[str, int | None], bool]:
    """Per-target counts and whether any target class was named."""
    k = len(targets)
    index = _class_index((*targets, *map(str, candidates or COCO_CLASSES)))
    # Targets come first in the index, so class ids below k are targets (ids follow `targets` order).
    mentions = [m for m in _find_mentions(toks, index) if m.cls < k]
    result: dict[str, int | None] = dict.fromkeys(targets)
    if not mentions:
        if k == 1:
            result[targets[0]] = _parse_count_tokens(toks)[0]
            return result, False
        cands = _count_candidates(toks)
        if len(cands) == k:  # a bare "2, 1" in the order of the target classes
            result.update({t: c.value for t, c in zip(targets, cands, strict=True)})
        return result, False

    sentence = _sentence_ids(toks, _SENTENCE_END)
    first_marker: dict[int, int] = {}
    for m in sorted([*_answer_markers(toks), *(i for i, _ in _total_markers(toks))]):
        first_marker.setdefault(sentence[m], m)
    priority: dict[str, int] = {}
    m_i = 0
    for start, end in _segments(toks):
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
        if len(named) == 1:
            value = _parse_count_tokens(seg)[0]
            pairs = [(named[0], value)] if value is not None else []
        else:
            cands = _count_candidates(seg)
            pairs = (
                [(m.cls, c.value) for m, c in zip(seg_mentions, cands, strict=True)]
                if len(cands) == len(seg_mentions)
                else []
            )
        for cls, value in pairs:
            name = targets[cls]
            if rank >= priority.get(name, -1):
                result[name], priority[name] = value, rank
    return result, True


def parse_counts(
    text: str, classes: Sequence[str], candidates: Sequence[str] | None = None
) -> dict[str, int | None]:
    """Per-class counts of a multi-concept answer, keyed by the names in `classes` (None where the
    answer gives no count). "dog: 2, cat: 1", "2 dogs and 1 cat", "dogs: two; cats: one" and a bare
    "2, 1" (in the order of `classes`) all give {"dog": 2, "cat": 1}. `candidates` (default: COCO)
    are the other class names, so that "hot dog" is not read as "dog"."""
    targets = _dedupe(classes)
    out = _parse_counts_detail(_lex(text), targets, candidates)[0]
    return {str(c): out.get(str(c)) for c in classes}


# --------------------------------------------------------------------------------------------------
# Scoring


def _sample_candidates(sample: dict, gold: Iterable[str]) -> tuple[str, ...]:
    """Gold names first (their spelling wins), then the sample's candidates, else COCO's 80 classes."""
    base = sample.get("candidate_classes") or COCO_CLASSES
    return _dedupe([*gold, *(sample.get("target_classes") or []), *base])


def _gold_int(value: object) -> int:
    text = str(value).strip()
    parsed = int(text) if text.lstrip("-").isdigit() else parse_count(text)
    if parsed is None:
        raise ValueError(f"gold count {value!r} is not a number")
    return parsed


def _clip(count: int) -> int:
    return min(max(count, 0), MAX_COUNT)


def _score_counting(sample: dict, prediction: str) -> ScoreResult:
    targets = [str(c) for c in sample.get("target_classes") or []]
    answer_list = [str(a) for a in sample.get("answer_list") or []]
    if len(targets) > 1:
        return _score_multiconcept(sample, prediction, targets, answer_list)
    answer = str(sample.get("answer") or "").strip() or (answer_list[0] if answer_list else "")
    gold = _gold_int(answer)
    toks = _lex(prediction)
    value, method = _parse_count_tokens(toks)
    if targets and value is not None:
        # An answer that counts other classes too ("3 dogs and 1 cat") is read per class.
        vocab = _sample_candidates(sample, targets)
        index = _class_index(vocab)
        target_key = normalize_class_name(targets[0])
        named = {index.keys[m.cls] for m in _find_mentions(toks, index) if not m.negated}
        if target_key in named and named - {target_key}:
            per_class, _ = _parse_counts_detail(toks, (targets[0],), vocab)
            if per_class[targets[0]] is not None:
                value, method = per_class[targets[0]], "per_class_segment"
    details = {"gold": gold, "method": method, "abs_error": None, "out_of_range": False}
    if value is None:
        return ScoreResult(False, 0.0, None, details)
    out_of_range = not 0 <= value <= MAX_COUNT
    details.update(abs_error=abs(_clip(value) - gold), out_of_range=out_of_range)
    correct = value == gold and not out_of_range
    return ScoreResult(correct, float(correct), value, details)


def _score_multiconcept(
    sample: dict, prediction: str, targets: list[str], answer_list: list[str]
) -> ScoreResult:
    if len(answer_list) == len(targets):
        gold = {t: _gold_int(a) for t, a in zip(targets, answer_list, strict=True)}
    else:
        parsed_gold = parse_counts(str(sample.get("answer", "")), targets)
        if any(v is None for v in parsed_gold.values()):
            raise ValueError(f"sample {sample.get('id')!r}: no gold count for every class in {targets}")
        gold = {t: int(v) for t, v in parsed_gold.items() if v is not None}
    counts, _ = _parse_counts_detail(_lex(prediction), _dedupe(targets), sample.get("candidate_classes"))
    pred = {t: counts.get(t) for t in targets}
    per_class = {t: pred[t] is not None and pred[t] == gold[t] for t in targets}
    missing = [t for t in targets if pred[t] is None]
    abs_error = None if missing else sum(abs(_clip(pred[t]) - gold[t]) for t in targets) / len(targets)
    parsed = {t: v for t, v in pred.items() if v is not None} or None
    correct = all(per_class.values())
    details = {"gold": gold, "per_class": per_class, "missing": missing, "abs_error": abs_error}
    return ScoreResult(correct, float(correct), parsed, details)


def _score_class(sample: dict, prediction: str) -> ScoreResult:
    targets = [str(c) for c in sample.get("target_classes") or []]
    gold = targets[0] if targets else str(sample.get("answer", ""))
    name, mentioned = _parse_class_detail(prediction, _sample_candidates(sample, [gold]))
    correct = name is not None and normalize_class_name(name) == normalize_class_name(gold)
    details = {"gold": gold, "ambiguous": len(mentioned) > 1, "mentioned": mentioned}
    return ScoreResult(correct, float(correct), name, details)


def _score_listing(sample: dict, prediction: str) -> ScoreResult:
    gold_names = [str(c) for c in sample.get("answer_list") or sample.get("target_classes") or []]
    if not gold_names:
        gold_names = [a for a in str(sample.get("answer", "")).split(",") if a.strip()]
    gold = {normalize_class_name(g) for g in gold_names}
    names, unknown = _parse_list_detail(
        prediction, _sample_candidates(sample, gold_names), sample.get("category")
    )
    predicted = {normalize_class_name(p) for p in names or []}
    tp = len(predicted & gold)
    fp, fn = len(predicted) - tp, len(gold) - tp
    denominator = 2 * tp + fp + fn
    f1 = 0.0 if names is None else (2 * tp / denominator if denominator else 1.0)
    details = {
        "gold": sorted(gold),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "unknown": unknown,
    }
    return ScoreResult(names is not None and predicted == gold, f1, names, details)


_SCORERS = {
    "counting": _score_counting,
    "listing": _score_listing,
    "common": _score_class,
    "odd_one": _score_class,
}


def score_answer(sample: dict, prediction: str) -> ScoreResult:
    """Parse `prediction` for the task of `sample` (a benchmark row) and score it against the gold answer.

    Raises ValueError for an unknown task or a sample without a usable gold answer; never for the
    prediction, whatever its content (None counts as an empty answer)."""
    task = sample.get("task")
    scorer = _SCORERS.get(task)  # type: ignore[arg-type]
    if scorer is None:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return scorer(sample, "" if prediction is None else str(prediction))


def micro_f1(results: Iterable[ScoreResult]) -> float:
    """Listing micro F1: 2TP / (2TP + FP + FN) over the summed counts of all results (as the official
    evaluation reports it); 1.0 when every count is zero, NaN for no results."""
    tp = fp = fn = 0
    seen = False
    for r in results:
        try:
            tp, fp, fn = tp + r.details["tp"], fp + r.details["fp"], fn + r.details["fn"]
        except KeyError as err:
            raise ValueError(
                f"micro_f1 needs Listing results with tp/fp/fn in details, got {r.details!r}"
            ) from err
        seen = True
    if not seen:
        return math.nan
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 1.0


def mean_absolute_error(results: Iterable[ScoreResult]) -> float:
    """Mean of details["abs_error"] over Counting results that were parsed (parse failures are left out:
    report them as the parse-failure rate); NaN when there is none."""
    errors = [r.details["abs_error"] for r in results if r.details.get("abs_error") is not None]
    return sum(errors) / len(errors) if errors else math.nan
