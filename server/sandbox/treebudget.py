"""How the engine holds its two kinds of process trees to one budget (budget.py).

A slot's runs, one at a time (a graded run's candidate and test process together).
With cgroup v1 the slot's zygote itself lives in the slot's group, so every child it
forks is in the group from its first instruction at no per-run cost (attaching a run
costs ~0.2 ms with a 12 ms tail, see benchmarks/README.md). The zygote is never the OOM
killer's choice (oom_score_adj -1000; its children reset theirs), and the group's limit
is the run's budget plus a little for the zygote's own allocations. With the /proc
fallback, the run's processes are the roots of a polled ProcBudget, reset after each run.

A kernel: a budget of its own, joined by the kernel before it runs anything, frozen
between cells when anything but the kernel's main thread is left.

Either way `RunGuard` is what a run's I/O loop consults: an fd that becomes readable
when the tree hit its memory limit (cgroups), and the tree's CPU time, checked at the
earliest moment the CPU budget could be spent (`cpu_s / cpu_cores` after the start,
then again for what is left), so a short run pays no polling at all.
"""

from __future__ import annotations

import os
import time

from . import cgroups
from .budget import CGROUP_V1, Budgets, ProcBudget, TreeBudget
from .records import Limits
from .syscalls import process_cpu_s

ZYGOTE_SLACK = 32 << 20  # the zygote's own allocations after it joined its slot's group
MIN_CHECK_S = 0.01


class RunGuard:
    """One run's view of its budget: the OOM fd, the CPU time used since `begin`."""

    def __init__(self, oom_fd: int | None, cpu: object, limits: Limits) -> None:
        self.oom_fd, self._cpu, self.limits = oom_fd, cpu, limits
        self.cpu0 = self.cpu_used_total()
        self.t0 = time.monotonic()
        self.next_check = self.t0 + limits.cpu_s / max(limits.cpu_cores, MIN_CHECK_S)
        self.memory_hit = False  # the OOM fd fired during the run
        self.cpu_hit = False
        self.memory_exceeded = False  # set when the run is over (OOM or the watcher)
        self.disk_exceeded = False  # likewise: its files went over the disk budget
        self.tree_cpu_s = 0.0  # likewise: the whole tree's CPU time

    def cpu_used_total(self) -> float:
        return float(self._cpu())  # type: ignore[operator]

    def cpu_used(self) -> float:
        return self.cpu_used_total() - self.cpu0

    def check_cpu(self, now: float) -> bool:
        """True when the tree has spent its CPU budget; else schedule the next check."""
        if now < self.next_check:
            return False
        left = self.limits.cpu_s - self.cpu_used()
        if left <= 0:
            self.cpu_hit = True
            self.next_check = float("inf")
            return True
        self.next_check = now + max(left / max(self.limits.cpu_cores, MIN_CHECK_S), MIN_CHECK_S)
        return False

    def on_oom(self) -> None:
        _drain(self.oom_fd)
        self.memory_hit = True


def _drain(fd: int | None) -> bool:
    """Read an eventfd without blocking: True if it had fired."""
    if fd is None:
        return False
    try:
        os.read(fd, 8)
    except BlockingIOError:
        return False
    return True


def tree_limits(limits: Limits) -> tuple[int, int]:
    """(memory bytes, tasks) of one tree: the whole tree gets what one process may."""
    return limits.memory_mb << 20, limits.max_processes


class SlotBudget:
    """The budget of one slot's runs (see module doc)."""

    def __init__(self, budgets: Budgets, name: str, limits: Limits) -> None:
        memory, tasks = tree_limits(limits)
        self.limits = limits
        self.cg: cgroups.Cgroup | None = None
        self.proc: ProcBudget | None = None
        self.oom_fd: int | None = None
        self.zygote = 0
        if budgets.mechanism == CGROUP_V1:
            self.cg = cgroups.Cgroup.create(budgets.prefix, name)
            try:  # two processes per graded run, plus the zygote (and kernels it forks)
                self.cg.limit(memory + ZYGOTE_SLACK, 2 * tasks + 8, limits.cpu_cores)
                self.oom_fd = self.cg.oom_eventfd()
            except BaseException:
                self.cg.remove()
                raise
        else:
            self.proc = ProcBudget(budgets.watcher, memory, 2 * tasks)

    def zygote_started(self, pid: int) -> None:
        """Put a (re)started zygote into the slot's group; its forks follow."""
        if self.cg is not None:
            self.cg.attach(pid)
            self.zygote = pid

    def _runs_cpu_s(self) -> float:
        """The group's CPU less the zygote's own (forking is not the run's doing)."""
        assert self.cg is not None
        return self.cg.cpu_s() - (process_cpu_s(self.zygote) or 0.0)

    def begin(self, limits: Limits) -> RunGuard:
        if self.cg is not None:
            _drain(self.oom_fd)  # an OOM event of an earlier run
            return RunGuard(self.oom_fd, self._runs_cpu_s, limits)
        assert self.proc is not None
        return RunGuard(None, self.proc.cpu_s, limits)

    def watch_disk(self, paths: list[str]) -> None:
        """Where the slot's areas are not a size-limited tmpfs: poll their files against
        the disk budget (the fallback only; see diskuse)."""
        if self.proc is not None and self.proc.w.disk_budget is None:
            self.proc.w.disk_paths = list(paths)
            self.proc.w.disk_budget = self.limits.disk_mb << 20

    def check_disk(self) -> bool:
        """The run's files read once now: over the disk budget (the fallback only)?"""
        return self.proc is not None and self.proc.check_disk()

    def add(self, pid: int) -> None:
        """A run's process (the fallback polls it and its descendants)."""
        if self.proc is not None:
            self.proc.add(pid)

    def end(self, guard: RunGuard) -> bool:
        """After the run: True if its tree went over its memory budget."""
        if self.cg is not None:  # an OOM right at the end is still in the eventfd
            return guard.memory_hit or _drain(self.oom_fd)
        assert self.proc is not None
        exceeded = self.proc.memory_exceeded()
        guard.disk_exceeded = guard.disk_exceeded or self.proc.disk_exceeded()
        self.proc.reset()  # kill what is left of the run (escaped descendants)
        return guard.memory_hit or exceeded

    def close(self) -> None:
        if self.cg is not None:
            self.cg.remove()
        if self.proc is not None:
            self.proc.close()


def kernel_budget(
    budgets: Budgets, name: str, limits: Limits, disk_path: str | None = None
) -> TreeBudget:
    """`disk_path`: the kernel's workdir, where it is not a size-limited tmpfs."""
    memory, tasks = tree_limits(limits)
    disk = ([disk_path], limits.disk_mb << 20) if disk_path is not None else None
    return budgets.open(name, memory, tasks, limits.cpu_cores, disk=disk)
