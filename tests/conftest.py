"""Shared fixtures: the real sample data beside the checkout, an HF cache in tmp, small synthetic worlds."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COCO_SAMPLE = SHARED_DATA / "coco-sample"
COCO_MINI = SHARED_DATA / "coco-mini"
OPENIMAGES_SAMPLE = SHARED_DATA / "openimages-sample"


def need(path: Path) -> Path:
    """Skip the calling test, saying why, when a shared data folder is absent (as on a user's machine)."""
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (only present beside the dev/CI checkout)")
    return path


@pytest.fixture(autouse=True)
def _offline_hf(tmp_path_factory, monkeypatch):
    # Tests never touch the network, and never the user's HF cache.
    cache = tmp_path_factory.getbasetemp() / "hf-cache"
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def coco_sample() -> tuple[Path, Path]:
    root = need(COCO_SAMPLE)
    return root / "annotations" / "instances_train2017.json", root / "train2017"


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A small synthetic world (rendered once per session) and its index."""
    from mimic.builders.sources.synthetic import read_synthetic, render_world

    paths = render_world(tmp_path_factory.mktemp("world") / "w", num_images=160, seed=0, show_progress=False)
    return paths, read_synthetic(paths.annotations, paths.images)
