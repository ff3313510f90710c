"""Model adapters, answer scoring, evaluation runner and reports (import name `mimic.eval`).

The pieces, each in its own module (lm-evaluation-harness style):

- `api`: `Request`, `Generation`, the `ModelAdapter` interface, the model registry (`register_model`,
  `create_model("hf:<id or path>" | "openai:<model>" | "oracle" | "random" | "prior")`).
- `models.hf`, `models.openai_compat`, `models.baselines`: the built-in adapters.
- `data`: configs, rows and the scorer's class vocabulary of a Hub-layout folder or Hub dataset.
- `scoring`, `normalize`: answer parsing and per-sample scores (`score_answer`).
- `metrics`: the metric registry and seeded bootstrap intervals.
- `aggregate`: per-config scores, breakdowns by every control column, the paper's Table 4, as data.
- `predictions`, `runner`: resumable predictions.jsonl and results.json (`run_eval`, `load_results`).
- `report`: report.md and the PNG plots (Table 4, Fig. 1, Fig. 6) over several runs (`write_report`).

Importing this package is cheap: torch and transformers load only when a model is used.
"""

from mimic.eval.aggregate import AggregateSettings, summarize_run
from mimic.eval.api import MODELS, Generation, ModelAdapter, Request, create_model, register_model
from mimic.eval.runner import EvalSettings, load_results, run_eval
from mimic.eval.scoring import ScoreResult, score_answer

__all__ = [
    "MODELS",
    "AggregateSettings",
    "EvalSettings",
    "Generation",
    "ModelAdapter",
    "Request",
    "ScoreResult",
    "create_model",
    "load_results",
    "register_model",
    "run_eval",
    "score_answer",
    "summarize_run",
]
