"""Start a python_env server as a subprocess on a free loopback port, wait until it is
healthy, and stop it afterwards: for tests, benchmarks and notebooks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (not `pid` itself), from one scan of /proc: the
    server's sandbox processes, for tests and benchmarks that check nothing leaks."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    raw = f.read().decode(errors="replace")
            except OSError:
                continue
            # comm may hold spaces and parentheses: the fields start after the last ')'
            children.setdefault(int(raw[raw.rfind(")") + 2 :].split()[1]), []).append(int(name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def settle(check: Any, timeout_s: float = 30.0, interval_s: float = 0.2) -> Any:
    """Poll `check()` until it returns a truthy value or the time is up; return the last
    (tests and benchmarks waiting for a server to wind down)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def sandbox_root(tmpdir: str) -> str | None:
    """The sandbox root (`pysbx-*`) a server made in its own TMPDIR, if exactly one."""
    roots = [os.path.join(tmpdir, d) for d in os.listdir(tmpdir) if d.startswith("pysbx-")]
    return roots[0] if len(roots) == 1 else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_healthy(
    process: subprocess.Popen,
    url: str,
    timeout_s: float,
    what: str = "server",
    detail: Callable[[], str] = lambda: "",
) -> None:
    """Return once `url`/health answers 200; RuntimeError if `process` exits first or
    the time is up (the message: `what`, then `detail()`, e.g. the log's tail)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}{detail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not healthy after {timeout_s:.0f} s{detail()}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`; reaped either way
    (a server gets the time to close its sessions and sandbox before it is killed)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log_path: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""


@contextlib.contextmanager
def run_server(
    startup_timeout_s: float = 120.0, module: str = "python_env.server.app", **env: str
) -> Iterator[Server]:
    """`python -m python_env.server.app` on 127.0.0.1 with extra env vars (e.g.
    MAX_CONCURRENT_ENVS="256"); yields once /health answers, terminates on exit.
    `module` serves another entry point taking the same `--host`/`--port` (a test's
    instrumented server).

    The server's log goes to a temp file, never a pipe: uvicorn logs every WebSocket
    open and close, and a pipe nobody reads would fill up and block the server.
    """
    port = free_port()
    with tempfile.NamedTemporaryFile(
        prefix="python_env_server_", suffix=".log", delete=False
    ) as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, Path(log.name))
    try:
        wait_healthy(
            process, server.url, startup_timeout_s, detail=lambda: f": {server.log_tail()}"
        )
        yield server
    finally:
        stop_process(process)
        with contextlib.suppress(OSError):
            server.log_path.unlink()
