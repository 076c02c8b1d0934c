"""The portable tree budget: account a process tree from /proc and enforce by signals.

For hosts where no cgroup is writable (Docker's default runtime, a Space as uid 1000).
- The tree is the root and its descendants. A child that double-forks or calls setsid
  stays in it only if an ancestor is a child subreaper (orphans are re-parented to the
  nearest one): the root calls make_subreaper() after fork, and must reap (the harness
  exits anyway; zombies hold no memory).
- Memory is the sum of each process's Pss (proportional set size, smaps_rollup): a page
  shared by n processes counts 1/n to each, so copy-on-write pages of forks are counted
  once. Pss includes mapped shared memory (Pss_Shmem: /dev/shm, memfd, MAP_SHARED).
  It misses what no process maps: files written to a tmpfs (or a memfd) and then
  unmapped, pipe and socket buffers, kernel memory (page tables). Where smaps_rollup
  is refused (a non-dumpable process, without CAP_SYS_PTRACE: the fallback's usual
  case for graded runs), its anonymous + shmem RSS is used: an over-count, as pages
  it shares copy-on-write with the zygote count in full.
- Enforcement polls (Watcher): a tree can overshoot its budget by what it allocates in
  one interval plus one poll (measured in benchmarks/README.md, "Tree budgets"). A poll
  reads each process's RSS (cheap) and walks the page tables for Pss only when that
  upper bound is over the budget.
- Freezing is SIGSTOP/SIGCONT per process (a stopped process cannot fork, so repeating
  until no new pid appears freezes the whole tree).
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import diskuse
from . import syscalls as sc

PR_SET_CHILD_SUBREAPER = 36
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_HAS_CHILDREN = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
DISK_EVERY = 4  # polls between readings of a tree's files (a walk costs more than /proc)
SETTLE_ROUNDS = 20  # bound on the re-scans of freeze/kill while a tree is still forking


def make_subreaper() -> None:
    """Become the reaper of every orphaned descendant (call in the tree's root)."""
    sc.prctl(PR_SET_CHILD_SUBREAPER, 1)


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat from field 3 (state) on; comm may hold spaces and ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].split()


def parents() -> dict[int, list[int]]:
    """{ppid: [pids]} from one scan of /proc (for kernels without task/*/children)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(name))
    return children


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def descendants(pid: int, scan: dict[int, list[int]] | None = None) -> list[int]:
    """Live descendants of `pid` (not `pid` itself): from /proc/<pid>/task/<tid>/children
    where the kernel has it (cost ~ the tree), else from one /proc scan (cost ~ every
    process on the host; pass `scan` to share one scan between trees)."""
    if scan is None and not _HAS_CHILDREN:
        scan = parents()
    out: list[int] = []
    todo = list(scan.get(pid, []) if scan is not None else children(pid))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(scan.get(p, []) if scan is not None else children(p))
    return out


def tree(pid: int, scan: dict[int, list[int]] | None = None) -> list[int]:
    """`pid` and its descendants; [] once `pid` is gone."""
    return [pid, *descendants(pid, scan)] if os.path.exists(f"/proc/{pid}") else []


def pss_bytes(pid: int) -> int:
    """One process's proportional memory (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
        return 0
    except PermissionError:
        return _rss_private_kinds(pid)
    except (OSError, ValueError):
        return 0


def _rss_private_kinds(pid: int) -> int:
    """RssAnon + RssShmem from /proc/<pid>/status (readable without ptrace access):
    leaves out file pages (libraries, shared with everyone), but counts anonymous pages
    shared copy-on-write with a parent in full."""
    total = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith((b"RssAnon:", b"RssShmem:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return total


def memory_bytes(pids: Iterable[int]) -> int:
    return sum(pss_bytes(p) for p in pids)


def rss_bytes(pids: Iterable[int]) -> int:
    """Summed RSS (statm: O(1) per process, no page-table walk): an upper bound of the
    summed Pss, since a process's Pss never exceeds its RSS."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total


def cpu_s(pids: Iterable[int]) -> float:
    """User + system CPU of the processes and of their reaped children (a worker that
    exited and was waited for by a tree member still counts)."""
    return tasks_and_cpu(pids)[1]


def tasks(pids: Iterable[int]) -> int:
    """Threads of the processes (a process counts its main thread)."""
    return tasks_and_cpu(pids)[0]


def tasks_and_cpu(pids: Iterable[int]) -> tuple[int, float]:
    """tasks() and cpu_s() from one read of each process's stat."""
    n = ticks = 0
    for p in pids:
        f = _stat_fields(p)
        if f:
            n += int(f[17])
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return n, ticks / _CLK_TCK


def signal_all(pids: Iterable[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except (ProcessLookupError, PermissionError):
            pass


def freeze(pids: Iterable[int]) -> None:
    signal_all(pids, signal.SIGSTOP)


def thaw(pids: Iterable[int]) -> None:
    signal_all(pids, signal.SIGCONT)


def kill(pids: Iterable[int]) -> None:
    signal_all(pids, signal.SIGKILL)


def freeze_tree(root: int, include_root: bool = True) -> list[int]:
    """SIGSTOP the tree, re-scanning until no new process appears (bounded); returns the
    pids stopped."""
    stopped: set[int] = set()
    for _ in range(SETTLE_ROUNDS):
        pids = set(tree(root)) - stopped
        if not include_root:
            pids.discard(root)
        if not pids:
            break
        freeze(pids)
        stopped |= pids
    return sorted(stopped)


def kill_tree(root: int, timeout_s: float = 2.0, include_root: bool = True) -> bool:
    """Stop the tree (so nothing forks meanwhile), SIGKILL it, and wait until no
    descendant is left (zombies excepted: they hold nothing); True if it emptied."""
    deadline = time.monotonic() + timeout_s
    while True:
        pids = freeze_tree(root, include_root)
        kill(pids)
        left = [p for p in tree(root) if (include_root or p != root) and not _zombie(p)]
        if not left or time.monotonic() >= deadline:
            return not left
        time.sleep(0.002)


def _zombie(pid: int) -> bool:
    f = _stat_fields(pid)
    return f is None or f[0] in (b"Z", b"X")


@dataclass(eq=False)
class Watch:
    """One watched tree (one or more roots) and what the Watcher saw of it. By default
    it is read from /proc and killed by signals; `sample` (memory, tasks, cpu_s) and
    `kill` let another mechanism (a cgroup) be polled the same way."""

    roots: list[int]
    memory_budget: int | None
    on_exceeded: Callable[[Watch], None] | None = None
    tasks_budget: int | None = None
    cpu_budget_s: float | None = None
    paused: bool = False  # a frozen tree does not change: skip it
    disk_paths: list[str] = field(default_factory=list)  # its files (see diskuse)
    disk_budget: int | None = None
    sample: Callable[[], tuple[int, int, float]] | None = None
    kill: Callable[[], object] | None = None
    peak_bytes: int = 0  # of the readings used: RSS while under budget, else Pss
    last_bytes: int = 0
    polls: int = 0
    exceeded: str | None = None  # "memory", "tasks", "cpu" or "disk" once killed for it
    disk_bytes: int = 0  # at the last disk reading
    readings: list[tuple[float, int]] = field(default_factory=list)  # when record=True
    record: bool = False

    def __post_init__(self) -> None:
        self._pidfds: dict[int, int] = {}
        for pid in self.roots:
            self._open(pid)

    def _open(self, pid: int) -> None:
        try:
            self._pidfds[pid] = os.pidfd_open(pid)
        except OSError:  # gone already: never a live root
            pass

    def add_root(self, pid: int) -> None:
        """Watch `pid` too (from now on: a pidfd is taken, so a root that exited is never
        confused with a later process given the same pid)."""
        self.roots.append(pid)
        self._open(pid)

    def live_roots(self) -> list[int]:
        return [
            r
            for r in list(self.roots)
            if r in self._pidfds and not select.select([self._pidfds[r]], [], [], 0)[0]
        ]

    def close(self) -> None:
        """Forget the roots (closes their pidfds)."""
        for fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()
        self.roots.clear()

    def pids(self, scan: dict[int, list[int]] | None = None) -> list[int]:
        """Every live process of the tree (the live roots and their descendants)."""
        roots = self.live_roots()
        if scan is None and not _HAS_CHILDREN and len(roots) > 1:
            scan = parents()
        out: dict[int, None] = {}
        for root in roots:
            out.update(dict.fromkeys(tree(root, scan)))
        return list(out)

    def check(self, mem: int, ntasks: int, cpu: float) -> str | None:
        self.polls += 1
        self.last_bytes = mem
        self.peak_bytes = max(self.peak_bytes, mem)
        if self.record:
            self.readings.append((time.monotonic(), mem))
        if self.memory_budget is not None and mem > self.memory_budget:
            return "memory"
        if self.tasks_budget is not None and ntasks > self.tasks_budget:
            return "tasks"
        if self.cpu_budget_s is not None and cpu > self.cpu_budget_s:
            return "cpu"
        if self.disk_budget is not None and self.polls % DISK_EVERY == 0 and self.over_disk():
            return "disk"
        return None

    def over_disk(self) -> bool:
        """Read the files' usage now (stops at the budget): over it?"""
        if self.disk_budget is None:
            return False
        self.disk_bytes = diskuse.usage(self.disk_paths, self.disk_budget)
        return self.disk_bytes > self.disk_budget


class Watcher:
    """One daemon thread polling every watched tree each `interval_s`: a tree over its
    memory, task or CPU-time budget (or, every DISK_EVERY polls, its files over their
    disk budget) is killed, then `on_exceeded(watch)` is called (in
    the watcher thread: keep it short). Where the kernel lacks task/*/children, one
    /proc scan per poll serves every tree. An unexpected error in a poll is counted in
    `failures` (and kept in `last_error`): the caller can treat a failing watcher as a
    broken mechanism."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self._watches: list[Watch] = []
        self._lock = threading.Lock()
        self._polling = threading.RLock()  # held during a poll (re-entrant: callbacks)
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.poll_s = 0.0  # total time spent polling (for the benchmark)
        self.polled = 0  # process readings taken
        self.failures = 0
        self.last_error: BaseException | None = None

    def watch(
        self,
        root: int,
        memory_budget: int | None,
        on_exceeded: Callable[[Watch], None] | None = None,
        tasks_budget: int | None = None,
        record: bool = False,
    ) -> Watch:
        return self.add(Watch([root], memory_budget, on_exceeded, tasks_budget, record=record))

    def add(self, w: Watch) -> Watch:
        with self._lock:
            if self._stop:
                raise RuntimeError("watcher closed")
            self._watches.append(w)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="proctree-watcher", daemon=True
                )
                self._thread.start()
        return w

    def unwatch(self, w: Watch) -> None:
        """Stop watching `w`; on return no poll is using it (its pidfds can be closed)."""
        with self._lock:
            if w in self._watches:
                self._watches.remove(w)
        with self._polling:
            pass

    def alive(self) -> bool:
        """False once closed or if its thread died (never started: True)."""
        return not self._stop and (self._thread is None or self._thread.is_alive())

    def close(self) -> None:
        """Stop the thread and close every watch still registered."""
        with self._lock:
            self._stop = True
            watches, self._watches = self._watches, []
            t = self._thread
        self._wake.set()
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
        for w in watches:
            w.close()

    def _run(self) -> None:
        while not self._stop:
            start = time.monotonic()
            with self._polling:  # unwatch() waits for it: no poll uses a removed watch
                with self._lock:
                    watches = [w for w in self._watches if not w.paused and w.exceeded is None]
                try:
                    if watches:
                        self.poll(watches)
                except Exception as e:  # keep watching the other trees
                    self.failures += 1
                    self.last_error = e
            self.poll_s += time.monotonic() - start
            self._wake.wait(max(0.0, self.interval_s - (time.monotonic() - start)))

    def poll(self, watches: list[Watch]) -> None:
        scan = None if _HAS_CHILDREN or all(w.sample for w in watches) else parents()
        for w in watches:
            if w.sample is not None:
                try:
                    mem, ntasks, cpu = w.sample()
                except FileNotFoundError:  # removed meanwhile
                    continue
            else:
                pids = w.pids(scan)
                if not pids:
                    continue
                # Pss costs a page-table walk (~10-50 us per resident MB): only when the
                # cheap upper bound (RSS) says the tree may be over its budget
                mem = rss_bytes(pids)
                if w.memory_budget is not None and mem > w.memory_budget:
                    mem = memory_bytes(pids)
                ntasks, cpu = 0, 0.0
                if w.tasks_budget is not None or w.cpu_budget_s is not None:
                    ntasks, cpu = tasks_and_cpu(pids)
                self.polled += len(pids)
            exceeded = w.check(mem, ntasks, cpu)
            if exceeded is None:
                continue
            w.exceeded = exceeded
            if w.kill is not None:
                w.kill()
            else:
                for root in w.live_roots():
                    kill_tree(root)
            if w.on_exceeded is not None:
                try:
                    w.on_exceeded(w)
                except Exception:  # a caller's bug must not stop the watcher
                    pass
