"""The Sandbox: slots (one zygote each), FIFO-fair queueing, workdirs, uids, and the
one-shot `run`. Kernels live in kernel.py, graded runs in cases.py."""

from __future__ import annotations

import collections
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .isolation import OPTIONAL
from .records import (
    AssertionResult,
    CaseSpec,
    CasesResult,
    IsolationReport,
    Limits,
    RunResult,
    SandboxError,
)
from .spawn import Child, ZygoteHandle, ZygoteLost, pump

if TYPE_CHECKING:
    from .kernel import Kernel

_UID_BLOCK = 4096
FAULTS = {"", "spawn"}


class SlotPool:
    """`n` slots handed out strictly first-come first-served."""

    def __init__(self, n: int) -> None:
        self._free = list(range(n - 1, -1, -1))
        self._waiters: collections.deque[list[Any]] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> int:
        with self._lock:
            if self._free and not self._waiters:
                return self._free.pop()
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


def check_files(files: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, text in (files or {}).items():
        norm = os.path.normpath(name)
        if os.path.isabs(norm) or norm.startswith("..") or not norm or norm == ".":
            raise ValueError(f"file names must be relative paths inside the workdir: {name!r}")
        out[norm] = str(text)
    return out


def remove_tree(path: str) -> None:
    """Delete a run's directory whatever the run left in it; never raises.

    `shutil.rmtree` recurses, so a run that nests 1 200 directories defeats it (and the
    directory would survive as a cache for later runs in the slot); `rm -rf` walks
    iteratively.
    """
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except (OSError, RecursionError):
        subprocess.run(["rm", "-rf", "--", path], stdin=subprocess.DEVNULL, check=False)


def _close_all(zygotes: list[ZygoteHandle], base: str) -> None:
    for z in zygotes:
        z.close()
    remove_tree(base)


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
        """`disable`: isolation layers to turn off on purpose. `fault` (tests only):
        "spawn" makes every start of a child fail as an infrastructure fault would.
        `python`: the interpreter the zygotes (so all agent code) run under; default
        the server's own."""
        self.slots = max(1, slots or os.cpu_count() or 1)
        self.limits = limits or Limits()
        disabled = set(disable)
        unknown = disabled - set(OPTIONAL)
        if unknown:
            raise ValueError(f"unknown isolation layers: {sorted(unknown)}; known: {OPTIONAL}")
        if fault not in FAULTS:
            raise ValueError(f"unknown sandbox fault {fault!r}; known: {sorted(FAULTS)}")
        self.fault = fault
        self._base = tempfile.mkdtemp(prefix="pysbx-")
        os.chmod(self._base, 0o711)
        self._uid0 = 200_000 + secrets.randbelow(1 << 18) * _UID_BLOCK
        here = os.path.dirname(os.path.abspath(__file__))
        options = {
            "disabled": sorted(disabled),
            "workbase": self._base,
            "private_roots": [os.path.dirname(os.path.dirname(here))],
            "probe_uid": self._uid0,
        }
        self._zygotes = [ZygoteHandle(options, python) for _ in range(self.slots)]
        self._pool = SlotPool(self.slots)
        self._counter = itertools.count()
        self._kernel_uids = itertools.count()
        self._kernel_rr = itertools.count()
        self._closed = False
        self._report: IsolationReport | None = None
        self._kernels: weakref.WeakSet[Kernel] = weakref.WeakSet()
        self._finalizer = weakref.finalize(self, _close_all, self._zygotes, self._base)

    # -- plumbing shared with kernel.py / cases.py
    @property
    def isolation(self) -> IsolationReport:
        """What the zygote found usable on this host (starts the first zygote)."""
        if self._report is None:
            self._zygotes[0].ensure()
            rep = self._zygotes[0].report
            self._report = IsolationReport(tuple(rep["active"]), dict(rep["unavailable"]))
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
        slot = self._pool.acquire()
        try:
            yield slot
        finally:
            self._pool.release(slot)

    def zygote(self, slot: int) -> ZygoteHandle:
        return self._zygotes[slot]

    def uid_for(self, slot: int, role: int) -> int | None:
        return self._uid0 + 4 * slot + role + 4 if self.layer("uid_drop") else None

    def kernel_zygote(self) -> ZygoteHandle:
        """Kernels are spread over the zygotes round-robin."""
        self._inject_fault()
        return self._zygotes[next(self._kernel_rr) % self.slots]

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
        area = os.path.join(self._base, f"s{slot}r{role}")
        if not os.path.isdir(area):
            os.makedirs(area, 0o711, exist_ok=True)
        path = os.path.join(area, f"w{next(self._counter)}")
        os.mkdir(path, 0o700)
        try:
            if uid is not None:
                os.chown(path, uid, uid)
            yield path
        finally:
            try:
                os.rmdir(path)
            except OSError:
                remove_tree(path)

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
        self._inject_fault()
        lim = limits.as_dict()
        header = {"kind": kind, "workdir": workdir, "uid": uid, "limits": lim, "dumpable": dumpable}
        return Child(
            self._zygotes[slot],
            header,
            payload,
            stdin,
            lim,
            pidns=self.layer("pid_namespace"),
            requests=requests,
            on_line=on_line,
        )

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
        for attempt in range(2):  # once more if the zygote died under the run
            try:
                result, info, lost = self._run_once(payload, stdin, lim)
            except ZygoteLost:
                if attempt:
                    raise
                continue
            if not lost:
                break
        return result, info

    def _run_once(
        self, payload: dict[str, Any], stdin: str, lim: Limits
    ) -> tuple[RunResult, dict[str, Any], bool]:
        with self.slot() as slot:
            uid = self.uid_for(slot, 0)
            with self.workdir(slot, 0, uid) as wd:
                info: dict[str, Any] = {}

                def on_line(_c: Child, obj: dict[str, Any] | None) -> None:
                    if obj and "exc" in obj:
                        info.update(obj)

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
                try:
                    timed_out = pump([child], child.t0 + lim.wall_s)
                finally:
                    child.close()
        return run_result(child, lim, timed_out, info), info, child.lost

    def kernel(self, limits: Limits | None = None) -> Kernel:
        """A persistent REPL-like child (see kernel.py); started on its first run."""
        from .kernel import Kernel

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
        from .cases import run_cases

        return run_cases(self, source, cases, entry_point=entry_point, limits=limits or self.limits)

    def run_assertions(
        self, source: str, test_code: str, *, entry_point: str, limits: Limits | None = None
    ) -> AssertionResult:
        from .cases import run_assertions

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


def run_result(
    child: Child, lim: Limits, timed_out: bool, info: dict[str, Any], restarted: bool = False
) -> RunResult:
    code, sig = child.status()
    cpu = child.cpu_ms
    cpu_killed = sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= lim.cpu_s * 1000 - 50)
    exc = info.get("exc")
    return RunResult(
        stdout=child.out.text(),
        stderr=child.err.text(),
        stdout_truncated=child.out.truncated,
        stderr_truncated=child.err.truncated,
        exit_code=code,
        signal=sig,
        timed_out=timed_out or bool(cpu_killed),
        memory_exceeded=exc == "MemoryError",
        exception_type=exc,
        exception_message=info.get("msg") if exc else None,
        wall_time_ms=child.wall_ms,
        cpu_time_ms=cpu,
        kernel_restarted=restarted,
    )
