"""Common and Odd-One answers in the styles chat models write: hedges between classes are wrong, classes
named only as context or negated do not count. The gold class is dog throughout."""

from __future__ import annotations

import pytest

from mimic.eval.scoring import read_class, score_answer


def single(task, **extra):
    return {"task": task, "config": task, "answer": "dog", "answer_list": [], "target_classes": ["dog"], **extra}


# (answer, parsed, rule). parsed: the class taken, the list of classes of a hedge, None for a failure.
CASES = [
    # Hedges: several candidates named as the answer.
    ("dog, cat", ["dog", "cat"], "hedge"),
    ("either a dog or a cat", ["dog", "cat"], "hedge"),
    ("dogs and cats", ["dog", "cat"], "hedge"),
    ("Dog/cat", ["dog", "cat"], "hedge"),
    ("dog (or maybe cat)", ["dog", "cat"], "hedge"),
    ("dog or maybe cat", ["dog", "cat"], "hedge"),
    ("Dog.\nCat.", ["dog", "cat"], "hedge"),
    ("It's a dog, but it could also be a cat.", ["dog", "cat"], "hedge"),
    ("Not sure, possibly a dog or a cat.", ["dog", "cat"], "hedge"),
    ("The answer is dog or cat.", ["dog", "cat"], "hedge"),
    ("cat and dog", ["cat", "dog"], "hedge"),
    # One answer, other classes as context.
    ("The odd one out is the dog; the others show cats.", "dog", "answer_marker"),
    ("The common class is dog. Image 3 also shows a cat.", "dog", "answer_marker"),
    ("I see a cat in one image, but the answer is dog", "dog", "answer_marker"),
    ("**Dog** \u2014 the other images all contain cats.", "dog", "first_named"),
    ("The dog is the odd one out, since the other images show cats and birds.", "dog", "first_named"),
    ("It is a dog. The others are cats or birds.", "dog", "first_named"),
    ("All images contain cats, except image 2, which has a dog. So the answer is dog.", "dog", "answer_marker"),
    ("All images contain dogs, except image 2, which has a cat. So the answer is cat.", "cat", "answer_marker"),
    # Negated mentions do not count, before or after the class.
    ("a dog, not a cat", "dog", "single_class"),
    ("The odd one out is the dog, not the cat.", "dog", "single_class"),
    ("Not a cat: a dog.", "dog", "single_class"),
    ("Cat? No. Dog.", "dog", "single_class"),
    ("There is no cat here, only a dog", "dog", "single_class"),
    # Plain answers, synonyms and specific names.
    ("Dog", "dog", "single_class"),
    ("Dogs!", "dog", "single_class"),
    ("The answer is dog.", "dog", "single_class"),
    ("I think it's a dog.", "dog", "single_class"),
    ("puppy", "dog", "single_class"),
    ("the category is dog", "dog", "single_class"),
    ("hot dog", "hot dog", "single_class"),
    ("a man", "person", "single_class"),
    # Failures.
    ("I don't know.", None, "no_class"),
    ("not a cat", None, "no_class"),
    ("", None, "no_class"),
]


@pytest.mark.parametrize("task", ["common", "odd_one"])
@pytest.mark.parametrize(("answer", "parsed", "rule"), CASES)
def test_class_answer_styles(task, answer, parsed, rule):
    result = score_answer(single(task), answer)
    assert (result.parsed, result.details["rule"]) == (parsed, rule)
    assert result.correct is (parsed == "dog")
    assert result.parse_failed is (parsed is None)
    assert result.details["taken"] == parsed
    assert result.details["why"]


def test_details_name_each_role():
    details = score_answer(single("odd_one"), "The odd one out is the dog, not a bird; the others show cats.").details
    assert details["mentioned"] == ["dog", "cat"]
    assert details["negated"] == ["bird"]
    assert details["context"] == ["cat"]
    assert "context" in details["why"] and "bird" in details["why"]


@pytest.mark.parametrize(
    ("answer", "source", "candidates", "taken"),
    [
        ("a table", "coco", ["dining table", "chair"], "dining table"),
        ("a plant", "coco", ["potted plant", "vase"], "potted plant"),
        ("houseplant", "coco", ["potted plant", "vase"], "potted plant"),
        ("a soccer ball", "coco", ["sports ball", "kite"], "sports ball"),
        ("hair dryer", "coco", ["hair drier", "toothbrush"], "hair drier"),
        ("a woman", "coco", ["person", "dog"], "person"),
        ("school bus", "coco", ["bus", "truck"], "bus"),
        ("pickup truck", "coco", ["bus", "truck"], "truck"),
        # Open Images has its own table, man, plant and ball classes: no COCO synonym applies.
        ("a man", "openimages", ["person", "man", "woman"], "man"),
        ("a woman", "openimages", ["person", "dog"], None),
        ("tv", "openimages", ["television", "laptop"], "television"),
        ("hair drier", "openimages", ["hair dryer", "toothbrush"], "hair dryer"),
        ("a moon", "synthetic", ["crescent", "star"], "crescent"),
    ],
)
def test_synonym_tables_are_per_source(answer, source, candidates, taken):
    assert read_class(answer, candidates, source).taken == taken
