"""One run per output folder, and ranks that do not outlive their launcher (docs/design.md, "Run folders").

`FolderLock` takes an exclusive `flock` on `<folder>/.mimic.lock` for as long as a command writes there. The
file holds the holder's pid, host, start time and command, so a second command into the same folder stops at
once with one line naming them. The kernel drops a `flock` when its holder dies, whatever killed it: a lock
file that is still there but not locked is the leftover of a dead process, and is taken over (with a warning
naming it). A released lock removes its file, and the folder too when the lock created it and nothing else
was written there, so a command that fails on bad input leaves nothing behind.

A data-parallel launcher (`mimic eval --num-processes`) holds the lock of its run folder for its ranks: it
names it in the environment they inherit (`HELD_ENV`), and the rank that would take it takes it over only
when that launcher is its parent and still holds it. `die_with_parent` makes a rank end when its launcher
ends, even by SIGKILL, so no rank keeps writing into a folder whose lock is gone.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import shlex
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mimic.errors import ConfigError

__all__ = ["HELD_ENV", "LAUNCHER_ENV", "LOCK_FILE", "FolderLock", "die_with_parent", "launching"]

logger = logging.getLogger(__name__)

LOCK_FILE = ".mimic.lock"
# JSON {lock file path: pid} of the locks a launcher holds on behalf of the processes it starts.
HELD_ENV = "MIMIC_HELD_LOCKS"
LAUNCHER_ENV = "MIMIC_LAUNCHER_PID"  # the pid of the launcher whose ranks we are
_ATTEMPTS = 20
# Lock files held by this process (path -> lock), so that a nested lock on the same folder is not refused.
_held: dict[str, FolderLock] = {}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (ValueError, OSError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "another process (it has not written its name yet)"
    text = f"pid {holder['pid']} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
    return text + (f" (`{holder['command']}`)" if holder.get("command") else "")


class FolderLock:
    """An exclusive lock on `folder` for one command (a context manager; `acquire`/`release` by hand too).

    `flag` names the option that gave the folder, for the message when another process holds it.
    Re-entrant within a process: a nested lock on a folder this process already holds is a no-op.
    """

    def __init__(self, folder: str | os.PathLike, flag: str = "--out"):
        self.folder = Path(folder)
        self.flag = flag
        self.path = Path(os.path.realpath(self.folder)) / LOCK_FILE  # one name per folder, whatever the link
        self._fd: int | None = None
        self._created: list[Path] = []  # folders this lock made, deepest last
        self._owner = 0  # the pid that acquired it: a forked child must not release its parent's lock
        self._nested = False  # a no-op lock inside one that this process (or its launcher) holds

    @property
    def held(self) -> bool:
        return self._fd is not None or self._nested

    def acquire(self) -> FolderLock:
        key = str(self.path)
        if key in _held and _held[key]._owner == os.getpid():
            self._nested = True
            return self
        if self._lent_by_parent():
            self._nested = True
            return self
        for _ in range(_ATTEMPTS):
            if self._try_once():
                _held[key] = self
                return self
        raise ConfigError(f"{self.flag} {self.folder}: the lock file {LOCK_FILE} keeps being replaced; is another "
                          "process removing it?")

    def _make_folder(self) -> None:
        missing = []
        p = self.path.parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._created = list(reversed(missing)) or self._created  # a retry keeps what the first try made

    def _try_once(self) -> bool:
        import fcntl

        self._make_folder()
        try:
            # 0o666 less the umask, like any file the command writes (mimic.atomic); not inherited by children.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileNotFoundError:  # the folder was removed by a holder that just released it
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = _read_holder(fd)
            os.close(fd)
            gone = holder.get("pid") and holder.get("host") == socket.gethostname() and not _alive(holder["pid"])
            note = "; that pid has ended, but a child process of it still holds the folder" if gone else ""
            raise ConfigError(f"{self.flag} {self.folder}: in use by {_describe(holder)}{note}; wait for it to end, "
                              "or use another folder") from None
        # A holder that released between our open and our flock removed the file: ours is then a lock on a
        # name no one else will open. Only a lock on the file the path names now counts.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        stale = _read_holder(fd)
        if stale.get("pid"):
            logger.warning("%s: taking over the lock of pid %s on %s (started %s), which is no longer running",
                           self.folder, stale["pid"], stale.get("host", "?"), stale.get("started", "?"))
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now(),
              "command": " ".join(shlex.quote(a) for a in [os.path.basename(sys.argv[0]), *sys.argv[1:]])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd, self._owner = fd, os.getpid()
        return True

    def _lent_by_parent(self) -> bool:
        """Whether our parent, a launcher, holds this lock for us (see `launching`)."""
        try:
            lent = json.loads(os.environ.get(HELD_ENV) or "{}")
        except ValueError:
            return False
        pid = lent.get(str(self.path)) if isinstance(lent, dict) else None
        if not pid or pid != os.getppid():
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return False
        try:
            return _read_holder(fd).get("pid") == pid
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._nested:
            self._nested = False
            return
        if self._fd is None or self._owner != os.getpid():
            return
        if _held.get(str(self.path)) is self:
            del _held[str(self.path)]
        # Unlink before unlocking: a process waiting on this file then finds it gone and opens the new one.
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
        for folder in reversed(self._created):
            try:
                folder.rmdir()  # only when empty: the command wrote nothing there
            except OSError:
                break
        self._created = []

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def launching(lock: FolderLock) -> Iterator[None]:
    """Within the block, the processes this one starts are its ranks: they find `lock` held for them (their
    `FolderLock` on the same folder is a no-op, not a refusal), and `die_with_parent` knows this pid."""
    old = {name: os.environ.get(name) for name in (HELD_ENV, LAUNCHER_ENV)}
    try:
        lent = json.loads(old[HELD_ENV] or "{}")
    except ValueError:
        lent = {}
    os.environ[HELD_ENV] = json.dumps({**lent, str(lock.path): os.getpid()})
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def die_with_parent() -> None:
    """End this process when its parent ends (a rank when its launcher is killed, even by SIGKILL).

    Linux: the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG). Elsewhere: a thread polls the
    parent pid. Either way, a parent that died before this call ends the process at once.
    """
    import signal

    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        def watch() -> None:
            import time

            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(128 + int(signal.SIGTERM))

        threading.Thread(target=watch, name="mimic-parent-watchdog", daemon=True).start()
    launcher = os.environ.get(LAUNCHER_ENV)
    # The parent may have died before prctl: we were then adopted by init or a subreaper.
    if os.getppid() != parent or (launcher and int(launcher) != parent):
        os._exit(128 + int(signal.SIGTERM))
