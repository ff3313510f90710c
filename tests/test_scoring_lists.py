"""Listing answers with the noise chat models add: remarks in brackets, vague phrases, negated items in any
position, specific names and unknown items. The gold list is car and train (category vehicle)."""

from __future__ import annotations

import pytest

from mimic.eval.scoring import score_answer


def listing(**extra):
    return {"task": "listing", "config": "listing", "answer": "car, train", "answer_list": ["car", "train"],
            "target_classes": ["car", "train"], "category": "vehicle", **extra}  # fmt: skip


# (answer, parsed list, fp, fn)
CASES = [
    # Remarks in brackets and vague phrases list nothing.
    ("car, train (partially visible)", ["car", "train"], 0, 0),
    ("car, train, and some other small objects", ["car", "train"], 0, 0),
    ("car, train, etc.", ["car", "train"], 0, 0),
    ("car, train, miscellaneous items", ["car", "train"], 0, 0),
    ("car, train, a red thing", ["car", "train"], 0, 0),
    ("car, train, in the background there are some trees", ["car", "train"], 0, 0),
    ("car, train, partially visible", ["car", "train"], 0, 0),
    ("car, train, blurry", ["car", "train"], 0, 0),
    ("car (next to a bus), train", ["car", "train"], 0, 0),
    ("car, train, bicycle (not sure)", ["bicycle", "car", "train"], 1, 0),
    ("Vehicles (car, train)", ["car", "train"], 0, 0),
    ("car [red], train [blue]", ["car", "train"], 0, 0),
    # Negation in any position.
    ("Cars: yes\nBuses: no\nTrains: yes", ["car", "train"], 0, 0),
    ("car, train, no buses", ["car", "train"], 0, 0),
    ("Buses: none. Cars and trains.", ["car", "train"], 0, 0),
    ("- Car\n- Train\n- Bus: not present", ["car", "train"], 0, 0),
    ("| Vehicle | Present |\n|---|---|\n| Car | yes |\n| Bus | no |\n| Train | yes |", ["car", "train"], 0, 0),
    ("Cars, trains (no buses)", ["car", "train"], 0, 0),
    ("car, train, buses: 0", ["car", "train"], 0, 0),
    ("car, train, bus - not visible", ["car", "train"], 0, 0),
    ("car, train, without any trucks", ["car", "train"], 0, 0),
    ("car, no train", ["car"], 0, 1),
    # More specific names count as their class.
    ("car, school bus, train", ["bus", "car", "train"], 1, 0),
    ("car, pickup truck, train", ["car", "train", "truck"], 1, 0),
    ("sports car, locomotive", ["car", "train"], 0, 0),
    ("taxi, tram", ["car", "train"], 0, 0),
    # Unknown items count only when they name an object.
    ("car, train, spaceship", ["car", "spaceship", "train"], 1, 0),
    ("car, train, traffic cones", ["car", "traffic cones", "train"], 1, 0),
    ("car, train. There might be something else in the background that I cannot identify.", ["car", "train"], 0, 0),
    # Plain lists.
    ("car, train", ["car", "train"], 0, 0),
    ("I see a car and a train in these images.", ["car", "train"], 0, 0),
    ("1. Car\n2. Train", ["car", "train"], 0, 0),
    ("None", [], 0, 2),
    # Chat-style answers around the list.
    ("Based on the images, the vehicle sub-categories are:\n\n1. **Car** - appears in images 1 and 3\n"
     "2. **Train** - appears in image 2\n\nNo other vehicles are visible.", ["car", "train"], 0, 0),
    ("The vehicles in these images are: cars, trains, and a boat (in the background).", ["boat", "car", "train"], 1, 0),
    ("- car (x3)\n- train (x1)", ["car", "train"], 0, 0),
    ("car, train, boat? no.", ["car", "train"], 0, 0),
]


@pytest.mark.parametrize(("answer", "parsed", "fp", "fn"), CASES)
def test_listing_answer_styles(answer, parsed, fp, fn):
    result = score_answer(listing(), answer)
    assert result.parsed == parsed
    assert (result.details["fp"], result.details["fn"]) == (fp, fn)
    assert result.correct is (parsed == ["car", "train"])
    assert result.details["taken"] == parsed


def test_every_item_has_a_recorded_decision():
    details = score_answer(listing(), "car, train (partially visible), school bus, Buses: no, spaceship, etc.").details
    assert details["items"] == [
        ["car", "car"],
        ["train", "train"],
        ["partially visible", "remark in brackets"],
        ["school bus", "bus (specific name)"],
        ["buses", "bus: negated"],
        ["no", "filler"],
        ["spaceship", "unknown item (false positive)"],
        ["etc", "vague"],
    ]
    assert details["unknown"] == ["spaceship"]
    assert details["negated"] == []  # bus is listed too ("school bus"), so it is not only negated


def test_negated_only_classes_are_recorded():
    details = score_answer(listing(), "car, train, Buses: no").details
    assert details["negated"] == ["bus"]


def test_item_records_are_capped():
    answer = ", ".join(f"thing{i}" for i in range(200))
    assert len(score_answer(listing(), answer).details["items"]) == 50


def test_listing_nothing_is_a_parse_failure_but_none_is_an_empty_answer():
    assert score_answer(listing(), "I cannot see the images.").parse_failed
    assert score_answer(listing(), "None of them.").parsed == []


def test_names_containing_separators_stay_whole():
    sample = listing(answer_list=["salt and pepper shakers", "kitchen & dining room table"], category="kitchenware",
                     target_classes=["salt and pepper shakers", "kitchen & dining room table"], source="openimages",
                     candidate_classes=["salt and pepper shakers", "kitchen & dining room table", "pepper", "table"])
    result = score_answer(sample, "Salt and pepper shakers, a dining table")
    assert result.parsed == ["kitchen & dining room table", "salt and pepper shakers"]
    assert result.correct
