"""Atomic, durable file writes: nothing is ever left half-written under its final name.

A file is written under a temporary name beside its target, flushed to disk (`fsync`), renamed over the
target, and the rename itself is flushed by an `fsync` of the folder. After a crash the target holds
either the old content or the new, never a mix, and a write that returned survives a power loss.

New files and folders get the permissions `open()` and `mkdir()` would give them (0666 and 0777 less the
umask), so outputs on a shared machine are as readable as any other file there. `tempfile.mkstemp` and
`mkdtemp` create them private (0600, 0700), which is why they are not used here.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "fsync_dir", "follow_umask", "make_temp_dir", "write_json"]

_ATTEMPTS = 100


def _temp_name(path: Path, suffix: str) -> Path:
    # A leading dot keeps globs over final names (`*/test-*.parquet`) and uploads from seeing it.
    return path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"


def _create_temp_file(path: Path) -> Path:
    for _ in range(_ATTEMPTS):
        tmp = _temp_name(path, ".tmp")
        try:
            # O_EXCL: never reuse a name another writer holds; mode 0o666 is reduced by the umask, as in open().
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after {_ATTEMPTS} attempts")


def follow_umask(*files: str | os.PathLike) -> None:
    """Give files another library created private (safetensors writes 0600) the mode `open()` would have
    given them: 0666 less the umask."""
    mask = os.umask(0)  # the only portable way to read it: set, then put back at once
    os.umask(mask)
    for f in files:
        os.chmod(f, 0o666 & ~mask)


def make_temp_dir(path: str | os.PathLike) -> Path:
    """A new, empty folder beside `path` (a dot name), to be filled and renamed to `path` by the caller.

    Its mode is 0777 less the umask, as `mkdir` gives, unlike `tempfile.mkdtemp` (always 0700).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_ATTEMPTS):
        tmp = _temp_name(path, ".tmpdir")
        try:
            tmp.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after {_ATTEMPTS} attempts")


def _fsync_file(path: Path) -> None:
    # The caller wrote and closed the file through its own handle (a parquet writer, write_text...):
    # fsync through a new descriptor flushes the same inode's data.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk."""
    if os.name == "nt":  # Windows cannot open a folder as a file; NTFS journals its metadata
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; on success it becomes `path`, on failure it is removed.

    The temporary file already exists (empty, mode 0666 less the umask); writers that truncate it keep that
    mode. On leaving the block without an error the file is fsynced, renamed to `path`, and the folder is
    fsynced, so the new content is on disk when the block ends.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp_file(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json(path: str | os.PathLike, data: Any, **dump_kwargs: Any) -> Path:
    """Write `data` as indented JSON with a final newline, atomically and durably. NaN and infinities are
    refused unless `allow_nan=True` (they are not JSON); other `dump_kwargs` go to `json.dump` too."""
    dump_kwargs.setdefault("allow_nan", False)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(data, f, indent=2, **dump_kwargs)
        f.write("\n")
    return Path(path)
