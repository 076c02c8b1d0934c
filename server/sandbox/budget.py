"""One budget for a run's whole process tree, whatever mechanism holds it here.

`select_budget()` runs once at start: cgroup v1 where `cgroups.probe()` says it is
usable (the kernel enforces memory, tasks and CPU share for every descendant, and
freezes them), else the /proc fallback (`proctree`: polled memory and task budgets,
SIGSTOP/SIGCONT freezing, no CPU-share cap). Both give the same `TreeBudget`. A total
CPU-time budget is polled by the same Watcher thread with either mechanism (no kernel
interface stops a cgroup at N CPU-seconds).

A cgroup v2 driver (not built: this machine's v2 mount has no controllers, and a driver
no test runs is not done) would be a third `TreeBudget`: one directory in the unified
tree (delegated to us: `cgroup.subtree_control` enabling memory, pids, cpu), `memory.max`
(+ `memory.swap.max` 0), `pids.max`, `cpu.max` ("quota period"), `cpu.stat` usage_usec,
`memory.current`, `cgroup.freeze` (+ `cgroup.events` frozen 1), `cgroup.kill` (one write
kills the tree, no pid loop), `memory.events` oom_kill (poll()able for the OOM event),
and the v2 "no internal processes" rule (our own process must sit in a leaf).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from typing import ClassVar

from . import cgroups, proctree

CGROUP_V1, PROC_WATCH = "cgroup_v1", "proc_watch"
Disk = tuple[Sequence[str], int]  # the directories a tree writes to, and their budget in bytes


class TreeBudget:
    """The budget of one tree. `add()` its first process (the kernel, or a run's child)
    before it allocates; every process it forks is in the tree. `memory_exceeded()` is
    True once the tree was killed (or a process OOM-killed) for going over memory."""

    mechanism: ClassVar[str]
    holds: ClassVar[frozenset[str]]  # which limits the mechanism enforces

    def __init__(self) -> None:
        self.first: int | None = None

    def add(self, pid: int) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        raise NotImplementedError

    def memory_bytes(self) -> int:
        raise NotImplementedError

    def cpu_s(self) -> float:
        raise NotImplementedError

    def tasks(self) -> int:
        raise NotImplementedError

    def busy(self, first_alive: bool = False) -> bool:
        """Does anything but the first process's main thread exist (a child, a thread)?"""
        pids = self.pids()
        return any(p != self.first for p in pids) or self.tasks() > len(pids)

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def kill(self) -> bool:
        """Kill every process of the tree; True once none is left."""
        raise NotImplementedError

    def memory_exceeded(self) -> bool:
        raise NotImplementedError

    def cpu_exceeded(self) -> bool:
        """True once the Watcher killed the tree for its total CPU time."""
        raise NotImplementedError

    def disk_exceeded(self) -> bool:
        """True once the Watcher killed the tree for its files (a disk budget is given
        only where the workdir is not a size-limited tmpfs)."""
        w = getattr(self, "w", None)
        return w is not None and w.exceeded == "disk"

    def check_disk(self) -> bool:
        """Read the files' usage now (after a cell or run: what the last poll missed);
        over the budget, kill the tree and mark it. True if over."""
        w = getattr(self, "w", None)
        if w is None or w.exceeded is not None or not w.over_disk():
            return w is not None and w.exceeded == "disk"
        w.exceeded = "disk"
        self.kill()
        return True

    def reset(self) -> bool:
        """Kill what is left and zero the counters, for the next run (cheaper than a new
        budget: see benchmarks/README.md); False if the tree would not die."""
        raise NotImplementedError

    def close(self) -> None:
        """Kill what is left and release the mechanism's resources. Never raises."""
        raise NotImplementedError


class CgroupBudget(TreeBudget):
    """The kernel holds memory (RAM + swap), tasks and the CPU share. Over memory, the
    kernel OOM-kills one process (the largest) and `oom_fd` becomes readable: select()
    on it with the run's pipes and kill() the rest for a whole-tree kill."""

    mechanism = CGROUP_V1
    holds = frozenset({"memory", "tasks", "cpu_cores", "cpu_s", "freeze"})

    def __init__(
        self,
        prefix: str,
        name: str,
        memory_bytes: int | None = None,
        tasks: int | None = None,
        cpu_cores: float | None = None,
        cpu_s: float | None = None,
        watcher: proctree.Watcher | None = None,
        disk: Disk | None = None,
    ) -> None:
        super().__init__()
        self.cg = cgroups.Cgroup.create(prefix, name)
        self.watcher = watcher
        self.w: proctree.Watch | None = None
        try:
            self.cg.limit(memory_bytes, tasks, cpu_cores)
            self.oom_fd: int | None = self.cg.oom_eventfd()  # select() on it: readable on OOM
            if cpu_s is not None or disk is not None:
                if watcher is None:
                    raise ValueError("a CPU-time or disk budget needs a watcher")
                paths, disk_budget = disk if disk is not None else ([], None)
                self.w = watcher.add(
                    proctree.Watch(
                        [],
                        None,
                        cpu_budget_s=cpu_s,
                        sample=self._sample,
                        kill=self.cg.kill,
                        disk_paths=list(paths),
                        disk_budget=disk_budget,
                    )
                )
        except BaseException:
            self.cg.remove()
            raise

    def _sample(self) -> tuple[int, int, float]:
        return 0, 0, self.cg.cpu_s()  # memory and tasks: the kernel holds them

    def add(self, pid: int) -> None:
        """Attach `pid`, unless it joined already (cgroups.join() in the child)."""
        if pid not in self.cg.pids():
            self.cg.attach(pid)
        if self.first is None:
            self.first = pid

    def pids(self) -> list[int]:
        return self.cg.pids()

    def memory_bytes(self) -> int:
        return self.cg.memory_bytes()

    def cpu_s(self) -> float:
        return self.cg.cpu_s()

    def tasks(self) -> int:
        return self.cg.tasks()

    def busy(self, first_alive: bool = False) -> bool:
        """`first_alive`: the caller knows the first process lives, so one read of the
        task count answers (the kernel asks after every cell)."""
        n = self.cg.tasks()
        return n > 1 or (n == 1 and not first_alive and self.cg.pids() != [self.first])

    def freeze(self) -> None:
        self.cg.freeze()
        if self.w is not None:
            self.w.paused = True

    def thaw(self) -> None:
        self.cg.thaw()
        if self.w is not None:
            self.w.paused = False

    def kill(self) -> bool:
        return self.cg.kill()

    def memory_exceeded(self) -> bool:
        return self.cg.oom_kills() > 0

    def cpu_exceeded(self) -> bool:
        return self.w is not None and self.w.exceeded == "cpu"

    def reset(self) -> bool:
        if not self.cg.kill():
            return False
        self.cg.reset()
        self.first = None
        if self.w is not None:
            self.w.exceeded, self.w.paused = None, False
        return True

    def close(self) -> None:
        if self.watcher is not None and self.w is not None:
            self.watcher.unwatch(self.w)
        self.cg.remove()


class ProcBudget(TreeBudget):
    """The Watcher polls memory (Pss), tasks and CPU time and kills the whole tree over
    any of them (overshoot: see proctree); no CPU-share cap (rlimits stay per process).
    The first process should call proctree.make_subreaper() so orphans stay in."""

    mechanism = PROC_WATCH
    holds = frozenset({"memory", "tasks", "cpu_s", "freeze"})

    def __init__(
        self,
        watcher: proctree.Watcher,
        memory_bytes: int | None = None,
        tasks: int | None = None,
        cpu_s: float | None = None,
        disk: Disk | None = None,
    ) -> None:
        super().__init__()
        self.watcher = watcher
        paths, disk_budget = disk if disk is not None else ([], None)
        self.w = proctree.Watch(
            [],
            memory_bytes,
            tasks_budget=tasks,
            cpu_budget_s=cpu_s,
            disk_paths=list(paths),
            disk_budget=disk_budget,
        )
        self._watching = False

    def add(self, pid: int) -> None:
        self.w.add_root(pid)
        if self.first is None:
            self.first = pid
        if not self._watching:
            self.watcher.add(self.w)
            self._watching = True

    def pids(self) -> list[int]:
        return self.w.pids()

    def memory_bytes(self) -> int:
        return proctree.memory_bytes(self.pids())

    def cpu_s(self) -> float:
        return proctree.cpu_s(self.pids())

    def tasks(self) -> int:
        return proctree.tasks(self.pids())

    def freeze(self) -> None:
        self.w.paused = True  # a stopped tree does not grow: the watcher skips it
        for root in self.w.live_roots():
            proctree.freeze_tree(root)

    def thaw(self) -> None:
        proctree.thaw(self.pids())
        self.w.paused = False

    def kill(self) -> bool:
        return all([proctree.kill_tree(root) for root in self.w.live_roots()])

    def memory_exceeded(self) -> bool:
        return self.w.exceeded == "memory"

    def cpu_exceeded(self) -> bool:
        return self.w.exceeded == "cpu"

    def reset(self) -> bool:
        self.watcher.unwatch(self.w)  # re-registered by the next add()
        self._watching = False
        ok = self.kill()
        self.w.close()
        self.w.exceeded, self.w.peak_bytes, self.w.last_bytes = None, 0, 0
        self.w.paused = False
        self.first = None
        return ok

    def close(self) -> None:
        try:
            self.watcher.unwatch(self.w)
            self.kill()
            self.w.close()
        except Exception:
            pass


class Budgets:
    """The mechanism chosen at start, and a factory of budgets that use it."""

    def __init__(
        self, mechanism: str, reason: str | None, prefix: str, interval_s: float = 0.05
    ) -> None:
        self.mechanism, self.reason, self.prefix = mechanism, reason, prefix
        self.watcher = proctree.Watcher(interval_s)  # its thread starts with the first watch

    @property
    def report(self) -> tuple[str, str | None]:
        """("cgroup_v1", None) or ("proc_watch", "cgroup: <why not>"), for /metadata."""
        return self.mechanism, self.reason

    def open(
        self,
        name: str,
        memory_bytes: int | None = None,
        tasks: int | None = None,
        cpu_cores: float | None = None,
        cpu_s: float | None = None,
        disk: Disk | None = None,
    ) -> TreeBudget:
        """A new tree budget: memory in bytes, tasks (processes + threads), a CPU share in
        cores (cgroup only), total CPU seconds, and `disk` = (paths, bytes) for the tree's
        files where they are not on a size-limited tmpfs (polled: see diskuse). `name` must be unique under the prefix
        (for cgroups it is the directory name; `sweep()` is given it back to decide
        whether its owner is dead)."""
        if self.mechanism == CGROUP_V1:
            return CgroupBudget(
                self.prefix, name, memory_bytes, tasks, cpu_cores, cpu_s, self.watcher, disk
            )
        return ProcBudget(self.watcher, memory_bytes, tasks, cpu_s, disk)

    def sweep(self, is_dead: Callable[[str], bool]) -> list[str]:
        """Remove groups left by dead owners (cgroups only; /proc trees die with them)."""
        return cgroups.sweep(self.prefix, is_dead) if self.mechanism == CGROUP_V1 else []

    def close(self) -> None:
        self.watcher.close()


def select_budget(
    prefix: str = "python_env", force: str | None = None, interval_s: float = 0.05
) -> Budgets:
    """cgroup v1 where usable, else the /proc watcher; `force` picks one (a forced
    cgroup_v1 that cannot work falls back and says why)."""
    if force == PROC_WATCH:
        return Budgets(PROC_WATCH, "forced by configuration", prefix, interval_s)
    why = cgroups.probe()
    if why is None:
        return Budgets(CGROUP_V1, None, prefix, interval_s)
    return Budgets(PROC_WATCH, f"cgroup: {why}", prefix, interval_s)


_TAG = f"{os.getpid()}-{secrets.token_hex(4)}"


def owner_tag() -> str:
    """`<pid>-<token>` of this process: start every budget name with it, so sweep() can
    tell this server's groups from a dead one's, even one that had the same pid (a
    restarted container's server often does)."""
    if not _TAG.startswith(f"{os.getpid()}-"):  # a forked child: not the owner
        raise RuntimeError("owner_tag() in a forked child")
    return _TAG


def owner_is_dead(name: str) -> bool:
    """For names `<owner-pid>-<token>-...`: is that owner gone? Ours is alive; another
    token under our own pid is a previous process's; a name of another shape is never
    swept."""
    head = name.split("-", 1)[0]
    if not head.isdigit():
        return False
    if int(head) == os.getpid():
        return not name.startswith(_TAG + "-")
    return not os.path.exists(f"/proc/{head}")
