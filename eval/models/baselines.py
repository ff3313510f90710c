"""Baselines that need no model: `oracle` (the gold answer), `random` (chance) and `prior` (the mode).

Their answer spaces come from the data itself, per config, from all of the config's rows (`prepare`):

- Counting: the integers from the smallest to the largest gold count of any class in the config.
  Several target classes (multi-concept) are answered "class: n, class: n", one draw per class.
- Common, Odd-One: the classes that are answers somewhere in the config (the class vocabulary seen).
- Listing: per category, the classes of that category that are gold somewhere in the config; `random`
  answers a uniformly drawn non-empty subset of them.

`random` is seeded per sample (seed and sample id), so its answers do not depend on batching, on
resuming, or on which other samples are evaluated; `RandomModel.chance_level` gives the exact expected
score of a sample, which is what its measured score estimates. `prior` answers the most frequent gold
answer of the config (ties: the smallest count / the first name); for Listing the most frequent gold
list of the asked category, since the question names the category. Both look at the gold answers of
the test set: they are reference points, not models.
"""

from __future__ import annotations

import abc
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from math import comb
from typing import Any

from mimic.errors import ConfigError
from mimic.eval.api import Generation, ModelAdapter, Request, option, register_model

__all__ = ["AnswerSpace", "OracleModel", "PriorModel", "RandomModel", "answer_space"]


@dataclass(frozen=True)
class AnswerSpace:
    """What a baseline may answer for one config (see the module docstring)."""

    task: str
    count_range: tuple[int, int] | None = None
    classes: tuple[str, ...] = ()
    category_classes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _gold_counts(row: Mapping[str, Any]) -> list[int]:
    values = row.get("answer_list") or [row.get("answer")]
    try:
        return [int(str(v).strip()) for v in values]
    except ValueError as err:
        raise ConfigError(f"sample {row.get('id')!r}: counting gold {values!r} is not a list of integers") from err


def answer_space(rows: Sequence[Mapping[str, Any]]) -> AnswerSpace:
    """The answer space of one config's rows (all of one task)."""
    tasks = {r["task"] for r in rows}
    if len(tasks) != 1:
        raise ConfigError(f"a config's rows must share one task, got {sorted(tasks)}")
    (task,) = tasks
    if task == "counting":
        counts = [c for r in rows for c in _gold_counts(r)]
        return AnswerSpace(task, count_range=(min(counts), max(counts)))
    if task == "listing":
        per_category: dict[str, set[str]] = {}
        for r in rows:
            per_category.setdefault(str(r["category"]), set()).update(map(str, r["answer_list"]))
        return AnswerSpace(task, category_classes={k: tuple(sorted(v)) for k, v in per_category.items()})
    classes = sorted({str(c) for r in rows for c in r["target_classes"]})
    return AnswerSpace(task, classes=tuple(classes))


def _format_counts(sample: Mapping[str, Any], counts: Sequence[int]) -> str:
    """One count as "3"; the multi-concept format ("star: 2, heart: 1") when the gold uses it."""
    targets = [str(c) for c in sample.get("target_classes") or []]
    if len(targets) > 1 or ":" in str(sample.get("answer", "")):
        return ", ".join(f"{c}: {n}" for c, n in zip(targets, counts, strict=True))
    return str(counts[0])


class _Baseline(ModelAdapter):
    needs_images = False

    def __init__(self, target=None, options=None):
        super().__init__(target, options)
        self.spaces: dict[str, AnswerSpace] = {}

    def prepare(self, config: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.spaces[config] = answer_space(rows)

    def _space(self, request: Request) -> AnswerSpace:
        try:
            return self.spaces[request.config]
        except KeyError:
            raise RuntimeError(f"{self.name}: prepare({request.config!r}, rows) was not called") from None

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        return [Generation(self.answer(r)) for r in requests]

    @abc.abstractmethod
    def answer(self, request: Request) -> str:
        """The baseline's raw answer to one request."""


@dataclass
class NoOptions:
    """The oracle has no options."""


@register_model("oracle")
class OracleModel(_Baseline):
    """Answers the gold answer string: scoring it must give 100% on every config."""

    Options = NoOptions

    def answer(self, request: Request) -> str:
        return str(request.sample["answer"])


@dataclass
class RandomOptions:
    seed: int = option(0, help="Seed of the guesses; with the sample id it fixes each answer.")


@register_model("random")
class RandomModel(_Baseline):
    """A uniform guess from the config's answer space: the chance level."""

    Options = RandomOptions

    def _rng(self, request: Request) -> random.Random:
        # String seeds are hashed with SHA-512 by `random`, so this is stable across processes.
        return random.Random(f"{self.options.seed}\x1f{request.id}")

    def answer(self, request: Request) -> str:
        space, rng, sample = self._space(request), self._rng(request), request.sample
        if space.task == "counting":
            lo, hi = space.count_range  # type: ignore[misc]
            k = len(sample.get("target_classes") or [None])
            return _format_counts(sample, [rng.randint(lo, hi) for _ in range(k)])
        if space.task == "listing":
            classes = space.category_classes[str(sample["category"])]
            mask = rng.randrange(1, 2 ** len(classes))  # uniform over the non-empty subsets
            return ", ".join(c for i, c in enumerate(classes) if mask >> i & 1)
        return rng.choice(space.classes)

    def chance_level(self, request: Request) -> float:
        """The expected score of this sample's random answer (accuracy; F1 for Listing)."""
        space, sample = self._space(request), request.sample
        if space.task == "counting":
            lo, hi = space.count_range  # type: ignore[misc]
            golds = _gold_counts(sample)
            if not all(lo <= g <= hi for g in golds):
                return 0.0
            return (1 / (hi - lo + 1)) ** len(golds)
        if space.task == "listing":
            classes = set(space.category_classes[str(sample["category"])])
            m, g = len(classes), len(classes & set(map(str, sample["answer_list"])))
            # a gold and b other classes picked: F1 = 2a / (2a + b + (g - a)); every subset equally likely.
            total = sum(
                comb(g, a) * comb(m - g, b) * (2 * a / (a + b + g))
                for a in range(g + 1)
                for b in range(m - g + 1)
                if a or b
            )
            return total / (2**m - 1)
        gold = str(sample["target_classes"][0])
        return 1 / len(space.classes) if gold in space.classes else 0.0


@dataclass
class PriorOptions:
    """The prior has no options: it is a deterministic function of the config's gold answers."""


def _mode(values: Sequence[Any]) -> Any:
    # Most frequent; ties go to the smallest value, so the answer never depends on row order.
    return sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


@register_model("prior")
class PriorModel(_Baseline):
    """The most frequent gold answer of the config (per asked category for Listing)."""

    Options = PriorOptions

    def prepare(self, config: str, rows: Sequence[Mapping[str, Any]]) -> None:
        super().prepare(config, rows)
        task = self.spaces[config].task
        if task == "counting":
            self._modes[config] = _mode([c for r in rows for c in _gold_counts(r)])
        elif task == "listing":
            by_category: dict[str, list[tuple[str, ...]]] = {}
            for r in rows:
                by_category.setdefault(str(r["category"]), []).append(tuple(sorted(map(str, r["answer_list"]))))
            self._modes[config] = {cat: _mode(lists) for cat, lists in by_category.items()}
        else:
            self._modes[config] = _mode([str(r["target_classes"][0]) for r in rows])

    def __init__(self, target=None, options=None):
        super().__init__(target, options)
        self._modes: dict[str, Any] = {}

    def answer(self, request: Request) -> str:
        self._space(request)
        mode, sample = self._modes[request.config], request.sample
        task = self.spaces[request.config].task
        if task == "counting":
            return _format_counts(sample, [mode] * len(sample.get("target_classes") or [None]))
        if task == "listing":
            return ", ".join(mode[str(sample["category"])])
        return str(mode)
