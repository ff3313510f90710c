"""Answer parsing and scoring for the four MIMIC tasks (Counting, Listing, Common, Odd-One).

Open-ended answers are parsed into a normalised value and compared with the sample's gold answer; every
decision is recorded in the result's `details` (`taken`, `rule`, `why`). docs/scoring.md states the
policies; each module states its own:

- `lexer`: tokens, number words and ordinals;
- `vocabulary` and `tables/`: other names of classes, one table per image source;
- `mentions`: class mentions with negation;
- `candidates`, `counts`, `multicount`: Counting (which numbers count objects; totals, breakdowns, hedges,
  refusals; several classes);
- `classes`: Common and Odd-One (hedges and context);
- `lists`: Listing (items, brackets, vague phrases, unknown items);
- `scorers`: the task registry and `score_answer`, the public entry point.

Metrics over many results (micro F1, MAE, ...) live in `mimic.eval.metrics`.
"""

from mimic.eval.normalize import normalize_class_name

from .classes import ClassReading, parse_class, read_class
from .counts import CountReading, parse_count, read_count
from .lists import ListReading, parse_list, read_list
from .multicount import parse_counts
from .result import ScoreResult
from .scorers import MAX_COUNT, SCORERS, TASKS, score_answer

__all__ = [
    "MAX_COUNT",
    "SCORERS",
    "TASKS",
    "ClassReading",
    "CountReading",
    "ListReading",
    "ScoreResult",
    "normalize_class_name",
    "parse_class",
    "parse_count",
    "parse_counts",
    "parse_list",
    "read_class",
    "read_count",
    "read_list",
    "score_answer",
]
