"""Class mentions in an answer: whole-token phrase matching against the candidate classes, with negation.

Text and candidate names are matched as token sequences, never substrings ("category" is not "cat"), and
the longest phrase wins ("hot dog" is not "dog", "school bus" is a bus). A candidate is recognised by its
name, the plural and singular forms of its last word (`mimic.inflect`), and the other names its source's
table gives it (`vocabulary`). A mention is negated when a negation stands before it ("not a cat", "no
buses") or after it as its status ("Buses: no", "bus (not present)", "cats: 0").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from mimic.eval.normalize import normalize_class_name
from mimic.inflect import plural_forms, singular_forms

from .lexer import Tok
from .vocabulary import aliases

__all__ = ["ClassIndex", "Mention", "class_index", "dedupe", "drop_modifiers", "find_mentions"]

_NEGATIONS = frozenset(
    {"not", "no", "never", "without", "nor", "neither", "isnt", "arent", "wasnt", "werent", "dont", "doesnt",
     "didnt", "cannot", "cant", "wont", "hasnt", "havent", "hadnt", "lacks", "lacking", "except", "excluding",
     "non"}
)  # fmt: skip
# A negation does not reach across these: "no dog but a cat" names the cat.
_CLAUSE_WORDS = frozenset({"but", "and", "or", "however", "although", "though", "while", "whereas", "instead"})
_NEGATION_WINDOW = 3
# A status after a mention: "Buses: no", "bus | none", "bus? No.", "buses are not present", "cats: 0".
_STATUS_LINKS = frozenset({":", "=", "(", "|", "-", "?", "is", "are", "was", "were"})
_STATUS_NEGATIONS = frozenset({"no", "none", "not", "absent", "missing", "nope", "isnt", "arent", "nowhere"})
# What may follow a negative status for it to be one: the end of the clause or a word about presence.
_STATUS_TAIL = frozenset(
    {"present", "visible", "seen", "found", "shown", "detected", "there", "here", "included", "pictured",
     "observed", "depicted", "identified", "spotted", "in", "listed", "applicable", "at", "any"}
)  # fmt: skip
_CLAUSE_PUNCT = frozenset({",", ".", ";", "!", "?", "\n", ")", "|", "(", ":", "]"})
# Ranks settle collisions between spellings: exact name < its inflections < other names < theirs.
_RANK_NAME, _RANK_INFLECTION, _RANK_ALIAS, _RANK_ALIAS_INFLECTION = range(4)


@dataclass(frozen=True)
class ClassIndex:
    classes: tuple[str, ...]  # candidates as given, deduplicated by normalised name
    keys: tuple[str, ...]  # their normalised names
    phrases: dict[tuple[str, ...], tuple[int, bool, str]]  # tokens -> (class, spelled as plural, how)
    max_len: int


class Mention(NamedTuple):
    start: int
    end: int  # exclusive
    cls: int
    plural: bool
    negated: bool
    how: str  # "name" | "inflection" | "synonym" | "specific name"


def dedupe(names: Iterable[str]) -> tuple[str, ...]:
    """`names` without repeats of the same normalised name (the first spelling wins) or empty names."""
    seen: set[str] = set()
    out = []
    for name in names:
        key = normalize_class_name(str(name))
        if key and key not in seen:
            seen.add(key)
            out.append(str(name))
    return tuple(out)


def _spellings(phrase: str) -> list[tuple[str, bool]]:
    """(spelling, is plural) for a normalised phrase: itself, plural and singular forms of its last word."""
    head, _, last = phrase.rpartition(" ")
    prefix = head + " " if head else ""
    out = [(phrase, False)]
    out += [(prefix + w, True) for w in sorted(plural_forms(last)) if w != last]
    out += [(prefix + w, False) for w in sorted(singular_forms(last)) if w != last]
    return out


@lru_cache(maxsize=256)
def class_index(candidates: tuple[str, ...], source: str | None = None) -> ClassIndex:
    """Phrase table for `candidates`, with the other names of `source`'s table. A phrase two classes
    claim at the same rank is ambiguous: it is dropped rather than guessed."""
    classes = dedupe(candidates)
    keys = tuple(normalize_class_name(c) for c in classes)
    best: dict[tuple[str, ...], tuple[int, int, bool, str]] = {}
    clashes: set[tuple[str, ...]] = set()

    def add(spelling: str, rank: int, cls: int, plural: bool, how: str) -> None:
        phrase = tuple(spelling.split())
        old = best.get(phrase)
        if old is None or rank < old[0]:
            best[phrase] = (rank, cls, plural, how)
            clashes.discard(phrase)
        elif rank == old[0] and old[1] != cls:
            clashes.add(phrase)

    for cls, key in enumerate(keys):
        for spelling, plural in _spellings(key):
            exact = spelling == key
            add(spelling, _RANK_NAME if exact else _RANK_INFLECTION, cls, plural, "name" if exact else "inflection")
        for alias in aliases(key, source):
            for spelling, plural in _spellings(alias.name):
                add(spelling, _RANK_ALIAS if spelling == alias.name else _RANK_ALIAS_INFLECTION, cls, plural, alias.kind)
    phrases = {p: (cls, plural, how) for p, (_, cls, plural, how) in best.items() if p not in clashes}
    return ClassIndex(classes, keys, phrases, max((len(p) for p in phrases), default=1))


def _negated_before(toks: Sequence[Tok], i: int, floor: int) -> bool:
    """A negation within the few tokens before toks[i], in its clause and after the previous mention."""
    k, seen = i - 1, 0
    while k >= floor and seen < _NEGATION_WINDOW:
        t = toks[k]
        if t.kind == "punct" or t.text in _CLAUSE_WORDS:
            return False
        if t.text in _NEGATIONS:
            return True
        k, seen = k - 1, seen + 1
    return False


def _negated_after(toks: Sequence[Tok], end: int) -> bool:
    """A negative status right after a mention ending at `end`: "Buses: no", "bus - not present"."""
    n, k = len(toks), end
    while k < n and k < end + 2 and toks[k].text in _STATUS_LINKS:
        k += 1
    if k >= n:
        return False
    t = toks[k]
    if not (t.text in _STATUS_NEGATIONS or (t.kind == "num" and t.value == 0)):
        return False
    # "no" or "none" then the end of the clause, or a word about presence; "a dog that is not black" is not.
    k += 1
    if k < n and toks[k].text in ("a", "an", "the", "any"):
        k += 1
    return k >= n or toks[k].text in _CLAUSE_PUNCT or toks[k].text in _STATUS_TAIL


def find_mentions(toks: Sequence[Tok], index: ClassIndex) -> list[Mention]:
    """Class mentions, scanning left to right and taking the longest phrase at each position."""
    out: list[Mention] = []
    n, i, floor = len(toks), 0, 0
    phrases, max_len = index.phrases, index.max_len
    while i < n:
        if toks[i].kind != "word":
            i += 1
            continue
        words: list[str] = []
        j = i
        while j < n and len(words) < max_len and toks[j].kind == "word":
            words.append(toks[j].text)
            j += 1
        for length in range(len(words), 0, -1):
            entry = phrases.get(tuple(words[:length]))
            if entry is not None:
                end = i + length
                negated = _negated_before(toks, i, floor) or _negated_after(toks, end)
                out.append(Mention(i, end, entry[0], entry[1], negated, entry[2]))
                i = floor = end
                break
        else:
            i += 1
    return out


def drop_modifiers(mentions: list[Mention]) -> list[Mention]:
    """Drop a singular class name used as a modifier of the next one ("dog bed" names a bed)."""
    keep = []
    for i, a in enumerate(mentions):
        b = mentions[i + 1] if i + 1 < len(mentions) else None
        if b is not None and b.start == a.end and not a.plural and a.cls != b.cls:
            continue
        keep.append(a)
    return keep
