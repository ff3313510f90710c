"""Run-folder locks (`mimic.locks`): a second holder is refused with the first one's name, a dead holder's
lock is taken over, nested locks of one process do not refuse themselves, and a failed command leaves no
folder behind. The eval-level tests (two evals into one folder, a killed launcher) are in
tests/test_eval_parallel.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys

import pytest

from mimic.errors import ConfigError
from mimic.locks import HELD_ENV, LOCK_FILE, FolderLock

HOLD = ("import sys, time\nfrom mimic.locks import FolderLock\nFolderLock(sys.argv[1]).acquire()\n"
        "print('held', flush=True)\ntime.sleep(600)\n")


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock of a folder; yields (process, folder)."""
    procs = []

    def start(folder):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_second_holder_is_refused_naming_the_first(tmp_path, holder):
    folder = tmp_path / "run"
    proc = holder(folder)
    with pytest.raises(ConfigError) as err:
        FolderLock(folder, "--out").acquire()
    message = str(err.value)
    assert message.startswith(f"--out {folder}: in use by pid {proc.pid} on {socket.gethostname()}, started ")
    assert "\n" not in message and "wait for it to end" in message
    recorded = json.loads((folder / LOCK_FILE).read_text())
    assert recorded["pid"] == proc.pid and recorded["started"] in message


def test_the_lock_of_a_killed_holder_is_taken_over_with_a_warning(tmp_path, holder, caplog):
    folder = tmp_path / "run"
    proc = holder(folder)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = json.loads((folder / LOCK_FILE).read_text())  # left behind: nothing ran to remove it
    with caplog.at_level(logging.WARNING, logger="mimic.locks"), FolderLock(folder):
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert [r.getMessage() for r in caplog.records] == [
        f"{folder}: taking over the lock of pid {proc.pid} on {socket.gethostname()} (started {left['started']}), "
        "which is no longer running"]
    assert not (folder / LOCK_FILE).exists() and folder.is_dir()


def test_a_released_lock_leaves_the_folder_as_it_found_it(tmp_path):
    fresh = tmp_path / "a" / "b"
    with FolderLock(fresh):
        assert (fresh / LOCK_FILE).is_file()
    assert not (tmp_path / "a").exists()  # made for the lock, nothing else written: removed
    with FolderLock(fresh):
        (fresh / "results.json").write_text("{}")
    assert sorted(p.name for p in fresh.iterdir()) == ["results.json"]
    # The next holder after a clean release gets no warning and its own record.
    with FolderLock(fresh) as lock:
        assert lock.held and json.loads((fresh / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_nested_locks_of_one_process_and_links_to_the_folder(tmp_path, holder):
    folder = tmp_path / "run"
    folder.mkdir()
    (tmp_path / "link").symlink_to(folder)
    with FolderLock(folder):
        with FolderLock(tmp_path / "link"), FolderLock(folder / "sub"):  # the same folder, and another one
            assert (folder / "sub" / LOCK_FILE).exists()
        assert (folder / LOCK_FILE).exists()  # the inner release left the outer lock in place
        # Another process, through the link, is refused.
        code = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path / "link")], capture_output=True,
                              text=True, timeout=60)
        assert code.returncode != 0 and f"in use by pid {os.getpid()}" in code.stderr
    assert not (folder / LOCK_FILE).exists()


def test_a_lock_lent_by_a_launcher_is_used_only_by_its_children(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    check = ("import sys\nfrom mimic.locks import FolderLock\nlock = FolderLock(sys.argv[1]).acquire()\n"
             "print('lent' if lock._fd is None else 'own')\n")
    with FolderLock(folder) as lock:
        from mimic.locks import launching

        with launching(lock):
            child = subprocess.run([sys.executable, "-c", check, str(folder)], capture_output=True, text=True,
                                   timeout=60)
            assert child.stdout.strip() == "lent", child.stderr
            # A grandchild (or any process that is not the launcher's child) is refused all the same.
            grandchild = subprocess.run([sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.run("
                                         "[sys.executable, '-c', sys.argv[1], sys.argv[2]]).returncode)", check,
                                         str(folder)], capture_output=True, text=True, timeout=60)
            assert grandchild.returncode != 0 and "in use by pid" in grandchild.stderr
        assert HELD_ENV not in os.environ
