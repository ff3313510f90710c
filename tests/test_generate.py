"""Generator and verifier: every sample verifies, controls match the images, determinism, clear infeasibility."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimic.builders.configs import CONFIGS, get_config, resolve_cells
from mimic.builders.generate import generate, read_jsonl, write_jsonl
from mimic.builders.index import AnnotationIndex
from mimic.builders.stats import format_table1, table1
from mimic.builders.templates import pluralize, render_question
from mimic.builders.verify import check_sample
from mimic.cli import main
from mimic.errors import ConfigError, InfeasibleError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def controls_match(index, s) -> None:
    """The recorded controls, recomputed from the index without the verifier's code."""
    pos = [index.image_to_pos[i] for i in s.image_ids]
    targets = [index.class_id(c) for c in s.target_classes]
    assert s.num_images == len(pos) == len(set(pos))
    assert s.per_image_counts == [[index.count(p, c) for c in targets] for p in pos]
    assert s.num_query_images + s.num_distractors == s.num_images
    assert len(s.target_positions) == s.num_query_images
    assert s.num_concepts == len(targets)
    if s.task == "counting":
        assert s.total_instances == sum(map(sum, s.per_image_counts))
        for k in range(s.num_images):
            holds = any(s.per_image_counts[k])
            assert (k in s.target_positions) == holds
            if not holds:  # a distractor has no annotation of any target at all
                assert all(index.is_free(pos[k], c) for c in targets)


@SETTINGS
@given(config=st.sampled_from(sorted(CONFIGS)), seed=st.integers(0, 2**31))
def test_every_sample_verifies_and_records_its_controls(world, config, seed):
    _, index = world
    for s in generate(index, config, num=6, seed=seed):
        assert check_sample(index, s) == []
        controls_match(index, s)
        assert s.config == config and s.source == "synthetic"


@SETTINGS
@given(
    spread=st.integers(1, 4),
    distractors=st.integers(0, 12),
    concepts=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_requested_counting_controls_are_exact(world, spread, distractors, concepts, seed):
    _, index = world
    overrides = {"spread": spread, "distractors": distractors, "concepts": concepts}
    try:
        samples = generate(index, "counting_multiconcept", num=4, seed=seed, overrides=overrides)
    except InfeasibleError:
        # Only k classes packed into fewer than k images can be out of reach of a small world.
        assert concepts > spread
        return
    for s in samples:
        assert (s.num_query_images, s.num_distractors, s.num_concepts) == (spread, distractors, concepts)
        assert s.num_images == spread + distractors
        assert check_sample(index, s) == []


@SETTINGS
@given(total=st.integers(2, 4), data=st.data())
def test_balanced_counting_fixes_the_total_and_varies_spread(world, total, data):
    _, index = world
    spread = data.draw(st.integers(1, total))
    samples = generate(index, "counting_balanced", num=3, seed=data.draw(st.integers(0, 1000)),
                       overrides={"total_instances": total, "spread": spread})
    for s in samples:
        assert s.answer == str(total) and s.num_query_images == spread and s.num_images == 7
        assert sorted(c for (c,) in s.per_image_counts if c)[0] >= 1


def test_same_seed_same_output_different_seed_differs(world, tmp_path):
    _, index = world
    for config in CONFIGS:
        a = [s.to_row() for s in generate(index, config, num=12, seed=3)]
        b = [s.to_row() for s in generate(index, config, num=12, seed=3)]
        c = [s.to_row() for s in generate(index, config, num=12, seed=4)]
        assert a == b
        assert a != c
    p1, p2 = write_jsonl(a, tmp_path / "a.jsonl"), write_jsonl(b, tmp_path / "b.jsonl")
    assert p1.read_bytes() == p2.read_bytes()


def test_sample_ids_unique_and_prefix_stable(world):
    _, index = world
    rows = generate(index, "counting_unbalanced", num=60, seed=1)
    assert len({s.id for s in rows}) == 60
    # Sample k depends only on (seed, config, k): a shorter run is a prefix of a longer one.
    assert [s.to_row() for s in generate(index, "counting_unbalanced", num=20, seed=1)] == [s.to_row() for s in rows[:20]]


def test_verifier_catches_tampering(world):
    _, index = world
    good = generate(index, "counting_balanced", num=1, seed=0)[0].to_row()
    for key, value in [("answer", str(int(good["answer"]) + 1)), ("num_distractors", good["num_distractors"] + 1),
                       ("question", good["question"] + "?"), ("target_positions", [])]:
        bad = copy.deepcopy(good)
        bad[key] = value
        assert check_sample(index, bad), key
    common = generate(index, "common", num=1, seed=0)[0].to_row()
    other = next(c for c in index.class_names if c != common["answer"])
    bad = dict(common, target_classes=[other], answer=other, answer_list=[other])
    assert any("eligible" in p or "present in all" in p for p in check_sample(index, bad))


def test_infeasible_controls_say_which_constraint(world):
    _, index = world
    with pytest.raises(InfeasibleError, match="no class has eligible images .* counts"):
        generate(index, "counting_balanced", num=1, overrides={"total_instances": 40, "spread": 1})
    with pytest.raises(InfeasibleError, match="no class has 60 eligible images"):
        generate(index, "counting_unbalanced", num=1, overrides={"spread": 60, "num_images": 60, "distractors": 0})
    # Every image holds both classes: no image can serve as a distractor.
    crowded = AnnotationIndex.from_boxes(
        source="test", image_ids=[str(i) for i in range(10)], file_names=[f"{i}.jpg" for i in range(10)],
        widths=[10] * 10, heights=[10] * 10, class_names=["cat", "dog"], categories={"animals": ["cat", "dog"]},
        box_image=np.repeat(np.arange(10), 2), box_class=np.tile([0, 1], 10), box_frac=np.full(20, 0.2),
        box_crowd=np.zeros(20, bool),
    )
    with pytest.raises(InfeasibleError, match="2 distractor images free of"):
        generate(crowded, "counting_unbalanced", num=1, overrides={"spread": 1, "distractors": 2})
    with pytest.raises(ConfigError, match="has no control concepts"):
        resolve_cells(get_config("common"), {"concepts": 2})
    with pytest.raises(ConfigError, match="num-images 5 != --spread 2 \\+ --distractors 1"):
        resolve_cells(get_config("counting_unbalanced"), {"num_images": 5, "spread": 2, "distractors": 1})
    with pytest.raises(ConfigError, match="Did you mean 'odd_one'"):
        get_config("odd_on")
    # An override selects the part of the grid it fits: total 2 keeps the balanced spreads 1 and 2.
    cells = resolve_cells(get_config("counting_balanced"), {"total_instances": 2})
    assert sorted(c["spread"] for c in cells) == [1, 2]
    with pytest.raises(ConfigError, match="cannot spread over 3 images"):
        resolve_cells(get_config("counting_balanced"), {"total_instances": 2, "spread": 3})


def test_small_object_rule_is_applied(tmp_path):
    from mimic.builders.sources.synthetic import read_synthetic, render_world

    paths = render_world(tmp_path / "w", num_images=80, seed=5, small_object_rate=0.3, show_progress=False)
    index = read_synthetic(paths.annotations, paths.images)
    for s in generate(index, "counting_unbalanced", num=30, seed=0):
        for i, counts in zip(s.image_ids, s.per_image_counts, strict=True):
            p = index.image_to_pos[i]
            c = index.class_id(s.target_classes[0])
            if counts[0]:
                assert index.row_min_box_frac[index.row(p, c)] >= 0.05


def test_paper_shapes_and_templates():
    assert sum(c.paper_num for c in CONFIGS.values() if c.name != "counting_multiconcept") == 13800
    bal = get_config("counting_balanced")
    assert {(c["total_instances"], c["spread"]) for c in bal.cells} == {(t, s) for t in (2, 3, 4) for s in range(1, t + 1)}
    assert all(c["num_images"] == 7 for c in bal.cells)
    unbal = {c["num_images"] for c in get_config("counting_unbalanced").cells}
    assert min(unbal) == 2 and max(unbal) == 35
    assert {c["num_images"] for c in get_config("common").cells} == set(range(3, 9))
    assert {c["num_images"] for c in get_config("odd_one").cells} == {4, 5, 6}
    assert {c["num_images"] for c in get_config("listing").cells} == set(range(2, 9))
    assert [pluralize(x) for x in ["sheep", "person", "knife", "bus", "wine glass", "skis", "cherry", "mouse", "toothbrush"]] == [
        "sheep", "people", "knives", "buses", "wine glasses", "skis", "cherries", "mice", "toothbrushes"]
    assert render_question("counting", 4, 0, ["apple"]) == (
        "How many times does an apple appear in these images? Please state the exact number directly.")
    assert render_question("counting_multi", 0, 0, ["dog", "cat"]).startswith("How many dogs and cats are there")


def test_stats_table_has_table1_rows(world):
    _, index = world
    rows = [s.to_row() for c in ("common", "odd_one") for s in generate(index, c, num=10)]
    t = table1(rows, index)
    assert t["common"]["queries"] == 10 and t["overall"]["queries"] == 20
    assert 3 <= t["common"]["min_images"] <= t["common"]["max_images"] <= 8
    assert t["overall"]["instances_per_query"] > 0
    text = format_table1(t)
    assert "Obj. inst. per query" in text and "Median img per query" in text


def test_cli_generate_stats_verify(world, tmp_path, capsys):
    paths, _ = world
    out = tmp_path / "odd.jsonl"
    args = ["generate", "--config", "odd_one", "--source", "synthetic", "--annotations", str(paths.annotations),
            "--images", str(paths.images), "--num", "8", "--seed", "2", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    rows = read_jsonl(out)
    assert len(rows) == 8 and all(r["task"] == "odd_one" for r in rows)
    assert main(["verify", str(out), "--source", "synthetic", "--annotations", str(paths.annotations)]) == 0
    assert "8 of 8 samples verify" in capsys.readouterr().out
    rows[0]["answer"] = "not-a-class"
    (tmp_path / "bad.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["verify", str(tmp_path / "bad.jsonl"), "--source", "synthetic", "--annotations", str(paths.annotations)]) == 1
    assert main(["stats", str(out)]) == 0
    assert "| Queries | 8 | 8 |" in capsys.readouterr().out


@pytest.mark.shared_data
def test_real_coco_sample_generates_verified_sets(coco_sample):
    from mimic.builders.sources.coco import read_coco

    index = read_coco(*coco_sample)
    for config, overrides in [("counting_unbalanced", {"num_images": 6, "spread": 2}), ("common", {"num_images": 3}),
                              ("listing", {"num_images": 4}), ("counting_multiconcept", {"concepts": 2, "spread": 2})]:
        for s in generate(index, config, num=5, seed=0, overrides=overrides):
            assert check_sample(index, s) == []
            controls_match(index, s)
