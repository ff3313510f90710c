"""`mimic report --lmms-eval`: the paper's Tables 3/8 and 2 from result files lmms-eval really wrote.

No benchmark is downloaded: a local copy of lmms-eval's stock MuirBench task (its YAML included as it is, only
the task name and the data files changed) runs with lmms-eval's `dummy` model on a small MuirBench-format
parquet, so the results and samples files, metric names and scoring are lmms-eval's own.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mimic.cli import main
from mimic.eval.external import EXTERNAL_COLUMNS, PAPER_TABLE2, PAPER_TABLE3, read_lmms_results

lmms_eval = pytest.importorskip("lmms_eval", reason="lmms-eval is installed by `make setup` (the lmms extra)")

# (MuirBench subtask, gold letter); the dummy model always answers "A".
DOCS = [("Counting", "A"), ("Counting", "A"), ("Ordering", "A"), ("Ordering", "B"), ("Visual Retrieval", "B"),
        ("Visual Retrieval", "C")]


@pytest.fixture(scope="module")
def muirbench_run(tmp_path_factory):
    from datasets import Dataset, Features, Image, List, Value
    from PIL import Image as PILImage

    root = tmp_path_factory.mktemp("external")
    images = [PILImage.new("RGB", (24, 24), (40 * i, 80, 120)) for i in range(2)]
    features = Features({"idx": Value("string"), "task": Value("string"), "image_relation": Value("string"),
                         "answer": Value("string"), "image_type": Value("string"), "question": Value("string"),
                         "options": List(Value("string")), "image_list": List(Image())})
    rows = {"idx": [str(i) for i in range(len(DOCS))], "task": [t for t, _ in DOCS],
            "image_relation": ["Ordered"] * len(DOCS), "answer": [a for _, a in DOCS],
            "image_type": ["Photo"] * len(DOCS), "question": ["Which image?"] * len(DOCS),
            "options": [["first", "second", "third"]] * len(DOCS), "image_list": [images] * len(DOCS)}
    parquet = root / "muirbench.parquet"
    Dataset.from_dict(rows, features=features).to_parquet(str(parquet))
    stock = Path(lmms_eval.__file__).parent / "tasks" / "muirbench" / "muirbench.yaml"
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "muirbench_local.yaml").write_text(
        f"include: {stock}\ntask: muirbench_local\ndataset_path: parquet\n"
        f"dataset_kwargs:\n  data_files:\n    test:\n      - {parquet}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(root / "hf-cache")}
    done = subprocess.run([sys.executable, "-m", "lmms_eval", "--model", "dummy", "--model_args", "response=A",
                           "--tasks", "muirbench_local", "--include_path", str(tasks), "--log_samples",
                           "--output_path", str(root / "out")], capture_output=True, text=True, env=env,
                          cwd=root, timeout=600)
    files = glob.glob(str(root / "out" / "**" / "*_results.json"), recursive=True)
    assert len(files) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "out"


def test_results_of_lmms_eval_fill_table3_and_table2(muirbench_run):
    run = read_lmms_results(muirbench_run)
    assert run.label.startswith("dummy")
    # lmms-eval's own MuirBench scoring of the dummy's "A": 3 of 6 overall, per subtask 2/2, 1/2, 0/2.
    assert run.scores == {"MuirBench": pytest.approx(50.0)}
    assert run.muirbench_subtasks == {"Counting": pytest.approx(100.0), "Ordering": pytest.approx(50.0),
                                      "Visual Retrieval": pytest.approx(0.0)}


def test_report_lays_out_our_run_beside_the_papers_rows(muirbench_run, tmp_path, capsys):
    assert main(["report", "--lmms-eval", str(muirbench_run), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    text = (tmp_path / "external.md").read_text()
    assert "| Model | MuirBench | Blink | MMIU | MIRB | MMT (val) | NLVR2 | Avg. | Source |" in text
    ours = next(line for line in text.splitlines() if line.startswith("| dummy") and "50.0 | - |" in line)
    assert ours.endswith("| 50.0 (of 1) | this run |") and ours in printed
    assert "| LLaVA-OV-0.5B (Li et al., 2024a) | 26.8 | 40.4 | 34.2 | 31.8 | 41.1 | 61.2 | 39.3 | paper Table 8, row 8 |" in text
    table2 = text.split("## MuirBench subtasks")[1]
    ours2 = next(line for line in table2.splitlines() if line.startswith("| dummy"))
    assert ours2.split(" | ")[1:14] == ["-", "100.0", "-", "-", "-", "50.0", "-", "-", "-", "-", "-", "0.0", "50.0"]
    assert "| Ours (Masked) [LLaVA-OV-7B] | 44.0 | 35.9 |" in table2 and "paper Table 2, row 22 |" in table2


def test_paper_rows_are_complete_and_consistent():
    assert all(len(r.values) == len(EXTERNAL_COLUMNS) + 1 for r in PAPER_TABLE3)
    assert all(len(r.values) == 13 for r in PAPER_TABLE2)
    # The paper's average is the mean of its six columns wherever all six are printed.
    for r in PAPER_TABLE3:
        if None not in r.values:
            assert sum(r.values[:6]) / 6 == pytest.approx(r.values[6], abs=0.06), r.model
    assert [r.row for r in PAPER_TABLE3] == list(range(1, 16))


def test_report_needs_runs_or_results(tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path)]) == 2
    assert "--lmms-eval" in capsys.readouterr().err
    assert main(["report", "--lmms-eval", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
