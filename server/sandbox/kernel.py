"""A persistent sandboxed child with REPL semantics (variables survive between runs).

Isolated once when it starts (same layers as a one-shot child), then each run sends
the code (in a memfd) plus fresh stdin/stdout/stderr fds over a SOCK_SEQPACKET
socket; the kernel execs it in its namespace and answers with the exception, if any.
The parent enforces the per-run wall timeout (SIGKILL of the kernel, and with it its
PID namespace) and measures per-run CPU from the kernel's process CPU clock.
A dead kernel is replaced on the next run, which then says kernel_restarted=True.

Idle kernels are parked, never killed: a session's variables are its state, and no
general way exists to save and restore a live interpreter (open files, threads,
generators, C objects), so a kernel's process lives as long as its session. What an idle
kernel does not need is let go: after `PARKER.after_s` without a cell, the server closes
its budget's counter and OOM fds (nothing runs between cells: a tree that left work
behind is frozen), keeping only the control and exit sockets and the pidfd. The next
cell takes them back first (~0.1 ms). This is what lets thousands of
sessions fit in the open-file limit (see benchmarks/README.md, bench_sessions): at most
`PARKER.capacity` kernels are awake at once (sized from that limit and the number of
sessions); a cell that finds none free parks the longest-idle awake kernels, or waits
for a running cell to end (SANDBOX_UNAVAILABLE, retryable, if none ends in time).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import socket
import threading
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import meter as metrics
from .budget import CgroupBudget
from .caps import CODE_INLINE, KILL_GRACE_S
from .capture import StreamCap, parse_line, read_some
from .ioloop import Watch, serve
from .records import Limits, RunResult, SandboxError, run_result
from .spawn import ZygoteLost, devnull, memfd, sigkill
from .syscalls import process_cpu_s
from .treebudget import RunGuard
from .workdirs import check_files, remove_tree

if TYPE_CHECKING:
    from .host import Host


class _Proc:
    def __init__(self, sb: Host, limits: Limits) -> None:
        self.uid = sb.kernel_uid()
        self.workdir = sb.make_workdir(self.uid)
        self.ctl, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.budget = sb.kernel_budget(limits, self.workdir)
        header = {
            "kind": "kernel",
            "workdir": self.workdir,
            "uid": self.uid,
            "limits": limits.as_dict(),
            # the kernel joins its own group before it runs anything (cgroup v1)
            "cgroup": self.budget.cg.procs_files() if isinstance(self.budget, CgroupBudget) else [],
        }
        self.pidns = sb.layer("pid_namespace")
        try:
            self.status, self.pid = sb.kernel_zygote().spawn(header, [child_end.fileno()])
            if self.budget is not None:
                self.budget.add(self.pid)
        except BaseException:
            self.ctl.close()
            if self.budget is not None:
                self.budget.close()
            remove_tree(self.workdir)
            raise
        finally:
            child_end.close()
        self.frozen = False
        self.pidfd: int | None = os.pidfd_open(self.pid)
        self.exit: dict[str, Any] | None = None
        # A cell's I/O (ioloop): the control and exit sockets are watched for good (a
        # poll set holds no fd, so a parked kernel keeps it), a cell adds its pipes.
        self.watch = Watch()
        self.watch.add(self.ctl.fileno(), self._on_reply)
        self.watch.add(self.status.fileno(), self._on_status)
        self.reply: dict[str, Any] | None = None  # the harness's answer to this cell
        self.stopped = False  # by the loop's rules: then only the exit ends the cell
        self._fd_lock = threading.Lock()  # kill() may come from another thread
        self.parked = False
        self.awake = True  # holds one of PARKER's permits (taken by Kernel.run)
        self.counted = True
        metrics.add("kernel_starts_total")
        metrics.add("kernels", 1, "state", "alive")

    def park(self) -> None:
        """Idle: close every fd the next cell can reopen (see the module docstring)."""
        if self.parked or self.exit is not None:
            return
        if isinstance(self.budget, CgroupBudget):
            self.budget.cg.release_fds()
            self.budget.oom_fd = None
        self.parked = True
        metrics.add("kernels", 1, "state", "parked")
        self._let_go()

    def _let_go(self) -> None:
        if self.awake:
            self.awake = False
            PARKER.release()

    def unpark(self) -> None:
        if not self.parked:
            return
        try:
            if isinstance(self.budget, CgroupBudget):
                self.budget.oom_fd = self.budget.cg.oom_eventfd()
        except OSError as e:  # e.g. out of fds: the kernel and its state are untouched
            if isinstance(self.budget, CgroupBudget):
                self.budget.cg.release_fds()
                self.budget.oom_fd = None
            raise SandboxError(f"could not wake the parked kernel: {e}") from None
        self.parked = False
        self.awake = True
        metrics.add("kernels", -1, "state", "parked")

    def _on_reply(self) -> None:
        try:
            msg = self.ctl.recv(1 << 16)
        except OSError:
            msg = b""
        self.reply = parse_line(msg) if msg else None
        if self.reply is None:  # the cell broke the control channel: the exit decides
            self.watch.remove(self.ctl.fileno())
            self.kill()

    def _on_status(self) -> None:
        self.poll_exit(KILL_GRACE_S)

    def on_pipe(self, fd: int, cap: StreamCap) -> None:
        data = read_some(fd)
        if data:
            cap.feed(data)
            if cap.flooding:
                self.kill()
        elif data == b"":
            self.watch.remove(fd)

    def cell_done(self) -> bool:
        return self.exit is not None or (self.reply is not None and not self.stopped)

    def stop(self, why: str) -> None:
        self.stopped = True
        self.kill()

    def cpu_s(self) -> float | None:
        return process_cpu_s(self.pid)

    def poll_exit(self, timeout: float | None = 0.0) -> dict[str, Any] | None:
        if self.exit is None:
            self.status.settimeout(timeout)
            try:
                msg = self.status.recv(4096)
                self.exit = json.loads(msg) if msg else {"exit": None}
            except (TimeoutError, BlockingIOError):
                pass
            except OSError:
                self.exit = {"exit": None}
        return self.exit

    def kill(self) -> None:
        with self._fd_lock:
            if self.exit is None and self.pidfd is not None:
                sigkill(self.pid, self.pidfd, self.pidns)

    def close(self) -> None:
        if self.counted:  # once, even if closing fails half-way and is tried again
            self.counted = False
            metrics.add("kernels", -1, "state", "alive")
            if self.frozen:
                metrics.add("kernels", -1, "state", "frozen")
            if self.parked:
                metrics.add("kernels", -1, "state", "parked")
        self._let_go()
        self.kill()
        self.poll_exit(KILL_GRACE_S)
        self.watch.clear()
        for s in (self.ctl, self.status):
            s.close()
        with self._fd_lock:
            if self.pidfd is not None:
                os.close(self.pidfd)
                self.pidfd = None
        if self.budget is not None:
            self.budget.close()  # every descendant, frozen or not, dies with it
        remove_tree(self.workdir)

    def guard(self, limits: Limits) -> RunGuard | None:
        """Thaw what the last cell left (frozen between cells) and watch this cell."""
        if self.budget is None:
            return None
        if self.frozen:
            self.budget.thaw()
            self.frozen = False
            metrics.add("kernels", -1, "state", "frozen")
        return RunGuard(getattr(self.budget, "oom_fd", None), self.budget.cpu_s, limits)

    def settle(self) -> None:
        """Nothing of the session runs between its cells: freeze what the cell left
        running (children, threads), if anything; the next cell thaws it."""
        if self.budget is not None and self.exit is None and self.budget.busy(first_alive=True):
            self.budget.freeze()
            self.frozen = True
            metrics.add("kernels", 1, "state", "frozen")


class Kernel:
    """See module docstring. Thread-safe (runs are serialized)."""

    def __init__(self, sandbox: Host, limits: Limits) -> None:
        self._sb, self.limits = sandbox, limits
        self._proc: _Proc | None = None
        self._started_once = False
        self._lock = threading.Lock()
        self._closed = False
        self._used = time.monotonic()  # when the last cell ended
        PARKER.watch(self)

    @property
    def alive(self) -> bool:
        p = self._proc
        return p is not None and p.poll_exit() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def reset(self) -> None:
        with self._lock:
            self._drop()
            self._started_once = False

    def close(self) -> None:
        """Kill the kernel and all it started, at once: a cell in flight (in another
        thread) ends now, as killed, instead of running on to its time limit."""
        self._closed = True
        p = self._proc
        if p is not None:
            p.kill()
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._proc is not None:
            self._proc.close()
            self._proc = None

    def run(
        self, code: str, *, stdin: str = "", files: Mapping[str, str] | None = None
    ) -> RunResult:
        payload = json.dumps({"code": code, "files": check_files(files)}).encode()
        with self._lock:
            if self._closed:
                raise SandboxError("kernel is closed")
            restarted = False
            p = self._proc
            if p is None or p.poll_exit() is not None:
                restarted = self._started_once
                self._drop()
                PARKER.admit(self.limits.wall_s)
                try:
                    try:
                        self._proc = _Proc(self._sb, self.limits)
                    except ZygoteLost:  # the kernel zygote died while forking: once more
                        self._proc = _Proc(self._sb, self.limits)
                except BaseException:
                    PARKER.release()
                    raise
                self._started_once = True
            elif p.parked:
                PARKER.admit(self.limits.wall_s)
                try:
                    p.unpark()
                except BaseException:
                    PARKER.release()
                    raise
            if self._closed:  # close() came while the process started: it saw none to kill
                self._drop()
                raise SandboxError("kernel is closed")
            # No slot: a kernel is a process of its own, so a sleeping or blocked cell
            # holds nothing other sessions wait for (its CPU is capped by its budget).
            assert self._proc is not None
            try:
                return self._run(self._proc, payload, stdin, restarted)
            finally:
                self._used = time.monotonic()

    @property
    def idle_awake_since(self) -> float | None:
        """When the last cell of this awake kernel ended (None: parked, or no process)."""
        p = self._proc
        return None if p is None or p.parked else self._used

    def park_if_idle(self, since: float) -> bool:
        """Park the kernel if no cell ran after `since` (never waits for a cell)."""
        p = self._proc
        if p is None or p.parked or self._used > since or not self._lock.acquire(blocking=False):
            return False
        try:
            p = self._proc
            if p is not None and not p.parked and self._used <= since and p.poll_exit() is None:
                p.park()
                return True
            return False
        finally:
            self._lock.release()

    def _run(self, p: _Proc, payload: bytes, stdin: str, restarted: bool) -> RunResult:
        lim = self.limits
        out, err = StreamCap(lim.max_output_bytes), StreamCap(lim.max_output_bytes)
        out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(out_w, True)
        os.set_blocking(err_w, True)
        sin = memfd(stdin.encode()) if stdin else os.dup(devnull())
        fds = [sin, out_w, err_w]
        if len(payload) <= CODE_INLINE:  # in the message itself: no memfd to make and read
            msg = b"I" + payload
        else:
            msg = b"M"
            fds.insert(0, memfd(payload))
        guard = p.guard(lim)
        t0 = time.monotonic()
        cpu0 = p.cpu_s()
        p.reply, p.stopped = None, False
        try:
            socket.send_fds(p.ctl, [msg], fds)
        except OSError:
            p.kill()
        finally:
            for fd in fds:
                os.close(fd)
        p.watch.add(out_r, functools.partial(p.on_pipe, out_r, out))
        p.watch.add(err_r, functools.partial(p.on_pipe, err_r, err))
        try:
            timed_out = serve(p.watch, t0 + lim.wall_s, done=p.cell_done, kill=p.stop, guard=guard)
            timed_out = timed_out or (guard is not None and guard.cpu_hit)
            for fd, cap in ((out_r, out), (err_r, err)):
                for _ in range(64):
                    data = read_some(fd)
                    if not data:
                        break
                    cap.feed(data)
        finally:
            for fd in (out_r, err_r):
                p.watch.remove(fd)
                os.close(fd)
        wall = (time.monotonic() - t0) * 1000
        if p.exit is not None:
            used = float(p.exit.get("utime", 0)) + float(p.exit.get("stime", 0))
        else:
            used = p.cpu_s() or 0.0
        cpu_ms = max(0.0, (used - (cpu0 or 0.0)) * 1000)
        memory_hit = disk_hit = False
        if guard is not None:
            cpu_ms = max(cpu_ms, guard.cpu_used() * 1000)
            assert p.budget is not None
            memory_hit = guard.memory_hit or (p.exit is not None and p.budget.memory_exceeded())
            # the watcher polls the files during the cell; one reading after it catches the
            # rest (over the budget the tree is killed: the next cell starts a fresh kernel)
            disk_hit = p.budget.disk_exceeded() or p.budget.check_disk()
            p.settle()
        return run_result(
            ended=p.exit is not None,
            status=(p.exit or {}).get("exit"),
            out=out,
            err=err,
            reply=p.reply or {},
            limits=lim,
            timed_out=timed_out,
            wall_ms=wall,
            cpu_ms=cpu_ms,
            restarted=restarted,
            memory_hit=memory_hit,
            disk_hit=disk_hit,
        )


FDS_PER_SESSION = 4  # a WebSocket and a parked kernel: control and exit sockets, pidfd
FDS_PER_AWAKE = 9  # an awake kernel's OOM and counter fds, and a cell's pipes
ADMIT_WAIT_S = 60.0  # how long a cell may wait for an awake kernel's permit (+ its wall)


def awake_capacity(sessions: int, reserve: int = 256) -> int:
    """How many kernels may be awake at once in this process's open-file limit when
    `sessions` sessions each hold a parked kernel."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(8, (soft - reserve - FDS_PER_SESSION * sessions) // FDS_PER_AWAKE)


class _Parker:
    """One daemon thread for all kernels: parks each one idle for `after_s` (0: never);
    and the permits of awake kernels (`capacity`), see the module docstring."""

    def __init__(self, after_s: float = 2.0) -> None:
        self.after_s = after_s
        self._kernels: weakref.WeakSet[Kernel] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._room = threading.Lock()
        self.configure(after_s, 64)

    def configure(self, after_s: float, sessions: int, capacity: int | None = None) -> None:
        """Set at server start, before any kernel (see server/runtime.py)."""
        self.after_s = after_s
        self.capacity = capacity or awake_capacity(sessions)
        self._permits = threading.BoundedSemaphore(self.capacity)

    def admit(self, timeout_s: float) -> None:
        """A permit for one more awake kernel: parks idle ones to free one if need be."""
        if self._permits.acquire(blocking=False):
            return
        if self._room.acquire(blocking=False):  # one caller scans; the others wait
            try:
                self._make_room()
            finally:
                self._room.release()
        # Cells end within their wall limit, and trivial ones at once: wait for many.
        if not self._permits.acquire(timeout=ADMIT_WAIT_S + timeout_s):
            raise SandboxError(
                f"{self.capacity} kernels are running cells (the open-file limit); retry"
            )

    def release(self) -> None:
        with contextlib.suppress(ValueError):  # never more than were taken
            self._permits.release()

    def _make_room(self) -> None:
        """Park the longest-idle awake kernels: an eighth of the capacity at once."""
        with self._lock:
            kernels = list(self._kernels)
        idle = [(t, k) for k in kernels if (t := k.idle_awake_since) is not None]
        idle.sort(key=lambda pair: pair[0])
        parked = 0
        for _, k in idle:
            if k.park_if_idle(float("inf")):
                parked += 1
                if parked >= max(1, self.capacity // 8):
                    return

    def watch(self, kernel: Kernel) -> None:
        with self._lock:
            self._kernels.add(kernel)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="kernel-parker", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(min(max(self.after_s / 4, 0.05), 1.0))
            if self.after_s <= 0:
                continue
            self._park_idle(time.monotonic() - self.after_s)

    def _park_idle(self, since: float) -> None:
        """One pass, in a frame of its own: a list of kernels kept in the loop's frame
        between passes held each one alive into the next pass's list, for ever."""
        with self._lock:
            kernels = list(self._kernels)
        for k in kernels:
            k.park_if_idle(since)


PARKER = _Parker()
