"""Text normalisation for answer parsing: unicode and markdown clean-up, class-name keys, plural forms,
class-name synonyms and English number words.

Everything here is a pure function or a constant table; `mimic.eval.scoring` builds the parsers on top.
The tables are deliberately small and explicit (no stemmer, no NLP dependency) so that every accepted
spelling can be read, tested and extended in one place.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "COCO_CLASSES",
    "HYPONYMS",
    "NUMBER_SCALES",
    "NUMBER_TEENS",
    "NUMBER_TENS",
    "NUMBER_UNITS",
    "ORDINAL_WORDS",
    "SYNONYM_GROUPS",
    "class_aliases",
    "inflections",
    "normalize_class_name",
    "normalize_text",
    "plural_forms",
    "singular_forms",
]

# The 80 COCO detection classes, in category-id order: the fallback vocabulary when a sample does not
# carry its own `candidate_classes`.
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

# Names that denote the same thing. Symmetric: whichever member is a candidate class, the others are
# accepted as spellings of it (an exact candidate name always wins over a synonym of another class).
SYNONYM_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(group)
    for group in (
        ("tv", "television", "tv monitor", "tvmonitor", "tv set", "television set", "telly"),
        ("couch", "sofa", "settee"),
        ("cell phone", "mobile phone", "cellphone", "cellular phone", "phone", "smartphone", "smart phone"),
        ("motorcycle", "motorbike", "motor bike", "motor cycle"),
        ("airplane", "aeroplane", "plane", "airliner", "jet"),
        ("dining table", "table", "dinner table", "kitchen table", "diningtable"),
        ("potted plant", "plant", "houseplant", "house plant", "pot plant", "pottedplant"),
        ("hair drier", "hair dryer", "hairdryer", "hairdrier", "blow dryer", "blow drier"),
        ("sports ball", "ball", "soccer ball", "tennis ball", "football", "basketball", "volleyball"),
        ("bicycle", "bike"),
        ("donut", "doughnut"),
        ("laptop", "notebook computer", "laptop computer"),
        ("remote", "remote control", "tv remote", "remote controller"),
        ("refrigerator", "fridge"),
        ("microwave", "microwave oven"),
        ("handbag", "purse", "hand bag"),
        ("backpack", "rucksack", "knapsack"),
        ("suitcase", "luggage"),
        ("tennis racket", "tennis racquet", "racket", "racquet"),
        ("baseball glove", "baseball mitt", "mitt", "glove"),
        ("hot dog", "hotdog"),
        ("fire hydrant", "hydrant"),
        ("teddy bear", "teddy", "teddybear", "stuffed bear"),
        ("frisbee", "flying disc"),
        ("wine glass", "wineglass"),
        ("traffic light", "traffic signal", "stoplight", "stop light"),
        ("skis", "ski"),
        ("car", "automobile"),
        ("truck", "lorry"),
        ("boat", "ship", "sailboat"),
        ("mouse", "computer mouse"),
        ("keyboard", "computer keyboard"),
        ("cow", "cattle"),
    )
)

# One-way aliases: a hyponym names the class, but the class name does not name the hyponym
# ("a man" is a person; if "man" is itself a candidate, the exact name wins anyway).
HYPONYMS: dict[str, tuple[str, ...]] = {
    "person": ("man", "woman", "human", "boy", "girl", "child", "kid", "adult", "pedestrian", "lady", "guy"),
}

_SYNONYMS_OF: dict[str, frozenset[str]] = {}
for _group in SYNONYM_GROUPS:
    for _name in _group:
        _SYNONYMS_OF[_name] = _SYNONYMS_OF.get(_name, frozenset()) | (_group - {_name})
del _group, _name

# Irregular singular -> plural. The regular "+s" form is accepted as well ("persons", "knifes"),
# because answers are judged on meaning, not on spelling.
_IRREGULAR_PLURALS: dict[str, str] = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
    "goose": "geese", "tooth": "teeth", "foot": "feet", "knife": "knives", "wife": "wives",
    "life": "lives", "leaf": "leaves", "loaf": "loaves", "half": "halves", "shelf": "shelves",
    "wolf": "wolves", "calf": "calves", "scarf": "scarves", "thief": "thieves", "ox": "oxen",
    "cactus": "cacti", "fungus": "fungi", "louse": "lice", "die": "dice",
}  # fmt: skip
_IRREGULAR_SINGULARS: dict[str, str] = {plural: single for single, plural in _IRREGULAR_PLURALS.items()}
# Same form in singular and plural; "+s" is still accepted ("sheeps": even the paper writes it).
_INVARIANT: frozenset[str] = frozenset(
    {"sheep", "deer", "fish", "moose", "bison", "aircraft", "series", "species", "salmon", "shrimp",
     "squid", "trout", "swine", "cattle", "offspring", "buffalo"}
)  # fmt: skip
# Plural-only nouns: no singular is derived from them ("shorts" must not make "short" a class name).
_PLURALIA_TANTUM: frozenset[str] = frozenset(
    {"scissors", "glasses", "sunglasses", "goggles", "jeans", "shorts", "pants", "trousers",
     "binoculars", "headphones", "pliers", "tongs", "tweezers", "earphones", "clothes"}
)  # fmt: skip
_VOWELS = frozenset("aeiou")

# English number words. Ordinals are kept apart: "first image" indexes an image, it is not a count.
NUMBER_UNITS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9,
}  # fmt: skip
NUMBER_TEENS: dict[str, int] = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
NUMBER_TENS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
NUMBER_SCALES: dict[str, int] = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
ORDINAL_WORDS: frozenset[str] = frozenset(
    {"first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
     "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "twentieth", "last"}
)  # fmt: skip

# Typographic dashes and the minus sign become "-", so "−3" reads as a negative number and
# "twenty–one" as a compound.
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"})
# Apostrophes are deleted, not spaced: "isn't" -> "isnt" (one negation token), "dog's" -> "dogs".
_APOSTROPHES_RE = re.compile(r"['\u2018\u2019\u02bc\u00b4]")
# Markdown emphasis and code marks carry no meaning for the answer; "_" also joins words in
# identifiers such as "hair_drier".
_MARKDOWN_RE = re.compile(r"[*_~`]+")
# "#" opening a heading ("### Answer") is markup; "#" glued to a number ("Image #3") is kept.
_HEADING_RE = re.compile(r"(?m)^[ \t]*#+(?=\s)")
_CLASS_WORD_RE = re.compile(r"[^\W_]+")
_ARTICLES = frozenset({"a", "an", "the"})


def normalize_text(text: str) -> str:
    """Fold `text` into the form every parser reads.

    NFKC turns full-width digits and letters into ASCII ("３" -> "3"); combining accents are dropped
    ("café" -> "cafe"); case is folded; apostrophes are removed; markdown emphasis and heading marks
    become spaces. Runs in linear time.
    """
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = text.translate(_DASHES).casefold()
    text = _APOSTROPHES_RE.sub("", text)
    text = _MARKDOWN_RE.sub(" ", text)
    return _HEADING_RE.sub(" ", text)


def normalize_class_name(name: str) -> str:
    """Surface key of a class name: folded case and accents, punctuation and "_"/"-" as spaces,
    leading articles dropped, single spaces. "The Hot-Dog!" -> "hot dog", "TV" -> "tv".

    It does not singularise or resolve synonyms: two names with the same key are the same spelling.
    """
    words = _CLASS_WORD_RE.findall(normalize_text(name))
    while words and words[0] in _ARTICLES:
        words.pop(0)
    return " ".join(words)


def plural_forms(word: str) -> set[str]:
    """Plural spellings accepted for the singular `word` (one lower-case token)."""
    if word in _IRREGULAR_PLURALS:
        return {_IRREGULAR_PLURALS[word], word + "s"}
    if word in _INVARIANT:
        return {word, word + "s", word + "es"}
    if word in _PLURALIA_TANTUM or word in _IRREGULAR_SINGULARS:
        return {word}
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
    """Singular spellings derived from a `word` that may be plural ("skis" -> "ski").

    Used only for candidate class names that are themselves plural; it over-generates on purpose
    ("bus" -> "bu"), since a spelling that never occurs in an answer does no harm.
    """
    if word in _IRREGULAR_SINGULARS:
        return {_IRREGULAR_SINGULARS[word]}
    if word in _INVARIANT or word in _PLURALIA_TANTUM or len(word) < 3:
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


def inflections(phrase: str) -> set[str]:
    """Other number forms of a normalised multi-word `phrase`, inflecting its last word (the head noun of
    English compounds: "wine glass" -> "wine glasses"). The phrase itself is not included."""
    head, _, last = phrase.rpartition(" ")
    prefix = head + " " if head else ""
    forms = {prefix + w for w in plural_forms(last) | singular_forms(last)}
    forms.discard(phrase)
    return forms


def class_aliases(name: str) -> frozenset[str]:
    """Synonyms of the normalised class `name` (not including `name` itself)."""
    return _SYNONYMS_OF.get(name, frozenset()) | frozenset(HYPONYMS.get(name, ()))
