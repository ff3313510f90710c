"""Baselines and the model registry: oracle scores 100%, random lands on its chance level, prior answers
the mode; model specs and unknown names give helpful errors."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
from conftest import build_demo_folder

from mimic.builders.configs import CONFIGS
from mimic.errors import ConfigError
from mimic.eval.api import MODELS, Request, create_model, parse_model_spec
from mimic.eval.data import answer_vocabulary, load_config, row_metadata
from mimic.eval.models.baselines import RandomModel, answer_space
from mimic.eval.runner import EvalSettings, run_eval
from mimic.eval.scoring import score_answer


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    """Every config of the benchmark, 24 rows each, built on the synthetic test world."""
    out = tmp_path_factory.mktemp("eval-bench") / "bench"
    build_demo_folder(world, out, CONFIGS, num=24)
    return out


@pytest.fixture(scope="module")
def rows_of(bench, cache):
    return lambda config: row_metadata(load_config(str(bench), config, cache_dir=cache))


def test_oracle_scores_100_percent_on_every_config(bench, cache, tmp_path):
    results = run_eval(EvalSettings(data=str(bench), model="oracle", out=str(tmp_path / "run"), progress=False,
                                    batch_size=16, cache_dir=cache))
    assert set(results["configs"]) == set(CONFIGS)
    for name, summary in results["configs"].items():
        assert summary["n"] == 24, name
        assert summary["score"] == 1.0, name
        assert summary["parse_failures"] == 0, name
        assert summary["metrics"]["accuracy"]["value"] == 1.0, name
    assert results["configs"]["counting_unbalanced"]["metrics"]["mae"]["value"] == 0.0
    assert results["configs"]["listing"]["metrics"]["mean_f1"]["value"] == 1.0
    assert results["configs"]["counting_multiconcept"]["metrics"]["class_accuracy"]["value"] == 1.0
    assert results["table4"]["average"] == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "complete": True,
                                            "of": ["Common", "Counting", "Odd-One", "Listing"]}


def _replicated_requests(rows, copies):
    """Each row `copies` times under distinct ids: independent draws of the per-sample-seeded guesser."""
    return [
        Request(id=f"{r['id']}#{k}", config=r["config"], task=r["task"], question=r["question"], sample=r)
        for r in rows
        for k in range(copies)
    ]


def _brute_force_listing_chance(classes, gold):
    """Expected F1 of a uniformly drawn non-empty subset of `classes`, by enumerating every subset."""
    total, count = 0.0, 0
    for m in range(1, len(classes) + 1):
        for subset in itertools.combinations(classes, m):
            tp = len(set(subset) & gold)
            total += 2 * tp / (len(subset) + len(gold))
            count += 1
    return total / count


@pytest.mark.parametrize("config", list(CONFIGS))
def test_random_lands_on_its_chance_level(rows_of, config):
    rows = rows_of(config)
    model = RandomModel()
    model.prepare(config, rows)
    vocabulary = answer_vocabulary(rows)
    requests = _replicated_requests(rows, copies=100)  # 2,400 draws per config
    answers = model.generate(requests)
    scores, expected = [], []
    for req, ans in zip(requests, answers, strict=True):
        result = score_answer({**req.sample, "candidate_classes": vocabulary}, ans.text)
        assert not result.parse_failed, (ans.text, req.sample["answer"])
        scores.append(result.score)
        expected.append(model.chance_level(req))

    # The expected level, computed here from the data without the model's code.
    task = rows[0]["task"]
    if task == "counting":
        counts = [int(a) for r in rows for a in r["answer_list"]]
        span = max(counts) - min(counts) + 1
        by_hand = [(1 / span) ** len(r["target_classes"]) for r in rows]
    elif task == "listing":
        per_category: dict[str, set] = {}
        for r in rows:
            per_category.setdefault(r["category"], set()).update(r["answer_list"])
        by_hand = [_brute_force_listing_chance(sorted(per_category[r["category"]]), set(r["answer_list"]))
                   for r in rows]
    else:
        by_hand = [1 / len({r["target_classes"][0] for r in rows})] * len(rows)
    assert sum(expected) / len(expected) == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-9)

    mean, target = sum(scores) / len(scores), sum(expected) / len(expected)
    # Four standard errors of a mean of per-sample scores in [0, 1] (variance at most p(1 - p)).
    se = math.sqrt(sum(p * (1 - p) for p in expected)) / len(expected)
    assert abs(mean - target) < 4 * se + 0.005, (config, mean, target, se)
    assert 0 < target < 1


def test_random_is_seeded_per_sample(rows_of):
    rows = rows_of("common")
    a, b, c = RandomModel(), RandomModel(), create_model("random", {"seed": 1})
    for m in (a, b, c):
        m.prepare("common", rows)
    reqs = _replicated_requests(rows, copies=2)
    first = [g.text for g in a.generate(reqs)]
    # Other batch boundaries and order do not change an answer; another seed does.
    assert [g.text for g in b.generate(reqs[::-1])][::-1] == first
    assert [g.text for g in c.generate(reqs)] != first
    assert set(first) <= set(answer_space(rows).classes)


def test_prior_answers_the_most_frequent_gold(rows_of):
    model = create_model("prior")
    rows = rows_of("counting_balanced")
    model.prepare("counting_balanced", rows)
    counts = Counter(int(r["answer"]) for r in rows)
    top = max(counts.values())
    mode = min(c for c, k in counts.items() if k == top)
    reqs = _replicated_requests(rows, copies=1)
    assert {g.text for g in model.generate(reqs)} == {str(mode)}

    rows = rows_of("listing")
    model.prepare("listing", rows)
    for req, gen in zip(_replicated_requests(rows, 1), model.generate(_replicated_requests(rows, 1)), strict=True):
        lists = Counter(tuple(sorted(r["answer_list"])) for r in rows if r["category"] == req.sample["category"])
        assert tuple(gen.text.split(", ")) in {k for k, v in lists.items() if v == max(lists.values())}

    rows = rows_of("counting_multiconcept")
    model.prepare("counting_multiconcept", rows)
    multi = next(r for r in rows if len(r["target_classes"]) == 3)
    text = model.generate(_replicated_requests([multi], 1))[0].text
    assert text.count(":") == 3 and all(c in text for c in multi["target_classes"])


def test_model_specs_and_unknown_names():
    assert parse_model_spec("hf:llava-hf/llava-onevision-qwen2-0.5b-ov-hf") == (
        "hf", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf")
    assert parse_model_spec("oracle") == ("oracle", None)
    assert {"hf", "openai", "oracle", "random", "prior"} <= set(MODELS.names())
    with pytest.raises(ConfigError, match=r"Did you mean 'random'\?.*Available: .*oracle"):
        parse_model_spec("randm")
    with pytest.raises(ConfigError, match="did you mean 'hf:llava-hf/x'"):
        parse_model_spec("llava-hf/x")
    with pytest.raises(ConfigError, match="needs a target"):
        parse_model_spec("hf")
    with pytest.raises(ConfigError, match="takes no target"):
        parse_model_spec("oracle:x")
    with pytest.raises(ConfigError, match="max_new_tokens do not apply to model 'random'; its options are: seed"):
        create_model("random", {"max_new_tokens": 8})
    with pytest.raises(ConfigError, match="dtype must be one of"):
        create_model("hf:/nowhere", {"dtype": "float8"})
