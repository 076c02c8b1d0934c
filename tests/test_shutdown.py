"""A graceful stop (SIGTERM, as uvicorn, Docker and Ctrl-C's SIGINT give it) kills every
run and kernel in flight and removes the sandbox root before the server exits; a crash
(`kill -9`) leaves a root that the next start removes, without touching a live server's."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time

import pytest
from python_env.server.launcher import descendants, run_server, sandbox_root, settle
from websockets.sync.client import connect

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings(r"ignore:connect\(\) must be used as a context manager"),
]
LONG = {"PYTHON_ENV_TIMEOUT_S": "120", "PYTHON_ENV_CPU_S": "120"}
STOP_WITHIN_S = 5.0


def _busy(server) -> list:
    """Two sessions mid-step: a sleeping kernel cell and a sleeping one-shot run."""
    sockets = []
    for persistent in (True, False):
        ws = connect(server.ws_url, close_timeout=1)
        ws.send(json.dumps({"type": "reset", "data": {}}))
        assert json.loads(ws.recv(timeout=60))["type"] == "observation"
        step = {"code": "import time; time.sleep(60)", "persistent": persistent}
        ws.send(json.dumps({"type": "step", "data": step}))
        sockets.append(ws)
    return sockets


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_graceful_stop_ends_runs_in_flight_and_removes_the_root(sig) -> None:
    tmp = tempfile.mkdtemp(prefix="python_env_stop_")
    os.chmod(tmp, 0o755)
    with run_server(TMPDIR=tmp, **LONG) as server:
        root = settle(lambda: sandbox_root(tmp))
        assert root is not None
        sockets = _busy(server)
        settle(lambda: len(descendants(server.pid)) >= 4)  # zygotes, a kernel, a run
        tree = set(descendants(server.pid))
        t0 = time.monotonic()
        server.process.send_signal(sig)
        server.process.wait(60)
        took = time.monotonic() - t0
        for ws in sockets:
            ws.close()
    print(f"stopped in {took:.2f} s")
    assert took < STOP_WITHIN_S, f"stop took {took:.1f} s with runs in flight"
    assert not os.path.exists(root), "the sandbox root outlived the server"
    assert not {p for p in tree if os.path.exists(f"/proc/{p}")}, "sandbox processes survived"


def test_a_crashed_servers_root_is_removed_by_the_next_start() -> None:
    tmp = tempfile.mkdtemp(prefix="python_env_crash_")
    os.chmod(tmp, 0o755)
    with run_server(TMPDIR=tmp) as crashed:
        root = settle(lambda: sandbox_root(tmp))
        crashed.process.send_signal(signal.SIGKILL)
        crashed.process.wait(30)
    assert root is not None and os.path.exists(root)  # nothing removed it
    with run_server(TMPDIR=tmp) as live:
        assert not os.path.exists(root), "the dead server's root is still there"
        mine = sandbox_root(tmp)  # the only one left: the live server's
        assert mine is not None
        with run_server(TMPDIR=tmp) as second:  # another replica on the same host
            roots = [r for r in os.listdir(tmp) if r.startswith("pysbx-")]
            assert len(roots) == 2 and os.path.isdir(mine), "a live server's root was swept"
            assert second.process.poll() is None and live.process.poll() is None
