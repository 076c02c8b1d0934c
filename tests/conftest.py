"""Shared fixtures: the real server, started as a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"


@contextlib.contextmanager
def run_server(**env: str) -> Iterator[Server]:
    """Start `python -m python_env.server.app` with extra env vars; stop it afterwards."""
    port = free_port()
    child_env = {**os.environ, **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "python_env.server.app", "--host", "127.0.0.1", "--port", str(port)],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stderr.read().decode()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in 90 s")
            time.sleep(0.1)
        yield Server(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with run_server(
        MAX_CONCURRENT_ENVS="64", SESSION_TIMEOUT_S="300", PYTHON_ENV_TIMEOUT_S="5"
    ) as s:
        yield s


@pytest.fixture(scope="session")
def bank():
    """The task bank as the server loads it (for reference solutions in oracle tests)."""
    from python_env.server.tasks import default_bank

    return default_bank()
