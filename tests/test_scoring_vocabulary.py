"""The per-source tables of other class names, and the one inflection table shared by the question
generator and the scorer."""

from __future__ import annotations

import csv

import pytest
from conftest import OPENIMAGES_SAMPLE, need

from mimic.builders import templates
from mimic.builders.sources.synthetic import CLASSES as SYNTHETIC_CLASSES
from mimic.eval.normalize import COCO_CLASSES, normalize_class_name
from mimic.eval.scoring.mentions import class_index
from mimic.eval.scoring.vocabulary import SOURCES, aliases, load_table
from mimic.inflect import (
    INVARIANT_NOUNS,
    IRREGULAR_PLURALS,
    MASS_NOUNS,
    PLURAL_NAMES,
    PLURAL_ONLY_NOUNS,
    plural_forms,
    pluralize,
    singular_forms,
)


def _openimages_classes() -> tuple[str, ...]:
    path = need(OPENIMAGES_SAMPLE) / "class-descriptions-boxable.csv"
    with open(path, newline="", encoding="utf-8") as f:
        return tuple(normalize_class_name(row[1]) for row in csv.reader(f))


def _classes(source: str) -> tuple[str, ...]:
    if source == "coco":
        return COCO_CLASSES
    if source == "synthetic":
        return tuple(SYNTHETIC_CLASSES)
    return _openimages_classes()


def _entries(source: str) -> list[tuple[str, str]]:
    table = load_table(source)
    return [(cls, name) for kind in ("synonyms", "specific") for cls, names in table[kind].items() for name in names]


@pytest.mark.parametrize("source", SOURCES)
def test_no_name_maps_to_two_classes_of_a_source(source):
    owner: dict[str, str] = {}
    for cls, name in _entries(source):
        assert owner.setdefault(name, cls) == cls, f"{source}: {name!r} names both {owner[name]!r} and {cls!r}"


@pytest.mark.parametrize("source", SOURCES)
def test_tables_name_real_classes_and_no_name_is_a_class(source):
    classes = set(_classes(source))
    for cls, name in _entries(source):
        assert cls in classes, f"{source}: {cls!r} is not a class of the source"
        assert name not in classes, f"{source}: {name!r} is a class of its own, not another name of {cls!r}"
        assert name != cls


@pytest.mark.parametrize("source", SOURCES)
def test_every_other_name_and_its_plural_finds_its_class(source):
    # Over the source's whole vocabulary, no spelling of one class's name is taken by another class.
    index = class_index(_classes(source), source)
    for cls, name in _entries(source):
        for spelling in {name} | {name.rpartition(" ")[0] + " " + p if " " in name else p
                                  for p in plural_forms(name.split()[-1])}:
            entry = index.phrases.get(tuple(spelling.split()))
            assert entry is not None and index.keys[entry[0]] == cls, (source, spelling, cls)


def test_sources_disagree_where_they_should():
    assert {a.name for a in aliases("person", "coco")} >= {"man", "woman"}
    assert not {a.name for a in aliases("person", "openimages")} & {"man", "woman"}
    assert {a.name for a in aliases("dining table")} >= {"table"}  # COCO's table by default
    assert ("school bus", "specific name") in {(a.name, a.kind) for a in aliases("bus", "coco")}


def test_unknown_source_uses_coco_and_loading_an_unknown_table_fails():
    assert aliases("dining table", "somewhere") == aliases("dining table", "coco")
    with pytest.raises(ValueError, match="no synonym table"):
        load_table("somewhere")


def test_the_generator_pluralises_with_the_shared_table():
    assert templates.pluralize is pluralize
    for single, plural in IRREGULAR_PLURALS.items():
        assert pluralize(single) == plural
        assert plural in plural_forms(single)  # the scorer accepts what the generator writes
        assert single in singular_forms(plural)
    for noun in INVARIANT_NOUNS | PLURAL_ONLY_NOUNS | MASS_NOUNS | PLURAL_NAMES:
        assert pluralize(noun) == noun
        if " " not in noun:
            assert noun in plural_forms(noun)


@pytest.mark.parametrize(
    ("word", "plurals", "singulars"),
    [("person", {"people", "persons"}, set()), ("knife", {"knives", "knifes"}, set()),
     ("bus", {"buses", "busses"}, set()), ("sheep", {"sheep", "sheeps"}, set()),
     ("skis", {"skis"}, {"ski"}), ("scissors", {"scissors"}, set()), ("dice", {"dice"}, {"die"}),
     ("cherry", {"cherries", "cherrys"}, set())],
)  # fmt: skip
def test_scoring_spellings(word, plurals, singulars):
    assert plural_forms(word) == plurals
    assert singulars <= singular_forms(word)


def test_question_plurals():
    # Names with irregular, invariant, mass, multi-word and already-plural heads.
    expected = {"person": "people", "Person": "People", "knife": "knives", "sheep": "sheep", "skis": "skis",
                "bus": "buses", "wine glass": "wine glasses", "potato": "potatoes", "dice": "dice",
                "snowboard equipment": "snowboard equipment", "sports equipment": "sports equipment",
                "broccoli": "broccoli", "cherry": "cherries", "toy": "toys", "hippopotamus": "hippopotamuses",
                "kitchen & dining room table": "kitchen & dining room tables",
                "Salt and pepper shakers": "Salt and pepper shakers", "Roller skates": "Roller skates",
                "Office supplies": "Office supplies", "Chest of drawers": "Chests of drawers",
                "Moths and butterflies": "Moths and butterflies", "Medical equipment": "Medical equipment",
                "Cosmetics": "Cosmetics", "Rhinoceros": "Rhinoceroses", "Tortoise": "Tortoises",
                "Horse": "Horses", "Dress": "Dresses"}  # fmt: skip
    assert {name: pluralize(name) for name in expected} == expected
