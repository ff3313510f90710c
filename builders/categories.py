"""Which categories Listing may ask about: the source's categories minus the catch-alls.

A Listing question is only fair when a person would agree on what belongs to the category: everything the
annotations file under it, and nothing they file elsewhere. Two kinds of category fail that test and are
left out of Listing by default (`include_catch_all=True` puts them back):

- **catch-alls named by place, not kind**: COCO's supercategories `indoor` (book, clock, vase, scissors,
  teddy bear, hair drier, toothbrush) and `outdoor` (traffic light, fire hydrant, stop sign, parking meter,
  bench). A chair or a TV is an "indoor object" too, so a correct answer would be penalised.
- **very broad or mixed Open Images nodes**: a node most of whose members are categories themselves
  ("animal": bird, mammal, reptile, ...; "vehicle"; "kitchenware"), where a person answers "dog" while
  the gold lists "mammal"; and the named nodes whose members mix unlike kinds (listed below with the
  reason), where a person would put things outside the list in them too.

Listing's members of a category are its direct members, but Open Images files classes deeper too, and its
boxes are not expanded up the tree: an image with a "sofa bed" box (under couch, under furniture) has no
couch box. `filed_under` gives every class the annotations file under a category, at any depth, so that
such an image is never taken as free of furniture, nor as a furniture query image whose gold answer misses
the sofa bed (docs/tasks.md, "Listing categories").

docs/tasks.md states the rule; the dataset card lists the categories used and their members.
"""

from __future__ import annotations

from mimic.builders.index import AnnotationIndex

__all__ = ["CATCH_ALL", "filed_under", "listing_categories", "left_out_categories"]

# Category names as the index spells them (COCO supercategories get readable names in sources/coco.py).
CATCH_ALL: dict[str, dict[str, str]] = {
    "coco": {
        "indoor objects": "COCO's catch-all supercategory `indoor`: chairs, TVs and cups are indoor objects too",
        "outdoor objects": "COCO's catch-all supercategory `outdoor`: cars, trees and people are outdoors too",
    },
    "openimages": {
        "tool": "mixes containers, kitchen utensils, toothbrushes and ladders",
        "personal care": "mixes sunglasses, wheelchairs, crutches and diapers",
        "office supplies": "mixes posters, boxes and plastic bags with staplers",
        "container": "almost anything holds things: bottles, flowerpots, barrels, picnic baskets",
        "bear": "holds the teddy bear, a toy",
        "sculpture": "holds the snowman",
        "fashion accessory": "overlaps clothing (hats, scarves) and holds umbrellas and crowns",
    },
}

# A node is "mixed-level" when at least this share of its members are categories themselves.
_MIXED_LEVEL_SHARE = 0.5


def left_out_categories(index: AnnotationIndex) -> dict[str, str]:
    """Category -> why Listing leaves it out by default (only categories the index has)."""
    named = CATCH_ALL.get(index.source, {})
    out = {name: named[name] for name in index.categories if name in named}
    if index.source == "openimages":
        for name, members in index.categories.items():
            nested = [m for m in members if m in index.categories]
            if name not in out and members and len(nested) >= _MIXED_LEVEL_SHARE * len(members):
                out[name] = f"its members are mostly categories themselves ({', '.join(nested[:4])})"
    return out


def listing_categories(index: AnnotationIndex, include_catch_all: bool = False) -> dict[str, tuple[str, ...]]:
    """The categories Listing may ask about, with their member classes."""
    if include_catch_all:
        return dict(index.categories)
    skip = left_out_categories(index)
    return {name: members for name, members in index.categories.items() if name not in skip}


def filed_under(index: AnnotationIndex, category: str) -> tuple[str, ...]:
    """Every class the annotations file under `category`: its members, then the classes below them at any
    depth, then the category's own class when it is one (an Open Images "Furniture" box is furniture the
    annotator did not name more precisely). Open Images categories are named by their node's class, so a
    member that is a category itself leads to the next level; COCO and the synthetic world are flat, and
    there this is exactly the members. Order: breadth-first, each class once (deterministic).
    """
    cats = index.categories
    out: dict[str, None] = dict.fromkeys(cats[category])
    level = list(out)
    while level:
        below = [c for m in level for c in cats.get(m, ()) if c not in out]
        out.update(dict.fromkeys(below))
        level = list(dict.fromkeys(below))
    if category in index.class_to_id:
        out.setdefault(category, None)
    return tuple(out)
