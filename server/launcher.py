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
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"


@contextlib.contextmanager
def run_server(startup_timeout_s: float = 120.0, **env: str) -> Iterator[Server]:
    """`python -m python_env.server.app` on 127.0.0.1 with extra env vars (e.g.
    MAX_CONCURRENT_ENVS="256"); yields once /health answers, terminates on exit."""
    port = free_port()
    log = tempfile.TemporaryFile()  # a file, not a pipe: uvicorn's log must never block it
    process = subprocess.Popen(
        [sys.executable, "-m", "python_env.server.app", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout_s
    try:
        while True:
            if process.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"server exited with {process.returncode}: {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not healthy after {startup_timeout_s:.0f} s")
            time.sleep(0.1)
        yield Server(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
