"""Counting answers in the styles chat models write: totals with breakdowns, numbers that count images,
refusals, hedges and other classes. Each row: the answer, what is parsed, and the rule that decided it.
The gold count is 3 dogs throughout, so `correct` follows from `parsed`."""

from __future__ import annotations

import pytest

from mimic.eval.scoring import parse_count, read_count, score_answer

GOLD = 3


def counting(**extra):
    return {"task": "counting", "config": "counting_balanced", "answer": str(GOLD), "answer_list": [],
            "target_classes": ["dog"], **extra}  # fmt: skip


# (answer, parsed, rule). parsed: an int, a list for a hedge, None for a parse failure.
CASES = [
    # A total followed by a breakdown that agrees: the total.
    ("There are 3 dogs: one in image 1 and two in image 3.", 3, "total_with_breakdown"),
    ("3 dogs (1 in image 1, 2 in image 2).", 3, "total_with_breakdown"),
    ("**Image 1:** 1 dog\n**Image 2:** 2 dogs\n**Image 3:** no dogs\n\n**Total: 3**", 3, "total_marker"),
    ("- Image 1: 1 dog\n- Image 2: 2 dogs\n- Image 3: 0 dogs\n\nTotal: 3", 3, "total_marker"),
    ("1. Image 1: 2 dogs\n2. Image 2: 1 dog\nTotal: 3", 3, "total_marker"),
    ("| Image | Dogs |\n|---|---|\n| 1 | 1 |\n| 2 | 2 |\n\nTotal: 3", 3, "total_marker"),
    ("The answer is 3 (1 in the first image, 2 in the second).", 3, "answer_marker"),
    ("Final answer: 3. In image 1 there are 2 dogs and in image 2 there is 1 dog.", 3, "answer_marker"),
    ("There is 1 dog in image 1, 1 dog in image 2 and 1 dog in image 4, for a total of 3 dogs.", 3, "total_marker"),
    ("Let me count: image 1 has one dog, image 2 has two dogs and image 3 has none. That makes three dogs.", 3,
     "total_with_breakdown"),
    ("1 dog + 2 dogs = 3 dogs", 3, "total_marker"),
    ("3 dogs (2 brown and 1 white)", 3, "total_with_breakdown"),
    ("2 brown dogs and 1 white dog, so 3 dogs.", 3, "total_with_breakdown"),
    ("Image 1 total: 2. Image 2 total: 1. Overall: 3.", 3, "total_marker"),
    # Per-image counts without a total: their sum.
    ("Image 1: 2 dogs. Image 2: 1 dog.", 3, "sum_of_parts"),
    ("In image 1, there are 2 dogs. In image 2, there is 1 dog.", 3, "sum_of_parts"),
    ("In the first image I see 2 dogs; in the second image, 1 dog.", 3, "sum_of_parts"),
    ("2 dogs in one image and 1 in another", 3, "sum_of_parts"),
    ("There are 3 dogs in image 2.", 3, "single_number"),
    # Disagreeing totals and breakdowns, or several totals: ambiguous, a parse failure.
    ("There are 3 dogs: 2 in image 1 and 2 in image 2.", None, "breakdown_mismatch"),
    ("Image 1: 1 dog\nImage 2: 2 dogs\nTotal: 4", None, "breakdown_mismatch"),
    ("Answer: 5. Image 1: 1 dog, image 2: 2 dogs.", None, "breakdown_mismatch"),
    ("In total 3 dogs. Total: 4", None, "ambiguous_totals"),
    ("I see 3 dogs. Wait, actually 4 dogs.", None, "ambiguous_totals"),
    ("There are 2 dogs and 5 dogs.", None, "ambiguous_totals"),
    # Numbers that count or index images are never the answer.
    ("4 dogs across 3 of the images", 4, "single_number"),
    ("I count 3 dogs in 2 images.", 3, "single_number"),
    ("3 dogs appear in 2 of the 4 pictures.", 3, "single_number"),
    ("3 dogs, in 2 out of 5 photos", 3, "single_number"),
    ("The third image has 3 dogs.", 3, "single_number"),
    ("Dogs appear in 2 different images: 3 in total.", 3, "total_marker"),
    ("There are 3 dogs, 2 of them are brown.", 3, "single_number"),
    ("Only 1 image contains dogs: 3 of them.", 3, "single_number"),
    ("I count three dogs: a black one in the first image, a brown one in the second, and a puppy in the fourth.",
     3, "single_number"),
    ("Let's go through each image:\n\n1. **Image 1**: There is 1 dog.\n2. **Image 2**: There are no dogs.\n"
     "3. **Image 3**: There are 2 dogs.\n\nSo, the total number of dogs is **3**.", 3, "total_marker"),
    ("Total dogs: 3 (Image 1: 1, Image 2: 0, Image 3: 2)", 3, "total_marker"),
    ("Image 1: 1\nImage 2: 2", 3, "sum_of_parts"),
    ("I see two dogs in the first image and one in the third, for three in total.", 3, "total_marker"),
    ("3 dogs.\n\nExplanation: Image 1 contains 2 dogs playing, and image 4 has 1 dog sleeping.", 3,
     "total_with_breakdown"),
    ("There's one dog in each of the 3 images, so 3 dogs.", 3, "single_number"),
    ("3 dogs in all 4 images", 3, "total_marker"),
    ("Image #2 and image #3 show 3 dogs", 3, "single_number"),
    # Refusals: parse failures, never 0.
    ("No idea.", None, "refusal"),
    ("No way to tell.", None, "refusal"),
    ("I'm not sure.", None, "refusal"),
    ("I cannot determine the number of dogs.", None, "refusal"),
    ("It is impossible to say from these images.", None, "refusal"),
    ("Sorry, I can't tell.", None, "refusal"),
    ("Unclear.", None, "refusal"),
    ("I don't know how many dogs there are.", None, "refusal"),
    ("There is not enough information.", None, "refusal"),
    # No, none, not any: zero.
    ("There are no dogs.", 0, "no_word"),
    ("None.", 0, "no_word"),
    ("I don't see any dogs.", 0, "no_word"),
    ("Zero.", 0, "single_number"),
    # Ranges and alternatives: wrong, not failures.
    ("3 or 4", [3, 4], "alternatives"),
    ("3 dogs or 4 dogs", [3, 4], "alternatives"),
    ("Probably 3, maybe 4.", [3, 4], "alternatives"),
    ("either two or three", [2, 3], "alternatives"),
    ("between 3 and 5", [3, 5], "range"),
    ("3-4 dogs", [3, 4], "range"),
    ("3 - 4 dogs", [3, 4], "range"),
    ("3\u20134 dogs", [3, 4], "range"),
    ("3 to 4 dogs", [3, 4], "range"),
    ("There are 2 or 3 dogs in total.", [2, 3], "alternatives"),
    # Other classes counted beside the target.
    ("There are 3 dogs and 1 cat.", 3, "single_number"),
    ("1 cat, 3 dogs", 3, "single_number"),
    ("Cats: 2, Dogs: 3", 3, "single_number"),
    ("I see 2 small brown cats and 3 dogs.", 3, "single_number"),
    ("3 hot dogs and 2 dogs", 2, "single_number"),
    # Plain answers.
    ("3", 3, "single_number"),
    ("three dogs", 3, "single_number"),
    ("Dogs: 3", 3, "single_number"),
    ("About 3 dogs.", 3, "single_number"),
    ("There are at least 3 dogs.", 3, "single_number"),
    ("It looks like there are roughly 3-4 dogs.", [3, 4], "range"),
    ("After carefully examining all 10 images, the answer is 3.", 3, "answer_marker"),
    ("**3**", 3, "single_number"),
    ("Answer: 3", 3, "answer_marker"),
    ("The images contain a total of 3 dogs.", 3, "total_marker"),
    ("I can see 3 dogs in total across the 5 images.", 3, "total_marker"),
    ("", None, "no_number"),
    ("Dogs.", None, "no_number"),
]


@pytest.mark.parametrize(("answer", "parsed", "rule"), CASES)
def test_counting_answer_styles(answer, parsed, rule):
    result = score_answer(counting(), answer)
    assert (result.parsed, result.details["rule"]) == (parsed, rule)
    assert result.correct is (parsed == GOLD)
    assert result.parse_failed is (parsed is None)
    # Every decision is recorded: the number taken (the hedge's values for a hedge) and why.
    assert result.details["taken"] == parsed
    assert isinstance(result.details["why"], str) and result.details["why"]


def test_issue_examples_say_why():
    assert "1 + 2 = 3" in score_answer(counting(), "3 dogs (1 in image 1, 2 in image 2).").details["why"]
    mismatch = score_answer(counting(), "There are 3 dogs: 2 in image 1 and 2 in image 2.").details["why"]
    assert "3" in mismatch and "2 + 2 = 4" in mismatch and "ambiguous" in mismatch
    assert "no idea" in score_answer(counting(), "No idea.").details["why"]
    assert "3, 4" in score_answer(counting(), "In total 3 dogs. Total: 4").details["why"]


@pytest.mark.parametrize(
    ("answer", "abs_error"), [("3 or 4", 1), ("between 1 and 5", 2), ("2-3", 1), ("3 or 3", 0)]
)
def test_a_hedge_is_wrong_with_the_error_of_its_worst_value(answer, abs_error):
    result = score_answer(counting(), answer)
    assert not result.correct and not result.parse_failed
    assert result.details["abs_error"] == abs_error


def test_parse_count_gives_none_for_hedges_refusals_and_ambiguity():
    for answer in ("3 or 4", "No idea.", "In total 3 dogs. Total: 4"):
        assert parse_count(answer) is None
    assert read_count("3 or 4").alternatives == (3, 4)
    assert read_count("3 or 4").hedged and not read_count("3 or 4").failed
    assert read_count("No idea.").failed


def test_without_the_target_class_other_classes_are_not_known():
    # parse_count has no classes: "1 cat" is just another number, so two totals disagree.
    assert read_count("There are 3 dogs and 1 cat.").rule == "ambiguous_totals"
    assert score_answer(counting(), "There are 3 dogs and 1 cat.").parsed == 3


def test_per_source_synonyms_bind_numbers_to_classes():
    # In COCO's table "a man" is a person; in Open Images man is its own class.
    coco = counting(target_classes=["person"], candidate_classes=["person", "dog"])
    assert score_answer(coco, "3 men and 2 dogs").parsed == 3
    oi = counting(target_classes=["person"], candidate_classes=["person", "man", "dog"], source="openimages")
    assert score_answer(oi, "3 people and 2 men").parsed == 3
