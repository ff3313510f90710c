"""Atomic writes: files and folders follow the umask as open()/mkdir() would, and failures leave nothing."""

from __future__ import annotations

import json
import os
import stat
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import build_demo_folder

from mimic.atomic import atomic_path, make_temp_dir


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_and_folders_follow_the_umask(tmp_path, mask):
    with umask(mask):
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        with atomic_path(tmp_path / "b.bin") as tmp, open(tmp, "wb") as f:  # a writer that truncates
            f.write(b"y")
        d = make_temp_dir(tmp_path / "world")
    assert mode(tmp_path / "a.txt") == 0o666 & ~mask
    assert mode(tmp_path / "b.bin") == 0o666 & ~mask
    assert mode(d) == 0o777 & ~mask
    assert d.name.startswith(".world.") and d.parent == tmp_path


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_a_built_dataset_and_an_eval_run_follow_the_umask(world, tmp_path, mask):
    from mimic.eval.runner import EvalSettings, run_eval

    out = tmp_path / "bench"
    with umask(mask):
        build_demo_folder(world, out, ["common"], num=3)
        run_eval(EvalSettings(data=str(out), model="oracle", out=str(tmp_path / "run"), progress=False))
    files = [*out.rglob("*.parquet"), out / "README.md", *(out / ".mimic").glob("*.json"),
             *(tmp_path / "run").iterdir()]
    assert len(files) >= 6
    for f in files:
        assert mode(f) == 0o666 & ~mask, f


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text(json.dumps({"old": True}))
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_temporary_names_are_hidden_and_unique(tmp_path):
    with atomic_path(tmp_path / "x.parquet") as a, atomic_path(tmp_path / "x.parquet") as b:
        assert a != b and a.exists() and b.exists()
        assert a.name.startswith(".x.parquet.") and not list(tmp_path.glob("x*.parquet"))
        a.write_text("a")
        b.write_text("b")
    assert (tmp_path / "x.parquet").read_text() == "a"  # `a` is renamed last (the outer block ends last)
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]
