"""Reading the class a Common or Odd-One answer names, and why that class was taken.

Negated mentions ("not a cat", "a dog, not a cat", "Cat? No.") and modifiers ("dog bed") are set aside.
The others form groups: mentions joined only by punctuation and list words ("dog, cat", "either a dog or
a cat", "dogs and cats", "dog (or maybe cat)", "Dog.\nCat.") are one group. The answer is the first group after the last answer marker
("the answer is", "class:", "odd one out is"), else the first group.

- A group naming one class is the answer. Other groups are context ("The odd one out is the dog; the
  others show cats.") unless what leads to them hedges ("a dog, but it could be a cat").
- A group naming several classes hedges: the answer is wrong, not a failure.
- No mention: a parse failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .lexer import Tok, lex
from .mentions import Mention, class_index, drop_modifiers, find_mentions

__all__ = ["ClassReading", "parse_class", "read_class"]

# Words after which a Common/Odd-One answer is stated ("the answer is", "the common class is", "out: ").
_MARKER_WORDS = frozenset({"answer", "class", "category", "object", "out"})
_MARKER_NEXT = frozenset({":", "is", "=", "would", "will", "was", "must", "should"})
# What may stand between two mentions of one hedging group.
_GROUP_JOINERS = frozenset(
    {",", "/", "&", "(", ")", "|", "or", "and", "either", "a", "an", "the", "maybe", "perhaps", "possibly",
     "probably", "likely", "also", "both", "plus", "as", "well", "some", "its", "it", "is", "could", "be"}
)  # fmt: skip
# Words that make a later mention an alternative rather than context.
_HEDGE_CUES = frozenset(
    {"or", "could", "might", "maybe", "perhaps", "possibly", "probably", "alternatively", "either", "unsure",
     "uncertain", "likely"}
)  # fmt: skip


@dataclass(frozen=True)
class ClassReading:
    """taken: the class named (as spelled in the candidates), None for a failure or a hedge. hedge: the
    classes a hedged answer names. rule: single_class | answer_marker | first_named | hedge | no_class.
    mentioned / negated / context: the classes in each role."""

    taken: str | None
    rule: str
    why: str
    hedge: tuple[str, ...] = ()
    mentioned: tuple[str, ...] = ()
    negated: tuple[str, ...] = ()
    context: tuple[str, ...] = ()


def _groups(toks: Sequence[Tok], mentions: list[Mention]) -> list[list[Mention]]:
    groups: list[list[Mention]] = []
    for m in mentions:
        gap = toks[groups[-1][-1].end : m.start] if groups else ()
        if groups and all(t.kind == "punct" or t.text in _GROUP_JOINERS for t in gap):
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _anchor(toks: Sequence[Tok]) -> int | None:
    """Token index just after the last answer marker, if any."""
    anchor = None
    for i in range(len(toks) - 1):
        if toks[i].text in _MARKER_WORDS and toks[i + 1].text in _MARKER_NEXT:
            anchor = i + 2
    return anchor


def read_class(text: str, candidates: Sequence[str], source: str | None = None) -> ClassReading:
    """The class an answer names, with the rule that chose it (see the module docstring)."""
    index = class_index(tuple(map(str, candidates)), source)
    toks = lex(text)
    found = drop_modifiers(find_mentions(toks, index))
    names = index.classes
    negated = tuple(dict.fromkeys(names[m.cls] for m in found if m.negated))
    mentions = [m for m in found if not m.negated]
    mentioned = tuple(dict.fromkeys(names[m.cls] for m in mentions))
    if not mentions:
        why = "no candidate class named" + (f" (negated: {', '.join(negated)})" if negated else "")
        return ClassReading(None, "no_class", why, negated=negated)
    groups = _groups(toks, mentions)
    anchor = _anchor(toks)
    chosen = 0
    rule = "first_named"
    if anchor is not None:
        after = [g for g, group in enumerate(groups) if group[0].start >= anchor]
        if after:
            chosen, rule = after[0], "answer_marker"
    group = groups[chosen]
    classes = tuple(dict.fromkeys(names[m.cls] for m in group))
    if len(classes) > 1:
        return ClassReading(None, "hedge", f"names several classes as the answer ({', '.join(classes)})",
                            hedge=classes, mentioned=mentioned, negated=negated)
    taken = classes[0]
    context: list[str] = []
    for g, other in enumerate(groups):
        if g == chosen:
            continue
        other_classes = [names[m.cls] for m in other if names[m.cls] != taken]
        # What leads from the previous group to a later one decides whether it hedges.
        cue = None
        if g > chosen and other_classes:
            cue = next((t.text for t in toks[groups[g - 1][-1].end : other[0].start] if t.text in _HEDGE_CUES), None)
        if cue is not None:
            hedge = tuple(dict.fromkeys([taken, *other_classes]))
            return ClassReading(None, "hedge", f"names {taken}, then hedges with {cue!r} ({', '.join(hedge)})",
                                hedge=hedge, mentioned=mentioned, negated=negated)
        context.extend(other_classes)
    context_t = tuple(dict.fromkeys(context))
    if len(mentioned) == 1:
        rule, why = "single_class", f"took {taken}: the only class named"
    elif rule == "answer_marker":
        why = f"took {taken}: named after the answer marker; {', '.join(context_t)} only as context"
    else:
        why = f"took {taken}: named first; {', '.join(context_t)} only as context"
    if negated:
        why += f" (negated: {', '.join(negated)})"
    return ClassReading(taken, rule, why, mentioned=mentioned, negated=negated, context=context_t)


def parse_class(text: str, candidates: Sequence[str], source: str | None = None) -> str | None:
    """The candidate class an answer names (as spelled in `candidates`), or None when it names none or
    hedges between several."""
    return read_class(text, candidates, source).taken
