"""Aggregation and scoring speed at the paper's benchmark size (Table 1: 13,800 queries).

Builds synthetic scored predictions with the paper's config sizes and control grids, then times
`summarize_run` (every metric, every breakdown, 1,000 bootstrap resamples per interval) and
`score_answer` on typical answers. Run: .venv/bin/python benchmarks/bench_eval.py
"""

from __future__ import annotations

import random
import time

from mimic.eval.aggregate import AggregateSettings, summarize_run
from mimic.eval.data import CONTROL_COLUMNS
from mimic.eval.scoring import score_answer

# (config, task, rows) as in the paper's Table 1 (multi-concept: the size of this project's config).
PAPER = [("counting_balanced", "counting", 5000), ("counting_unbalanced", "counting", 5800),
         ("counting_multiconcept", "counting", 1000), ("listing", "listing", 1000), ("common", "common", 1000),
         ("odd_one", "odd_one", 1000)]


def fake_records(rng: random.Random) -> dict[str, list[dict]]:
    out = {}
    for config, task, n in PAPER:
        recs = []
        for i in range(n):
            controls = {c: rng.randint(1, 7) for c in CONTROL_COLUMNS}
            controls["num_images"] = rng.choice([2, 3, 5, 7, 10, 15, 20, 25, 30, 35])
            controls["category"] = rng.choice(["animal", "vehicle", "food", "kitchen"])
            ok = rng.random() < 0.4
            details = {"abs_error": 0 if ok else rng.randint(1, 4)}
            if task == "listing":
                details = {"tp": rng.randint(0, 3), "fp": rng.randint(0, 2), "fn": rng.randint(0, 2)}
            if config == "counting_multiconcept":
                k = controls["num_concepts"] = rng.randint(1, 4)
                details["per_class"] = {f"c{j}": rng.random() < 0.6 for j in range(k)}
            recs.append({"id": f"{config}-{i}", "config": config, "task": task, "correct": ok,
                         "score": float(ok), "parse_failed": rng.random() < 0.05, "parsed": 1,
                         "target_classes": [rng.choice(["dog", "cat", "car"])], "controls": controls,
                         "details": details})
        out[config] = recs
    return out


def main() -> None:
    records = fake_records(random.Random(0))
    n = sum(len(v) for v in records.values())
    t0 = time.perf_counter()
    results = summarize_run(records, AggregateSettings(resamples=1000, seed=0))
    t1 = time.perf_counter()
    cells = sum(len(b["cells"]) for s in results["configs"].values() for b in s["breakdowns"] + s["cross_breakdowns"])
    print(f"summarize_run: {n} predictions, {cells} breakdown cells, 1000 resamples each: {t1 - t0:.2f} s")

    sample = {"task": "counting", "answer": "3", "answer_list": ["3"], "target_classes": ["dog"]}
    answers = ["3", "There are 3 dogs in total.", "Image 1: 2 dogs, image 2: 1 dog. Total: 3", "three"] * 2500
    t0 = time.perf_counter()
    for a in answers:
        score_answer(sample, a)
    t1 = time.perf_counter()
    print(f"score_answer: {len(answers)} counting answers in {t1 - t0:.2f} s ({len(answers) / (t1 - t0):,.0f}/s)")


if __name__ == "__main__":
    main()
