"""A cgroup v1 driver: one budget (memory, tasks, CPU share, freezer) for a process tree.

The kernel enforces the limits for every descendant, however it was forked (setsid,
double fork, threads), and a forked child inherits its parent's cgroups: attach the
first process once (attaching costs milliseconds, see benchmarks/bench_budget.py)
before it allocates (v1 does not move existing charges with a process).

Layout: under this process's own cgroup in each hierarchy, `<prefix>/<name>`, one
directory per distinct hierarchy (controllers may be co-mounted, e.g. `cpu,cpuacct`).
Only stdlib; every write is a plain file write, so a failure is an OSError.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

CONTROLLERS = ("memory", "pids", "cpu", "cpuacct", "freezer")
# a file that must exist in a child directory of each controller for the driver to work
_NEEDS = {
    "memory": "memory.limit_in_bytes",
    "pids": "pids.max",
    "cpu": "cpu.cfs_quota_us",
    "cpuacct": "cpuacct.usage",
    "freezer": "freezer.state",
}
CFS_PERIOD_US = 100_000
KILL_TIMEOUT_S = 2.0
REMOVE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Hierarchy:
    """One v1 hierarchy: where it is mounted and our own cgroup's directory in it."""

    controllers: frozenset[str]
    mount: str
    base: str  # this process's own cgroup directory (children are created here)
    read_only: bool


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def own_cgroups(text: str) -> dict[str, str]:
    """/proc/self/cgroup -> {controller: path}; `""` is the v2 unified tree."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for c in parts[1].split(",") if parts[1] else [""]:
                out[c] = parts[2]
    return out


def hierarchies(mountinfo: str, cgroup: str) -> tuple[dict[str, Hierarchy], bool]:
    """The v1 hierarchies holding our controllers ({controller: Hierarchy}) and whether a
    cgroup2 mount exists. A hierarchy mounted at a sub-path (a container without a
    cgroup namespace) maps our path by stripping the mount's root."""
    own = own_cgroups(cgroup)
    found: dict[str, Hierarchy] = {}
    v2 = False
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        if not sep:
            continue
        fields, tail = pre.split(), post.split()
        if len(fields) < 6 or len(tail) < 3:
            continue
        fstype, super_opts = tail[0], tail[2].split(",")
        if fstype == "cgroup2":
            v2 = True
            continue
        if fstype != "cgroup":
            continue
        ctrls = frozenset(o for o in super_opts if o in CONTROLLERS)
        if not ctrls:
            continue
        root, mount = _unescape(fields[3]), _unescape(fields[4])
        path = own.get(next(iter(ctrls)), "/")
        if root != "/" and (path == root or path.startswith(root + "/")):
            path = path[len(root) :]
        elif root != "/":
            continue  # a bind mount of some other part of the tree: not ours
        rel = path.strip("/")
        h = Hierarchy(
            ctrls,
            mount,
            os.path.join(mount, rel) if rel else mount,
            "ro" in fields[5].split(","),
        )
        for c in ctrls:
            found.setdefault(c, h)
    return found, v2


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def detect() -> tuple[dict[str, Hierarchy], bool]:
    return hierarchies(_read("/proc/self/mountinfo"), _read("/proc/self/cgroup"))


def probe() -> str | None:
    """None when the driver can run here, else why not (for /metadata)."""
    try:
        found, v2 = detect()
    except OSError as e:
        return f"cannot read /proc/self: {e.strerror}"
    if not found:
        return "cgroup v2 only (driver not built)" if v2 else "no cgroup v1 mounted"
    for c in CONTROLLERS:
        if c not in found:
            return f"no v1 {c} hierarchy"
    name = f"python_env-probe-{os.getpid()}-{secrets.token_hex(4)}"
    for h in _distinct(found.values()):
        if h.read_only:
            return f"{h.mount} is read-only"
        d = os.path.join(h.base, name)
        try:
            os.mkdir(d)
        except OSError as e:
            return f"cannot create a cgroup in {h.base}: {e.strerror}"
        why = None
        for c in sorted(h.controllers):
            mode = os.R_OK if c == "cpuacct" else os.W_OK
            if not os.access(os.path.join(d, _NEEDS[c]), mode):
                why = f"{c}: {_NEEDS[c]} missing or not writable"
        if why is None and not os.access(os.path.join(d, "cgroup.procs"), os.W_OK):
            why = f"{h.mount}: cgroup.procs not writable"
        if not _rmdir(d, REMOVE_TIMEOUT_S):
            why = why or f"cannot remove {d}"
        if why is not None:
            return why
    return None


def _distinct(hs: Iterable[Hierarchy]) -> list[Hierarchy]:
    seen: dict[str, Hierarchy] = {}
    for h in hs:
        seen.setdefault(h.base, h)
    return list(seen.values())


def _rmdir(path: str, timeout_s: float) -> bool:
    """rmdir a cgroup (and any child cgroups, deepest first); retry while busy (the last
    tasks of a killed group leave asynchronously). Never raises."""
    deadline = time.monotonic() + timeout_s
    try:
        subs = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return True
    except OSError:
        subs = []
    ok = all(_rmdir(s, max(0.0, deadline - time.monotonic())) for s in subs)
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return ok
        except FileNotFoundError:
            return ok
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def join(procs_files: Iterable[str], pid: int = 0) -> None:
    """Write `pid` into each cgroup.procs; 0 is the calling process. A forked child that
    joins its group itself, before it runs anything (and before it drops privileges),
    leaves no window in which it could fork outside the group: the parent attaching the
    pid it was told about races with the child."""
    for path in procs_files:
        with open(path, "w") as f:
            f.write(str(pid))


class Cgroup:
    """One cgroup tree: a directory per distinct hierarchy, all named `<prefix>/<name>`."""

    def __init__(self, dirs: dict[str, str]) -> None:
        self.dirs = dirs  # controller -> directory (co-mounted controllers share one)
        self._oom_fds: list[int] = []
        self._oom_base = 0
        self._counters: dict[str, int] = {}  # hot counters kept open: pread is ~1 us

    def _counter(self, controller: str, file: str) -> int:
        """A counter read through an fd kept open (an open/read/close costs ~14 us; the
        engine reads CPU and tasks on every run and every kernel cell)."""
        fd = self._counters.get(file)
        if fd is None:
            fd = os.open(self._path(controller, file), os.O_RDONLY | os.O_CLOEXEC)
            self._counters[file] = fd
        return int(os.pread(fd, 64, 0))

    @classmethod
    def create(cls, prefix: str, name: str, found: dict[str, Hierarchy] | None = None) -> Cgroup:
        """mkdir `<own cgroup>/<prefix>/<name>` in each hierarchy; a name that exists is
        an error (names are unique). On failure nothing is left behind."""
        if found is None:
            found = detect()[0]
        made: list[str] = []
        dirs: dict[str, str] = {}
        try:
            for h in _distinct(found[c] for c in CONTROLLERS):
                os.makedirs(os.path.join(h.base, prefix), exist_ok=True)
                d = os.path.join(h.base, prefix, name)
                os.mkdir(d)
                made.append(d)
                for c in h.controllers:
                    dirs[c] = d
        except BaseException:
            for d in made:
                _rmdir(d, REMOVE_TIMEOUT_S)
            raise
        return cls(dirs)

    def _path(self, controller: str, file: str) -> str:
        return os.path.join(self.dirs[controller], file)

    def _write(self, controller: str, file: str, value: str) -> None:
        with open(self._path(controller, file), "w") as f:
            f.write(value)

    def _int(self, controller: str, file: str) -> int:
        return int(_read(self._path(controller, file)))

    def attach(self, pid: int) -> None:
        """Move `pid` (all its threads) into every controller's group."""
        join(self.procs_files(), pid)

    def procs_files(self) -> list[str]:
        """The cgroup.procs file of each hierarchy: what a child needs to join() itself."""
        return [os.path.join(d, "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def limit(
        self,
        memory_bytes: int | None = None,
        tasks: int | None = None,
        cpu_cores: float | None = None,
    ) -> None:
        """Set the limits given (None leaves one as it is). Memory caps RAM and, where
        swap accounting exists, RAM + swap (so a tree cannot spill into swap)."""
        if memory_bytes is not None:
            value = str(int(memory_bytes))
            memsw = self._path("memory", "memory.memsw.limit_in_bytes")
            has_memsw = os.path.exists(memsw)
            try:
                self._write("memory", "memory.limit_in_bytes", value)
            except OSError as e:
                # raising the limit above the current memsw limit: memsw must go first
                if e.errno != errno.EINVAL or not has_memsw:
                    raise
                self._write("memory", "memory.memsw.limit_in_bytes", value)
                self._write("memory", "memory.limit_in_bytes", value)
            else:
                if has_memsw:
                    self._write("memory", "memory.memsw.limit_in_bytes", value)
        if tasks is not None:
            self._write("pids", "pids.max", str(int(tasks)))
        if cpu_cores is not None:
            self._write("cpu", "cpu.cfs_period_us", str(CFS_PERIOD_US))
            quota = max(1000, int(cpu_cores * CFS_PERIOD_US)) if cpu_cores > 0 else -1
            self._write("cpu", "cpu.cfs_quota_us", str(quota))

    def memory_bytes(self) -> int:
        """RAM charged to the tree, including tmpfs/shm pages it wrote (even unmapped)."""
        return self._int("memory", "memory.usage_in_bytes")

    def memory_peak(self) -> int:
        return self._int("memory", "memory.max_usage_in_bytes")

    def cpu_s(self) -> float:
        """CPU time of every task that ever ran in the group (exited ones included)."""
        return self._counter("cpuacct", "cpuacct.usage") / 1e9

    def tasks(self) -> int:
        """Processes + threads now in the group (what pids.max caps)."""
        return self._counter("pids", "pids.current")

    def pids(self) -> list[int]:
        return [int(x) for x in _read(self._path("freezer", "cgroup.procs")).split()]

    def freeze(self) -> None:
        """Ask the kernel to freeze every task; returns as soon as it is written (the
        state passes through FREEZING: see frozen())."""
        self._write("freezer", "freezer.state", "FROZEN")

    def thaw(self) -> None:
        self._write("freezer", "freezer.state", "THAWED")

    def frozen(self) -> bool:
        return _read(self._path("freezer", "freezer.state")).strip() == "FROZEN"

    def kill(self, timeout_s: float = KILL_TIMEOUT_S) -> bool:
        """SIGKILL every process until the group is empty; True if it emptied in time.
        Freezes first so nothing can fork while it is being killed, signals, thaws (a
        frozen task dies only once thawed), then repeats for stragglers."""
        deadline = time.monotonic() + timeout_s
        try:
            if not self.pids():
                return True  # the common case after a run: one read
        except FileNotFoundError:
            return True
        except OSError:
            pass
        try:
            self.freeze()
            while not self.frozen() and time.monotonic() < deadline - timeout_s / 2:
                time.sleep(0.001)
        except OSError:
            pass
        delay = 0.0005
        while True:
            try:
                pids = self.pids()
            except FileNotFoundError:
                return True
            except OSError:
                return False
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.thaw()
            except OSError:
                pass
            if not pids:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def oom_kills(self) -> int:
        """How many tasks the kernel OOM-killed for this group's limit since create() or
        reset() (the failcnt of charges that hit the limit on kernels without the
        oom_kill counter)."""
        return self._oom_counter() - self._oom_base

    def _oom_counter(self) -> int:
        for line in _read(self._path("memory", "memory.oom_control")).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return self._int("memory", "memory.failcnt")

    def reset(self) -> None:
        """Zero the counters so an emptied group can serve the next run (creating and
        removing a group per run costs milliseconds; reusing one costs this)."""
        self._write("cpuacct", "cpuacct.usage", "0")
        self._write("memory", "memory.max_usage_in_bytes", "0")
        self._write("memory", "memory.failcnt", "0")
        self._oom_base = self._oom_counter()  # oom_kill cannot be written
        for fd in self._oom_fds:
            try:
                os.read(fd, 8)  # drain an OOM event of the previous run
            except BlockingIOError:
                pass

    def oom_eventfd(self) -> int:
        """An eventfd (non-blocking, close-on-exec) that becomes readable when the group
        hits its memory limit: select() on it. Closed by remove() (or by the caller)."""
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            cfd = os.open(self._path("memory", "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._write("memory", "cgroup.event_control", f"{efd} {cfd}")
            finally:
                os.close(cfd)
        except BaseException:
            os.close(efd)
            raise
        self._oom_fds.append(efd)
        return efd

    def release_fds(self) -> None:
        """Close the counters and OOM eventfds kept open (an idle kernel's group need hold
        no fd: kernel.py parks it); counters reopen on their next read, and a new
        `oom_eventfd()` registers anew."""
        for fd in [*self._oom_fds, *self._counters.values()]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._oom_fds.clear()
        self._counters.clear()

    def remove(self, timeout_s: float = REMOVE_TIMEOUT_S) -> bool:
        """Kill the tree and delete the directories; True if none is left. Never raises."""
        try:
            self.kill(timeout_s / 2)
        except Exception:
            pass
        for fd in [*self._oom_fds, *self._counters.values()]:
            try:
                os.close(fd)
            except OSError:
                pass
        self._oom_fds.clear()
        self._counters.clear()
        ok = True
        for d in dict.fromkeys(self.dirs.values()):
            ok = _rmdir(d, timeout_s / 2) and ok
        return ok


def sweep(prefix: str, is_dead: Callable[[str], bool]) -> list[str]:
    """Remove leftover groups under `<prefix>` whose owner is dead (`is_dead(name)`, e.g.
    a name starting with a pid that no longer runs): the directories a crashed server
    left behind. Returns the names removed. Never raises."""
    try:
        found = detect()[0]
        hs = _distinct(found[c] for c in CONTROLLERS if c in found)
    except (OSError, ValueError):
        return []
    names: set[str] = set()
    for h in hs:
        try:
            names.update(e.name for e in os.scandir(os.path.join(h.base, prefix)) if e.is_dir())
        except OSError:
            continue
    removed = []
    for name in sorted(names):
        if not is_dead(name):
            continue
        dirs = {}
        for h in hs:
            d = os.path.join(h.base, prefix, name)
            if os.path.isdir(d):
                dirs.update(dict.fromkeys(h.controllers, d))
        if _sweep_one(dirs):
            removed.append(name)
    return removed


def _sweep_one(dirs: dict[str, str]) -> bool:
    cg = Cgroup(dirs)
    if "freezer" not in dirs:  # a partial leftover: no freezer, kill what remains by pid
        for d in dict.fromkeys(dirs.values()):
            try:
                for pid in _read(os.path.join(d, "cgroup.procs")).split():
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        return all(_rmdir(d, REMOVE_TIMEOUT_S) for d in dict.fromkeys(dirs.values()))
    return cg.remove()


def remove_prefix(prefix: str) -> bool:
    """rmdir the (empty) `<prefix>` directories; False if one still holds groups."""
    try:
        found = detect()[0]
    except OSError:
        return False
    ok = True
    for h in _distinct(found[c] for c in CONTROLLERS if c in found):
        try:
            os.rmdir(os.path.join(h.base, prefix))
        except FileNotFoundError:
            pass
        except OSError:
            ok = False
    return ok
