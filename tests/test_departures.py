"""A session's work dies with it: when a WebSocket client goes (closes, drops, or says
`close`) mid-cell, the server closes its environment at once, so its kernel process is
gone long before the cell's own wall limit would have ended it, and nothing of it
outlives the connection. The tests share one server (its process tree is compared
with its idle one). They need the sandbox's `Kernel.close()` to kill a cell in flight
from another thread; the transport's part is to call it at once."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator

import pytest
from python_env.server.launcher import Server, descendants, run_server
from websockets.sync.client import connect

pytestmark = pytest.mark.filterwarnings(r"ignore:connect\(\) must be used as a context manager")

WALL_S = 120  # a cell's own limit: far beyond the waits below, so only a close ends it
GONE_WITHIN_S = 20  # generous for a loaded machine; the cell would otherwise run 120 s


@pytest.fixture(scope="module")
def patient_server() -> Iterator[Server]:
    with run_server(PYTHON_ENV_TIMEOUT_S=str(WALL_S), PYTHON_ENV_CPU_S=str(WALL_S)) as s:
        yield s


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    return int(raw[raw.rfind(")") + 2 :].split()[1])


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if os.path.exists(f"/proc/{p}")}


def _start_sleeping_cell(server: Server):
    """A connection whose kernel is inside `time.sleep(30)`, and that kernel's pids."""
    idle = set(descendants(server.pid))
    ws = connect(server.ws_url, close_timeout=1)
    ws.send(json.dumps({"type": "reset", "data": {}}))
    assert json.loads(ws.recv(timeout=60))["type"] == "observation"
    ws.send(
        json.dumps({"type": "step", "data": {"kind": "run", "code": "import time; time.sleep(30)"}})
    )
    deadline = time.monotonic() + 30
    # the kernel and its descendants; the server's own children are its zygotes
    while not (
        kernel := {p for p in set(descendants(server.pid)) - idle if _ppid(p) != server.pid}
    ):
        assert time.monotonic() < deadline, "no kernel process appeared"
        time.sleep(0.05)
    time.sleep(0.5)  # the cell is running
    return ws, kernel


def _wait_gone(pids: set[int]) -> float:
    t0 = time.monotonic()
    while _alive(pids):
        assert time.monotonic() - t0 < GONE_WITHIN_S, (
            f"kernel {sorted(_alive(pids))} outlived its client"
        )
        time.sleep(0.02)
    return time.monotonic() - t0


def _still_serves(server: Server) -> None:
    with connect(server.ws_url) as ws:
        ws.send(json.dumps({"type": "reset", "data": {}}))
        json.loads(ws.recv(timeout=60))
        ws.send(json.dumps({"type": "step", "data": {"kind": "run", "code": "print(1)"}}))
        reply = json.loads(ws.recv(timeout=60))
        assert reply["data"]["observation"]["run"]["stdout"] == "1\n"


def test_client_close_mid_cell_kills_the_kernel(patient_server):
    ws, kernel = _start_sleeping_cell(patient_server)
    ws.close()
    _wait_gone(kernel)
    _still_serves(patient_server)


def test_dropped_socket_mid_cell_kills_the_kernel(patient_server):
    ws, kernel = _start_sleeping_cell(patient_server)
    ws.socket.shutdown(socket.SHUT_RDWR)  # no close handshake: the peer just vanishes
    ws.socket.close()
    _wait_gone(kernel)
    _still_serves(patient_server)


def test_close_message_mid_cell_kills_the_kernel(patient_server):
    ws, kernel = _start_sleeping_cell(patient_server)
    ws.send(json.dumps({"type": "close"}))
    _wait_gone(kernel)
    ws.close()
    _still_serves(patient_server)


def test_a_frozen_client_is_dropped_by_the_ping_timeout_and_its_kernel_killed(patient_server):
    """A client that stops answering (SIGSTOPped: its connection stays open, like a peer
    behind a dead network) misses the server's keep-alive pings (20 s + 20 s)."""
    import signal
    import subprocess
    import sys

    idle = set(descendants(patient_server.pid))
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, sys, time\n"
            "from websockets.sync.client import connect\n"
            "ws = connect(sys.argv[1])\n"
            "ws.send(json.dumps({'type': 'reset', 'data': {}})); ws.recv(timeout=60)\n"
            "ws.send(json.dumps({'type': 'step', 'data': {'kind': 'run', "
            "'code': 'import time; time.sleep(100)'}}))\n"
            "print('sent', flush=True); time.sleep(600)\n",
            patient_server.ws_url,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "sent"
        deadline = time.monotonic() + 30
        while not (
            kernel := {
                p
                for p in set(descendants(patient_server.pid)) - idle
                if _ppid(p) != patient_server.pid
            }
        ):
            assert time.monotonic() < deadline, "no kernel process appeared"
            time.sleep(0.05)
        client.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        while _alive(kernel):  # pings every 20 s, 20 s to answer; the cell would run 100 s
            assert time.monotonic() - t0 < 75, "a silent client's kernel outlived it"
            time.sleep(0.1)
    finally:
        client.kill()
        client.wait()
    _still_serves(patient_server)
