"""The sandbox root: one directory per live Sandbox, named after its owner and locked
by it, so that what a dead server left behind can be told from a live one's.

`pysbx-<pid>-<token>` in the temporary directory holds every working directory. The
owner keeps an exclusive flock on the directory itself for its whole life; the kernel
drops the lock when the owner dies, even by `kill -9`. A new Sandbox sweeps the roots
whose lock it can take (their owner is gone), and nothing else: a live server's
or another replica's root on the same host is never touched.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable

PREFIX = "pysbx-"
_NAME = re.compile(rf"{PREFIX}(\d+)-([0-9a-f]+)")
CLAIM_S = 60.0  # far longer than claim() takes between its mkdir and its flock


def claim() -> tuple[str, str, int]:
    """Create and lock a new root: (path, token, lock fd). The fd must stay open."""
    token = secrets.token_hex(6)
    path = os.path.join(tempfile.gettempdir(), f"{PREFIX}{os.getpid()}-{token}")
    os.mkdir(path, 0o711)
    os.chmod(path, 0o711)  # whatever the umask: runs under other uids traverse it
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return path, token, fd


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _may_be_dead(pid: int, path: str) -> bool:
    """Worth trying the lock: the owner pid is gone, or is ours (a previous process with
    our pid: a restarted container's server is PID 1 again), or is alive but the root
    is older than a claim takes (the pid was reused by an unrelated process). The lock
    decides; the age only keeps a root being claimed right now out of reach."""
    if pid == os.getpid() or not _pid_alive(pid):
        return True
    try:
        return time.time() - os.stat(path).st_mtime > CLAIM_S
    except OSError:
        return False


def sweep(
    remove: Callable[[str], None], on_dead: Callable[[str], None] = lambda _t: None
) -> list[str]:
    """Remove the roots of dead owners (lock free and pid gone); `on_dead(token)` lets
    the caller clean what else it named after the token (cgroups). Returns the paths."""
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return []
    swept = []
    for name in names:
        m = _NAME.fullmatch(name)
        if m is None:
            continue
        path = os.path.join(base, name)
        if not _may_be_dead(int(m.group(1)), path):
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # someone holds it: alive after all (pid namespaces, reuse)
        finally:
            os.close(fd)
        on_dead(m.group(2))
        remove(path)
        swept.append(path)
    return swept
