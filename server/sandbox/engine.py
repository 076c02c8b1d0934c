"""The Sandbox: slots (one zygote each), FIFO-fair queueing, workdirs, uids, and the
one-shot `run`. Kernels live in kernel.py, graded runs in cases.py."""

from __future__ import annotations

import collections
import contextvars
import itertools
import json
import os
import secrets
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from . import meter as metrics
from . import roots
from .budget import (
    CGROUP_V1,
    PROC_WATCH,
    Budgets,
    TreeBudget,
    owner_is_dead,
    owner_tag,
    select_budget,
)
from .cases import run_assertions, run_cases
from .isolation import LAYERS as ISOLATION_LAYERS
from .isolation import OPTIONAL
from .kernel import Kernel
from .records import (
    AssertionResult,
    CaseSpec,
    CasesResult,
    IsolationReport,
    Limits,
    RunResult,
    SandboxError,
    run_result,
)
from .spawn import Child, ZygoteHandle, ZygoteLost, pump
from .treebudget import RunGuard, SlotBudget, kernel_budget
from .workdirs import check_files, listdir, remove_tree

_UID_BLOCK = 1 << 16  # uids per Sandbox: kernels take all but the slots' (kernel.py)
_ATTEMPTS = 3  # of a one-shot run whose zygote died under it
_OWNER: contextvars.ContextVar[object | None] = contextvars.ContextVar("owner", default=None)
FAULTS = {"", "spawn", "fork", "budget"}  # tests only: see Sandbox


class SlotPool:
    """`n` slots handed out strictly first-come first-served, and used round-robin: the
    slot freed last is taken last, so its spare child has the most time to be ready."""

    def __init__(self, n: int) -> None:
        self._free = collections.deque(range(n))
        self._waiters: collections.deque[list[Any]] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> int:
        with self._lock:
            if self._free and not self._waiters:
                return self._free.popleft()
            ticket: list[Any] = [threading.Event(), None]
            self._waiters.append(ticket)
        ticket[0].wait()
        return int(ticket[1])

    def release(self, slot: int) -> None:
        with self._lock:
            if self._waiters:
                ticket = self._waiters.popleft()
                ticket[1] = slot
                ticket[0].set()
            else:
                self._free.append(slot)


class _Spare:
    """A slot's next one-shot child, forked and isolated ahead (see Sandbox._refill)."""

    def __init__(self, child: Child, workdir: str, limits: Limits, zygote_pid: int | None):
        self.child, self.workdir, self.limits, self.zygote_pid = child, workdir, limits, zygote_pid


def _close_all(
    zygotes: list[ZygoteHandle],
    base: str,
    lock_fd: int,
    slot_budgets: list[SlotBudget | None],
    budgets: Budgets | None,
    spares: list[_Spare | None] | None = None,
) -> None:
    for i, spare in enumerate(spares or []):
        if spare is not None:
            spare.child.close()
            spares[i] = None  # type: ignore[index]
    for z in zygotes:
        z.close()
    for b in slot_budgets:
        if b is not None:
            b.close()
    if budgets is not None:
        budgets.close()
    remove_tree(base)
    os.close(lock_fd)


BUDGET_LAYERS = (CGROUP_V1, PROC_WATCH)  # alternatives: the fallback where no cgroup is
LAYERS = (*ISOLATION_LAYERS, *BUDGET_LAYERS)  # every layer a report accounts for


def _budgets(disabled: set[str]) -> tuple[Budgets | None, dict[str, str | None]]:
    """The tree-budget mechanism (cgroup v1, else the /proc watcher) and, for the
    isolation report, each budget layer with None (active) or why it is not."""
    off = "disabled by configuration"
    if {CGROUP_V1, PROC_WATCH} <= disabled:
        return None, {CGROUP_V1: off, PROC_WATCH: off}
    if CGROUP_V1 in disabled:
        return select_budget(force=PROC_WATCH), {CGROUP_V1: off, PROC_WATCH: None}
    budgets = select_budget()
    if budgets.mechanism == CGROUP_V1:
        return budgets, {CGROUP_V1: None, PROC_WATCH: "not needed: cgroup_v1 holds the budgets"}
    if PROC_WATCH in disabled:
        budgets.close()
        return None, {CGROUP_V1: budgets.reason, PROC_WATCH: off}
    return budgets, {CGROUP_V1: budgets.reason, PROC_WATCH: None}


class Sandbox:
    """Runs untrusted Python in forked, isolated children. Thread-safe."""

    def __init__(
        self,
        slots: int | None = None,
        limits: Limits | None = None,
        *,
        disable: Iterable[str] = (),
        fault: str = "",
        python: str | None = None,
    ) -> None:
        """`disable`: isolation layers to turn off on purpose. `fault` (tests only)
        injects an infrastructure fault: "spawn" (no child can be started), "fork" (the
        zygote's fork is refused, as on a host out of processes), "budget" (the tree
        budget mechanism fails).
        `python`: the interpreter the zygotes (so all agent code) run under; default
        the server's own."""
        self.slots = max(1, slots or os.cpu_count() or 1)
        self.limits = limits or Limits()
        disabled = set(disable)
        unknown = disabled - set(OPTIONAL) - set(BUDGET_LAYERS)
        if unknown:
            known = OPTIONAL + BUDGET_LAYERS
            raise ValueError(f"unknown isolation layers: {sorted(unknown)}; known: {known}")
        if fault not in FAULTS:
            raise ValueError(f"unknown sandbox fault {fault!r}; known: {sorted(FAULTS)}")
        self.fault = fault
        self.swept = roots.sweep(remove_tree)  # what dead servers left behind
        self._base, self.token, self._lock_fd = roots.claim()
        self._uid0 = 200_000 + secrets.randbelow(1 << 14) * _UID_BLOCK
        here = os.path.dirname(os.path.abspath(__file__))
        options = {
            "disabled": sorted(disabled),
            "workbase": self._base,
            "private_roots": [os.path.dirname(os.path.dirname(here))],
            "probe_uid": self._uid0,
            "disk_mb": self.limits.disk_mb,
            "fault": fault,
        }
        self.budgets, self._budget_report = _budgets(disabled)
        self.owner_tag = f"{owner_tag()}-{self.token}"  # unique per Sandbox, owner first
        if self.budgets is not None:  # cgroups a dead server left (named after it)
            self.budgets.sweep(owner_is_dead)
        self._zygotes = []
        self._slot_budgets: list[SlotBudget | None] = []
        try:
            for slot in range(self.slots):
                areas = [self._area(slot, role) for role in (0, 1)]
                for area in areas:
                    os.mkdir(area, 0o711)
                sb = None
                if self.budgets is not None:
                    sb = SlotBudget(self.budgets, f"{self.owner_tag}-s{slot}", self.limits)
                self._slot_budgets.append(sb)
                on_start = sb.zygote_started if sb is not None else None
                self._zygotes.append(ZygoteHandle(dict(options, areas=areas), python, on_start))
        except BaseException:
            _close_all(self._zygotes, self._base, self._lock_fd, self._slot_budgets, None)
            raise
        self._spares: list[_Spare | None] = [None] * self.slots
        # Kernels fork from zygotes of their own, outside every slot's memory group: what
        # a kernel touches between its fork and joining its own group stays charged where
        # it forked (~1 MB each), which filled a slot's budget at ~1,000 kernels.
        self._kernel_zygotes = [
            ZygoteHandle(dict(options, areas=[]), python, None) for _ in range(self.slots)
        ]
        self._pool = SlotPool(self.slots)
        self._counter = itertools.count()
        self._kernel_uids = itertools.count()
        self._kernel_rr = itertools.count()
        self._closed = False
        self._report: IsolationReport | None = None
        self._kernels: weakref.WeakSet[Kernel] = weakref.WeakSet()
        # owners are held weakly: a departed session's entry goes with it
        self._owned: weakref.WeakKeyDictionary[Any, set[Child]] = weakref.WeakKeyDictionary()
        self._owned_lock = threading.Lock()
        self._cancelled: weakref.WeakSet[Any] = weakref.WeakSet()
        self._finalizer = weakref.finalize(
            self,
            _close_all,
            [*self._zygotes, *self._kernel_zygotes],
            self._base,
            self._lock_fd,
            self._slot_budgets,
            self.budgets,
            self._spares,
        )

    # -- plumbing shared with kernel.py / cases.py
    @property
    def isolation(self) -> IsolationReport:
        """What the zygote found usable on this host (starts the first zygote)."""
        if self._report is None:
            self._zygotes[0].ensure()
            rep = self._zygotes[0].report
            active = list(rep["active"])
            unavailable = dict(rep["unavailable"])
            for layer, why in self._budget_report.items():
                if why is None:
                    active.append(layer)
                else:
                    unavailable[layer] = why
            self._report = IsolationReport(tuple(active), unavailable)
        return self._report

    def layer(self, name: str) -> bool:
        return name in self.isolation.active

    def zygote_pids(self) -> list[int]:
        """PIDs of the running zygotes (for tests and monitoring)."""
        return [z.pid for z in self._zygotes if z.pid is not None and z.alive]

    @contextmanager
    def slot(self) -> Iterator[int]:
        if self._closed:
            raise SandboxError("sandbox is closed")
        with metrics.slot_wait():
            slot = self._pool.acquire()
        try:
            with metrics.gauge("slots", "state", "busy"):
                yield slot
        finally:
            if self.layer("private_tmpfs"):  # the slot's /dev/shm starts empty for the next run
                for name in listdir(self._view(slot, "/dev/shm")):
                    remove_tree(os.path.join(self._view(slot, "/dev/shm"), name))
            self._pool.release(slot)

    def _area(self, slot: int, role: int) -> str:
        return os.path.join(self._base, f"s{slot}r{role}")

    def _view(self, slot: int, path: str) -> str:
        """`path` as the slot's zygote sees it: with private_tmpfs its areas and /dev/shm
        are tmpfs mounts inside the zygote's own mount namespace (gone with it)."""
        if not self.layer("private_tmpfs"):
            return path
        self._zygotes[slot].ensure()
        return f"/proc/{self._zygotes[slot].pid}/root{path}"

    def uid_for(self, slot: int, role: int) -> int | None:
        return self._uid0 + 4 * slot + role + 4 if self.layer("uid_drop") else None

    def kernel_zygote(self) -> ZygoteHandle:
        """Kernels are spread over the zygotes round-robin."""
        self._inject_fault()
        n = next(self._kernel_rr)
        if n == 0:  # every zygote at once: the long-lived processes are fixed from here
            for z in [*self._zygotes, *self._kernel_zygotes[1:]]:
                z.ensure()
        return self._kernel_zygotes[n % self.slots]

    def kernel_budget(self, limits: Limits, workdir: str | None = None) -> TreeBudget | None:
        """A budget for one kernel's whole tree (None where no mechanism exists); its
        files in `workdir` count against the disk budget where that is not a tmpfs."""
        if self.budgets is None:
            return None
        try:
            if self.fault == "budget":
                raise OSError("injected fault: the budget mechanism failed")
            name = f"{self.owner_tag}-k{next(self._counter)}"
            on_disk = workdir if not self.layer("private_tmpfs") else None
            return kernel_budget(self.budgets, name, limits, on_disk)
        except OSError as e:
            raise SandboxError(f"the sandbox's tree budget is unavailable: {e}") from None

    def kernel_uid(self) -> int | None:
        if not self.layer("uid_drop"):
            return None
        return (
            self._uid0
            + 4 * (self.slots + 1)
            + next(self._kernel_uids) % (_UID_BLOCK - 4 * (self.slots + 1))
        )

    @contextmanager
    def workdir(self, slot: int, role: int, uid: int | None) -> Iterator[str]:
        """A fresh private dir inside the slot's area (the zygote pre-builds one
        Landlock ruleset per area)."""
        path = self._new_workdir(slot, role, uid)
        try:
            yield path
        finally:
            self._drop_workdir(slot, path)

    def _new_workdir(self, slot: int, role: int, uid: int | None) -> str:
        path = os.path.join(self._area(slot, role), f"w{next(self._counter)}")
        for attempt in range(3):
            view = self._view(slot, path)  # restarts a dead zygote
            try:
                os.mkdir(view, 0o700)
                break
            except FileNotFoundError:  # the zygote (and its tmpfs) is dying just now
                if attempt == 2 or not self._zygotes[slot].wait_dead(1.0):
                    raise ZygoteLost("the sandbox zygote died while preparing a run") from None
        if uid is not None:
            try:
                os.chown(view, uid, uid)
            except BaseException:
                self._drop_workdir(slot, path)
                raise
        return path

    def _drop_workdir(self, slot: int, path: str) -> None:
        view = self._view(slot, path)
        try:
            os.rmdir(view)
        except FileNotFoundError:
            pass
        except OSError:
            remove_tree(view)

    def make_workdir(self, uid: int | None) -> str:
        path = os.path.join(self._base, f"k{next(self._counter)}")
        os.mkdir(path, 0o700)
        if uid is not None:
            os.chown(path, uid, uid)
        return path

    def spawn(
        self,
        slot: int,
        kind: str,
        payload: dict[str, Any],
        *,
        workdir: str,
        uid: int | None,
        limits: Limits,
        stdin: str = "",
        requests: bool = False,
        dumpable: bool = True,
        on_line: Any = None,
    ) -> Child:
        owner = self._may_start()
        lim = limits.as_dict()
        header = {"kind": kind, "workdir": workdir, "uid": uid, "limits": lim, "dumpable": dumpable}
        child = Child(
            self._zygotes[slot],
            header,
            payload,
            stdin,
            lim,
            pidns=self.layer("pid_namespace"),
            requests=requests,
            on_line=on_line,
        )
        self._adopt(slot, child, owner)
        return child

    def _may_start(self) -> object | None:
        """The run's owner, after the checks every start makes."""
        self._inject_fault()
        owner = _OWNER.get()
        if owner is not None and owner in self._cancelled:
            raise SandboxError("cancelled: the session that asked for this run has ended")
        return owner

    def _adopt(self, slot: int, child: Child, owner: object | None) -> None:
        """A started child: its owner may cancel it, its slot's budget holds it."""
        if owner is not None:
            with self._owned_lock:
                if owner in self._cancelled:  # cancelled while this child was starting
                    child.kill("cancelled")
                self._owned.setdefault(owner, set()).add(child)
            child.on_close = lambda c: self._disown(owner, c)
        budget = self._slot_budgets[slot]
        if budget is not None:
            budget.add(child.pid)

    # -- spares: a slot's next one-shot child, forked and isolated ahead of its run
    def _take_spare(
        self, slot: int, payload: dict[str, Any], stdin: str, lim: Limits, on_line: Any
    ) -> tuple[Child, str] | None:
        """Start the run in the slot's spare, if it has one made for these limits."""
        spare = self._spares[slot]
        if spare is None or spare.limits != lim:
            return None  # a run with other limits leaves the spare for the next one
        self._spares[slot] = None
        owner = self._may_start()
        z = self._zygotes[slot]
        child = spare.child
        if z.pid == spare.zygote_pid and z.alive and child.go(json.dumps(payload).encode(), stdin):
            child.on_line = on_line
            self._adopt(slot, child, owner)
            return child, spare.workdir
        child.close()  # its zygote is gone (or refused the fork): the ordinary way
        self._drop_workdir(slot, spare.workdir)
        return None

    def _refill(self, slot: int) -> None:
        """Fork the slot's next spare now, while nothing of the slot runs: its fork and
        setup then leave the next run's path. Only with a PID namespace per run (a spare
        is invisible to the runs of its slot until its own run starts); its workdir is
        root's until then. A spare that cannot be made is simply not there."""
        z = self._zygotes[slot]
        if self._closed or self._spares[slot] is not None or not z.alive:
            return
        if not self.layer("pid_namespace"):
            return
        path = os.path.join(self._area(slot, 0), f"w{next(self._counter)}")
        lim = self.limits.as_dict()
        uid = self.uid_for(slot, 0)
        header = {"kind": "spare", "workdir": path, "uid": uid, "limits": lim, "dumpable": True}
        try:
            child = Child(z, header, {}, "", lim, pidns=True, spare=True)
        except (OSError, SandboxError):
            return
        self._spares[slot] = _Spare(child, path, self.limits, z.pid)

    @contextmanager
    def budgeted(self, slot: int, limits: Limits) -> Iterator[RunGuard | None]:
        """The slot's next run under one budget for its whole tree; afterwards the
        guard says whether it hit its memory (`memory_exceeded`) or CPU budget."""
        budget = self._slot_budgets[slot]
        if budget is None:
            yield None
            return
        try:
            if self.fault == "budget":
                raise OSError("injected fault: the budget mechanism failed")
            if not self.layer("private_tmpfs"):
                budget.watch_disk([self._area(slot, role) for role in (0, 1)])
            guard = budget.begin(limits)
        except OSError as e:  # never run a tree without its budget: an infrastructure fault
            raise SandboxError(f"the sandbox's tree budget is unavailable: {e}") from None
        try:
            yield guard
        finally:
            guard.tree_cpu_s = guard.cpu_used()
            guard.memory_exceeded = budget.end(guard)

    # -- cancellation: a session's runs die with it
    @contextmanager
    def owner(self, key: object) -> Iterator[None]:
        """Children started inside this block (in this thread) belong to `key` (any
        object a weak reference can point to, e.g. the session), so `cancel(key)` can
        kill them from another thread: a departed session's one-shot and graded runs
        end at once instead of running on to their time limit."""
        token = _OWNER.set(key)
        try:
            yield
        finally:
            _OWNER.reset(token)

    def cancel(self, key: object) -> None:
        """Kill every child `key` owns now, and any it starts from now on."""
        with self._owned_lock:
            self._cancelled.add(key)
            children = list(self._owned.get(key, ()))
        for c in children:
            c.kill("cancelled")

    def release(self, key: object) -> None:
        """Forget `key` (after cancel, once its step has returned)."""
        with self._owned_lock:
            self._cancelled.discard(key)
            if not self._owned.get(key):
                self._owned.pop(key, None)

    def _disown(self, owner: object, child: Child) -> None:
        with self._owned_lock:
            kids = self._owned.get(owner)
            if kids is not None:
                kids.discard(child)
                if not kids and owner not in self._cancelled:
                    del self._owned[owner]

    def _inject_fault(self) -> None:
        if self.fault == "spawn":
            raise SandboxError("injected fault: the sandbox could not start a process")

    # -- public API
    def run(
        self,
        code: str,
        *,
        stdin: str = "",
        files: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """One-shot: a fresh forked child in a private empty working dir."""
        return self.run_with_info(code, stdin=stdin, files=files, limits=limits)[0]

    def run_with_info(
        self,
        code: str,
        *,
        stdin: str = "",
        files: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> tuple[RunResult, dict[str, Any]]:
        lim = limits or self.limits
        payload = {"code": code, "files": check_files(files)}
        # again if the zygote died under the run (a spare of that zygote may be the next
        # to go with it): an infrastructure fault, never the candidate's result
        for attempt in range(_ATTEMPTS):
            try:
                result, info, lost = self._run_once(payload, stdin, lim)
            except ZygoteLost:
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            if not lost:
                break
        return result, info

    def _run_once(
        self, payload: dict[str, Any], stdin: str, lim: Limits
    ) -> tuple[RunResult, dict[str, Any], bool]:
        info: dict[str, Any] = {}

        def on_line(_c: Child, obj: dict[str, Any] | None) -> None:
            if obj and "exc" in obj:
                info.update(obj)

        with self.slot() as slot:
            with self.budgeted(slot, lim) as guard:
                started = self._take_spare(slot, payload, stdin, lim, on_line)
                if started is None:
                    uid = self.uid_for(slot, 0)
                    wd = self._new_workdir(slot, 0, uid)
                    try:
                        child = self.spawn(
                            slot,
                            "run",
                            payload,
                            workdir=wd,
                            uid=uid,
                            limits=lim,
                            stdin=stdin,
                            on_line=on_line,
                        )
                    except BaseException:
                        self._drop_workdir(slot, wd)
                        raise
                else:
                    child, wd = started
                try:
                    timed_out = pump([child], child.t0 + lim.wall_s, guard=guard)
                finally:
                    child.close()
                    slot_budget = self._slot_budgets[slot]
                    if guard is not None and slot_budget is not None:  # before it is gone:
                        guard.disk_exceeded = slot_budget.check_disk()  # what polls missed
                    self._drop_workdir(slot, wd)
            self._refill(slot)
        result = run_result(
            ended=True,
            status=(child.exit or {}).get("exit"),
            out=child.out,
            err=child.err,
            reply=info,
            limits=lim,
            timed_out=timed_out or (guard is not None and guard.cpu_hit),
            wall_ms=child.wall_ms,
            cpu_ms=max(child.cpu_ms, guard.tree_cpu_s * 1000 if guard is not None else 0.0),
            memory_hit=guard is not None and guard.memory_exceeded,
            disk_hit=guard is not None and guard.disk_exceeded,
        )
        return result, info, child.lost

    def kernel(self, limits: Limits | None = None) -> Kernel:
        """A persistent REPL-like child (see kernel.py); started on its first run."""
        k = Kernel(self, limits or self.limits)
        self._kernels.add(k)
        return k

    def run_cases(
        self,
        source: str,
        cases: Sequence[CaseSpec],
        *,
        entry_point: str | None,
        limits: Limits | None = None,
    ) -> CasesResult:
        return run_cases(self, source, cases, entry_point=entry_point, limits=limits or self.limits)

    def run_assertions(
        self, source: str, test_code: str, *, entry_point: str, limits: Limits | None = None
    ) -> AssertionResult:
        return run_assertions(
            self, source, test_code, entry_point=entry_point, limits=limits or self.limits
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for k in list(self._kernels):
            k.close()
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
