"""Reading the classes a Listing answer lists, with a decision for every item.

Items are split on commas, semicolons, colons, full stops, new lines, "&", "/", "|", brackets, bullets and
the words "and"/"or"/"plus" (an enumerator "1." is a number and no item). Classes are found over the whole
answer first, so a name that contains a separator ("salt and pepper shakers") stays whole.

- A named class is listed (more specific names count as their class: "school bus" is a bus), unless the
  mention is negated, before or after it ("no buses", "Buses: no", "bus (not present)").
- A remark in brackets lists nothing ("train (partially visible)" is a train), unless the bracket holds
  names only ("vehicles (car, bus)").
- An item that names no candidate is an unknown item, counted as a false positive, only when it names an
  object: one to three content words, none vague ("some other small objects", "etc"), the last one a
  noun rather than a description ("partially visible", "in the background"). Longer items are
  commentary; an item that ends in ":" is a header.
- Duplicates are removed. An answer that lists nothing fails to parse unless it says "none".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mimic.eval.normalize import normalize_class_name
from mimic.inflect import plural_forms, singular_forms

from .lexer import Tok, lex, split_spans
from .mentions import class_index, drop_modifiers, find_mentions

__all__ = ["ListReading", "parse_list", "read_list"]

_ITEM_PUNCT = frozenset({",", ";", ":", ".", "!", "?", "\n", "&", "/", "|", "\u2022", "\u00b7", "(", ")", "[", "]"})
_ITEM_WORDS = frozenset({"and", "or", "plus"})
# Words that never make an unknown item: fillers, lead-ins and the question's own vocabulary.
_FILLER = frozenset(
    {"a", "an", "the", "also", "i", "we", "you", "it", "they", "them", "their", "its", "one", "ones", "there",
     "here", "is", "are", "was", "were", "be", "can", "could", "see", "seen", "present", "shown", "show", "shows", "include", "includes", "including",
     "contain", "contains", "containing", "in", "on", "of", "at", "with", "from", "to", "for", "this", "these",
     "those", "that", "which", "image", "images", "picture", "pictures", "photo", "photos", "list", "category",
     "categories", "sub", "subcategory", "subcategories", "answer", "final", "following", "class", "classes",
     "none", "nothing", "no", "na", "only", "all", "both", "each", "as", "like", "identified", "found",
     "detected", "appear", "appears", "given", "provided", "names", "name", "yes", "visible", "maybe",
     "possibly", "probably", "perhaps", "likely"}
)  # fmt: skip
# Words that make an item vague: it points at unnamed things.
_VAGUE = frozenset(
    {"some", "other", "others", "various", "several", "many", "few", "etc", "more", "misc", "miscellaneous",
     "assorted", "similar", "such", "unidentified", "unknown", "unclear", "stuff", "things", "thing",
     "something", "objects", "object", "items", "item", "elements", "possibly"}
)  # fmt: skip
# Last words that describe rather than name: an item ending in one is not an object.
_NOT_NOUNS = frozenset(
    {"visible", "partially", "partial", "present", "blurry", "blurred", "small", "large", "big", "tiny",
     "background", "foreground", "distance", "left", "right", "top", "bottom", "middle", "center", "centre",
     "corner", "side", "edge", "hidden", "obscured", "cropped", "cut", "clear", "unclear", "only", "too",
     "well", "again", "sure", "shown", "seen", "included", "yes", "no", "not", "none"}
)  # fmt: skip
# Words of a sentence, not of an object name: "I cannot see the images" is not an unknown item.
_SENTENCE_WORDS = frozenset(
    {"not", "cannot", "cant", "dont", "doesnt", "isnt", "arent", "unable", "sorry", "think", "seem", "seems",
     "look", "looks", "might", "may", "would", "should", "will", "am", "im", "has", "have", "had", "do",
     "does", "sure", "know", "based", "looking", "according", "considering", "note", "noting"}
)  # fmt: skip
_MAX_UNKNOWN_WORDS = 3
_NONE_WORDS = frozenset({"none", "no", "nothing"})
_MAX_ITEM_RECORDS = 50


@dataclass(frozen=True)
class ListReading:
    """names: sorted listed names (candidate classes as spelled, and unknown items), None when the answer
    lists nothing and does not say "none". unknown: the unknown items. negated: classes named only as
    absent. items: (item text, decision) for the first 50 items."""

    names: list[str] | None
    unknown: list[str]
    negated: list[str]
    items: list[tuple[str, str]]
    why: str


def _ignored_words(category: str | None) -> frozenset[str]:
    """The category's own words and their forms: "vehicles: car" must not list "vehicles"."""
    words: set[str] = set()
    for w in normalize_class_name(category or "").split():
        words |= {w} | plural_forms(w) | singular_forms(w)
    return frozenset(words)


def _bracket_depths(toks: Sequence[Tok]) -> list[int]:
    depth, out = 0, []
    for t in toks:
        if t.text in ("(", "["):
            depth += 1
        out.append(depth)
        if t.text in (")", "]") and depth:
            depth -= 1
    return out


def _unknown_decision(words: list[str]) -> str:
    if not words:
        return "filler"
    if any(w in _VAGUE for w in words):
        return "vague"
    if len(words) > _MAX_UNKNOWN_WORDS or any(w in _SENTENCE_WORDS for w in words):
        return "commentary"
    last = words[-1]
    if last in _NOT_NOUNS or last.endswith("ly"):
        return "a description, not an object"
    return "unknown item (false positive)"


def read_list(
    text: str, candidates: Sequence[str], category: str | None = None, source: str | None = None
) -> ListReading:
    """The classes an answer lists, with a decision for each item (see the module docstring)."""
    index = class_index(tuple(map(str, candidates)), source)
    toks = lex(text)
    mentions = drop_modifiers(find_mentions(toks, index))
    ignored = _ignored_words(category)
    depth = _bracket_depths(toks)
    known: dict[int, None] = {}
    negated: dict[int, None] = {}
    unknown: dict[str, None] = {}
    records: list[tuple[str, str]] = []
    m_i = covered = 0
    for start, end in split_spans(toks, _ITEM_PUNCT, _ITEM_WORDS):
        item_mentions = []
        while m_i < len(mentions) and mentions[m_i].start < end:
            item_mentions.append(mentions[m_i])
            covered = max(covered, mentions[m_i].end)
            m_i += 1
        in_mention = {i for m in item_mentions for i in range(m.start, m.end)}
        words = [
            t.text
            for i, t in enumerate(toks[start:end], start)
            if t.kind == "word" and i not in in_mention and len(t.text) > 1
            and t.text not in _FILLER and t.text not in ignored
        ]
        item_text = " ".join(t.text for t in toks[start:end])
        if item_mentions or start < covered:
            decisions = []
            for m in item_mentions:
                name = index.classes[m.cls]
                if m.negated:
                    negated[m.cls] = None
                    decisions.append(f"{name}: negated")
                elif depth[m.start] and words:
                    decisions.append(f"{name}: in a remark in brackets, not listed")
                else:
                    known[m.cls] = None
                    decisions.append(f"{name}" + ("" if m.how == "name" else f" ({m.how})"))
            decision = "; ".join(decisions) or "part of a name"
        elif end < len(toks) and toks[end].text == ":":
            decision = "header"
        elif depth[start]:
            decision = "remark in brackets" if words else "filler"
        else:
            decision = _unknown_decision(words)
            if decision.startswith("unknown"):
                unknown[" ".join(words)] = None
        if len(records) < _MAX_ITEM_RECORDS:
            records.append((item_text, decision))
    names = sorted([index.classes[c] for c in known] + list(unknown))
    negated_names = sorted(index.classes[c] for c in negated if c not in known)
    if not names and not any(t.text in _NONE_WORDS for t in toks):
        return ListReading(None, [], negated_names, records, "lists nothing and does not say none")
    why = f"listed {len(known)} class(es) and {len(unknown)} unknown item(s)" if names else "lists none"
    return ListReading(names, list(unknown), negated_names, records, why)


def parse_list(text: str, candidates: Sequence[str], category: str | None = None, source: str | None = None) -> list[str]:
    """Sorted, deduplicated names listed by an answer: candidate classes (as spelled in `candidates`)
    and unknown items (normalised text; they count as false positives). Empty when nothing is listed."""
    return read_list(text, candidates, category, source).names or []
