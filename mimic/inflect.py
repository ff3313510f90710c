"""English number inflection of class names: the one table of irregular and uninflected nouns.

Two users, one source of truth. The generator writes questions with `pluralize` ("How many wine glasses
..."), and the scorer accepts every spelling from `plural_forms` / `singular_forms` ("knives", "knifes",
"a ski" for "skis"). Both read the tables below, so a noun added here is pluralised and recognised alike.
"""

from __future__ import annotations

__all__ = [
    "INVARIANT_NOUNS",
    "IRREGULAR_PLURALS",
    "MASS_NOUNS",
    "NAME_PLURALS",
    "PLURAL_NAMES",
    "PLURAL_ONLY_NOUNS",
    "plural_forms",
    "pluralize",
    "singular_forms",
]

# Singular -> plural where the regular rules do not give it (some entries only confirm the rule, so that
# the table reads as the list of nouns that were checked by hand).
IRREGULAR_PLURALS: dict[str, str] = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice", "goose": "geese",
    "tooth": "teeth", "foot": "feet", "ox": "oxen", "louse": "lice", "cactus": "cacti", "knife": "knives",
    "leaf": "leaves", "wolf": "wolves", "shelf": "shelves", "loaf": "loaves", "scarf": "scarves", "calf": "calves",
    "wife": "wives", "life": "lives", "half": "halves", "hoof": "hooves", "thief": "thieves", "die": "dice",
    "potato": "potatoes", "tomato": "tomatoes", "mango": "mangoes", "volcano": "volcanoes", "hero": "heroes",
    "echo": "echoes", "torpedo": "torpedoes", "fungus": "fungi", "octopus": "octopuses",
    "platypus": "platypuses", "hippopotamus": "hippopotamuses", "bus": "buses", "lens": "lenses",
    "canvas": "canvases", "dress": "dresses",
}  # fmt: skip
_IRREGULAR_SINGULARS: dict[str, str] = {plural: single for single, plural in IRREGULAR_PLURALS.items()}

# Same word in singular and plural.
INVARIANT_NOUNS: frozenset[str] = frozenset(
    {"sheep", "deer", "fish", "moose", "bison", "cattle", "aircraft", "spacecraft", "watercraft", "series",
     "species", "salmon", "shrimp", "squid", "trout", "tuna", "swine", "offspring", "buffalo"}
)  # fmt: skip
# Plural-only nouns: no singular is derived from them ("shorts" must not make "short" a class name).
PLURAL_ONLY_NOUNS: frozenset[str] = frozenset(
    {"scissors", "glasses", "sunglasses", "goggles", "jeans", "shorts", "pants", "trousers", "binoculars",
     "headphones", "pliers", "tongs", "tweezers", "earphones", "clothes"}
)  # fmt: skip
# Uncountable nouns, and whole names that are (a multi-word head noun would be wrong: "sports equipments"
# is what a question says for Open Images' "Sports equipment", and that text is part of the benchmark).
MASS_NOUNS: frozenset[str] = frozenset(
    {"broccoli", "food", "sushi", "popcorn", "seafood", "bread", "pasta", "luggage", "furniture", "clothing",
     "footwear", "swimwear", "sunscreen", "cheese", "salad", "milk", "coffee", "tea", "juice", "wine", "beer",
     "snowboard equipment", "rice", "corn", "asparagus", "cabbage", "garlic", "lettuce", "spinach", "cream",
     "honey", "equipment"}
)  # fmt: skip
# Class names that are already plural, or end in a plural head noun ("Roller skates", "Baked goods"): their
# plural is themselves, their singular is derived ("a ski"). Without them a question would ask about
# "salt and pepper shakerses".
PLURAL_NAMES: frozenset[str] = frozenset(
    {"skis", "dice", "cosmetics", "chopsticks", "stairs", "earrings", "skates", "supplies", "shakers", "fries",
     "sockets", "invertebrates", "goods", "heels", "butterflies", "bags", "maracas"}
)  # fmt: skip
# Whole names whose head noun is not the last word.
NAME_PLURALS: dict[str, str] = {"chest of drawers": "chests of drawers"}

_UNINFLECTED = INVARIANT_NOUNS | PLURAL_ONLY_NOUNS | MASS_NOUNS | PLURAL_NAMES
_VOWELS = frozenset("aeiou")


def pluralize(name: str) -> str:
    """The plural a question uses, inflecting the last word: "wine glass" -> "wine glasses", "sheep" ->
    "sheep", "Person" -> "People" (the case of the first letter is kept)."""
    if not name:
        return name
    if name.lower() in NAME_PLURALS:
        plural = NAME_PLURALS[name.lower()]
        return name[:1] + plural[1:]
    head, _, last = name.rpartition(" ")
    low = last.lower()
    if name.lower() in _UNINFLECTED or low in _UNINFLECTED:
        plural = last
    elif low in IRREGULAR_PLURALS:
        plural = IRREGULAR_PLURALS[low]
        plural = plural.capitalize() if last[:1].isupper() else plural
    elif low.endswith(("s", "x", "z", "ch", "sh")):
        plural = last + "es"
    elif low.endswith("y") and len(low) > 1 and low[-2] not in _VOWELS:
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    return f"{head} {plural}" if head else plural


def plural_forms(word: str) -> set[str]:
    """Plural spellings an answer may use for the singular `word` (one lower-case token).

    Generous on purpose: the regular "+s" is accepted beside an irregular plural ("persons", "knifes"),
    because answers are judged on meaning, not on spelling.
    """
    if word in PLURAL_ONLY_NOUNS or word in PLURAL_NAMES or word in _IRREGULAR_SINGULARS:
        return {word}
    forms = _regular_plurals(word)
    if word in IRREGULAR_PLURALS:
        forms.add(IRREGULAR_PLURALS[word])
    if word in INVARIANT_NOUNS or word in MASS_NOUNS:
        forms.add(word)  # "sheep"; "sheeps" stays accepted: even the paper writes it
    return forms


def _regular_plurals(word: str) -> set[str]:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return {word + "es", word + "ses"} if word.endswith("s") else {word + "es"}
    if word.endswith("y") and len(word) > 1 and word[-2] not in _VOWELS:
        return {word[:-1] + "ies", word + "s"}
    if word.endswith("o"):
        return {word + "s", word + "es"}
    if word.endswith("fe"):
        return {word + "s", word[:-2] + "ves"}
    if word.endswith("f"):
        return {word + "s", word[:-1] + "ves"}
    return {word + "s"}


def singular_forms(word: str) -> set[str]:
    """Singular spellings of a `word` that may be plural ("skis" -> "ski", "knives" -> "knife").

    Over-generates on purpose ("bus" -> "bu"): a spelling that never occurs in an answer does no harm.
    """
    if word in _IRREGULAR_SINGULARS:
        return {_IRREGULAR_SINGULARS[word]}
    if word in INVARIANT_NOUNS or word in PLURAL_ONLY_NOUNS or len(word) < 3:
        return set()
    if word.endswith("ies"):
        return {word[:-3] + "y", word[:-1]}
    if word.endswith("ves"):
        return {word[:-3] + "f", word[:-3] + "fe"}
    if word.endswith("es"):
        return {word[:-2], word[:-1]}
    if word.endswith("s") and not word.endswith(("ss", "us")):
        return {word[:-1]}
    return set()
