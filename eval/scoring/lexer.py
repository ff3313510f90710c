"""The lexer every answer parser reads: word, number, ordinal and punctuation tokens.

English number words are merged into numbers ("twenty one" -> 21, "a dozen" -> 12), ordinals ("first",
"2nd") are their own kind because they index images rather than count objects, and a dash is a token
only between numbers ("2-3", "2 - 3"), where it makes a range. The regexes have no nested quantifiers and
every pass is linear, so a 100k-character answer lexes in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from mimic.eval.normalize import (
    NUMBER_SCALES,
    NUMBER_TEENS,
    NUMBER_TENS,
    NUMBER_UNITS,
    ORDINAL_WORDS,
    normalize_text,
)

__all__ = ["HUGE", "Tok", "lex", "sentence_ids", "split_spans"]

# Digit strings longer than this are not converted (Python refuses int() on > 4300 digits, and no count
# is that long); they read as HUGE, far above any plausible count.
_MAX_DIGITS = 18
HUGE = 10**_MAX_DIGITS


class Tok(NamedTuple):
    kind: str  # "word" | "num" | "ord" | "punct"
    text: str
    value: int | None = None  # numbers: the integer, None when not an integer ("2.5")


# A number: optional minus sign only at the start of a word ("-3", not the range "1-2"), thousands
# groups ("1,000") or plain digits, an optional decimal part, and letters glued to it ("2nd", "3x").
# The last alternative is the range dash: after a digit or a space, before a digit.
_TOKEN_RE = re.compile(
    r"(?P<num>(?:(?<![^\s(\[])-)?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?[^\W\d_]*)"
    r"|(?P<word>[^\W\d_]+)"
    r"|(?P<punct>[.,;:!?=+#&/|()\[\]\n\u2022\u00b7]|(?<=[\d\s])-(?=\s*\d))"
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
    value = HUGE if len(digits) > _MAX_DIGITS else int(digits)
    return -value if negative else value


def _raw_tokens(text: str) -> list[Tok]:
    toks: list[Tok] = []
    append = toks.append
    for m in _TOKEN_RE.finditer(normalize_text(text)):
        kind, token = m.lastgroup, m.group()
        if kind != "num":
            append(Tok(kind, token))  # type: ignore[arg-type]
            continue
        if token.isdigit() and len(token) <= _MAX_DIGITS:  # the common case, without the sub-regex
            append(Tok("num", token, int(token)))
            continue
        num, frac, suffix = _NUM_PARTS_RE.fullmatch(token).groups()  # type: ignore[union-attr]
        value = _number_value(num, frac)
        if suffix in _ORDINAL_SUFFIXES:
            append(Tok("ord", token, value))
            continue
        append(Tok("num", num, value))
        if suffix:  # "3x", "2dogs": the letters are a word of their own
            append(Tok("word", suffix))
    return toks


def _read_number_words(toks: Sequence[Tok], i: int) -> tuple[int | None, int]:
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


def lex(text: str) -> list[Tok]:
    """Tokens of `text` with number words merged into "num" tokens and ordinal words as "ord"."""
    raw = _raw_tokens(text)
    out: list[Tok] = []
    i, n = 0, len(raw)
    while i < n:
        t = raw[i]
        if t.kind == "word":
            if t.text in _MULTIPLICATIVES:
                out.append(Tok("num", t.text, _MULTIPLICATIVES[t.text]))
                i += 1
                continue
            if t.text in ORDINAL_WORDS:
                out.append(Tok("ord", t.text))
                i += 1
                continue
            value, j = _read_number_words(raw, i)
            if value is not None:
                out.append(Tok("num", " ".join(x.text for x in raw[i:j]), value))
                i = j
                continue
        out.append(t)
        i += 1
    return out


def split_spans(toks: Sequence[Tok], puncts: frozenset[str], words: frozenset[str]) -> list[tuple[int, int]]:
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


def sentence_ids(toks: Sequence[Tok], ends: frozenset[str]) -> list[int]:
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
