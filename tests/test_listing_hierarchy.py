"""Listing on a class tree: Open Images boxes are not expanded up the hierarchy, so an image with only a "Van"
box (van under car, under land vehicle) has no "Car" box. Such an image must be neither free of "land vehicle"
(a distractor where a model that names the car is penalised) nor a land vehicle query image (whose gold
answer cannot name the van). docs/tasks.md, "Listing categories".

The box CSVs are written here with real MIDs; the class list and hierarchy are the real ones from
../shared/data/openimages-sample (tests skip, saying why, when it is absent).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import COCO_MINI, OPENIMAGES_SAMPLE, need

import mimic.builders.tasks as tasks_module
from mimic.builders.categories import filed_under
from mimic.builders.generate import generate
from mimic.builders.sampling import ImagePicker
from mimic.builders.verify import VerificationError, check_sample

CAR, BUS, BICYCLE, MOTORCYCLE = "/m/0k4j", "/m/01bjv", "/m/0199g", "/m/04_sv"  # land vehicle's members
VAN, LIMOUSINE, LAND_VEHICLE = "/m/0h2r6", "/m/01lcw4", "/m/01prls"  # below car; the node's own class
# Classes right under the root with no children: in no category, so these images are free of everything.
OTHER = ["/m/0242l", "/m/03120", "/m/01jfsr", "/m/01j61q", "/m/0220r2", "/m/01knjb"]  # coin, flag, lantern, ...
MEMBERS = (CAR, BUS, BICYCLE, MOTORCYCLE)
HEADER = ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
          "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside"]  # fmt: skip


def _box(rng, image: str, mid: str) -> list:
    x0, y0 = rng.random(2) * 0.4
    w, h = rng.random(2) * 0.3 + 0.3  # at least 9% of the image: always eligible
    return [image, "xclick", mid, 1, f"{x0:.6f}", f"{x0 + w:.6f}", f"{y0:.6f}", f"{y0 + h:.6f}", 0, 0, 0, 0, 0]


def write_deep_fixture(out: Path, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """A box CSV; returns it and each image's kind ("query", "van", "car+limousine", "land vehicle", "free")."""
    rng = np.random.default_rng(seed)
    rows, kinds = [], {}

    def image(kind: str, mids) -> None:
        name = f"{len(kinds):04d}{kind.replace(' ', '').replace('+', '')[:8]}"
        kinds[name] = kind
        rows.extend(_box(rng, name, m) for m in mids)

    for _ in range(40):  # member classes only: usable query images
        picked = rng.choice(len(MEMBERS), size=int(rng.integers(1, 3)), replace=False)
        image("query", [MEMBERS[j] for j in picked] + [OTHER[int(rng.integers(len(OTHER)))]])
    for _ in range(20):  # only a class two levels down: not free of land vehicle, not a query image
        image("van", [VAN, OTHER[int(rng.integers(len(OTHER)))]])
    for _ in range(6):  # a member and a class below it: the gold would say "car" and miss the limousine
        image("car+limousine", [CAR, LIMOUSINE])
    for _ in range(6):  # the node's own class: a land vehicle nobody named more precisely
        image("land vehicle", [LAND_VEHICLE])
    for _ in range(40):
        image("free", [OTHER[int(j)] for j in rng.choice(len(OTHER), size=2, replace=False)])
    path = out / "boxes.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path, kinds


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    from mimic.builders.sources.openimages import read_openimages

    sample = need(OPENIMAGES_SAMPLE)
    path, kinds = write_deep_fixture(tmp_path_factory.mktemp("oi-deep"))
    index = read_openimages(path, sample / "class-descriptions-boxable.csv", sample / "bbox_labels_600_hierarchy.json")
    return index, path, kinds


def _classes_in_csv(path: Path, index) -> dict[str, set[str]]:
    """Plain Python from the CSV: image id -> the class names it has a box of."""
    from mimic.builders.sources.openimages import class_names_from_descriptions, read_class_descriptions

    names = class_names_from_descriptions(read_class_descriptions(OPENIMAGES_SAMPLE / "class-descriptions-boxable.csv"))
    out: dict[str, set[str]] = defaultdict(set)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            out[r["ImageID"]].add(names[r["LabelName"]])
    return out


def test_filed_under_walks_every_level(deep):
    index, _, _ = deep
    got = filed_under(index, "land vehicle")
    members = index.categories["land vehicle"]
    assert got[: len(members)] == members  # the members first, in their order
    assert {"van", "limousine", "land vehicle"} <= set(got) and len(got) == len(set(got))
    assert "van" not in members and "limousine" in index.categories["car"]
    # Three levels: furniture > couch > sofa bed / loveseat.
    assert {"couch", "sofa bed", "loveseat", "furniture"} <= set(filed_under(index, "furniture"))


def test_deep_images_are_neither_query_images_nor_distractors(deep):
    index, path, kinds = deep
    samples = generate(index, "listing", num=84, seed=0)  # every sample verified on the way
    # Bicycle is also sports equipment; van and limousine make "car" a category (own class "car").
    assert {s.category for s in samples} == {"land vehicle", "car", "sports equipment"}
    have = _classes_in_csv(path, index)
    seen_kinds = defaultdict(set)
    for s in samples:
        used = [kinds[i] for i in s.image_ids]
        seen_kinds[s.category].update(used)
        members = set(index.categories[s.category])
        gold = sorted(set().union(*(have[i] & members for i in s.image_ids)))
        assert list(s.target_classes) == gold and s.answer == ", ".join(gold), s.id
        filed = set(filed_under(index, s.category))
        assert [k for k, i in enumerate(s.image_ids) if have[i] & filed] == list(s.target_positions)
        # Nothing filed under the category but not a member, in any image (query or distractor).
        assert not any(have[i] & (filed - members) for i in s.image_ids), (s.id, used)
    # Land vehicle: only member-only query images and free images; never a van, a limousine or a bare
    # "Land vehicle" box. Car: the van images are its query images; a "Car" box is unusable for it.
    assert seen_kinds["land vehicle"] == {"query", "free"}
    assert "van" in seen_kinds["car"] and "car+limousine" not in seen_kinds["car"]

    picker = ImagePicker.for_index(index, 0.05)
    filed = frozenset(index.class_to_id[x] for x in filed_under(index, "land vehicle"))
    pos = {kind: {index.image_to_pos[i] for i, k in kinds.items() if k == kind} for kind in set(kinds.values())}
    assert set(picker.free_exact(filed).tolist()) == pos["free"]
    members = frozenset(index.class_to_id[x] for x in index.categories["land vehicle"])
    assert set(picker.usable_for_category("land vehicle", members, filed).tolist()) == pos["query"]


def test_verifier_rejects_a_deep_image_with_its_own_walk(deep):
    index, _, kinds = deep
    samples = generate(index, "listing", num=20, seed=3, overrides={"num_images": 4, "spread": 2})
    sample = next(s for s in samples if s.category == "land vehicle")
    assert not check_sample(index, sample)
    row = sample.to_row()
    van = next(i for i, k in kinds.items() if k == "van")
    d = next(k for k, i in enumerate(row["image_ids"]) if kinds[i] == "free")
    row["image_ids"][d] = van
    row["file_names"][d] = f"{van}.jpg"
    problems = check_sample(index, row)
    assert any("['van'], filed under 'land vehicle' below its members" in p for p in problems), problems


def test_verifier_catches_a_generator_that_ignores_deeper_classes(deep, monkeypatch):
    # The planted bug: the generator's path sees only the direct members, as before the fix.
    monkeypatch.setattr(tasks_module, "filed_under", lambda index, name: index.categories[name])
    index, _, _ = deep
    fresh = ImagePicker(index, 0.05)  # no usable-image lists cached from the correct path
    monkeypatch.setattr(ImagePicker, "for_index", classmethod(lambda cls, idx, frac: fresh))
    with pytest.raises(VerificationError, match="below its members"):
        generate(index, "listing", num=84, seed=0)


def _same_as_members_only(index, monkeypatch, config: str, num: int) -> bool:
    """Generate with the rule, then through a reference path that knows only the direct members."""
    index._eligible_cache.clear()
    with_rule = [s.to_row() for s in generate(index, config, num=num, seed=0)]
    with monkeypatch.context() as m:
        m.setattr(tasks_module, "filed_under", lambda idx, name: idx.categories[name])
        index._eligible_cache.clear()
        reference = [s.to_row() for s in generate(index, config, num=num, seed=0, verify=False)]
    index._eligible_cache.clear()
    return with_rule == reference


def test_flat_sources_are_unchanged(world, monkeypatch):
    _, index = world
    for name, members in index.categories.items():
        assert filed_under(index, name) == members
    assert _same_as_members_only(index, monkeypatch, "listing", 42)


@pytest.mark.shared_data
def test_coco_categories_are_flat(monkeypatch):
    from mimic.builders.sources.coco import read_coco

    index = read_coco(need(COCO_MINI / "annotations" / "instances_val2017.json"))
    for name, members in index.categories.items():
        assert filed_under(index, name) == members
    assert _same_as_members_only(index, monkeypatch, "listing", 21)


def test_the_rule_changes_open_images_output(deep, monkeypatch):
    index, _, _ = deep
    assert not _same_as_members_only(index, monkeypatch, "listing", 42)
