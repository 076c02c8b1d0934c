"""Parent side of the zygote protocol: start/restart a zygote, spawn children through
it, and pump their pipes (capped) until they exit or the wall deadline passes."""

from __future__ import annotations

import fcntl
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import caps
from .capture import LineReader, StreamCap, parse_line, read_some
from .ioloop import Watch, serve
from .isolation import BASE_ENV
from .records import SandboxError, decode_status
from .treebudget import RunGuard
from .zygote import BOOTSTRAP

F_SETPIPE_SZ = 1031
# The zygote loads this directory under a neutral name: an editable-install finder for
# "python_env" would otherwise import the whole server (openenv, gradio) into it.
ZYGOTE_PACKAGE = "_python_env_sandbox"


class ZygoteLost(SandboxError):
    """The zygote died after it was handed a request: it may already have forked a child
    that writes into the request's pipes, so the request must never be re-sent with
    them. The caller starts over with fresh pipes."""


class ZygoteHandle:
    """One zygote process; restarted transparently when it has died."""

    def __init__(
        self,
        options: dict[str, Any],
        python: str | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> None:
        self.options = options
        self.python = python or sys.executable  # the interpreter agent code runs under
        self.on_start = on_start  # called with the pid of each (re)started zygote
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self.report: dict[str, Any] = {}
        self.pid: int | None = None

    @property
    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def ensure(self) -> socket.socket:
        with self._lock:
            if self._ctl is None or self._proc is None or self._proc.poll() is not None:
                self._stop()
                self._start()
            assert self._ctl is not None
            return self._ctl

    def _start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pkg_dir = os.path.dirname(os.path.abspath(__file__))
        cmd = [
            self.python,
            "-s",
            "-P",
            "-c",
            BOOTSTRAP,
            pkg_dir,
            ZYGOTE_PACKAGE,
            str(child.fileno()),
            json.dumps(self.options),
        ]
        env = dict(BASE_ENV, HOME="/")
        self._proc = subprocess.Popen(
            cmd,
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd="/",
            env=env,
            start_new_session=True,
        )
        child.close()
        parent.settimeout(caps.ZYGOTE_START_S)
        try:
            hello = parent.recv(1 << 16)
        except OSError:
            hello = b""
        if not hello:
            parent.close()
            self._proc.kill()
            self._proc.wait()
            raise SandboxError("the sandbox zygote failed to start (see stderr)")
        parent.settimeout(None)
        info = json.loads(hello)
        self.report, self.pid, self._ctl = info["report"], info["pid"], parent
        if self.on_start is not None:
            try:
                self.on_start(self.pid)
            except BaseException:
                self._ctl = None
                parent.close()
                self._proc.kill()
                self._proc.wait()
                raise

    def _stop(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def wait_dead(self, timeout_s: float) -> bool:
        """Wait for a zygote that is dying (killed) to be gone; True if it is."""
        proc = self._proc
        if proc is None:
            return True
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def mark_dead(self, ctl: socket.socket) -> None:
        with self._lock:
            if self._ctl is ctl and self._proc is not None:
                self._proc.kill()
                self._stop()

    def request(self, header: dict[str, Any], fds: list[int]) -> socket.socket:
        """Ask the zygote to fork without waiting for it: the returned socket gets the
        pid (`read_pid`), then the exit notice. Raises OSError if the zygote is gone."""
        ctl = self.ensure()
        rp, rc = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            socket.send_fds(ctl, [json.dumps(header).encode()], [rc.fileno(), *fds])
        except OSError:
            rp.close()
            raise
        finally:
            rc.close()
        return rp

    def spawn(self, header: dict[str, Any], fds: list[int]) -> tuple[socket.socket, int]:
        """Ask the zygote to fork; returns (exit-notice socket, pid)."""
        data = json.dumps(header).encode()
        for _ in range(3):
            ctl = self.ensure()
            rp, rc = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            msg, sent = b"", False
            try:
                socket.send_fds(ctl, [data], [rc.fileno(), *fds])
                sent = True
                rc.close()
                rp.settimeout(60)
                msg = rp.recv(4096)
                rp.settimeout(None)
            except OSError:
                pass
            finally:
                rc.close()
            if msg:
                answer = json.loads(msg)
                if "error" in answer:  # the host refused: an infrastructure fault
                    rp.close()
                    raise SandboxError(f"the sandbox could not start a process ({answer['error']})")
                return rp, int(answer["pid"])
            rp.close()
            self.mark_dead(ctl)
            if sent:
                raise ZygoteLost("the sandbox zygote died while starting a run")
        raise SandboxError("the sandbox zygote is not answering")

    def close(self) -> None:
        with self._lock:
            self._stop()


def sigkill(pid: int, pidfd: int | None, pidns: bool) -> None:
    """Kill a child and everything it started: its PID namespace dies with it (pidns),
    otherwise its process group (setsid made it the leader). The pidfd never hits a
    recycled pid."""
    if not pidns:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    if pidfd is not None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass


def memfd(data: bytes, name: str = "sbx") -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


_DEVNULL: list[int] = []


def devnull() -> int:
    """A shared read-only /dev/null fd (dup it before handing it out)."""
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _DEVNULL[0]


def _pipe(nonblock_read: bool = True) -> tuple[int, int]:
    r, w = os.pipe2(os.O_CLOEXEC)
    if nonblock_read:
        os.set_blocking(r, False)
    return r, w


class Child:
    """A running sandboxed child as the parent sees it. With `spare`, one forked and
    isolated ahead of its run, waiting for its code: `go()` starts it."""

    def __init__(
        self,
        zygote: ZygoteHandle,
        header: dict[str, Any],
        payload: dict[str, Any],
        stdin: str,
        limits: dict[str, Any],
        *,
        pidns: bool,
        requests: bool = False,
        on_line: Callable[[Child, dict[str, Any] | None], None] | None = None,
        spare: bool = False,
    ) -> None:
        self.limits = limits
        self.out, self.err = (
            StreamCap(limits["max_output_bytes"]),
            StreamCap(limits["max_output_bytes"]),
        )
        self.lines = LineReader(caps.RESULT_TOTAL, caps.RESULT_LINE)
        self.on_line = on_line
        self.exit: dict[str, Any] | None = None
        self.killed_for = ""
        self.pidns = pidns
        self.on_close: Callable[[Child], None] | None = None
        self._fd_lock = threading.Lock()  # kill() may come from another thread
        self._closed = False
        to_close: list[int] = []
        self.out_r, out_w = _pipe()
        self.err_r, err_w = _pipe()
        self.res_r, res_w = _pipe()
        self.pidfd: int | None = None
        self.t0 = self.t1 = 0.0
        self.reply: socket.socket | None = None
        self.pid = 0
        self.req_w: int | None = None
        self._code: socket.socket | None = None
        if spare:
            self._code, code_r = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            fds = [os.dup(devnull()), out_w, err_w, res_w, code_r.fileno()]
            try:
                self.reply = zygote.request(header, fds)
            except BaseException:
                self.close()
                raise
            finally:
                code_r.close()
                for fd in fds[:-1]:
                    os.close(fd)
            return
        pay = memfd(json.dumps(payload).encode())
        sin = memfd(stdin.encode()) if stdin else os.dup(devnull())
        fds = [pay, sin, out_w, err_w, res_w]
        to_close += fds
        if requests:
            req_r, self.req_w = _pipe(nonblock_read=False)
            try:
                fcntl.fcntl(self.req_w, F_SETPIPE_SZ, caps.REQUEST_PIPE)
            except OSError:
                pass
            os.set_blocking(self.req_w, False)
            fds.append(req_r)
            to_close.append(req_r)
        self.t0 = time.monotonic()
        try:
            self.reply, self.pid = zygote.spawn(header, fds)
        except BaseException:
            self.close()
            raise
        finally:
            for fd in to_close:
                os.close(fd)
        self._open_pidfd()

    def _open_pidfd(self) -> None:
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:
            self.pidfd = None

    def go(self, payload: bytes, stdin: str) -> bool:
        """Hand a spare its code (JSON `payload`) and stdin; False if the spare is not
        usable (the zygote refused the fork or died, the child is gone): close it then
        and start the run the ordinary way."""
        if self._code is None or self.reply is None:
            return False
        try:
            self.reply.settimeout(caps.ZYGOTE_START_S)
            answer = json.loads(self.reply.recv(4096) or b"{}")
            self.reply.settimeout(None)
        except (OSError, ValueError):
            return False
        if "pid" not in answer:
            return False
        self.pid = int(answer["pid"])
        self._open_pidfd()
        fds: list[int] = []
        if len(payload) <= caps.CODE_INLINE:
            msg = b"I" + payload
        else:
            msg = b"M"
            fds.append(memfd(payload))
        if stdin:
            fds.append(memfd(stdin.encode()))
        self.t0 = time.monotonic()
        try:
            socket.send_fds(self._code, [msg], fds)
        except OSError:
            return False
        finally:
            for fd in fds:
                os.close(fd)
            self._code.close()
            self._code = None
        return True

    def kill(self, why: str = "") -> None:
        with self._fd_lock:
            if self.exit is not None or self._closed:
                return
            self.killed_for = self.killed_for or why
            if self.pid > 0:  # a spare not started yet has none
                sigkill(self.pid, self.pidfd, self.pidns)

    def send(self, obj: dict[str, Any]) -> bool:
        """Write one request line without ever blocking (the pipe was enlarged; a child
        that does not read its requests, or a message that does not fit, gets False;
        a partial write corrupts the stream, so then the child is killed)."""
        if self.req_w is None:
            return False
        data = (json.dumps(obj) + "\n").encode()
        try:
            n = os.write(self.req_w, data)
        except OSError:
            return False
        if n != len(data):
            self.kill("request channel full")
            return False
        return True

    def close_requests(self) -> None:
        if self.req_w is not None:
            os.close(self.req_w)
            self.req_w = None

    def close(self) -> None:
        self.close_requests()
        if self._code is not None:  # an unused spare: EOF makes it exit
            self._code.close()
            self._code = None
        with self._fd_lock:
            self._closed = True
            for name in ("out_r", "err_r", "res_r", "pidfd"):
                fd = getattr(self, name, None)
                if fd is not None:
                    os.close(fd)
                    setattr(self, name, None)
        if self.reply is not None:
            self.reply.close()
            self.reply = None
        if self.on_close is not None:
            self.on_close(self)
            self.on_close = None

    # -- results
    @property
    def wall_ms(self) -> float:
        return (self.t1 - self.t0) * 1000 if self.t1 else 0.0

    @property
    def lost(self) -> bool:
        """The zygote died under this child (engine failure, worth one retry)."""
        return bool((self.exit or {}).get("lost")) and self.killed_for != "timeout"

    @property
    def cpu_ms(self) -> float:
        e = self.exit or {}
        return (float(e.get("utime", 0.0)) + float(e.get("stime", 0.0))) * 1000

    def status(self) -> tuple[int | None, int | None]:
        """(exit_code, signal)."""
        return decode_status((self.exit or {}).get("exit"))

    def _feed_lines(self, data: bytes) -> None:
        for raw in self.lines.feed(data):
            if self.on_line is not None:
                self.on_line(self, parse_line(raw))
        if self.lines.overflow:
            self.kill("result channel overflow")


def pump(
    children: list[Child],
    deadline: float,
    stop: Callable[[], bool] | None = None,
    guard: RunGuard | None = None,
) -> bool:
    """Serve the children's pipes until all have exited (or `stop()`); SIGKILL them all
    at the deadline, or when their tree (`guard`) hits its memory or CPU budget (the
    rules are `ioloop.serve`'s). Returns True if the deadline was hit."""
    watch = Watch()
    for c in children:
        if c.exit is not None:
            continue
        assert c.reply is not None and c.out_r is not None
        assert c.err_r is not None and c.res_r is not None
        for what, fd in (("out", c.out_r), ("err", c.err_r), ("res", c.res_r)):
            watch.add(fd, functools.partial(_on_data, c, what, watch))
        watch.add(c.reply.fileno(), functools.partial(_on_exit, c, watch))

    def done() -> bool:
        return all(c.exit is not None for c in children) or (stop is not None and stop())

    def kill(why: str) -> None:
        for c in children:
            c.kill(why)

    try:
        timed_out = serve(watch, deadline, done=done, kill=kill, guard=guard)
    finally:
        watch.clear()
    if not done():  # the zygote never told us: give up on it
        for c in children:
            if c.exit is None:
                c.exit, c.t1 = {"exit": None}, time.monotonic()
    return timed_out


def _on_data(c: Child, what: str, watch: Watch, drain: bool = False) -> None:
    fd = {"out": c.out_r, "err": c.err_r, "res": c.res_r}[what]
    if fd is None or (c.exit is not None and not drain):  # after the exit notice: drained
        return
    for _ in range(64 if drain else 1):
        data = read_some(fd)
        if data is None:
            return
        if not data:
            if not drain:
                watch.remove(fd)
            return
        if what == "res":
            c._feed_lines(data)
        else:
            cap = c.out if what == "out" else c.err
            cap.feed(data)
            if cap.flooding:
                c.kill("output limit")
                return


def _on_exit(c: Child, watch: Watch) -> None:
    try:
        msg = c.reply.recv(4096) if c.reply is not None else b""
    except OSError:
        msg = b""
    c.t1 = time.monotonic()
    # no message: the zygote died (and took the child with it): not the child's doing
    c.exit = json.loads(msg) if msg else {"exit": None, "lost": True}
    for what in ("out", "err", "res"):
        _on_data(c, what, watch, drain=True)
    for fd in (c.out_r, c.err_r, c.res_r, c.reply.fileno() if c.reply is not None else None):
        watch.remove(fd)
