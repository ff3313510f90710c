"""The score of one prediction."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ScoreResult"]


@dataclass(frozen=True)
class ScoreResult:
    """The score of one prediction.

    correct: exact correctness (Listing: predicted set == gold set).
    score: 1.0/0.0 for accuracy tasks, per-sample F1 for Listing.
    parsed: the normalised answer: int (Counting), dict[str, int] (multi-concept Counting), the
        candidate class name (Common, Odd-One), a sorted list of names (Listing); for a hedge, the list
        of values or classes it hedges between (always wrong); None when nothing could be parsed, which
        includes refusals and ambiguous answers.
    details: the gold answer, the parse decision (`taken`, `rule`, `why`) and task facts: abs_error,
        per_class, tp/fp/fn, mentioned, ... (docs/scoring.md lists them all).
    """

    correct: bool
    score: float
    parsed: object | None
    details: dict = field(default_factory=dict)

    @property
    def parse_failed(self) -> bool:
        return self.parsed is None
