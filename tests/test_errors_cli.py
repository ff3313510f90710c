"""Bad input at the command line: exit code 2, one line on stderr naming what is wrong, no traceback, and
no half-written output.

Every case runs `mimic` in-process on inputs prepared once per module (a built demo folder, folders that
are not MIMIC datasets, broken JSON Lines files, a run folder); two cases also run the installed console
script, to see what a user sees.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import build_demo_folder

from mimic.cli import main
from mimic.errors import MimicError


@dataclass(frozen=True)
class Case:
    name: str
    argv: str  # placeholders in braces: {demo}, {txt}, {other}, {out}, ... (see `inputs`)
    expect: str  # a part of the one-line message: the file, field or flag at fault and what is wrong
    leaves: tuple[str, ...] = ()  # files {out} may hold afterwards (complete ones); by default {out} is never created


CASES = [
    # Datasets that are not MIMIC datasets.
    Case("show-text-folder", "show {txt}", "no parquet files (found: a.txt, b.txt)"),
    Case("eval-text-folder", "eval --data {txt} --model random --out {out}", "no parquet files (found: a.txt"),
    Case("show-foreign-parquet", "show {other}", "missing column(s) images, question"),
    Case("eval-foreign-parquet", "eval --data {other} --model random --out {out}", "missing column(s) id, task"),
    Case("eval-config-without-files", "eval --data {mixed} --model random --out {out}", "no files for config 'odd_one'"),
    Case("eval-corrupt-shard", "eval --data {corrupt} --model random --out {out}", "not a readable parquet file"),
    Case("show-missing-folder", "show {tmp}/nope", "nope: no such folder"),
    Case("eval-data-is-a-file", "eval --data {missing_field} --model random --out {out}", "not a folder"),
    Case("show-unknown-config", "show {demo} --configs comon", "config 'comon' is not in"),
    Case("eval-unknown-config", "eval --data {demo} --configs nope --model random --out {out}", "config 'nope'"),
    Case("eval-missing-split", "eval --data {demo} --split train --model random --out {out}", "no 'train' split"),
    # Models and their options.
    Case("eval-unknown-model", "eval --data {demo} --model randm --out {out}", "unknown model 'randm'"),
    Case("eval-bare-hub-id", "eval --data {demo} --model org/model --out {out}", "did you mean 'hf:org/model'"),
    Case("eval-option-for-other-model", "eval --data {demo} --model oracle --max-new-tokens 5 --out {out}",
         "max_new_tokens do not apply to model 'oracle'"),
    Case("eval-bad-limit", "eval --data {demo} --model random --limit 0 --out {out}", "--limit must be at least 1, got 0"),
    Case("eval-bad-batch", "eval --data {demo} --model random --batch-size 0 --out {out}", "--batch-size must be at least 1"),
    Case("eval-bad-num-processes", "eval --data {demo} --model random --num-processes 0 --out {out}",
         "--num-processes must be at least 1, got 0"),
    Case("eval-bad-batch-parallel", "eval --data {demo} --model random --batch-size 0 --num-processes 2 --out {out}",
         "--batch-size must be at least 1"),
    Case("eval-bad-bootstrap", "eval --data {demo} --model random --bootstrap -1 --out {out}", "--bootstrap must be 0"),
    Case("eval-unset-key-variable", "eval --data {demo} --model openai:m --api-key-env MIMIC_TEST_NO_SUCH_VAR "
         "--out {out}", "--api-key-env MIMIC_TEST_NO_SUCH_VAR"),
    Case("eval-endpoint-down", "eval --data {demo} --configs common --model openai:m --base-url {dead_url} "
         "--max-retries 0 --no-progress --out {out}", "is the server up", leaves=("run.json", "predictions.jsonl")),
    # Run folders.
    Case("eval-other-run-in-out", "eval --data {demo} --model random --out {run}", "holds predictions of another run"),
    Case("eval-parallel-other-run", "eval --data {demo} --model random --num-processes 2 --out {run}",
         "holds predictions of another run"),
    Case("eval-corrupt-run-json", "eval --data {demo} --model random --out {bad_run}", "run.json: not valid JSON"),
    Case("eval-model-typo", "eval --data {demo} --model hf:{tmp}/nope --no-progress --out {out}",
         "cannot read the checkpoint's config"),  # the model loads before anything is written
    Case("eval-model-typo-overwrite", "eval --data {demo} --model hf:{tmp}/nope --overwrite --out {run}",
         "cannot read the checkpoint's config"),  # ... or discarded: {run}'s predictions stay
    Case("eval-too-many-processes", "eval --data {demo} --model random --num-processes 999 --out {out}",
         "--num-processes 999: "),
    # Folders another process is writing (it holds their lock).
    Case("eval-locked-out", "eval --data {demo} --model random --out {locked}", "--out {locked}: in use by pid"),
    Case("eval-parallel-locked-out", "eval --data {demo} --model random --num-processes 2 --out {locked}",
         "--out {locked}: in use by pid"),
    Case("diagnose-locked-out", "diagnose stitch --data {demo} --model hf:m --out {locked}",
         "--out {locked}: in use by pid"),
    Case("build-locked-out", "build demo --world {world} --configs common --num 2 --out {locked}",
         "--out {locked}: in use by pid"),
    Case("report-not-a-run", "report {tmp}/nope --out {out}", "not a run folder"),
    Case("report-label-count", "report {run} --labels a b --out {out}", "--labels gives 2 names for 1 runs"),
    Case("report-bad-bootstrap", "report {run} --bootstrap -5 --out {out}", "--bootstrap must be 0"),
    Case("report-foreign-results", "report {foreign_results} --out {out}", "not a results file of `mimic eval`"),
    Case("report-corrupt-predictions", "report {bad_predictions} --out {out}", "predictions.jsonl:1: not a JSON"),
    # Generated question sets.
    Case("stats-missing-field", "stats {missing_field}", "row 2 (common-00001"),
    Case("stats-not-objects", "stats {not_objects}", "row 1 is a JSON list"),
    Case("stats-no-file", "stats {tmp}/nope.jsonl", "nope.jsonl: file not found"),
    Case("verify-missing-field", "verify {missing_field} --source synthetic --annotations {world}",
         "missing field 'image_ids'"),
    Case("verify-wrong-type", "verify {wrong_type} --source synthetic --annotations {world}",
         "field 'num_images' is 'three', expected an integer"),
    Case("verify-bad-json", "verify {bad_json} --source synthetic --annotations {world}", "line 2 is not valid JSON"),
    Case("verify-no-annotations", "verify {good} --annotations {tmp}/nope.json", "annotation file not found"),
    # Annotations and generation.
    Case("generate-coco-without-annotations", "generate --config common --source coco --out {out}",
         "--annotations is required for --source coco"),
    Case("generate-openimages-incomplete", "generate --config common --source openimages --annotations "
         "{tmp}/boxes.csv --out {out}", "needs --oi-classes, --oi-hierarchy"),
    Case("generate-missing-images-folder", "generate --config common --images {tmp}/nope --out {out}",
         "--images {tmp}/nope: folder not found"),
    Case("generate-infeasible", "generate --config common --annotations {world} --num-images 60 --num 2 "
         "--no-progress --out {out}", "common"),
    Case("index-malformed-json", "index --source coco --annotations {bad_json} --out {out}", "malformed JSON"),
    Case("index-not-an-index", "index --source coco --annotations {other_shard} --out {out}",
         "no mimic index metadata"),
    Case("world-bad-size", "world --out {out} --images 0", "--images must be at least 1, got 0"),
    # Building and publishing.
    Case("bench-missing-images", "build bench --coco-annotations {world} --coco-images {tmp}/nope --out {out}",
         "--coco-images {tmp}/nope: folder not found"),
    Case("bench-missing-annotations", "build bench --coco-annotations {tmp}/nope.json --coco-images {tmp} "
         "--out {out}", "--coco-annotations {tmp}/nope.json: file not found"),
    Case("demo-missing-world", "build demo --world {tmp}/nope --out {out}", "--world {tmp}/nope: path not found"),
    Case("train-without-boxes", "build train --out {out}", "--oi-boxes and --oi-images are required"),
    Case("train-missing-images", "build train --oi-boxes {world} --oi-images {tmp}/nope --out {out}",
         "--oi-images {tmp}/nope: folder not found"),
    Case("train-num-proc", "build train --source synthetic --world {world} --num-proc 0 --out {out}",
         "--num-proc must be at least 1, got 0"),
    Case("train-on-coco", "build train --source coco --oi-boxes {world} --oi-images {tmp} --out {out}",
         "--source coco: COCO is the evaluation benchmark's source"),
    Case("push-no-card", "push {txt} --repo me/x --dry-run", "no README.md dataset card"),
    Case("push-bad-repo", "push {demo} --repo noslash --dry-run", "--repo must look like ORG/NAME"),
    Case("push-model-no-folder", "push-model {tmp}/nope --repo me/x --dry-run", "nope is not a folder"),
    Case("demo-trainset-bad-size", "demo-trainset --out {out} --per-task 0", "--per-task must be at least 1"),
    Case("overlap-text-folder", "check-overlap --train {txt} --bench {demo}", "no parquet shards found"),
    Case("overlap-foreign-parquet", "check-overlap --train {other} --bench {demo}", "missing column(s) source"),
    # Image files that are not the annotated images: never embedded.
    Case("bench-empty-jpegs", "build bench --coco-annotations {world} --coco-images {empty_images} --configs common "
         "--num 2 --no-progress --out {out}", "is not a readable image"),
    Case("bench-html-as-jpeg", "build bench --coco-annotations {world} --coco-images {html_images} --configs common "
         "--num 2 --no-progress --out {out}", "is not a readable image"),
    Case("bench-wrong-size", "build bench --coco-annotations {wide} --coco-images {world_images} --configs common "
         "--num 2 --no-progress --out {out}", "is 320x320 pixels, the annotations say 321x320"),
    Case("demo-empty-jpegs", "build demo --world {empty_world} --configs common --num 2 --no-progress --out {out}",
         "is not a readable image"),
    # Numbers out of range.
    Case("bench-num-0", "build bench --coco-annotations {world} --coco-images {world_images} --num 0 --out {out}",
         "--num must be at least 1, got 0"),
    Case("bench-num-negative", "build bench --coco-annotations {world} --coco-images {world_images} --num -5 "
         "--out {out}", "--num must be at least 1, got -5"),
    Case("bench-min-box-frac-negative", "build bench --coco-annotations {world} --coco-images {world_images} "
         "--min-box-frac -1 --out {out}", "--min-box-frac must be between 0 and 1, got -1.0"),
    Case("bench-min-box-frac-nan", "build bench --coco-annotations {world} --coco-images {world_images} "
         "--min-box-frac nan --out {out}", "--min-box-frac must be between 0 and 1, got nan"),
    Case("bench-min-box-frac-2", "build bench --coco-annotations {world} --coco-images {world_images} "
         "--min-box-frac 2 --out {out}", "--min-box-frac must be between 0 and 1, got 2.0"),
    Case("bench-max-shard-negative", "build bench --coco-annotations {world} --coco-images {world_images} "
         "--max-shard-mb -1 --out {out}", "--max-shard-mb must be at least 1, got -1"),
    Case("demo-num-0", "build demo --world {world} --num 0 --out {out}", "--num must be at least 1, got 0"),
    Case("train-per-task-negative", "build train --source synthetic --world {world} --per-task -1 --out {out}",
         "--per-task must be at least 1, got -1"),
    Case("show-rows-negative", "show {demo} --rows -1", "--rows must be at least 0, got -1"),
    Case("flops-images-negative", "flops --paper --images -3", "--images must be at least 0, got -3.0"),
    Case("generate-distractors-negative", "generate --config common --annotations {world} --distractors -2 "
         "--out {out}", "--distractors must be at least 0, got -2"),
    Case("generate-num-0", "generate --config common --annotations {world} --num 0 --out {out}",
         "--num must be at least 1, got 0"),
    # Paths are literal, never patterns.
    Case("eval-data-pattern", "eval --data {tmp}/dem* --model random --out {out}",
         "no such folder (paths are taken literally"),
    # Annotation fields of the wrong type, and numbers JSON does not have.
    Case("index-iscrowd-string", "index --source coco --annotations {crowd_string} --out {out}",
         "(field 'annotations[0].iscrowd'): bad value '0', expected 0 or 1"),
    Case("index-width-string", "index --source coco --annotations {width_string} --out {out}",
         "(field 'images[0].width'): bad value '320', expected a number"),
    Case("index-file-name-number", "index --source coco --annotations {name_number} --out {out}",
         "(field 'images[0].file_name'): bad value 7, expected a string"),
    Case("index-nan-box", "index --source coco --annotations {nan_box} --out {out}", "NaN at byte"),
    # Messages that name what is wrong.
    Case("train-images-all-missing", "build train --source synthetic --world {imageless_world} --out {out}",
         "none of the 160 images listed in"),
    Case("train-without-oi-classes", "build train --oi-boxes {txt}/a.txt --oi-images {tmp} --out {out}",
         "needs --oi-classes and --oi-hierarchy"),
    Case("demo-world-is-a-text-file", "build demo --world {txt}/a.txt --out {out}", "--world {txt}/a.txt: no images/"),
    Case("stats-on-a-folder", "stats {txt}", "is a folder, not a JSON Lines file"),
    Case("push-url-repo", "push {demo} --repo https://huggingface.co/datasets/me/x --dry-run", "not a URL"),
]


def _dead_url() -> str:
    """A local URL where nothing listens (a port just released): connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def inputs(world, tmp_path_factory, request) -> dict[str, str]:
    paths, _ = world
    root = tmp_path_factory.mktemp("bad-inputs")
    locked = root / "locked"  # a folder another process holds for the whole module
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom mimic.locks import FolderLock\n"
                               "FolderLock(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(3600)",
                               str(locked)], stdout=subprocess.PIPE, text=True)
    request.addfinalizer(lambda: (holder.kill(), holder.wait()))
    assert holder.stdout.readline().strip() == "held"
    demo = root / "demo"
    build_demo_folder(world, demo, ["common", "odd_one"], num=3)

    txt = root / "txt"
    txt.mkdir()
    (txt / "a.txt").write_text("hello\n")
    (txt / "b.txt").write_text("world\n")
    other = root / "other"
    (other / "default").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1, 2]}), other / "default" / "test-00000-of-00001.parquet")
    mixed = root / "mixed"
    (mixed / "common").mkdir(parents=True)
    for shard in (demo / "common").glob("*.parquet"):
        (mixed / "common" / shard.name).write_bytes(shard.read_bytes())
    (mixed / "README.md").write_bytes((demo / "README.md").read_bytes())  # its card also names odd_one
    corrupt = root / "corrupt"
    (corrupt / "common").mkdir(parents=True)
    (corrupt / "common" / "test-00000-of-00001.parquet").write_bytes(b"PAR1 not really")

    assert main(["generate", "--config", "common", "--annotations", str(paths.annotations), "--num", "3",
                 "--no-progress", "--out", str(root / "good.jsonl")]) == 0
    rows = [json.loads(line) for line in (root / "good.jsonl").read_text().splitlines()]

    def jsonl(name: str, items) -> str:
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in items))
        return str(root / name)

    missing = [dict(r) for r in rows]
    del missing[1]["image_ids"]
    wrong = [dict(r) for r in rows]
    wrong[0]["num_images"] = "three"
    (root / "bad.json").write_text(json.dumps(rows[0]) + "\n{not json\n")

    run = root / "run"
    assert main(["eval", "--data", str(demo), "--model", "oracle", "--out", str(run), "--bootstrap", "0",
                 "--no-progress"]) == 0
    bad_run = root / "bad-run"
    bad_run.mkdir()
    (bad_run / "run.json").write_text("{truncated")
    (bad_run / "predictions.jsonl").write_text("")
    foreign_results = root / "foreign-results"
    foreign_results.mkdir()
    (foreign_results / "results.json").write_text(json.dumps([1, 2]))
    bad_predictions = root / "bad-predictions"
    bad_predictions.mkdir()
    (bad_predictions / "predictions.jsonl").write_text("{oops}\n")
    images = paths.images
    names = sorted(p.name for p in images.iterdir())
    for folder, content in (("empty-images", b""), ("html-images", b"<!DOCTYPE html><html>Not found</html>\n")):
        (root / folder).mkdir()
        for name in names:
            (root / folder / name).write_bytes(content)
    empty_world = root / "empty-world"
    (empty_world / "images").mkdir(parents=True)
    (empty_world / "annotations.json").write_bytes(paths.annotations.read_bytes())
    for name in names:
        (empty_world / "images" / name).write_bytes(b"")
    imageless_world = root / "imageless-world"
    (imageless_world / "images").mkdir(parents=True)
    (imageless_world / "annotations.json").write_bytes(paths.annotations.read_bytes())

    coco = json.loads(paths.annotations.read_text())

    def annotations(name: str, edit) -> str:
        data = json.loads(json.dumps(coco))
        edit(data)
        (root / name).write_text(json.dumps(data))
        return str(root / name)

    def widen(d):
        for im in d["images"]:
            im["width"] += 1

    nan_box = annotations("nan-box.json", lambda d: d["annotations"][3].update(bbox=[1.0, 2.0, float("nan"), 4.0]))
    return {
        "world_images": str(images), "empty_images": str(root / "empty-images"),
        "html_images": str(root / "html-images"), "empty_world": str(empty_world),
        "imageless_world": str(imageless_world), "wide": annotations("wide.json", widen),
        "crowd_string": annotations("crowd-string.json", lambda d: d["annotations"][0].update(iscrowd="0")),
        "width_string": annotations("width-string.json", lambda d: d["images"][0].update(width="320")),
        "name_number": annotations("name-number.json", lambda d: d["images"][0].update(file_name=7)),
        "nan_box": nan_box,
        "tmp": str(root), "demo": str(demo), "txt": str(txt), "other": str(other), "mixed": str(mixed),
        "corrupt": str(corrupt), "world": str(paths.annotations), "good": str(root / "good.jsonl"),
        "missing_field": jsonl("missing.jsonl", missing), "wrong_type": jsonl("wrong.jsonl", wrong),
        "not_objects": jsonl("lists.jsonl", [[1, 2]]), "bad_json": str(root / "bad.json"),
        "other_shard": str(other / "default" / "test-00000-of-00001.parquet"), "run": str(run),
        "bad_run": str(bad_run), "bad_predictions": str(bad_predictions),
        "foreign_results": str(foreign_results), "dead_url": _dead_url(), "locked": str(locked),
    }


@pytest.fixture
def quiet_datasets():
    # `datasets` draws progress bars on stderr while it converts parquet files; the one line checked here
    # is ours.
    import datasets

    datasets.disable_progress_bars()
    yield
    datasets.enable_progress_bars()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)
    commands = {c.argv.split()[0] if c.argv.split()[0] != "build" else " ".join(c.argv.split()[:2]) for c in CASES}
    assert commands >= {"show", "eval", "report", "stats", "verify", "generate", "index", "world", "build bench",
                        "build demo", "build train", "push", "check-overlap"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, inputs, tmp_path, capsys, quiet_datasets):
    out = tmp_path / "out"
    values = {**inputs, "out": str(out)}
    argv = [a.format(**values) for a in case.argv.split()]
    before = _snapshot(Path(inputs["tmp"]))
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mimic {argv[0]}"), lines[0]
    assert case.expect.format(**values) in lines[0], lines[0]
    assert "Traceback" not in err
    # Nothing half-written: the output was never created, or holds only complete files the case allows.
    if case.leaves:
        assert sorted(p.name for p in out.iterdir()) == sorted(case.leaves)
        json.loads((out / "run.json").read_text())
    else:
        assert not out.exists(), sorted(out.rglob("*"))
    # The prepared inputs (and run folders given as --out) are untouched, and no temporary file is left.
    assert _snapshot(Path(inputs["tmp"])) == before
    assert not [p for p in tmp_path.rglob(".*") if ".tmp" in p.name]


def test_a_model_that_fails_to_load_leaves_nothing_and_the_corrected_command_runs(inputs, tmp_path, capsys,
                                                                                  quiet_datasets):
    out = tmp_path / "run"
    argv = ["eval", "--data", inputs["demo"], "--model", "hf:/nonexistent", "--out", str(out), "--no-progress",
            "--bootstrap", "0"]
    assert main(argv) == 2
    assert not out.exists()
    argv[argv.index("--model") + 1] = "oracle"
    assert main(argv) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert {c: s["n"] for c, s in results["configs"].items()} == {"common": 3, "odd_one": 3}
    assert sorted(p.name for p in out.iterdir()) == ["predictions.jsonl", "results.json", "run.json"]  # no lock


def test_the_console_script_prints_no_traceback(inputs):
    """The real `mimic` executable on two of the inputs that used to end in tracebacks."""
    exe = Path(sys.executable).with_name("mimic")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    for argv, expect in ((["show", inputs["txt"]], "no parquet files"),
                         (["show", inputs["other"]], "missing column(s)")):
        done = subprocess.run([str(exe), *argv], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and expect in done.stderr and "Traceback" not in done.stderr


def test_every_user_error_class_is_a_mimic_error():
    from mimic.builders.verify import VerificationError
    from mimic.errors import AnnotationError, ConfigError, DataError, InfeasibleError
    from mimic.eval.models.openai_compat import EndpointError
    from mimic.registry import UnknownNameError

    for cls in (AnnotationError, ConfigError, DataError, InfeasibleError, VerificationError, EndpointError,
                UnknownNameError):
        assert issubclass(cls, MimicError), cls


def test_skip_bad_images_leaves_them_out_and_counts_them(world, inputs, tmp_path, capsys):
    """--skip-bad-images: the 0-byte and HTML files are left out before sampling, every row holds only good
    images, and the build record counts the skipped ones. Without it, the same folder is an error naming a file."""
    import pyarrow.parquet as pq

    paths, _ = world
    images = tmp_path / "images"
    images.mkdir()
    names = sorted(p.name for p in paths.images.iterdir())
    bad = {names[0]: b"", names[1]: b"<html>moved</html>", names[2]: b"\xff\xd8\xff"}
    for name in names:
        if name in bad:
            (images / name).write_bytes(bad[name])
        else:
            (images / name).symlink_to(paths.images / name)
    argv = ["build", "bench", "--coco-annotations", str(paths.annotations), "--coco-images", str(images),
            "--configs", "common", "odd_one", "--num", "40", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "strict")]) == 2
    assert "is not a readable image" in capsys.readouterr().err
    assert not (tmp_path / "strict").exists()

    assert main([*argv, "--skip-bad-images", "--out", str(tmp_path / "out")]) == 0
    assert "skipped 3 bad image file(s)" in capsys.readouterr().err
    for config in ("common", "odd_one"):
        record = json.loads((tmp_path / "out" / ".mimic" / f"{config}.json").read_text())
        assert record["parameters"]["bad_images_skipped"] == 3
        assert sorted(record["parameters"]["bad_images"]) == sorted(bad)
        used = {p for ims in pq.read_table(tmp_path / "out" / config, columns=["images"]).column("images")
                .to_pylist() for p in (im["path"] for im in ims)}
        assert used and not used & set(bad)


def test_folder_names_with_pattern_characters_are_read_literally(inputs, tmp_path, quiet_datasets):
    """`d [2]` is read as itself, not as the pattern that matches its sibling `d 2`; `d [v2]` is readable."""
    import shutil

    from mimic.eval.data import config_names, load_config

    demo = Path(inputs["demo"])
    shutil.copytree(demo, tmp_path / "d [2]")
    shutil.copytree(demo, tmp_path / "d [v2]")
    sibling = tmp_path / "d 2"
    shutil.copytree(Path(inputs["mixed"]), sibling)  # its card names odd_one too, its folder lacks it
    rows = len(load_config(str(demo), "common"))
    shard = next((sibling / "common").glob("*.parquet"))
    pq.write_table(pq.read_table(shard).slice(0, 1), shard)  # the sibling holds other rows: 1, not `rows`
    for name in ("d [2]", "d [v2]"):
        assert config_names(str(tmp_path / name)) == ["common", "odd_one"]
        assert len(load_config(str(tmp_path / name), "common")) == rows
        assert len(load_config(str(tmp_path / name), "odd_one")) > 0


def test_tiny_model_files_follow_the_umask(tmp_path):
    from mimic.tiny import save_tiny

    old = os.umask(0o022)
    try:
        save_tiny(tmp_path / "m", num_layers=1)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir() if p.is_file()}
    assert modes["model.safetensors"] == 0o644, modes
    assert set(modes.values()) == {0o644}, modes


def test_a_closed_pipe_ends_quietly(inputs):
    """`mimic show DIR | head`: the reader is gone before mimic writes; exit 0, no traceback."""
    exe = Path(sys.executable).with_name("mimic")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    for argv in (["show", inputs["demo"]], ["stats", inputs["good"]]):
        read, write = os.pipe()
        os.close(read)
        try:
            done = subprocess.run([str(exe), *argv], stdout=write, stderr=subprocess.PIPE, text=True, env=env,
                                  timeout=120)
        finally:
            os.close(write)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
