"""Text normalisation for answer parsing: unicode and markdown clean-up, class-name keys, COCO's class
list and English number words.

Everything here is a pure function or a constant table; `mimic.eval.scoring` builds the parsers on top.
Plural forms come from `mimic.inflect` (the one table the question generator uses too), other names of
classes from the per-source tables of `mimic.eval.scoring.vocabulary`. No stemmer, no NLP dependency:
every accepted spelling can be read and tested.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = [
    "COCO_CLASSES",
    "NUMBER_SCALES",
    "NUMBER_TEENS",
    "NUMBER_TENS",
    "NUMBER_UNITS",
    "ORDINAL_WORDS",
    "normalize_class_name",
    "normalize_text",
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


@lru_cache(maxsize=8192)  # scoring keys the same few hundred class names for every answer
def normalize_class_name(name: str) -> str:
    """Surface key of a class name: folded case and accents, punctuation and "_"/"-" as spaces,
    leading articles dropped, single spaces. "The Hot-Dog!" -> "hot dog", "TV" -> "tv".

    It does not singularise or resolve synonyms: two names with the same key are the same spelling.
    """
    words = _CLASS_WORD_RE.findall(normalize_text(name))
    while words and words[0] in _ARTICLES:
        words.pop(0)
    return " ".join(words)
