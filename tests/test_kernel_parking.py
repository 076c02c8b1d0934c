"""Idle kernels are parked, not killed (server/sandbox/kernel.py): after
PYTHON_ENV_KERNEL_PARK_S without a cell the server lets go of the kernel's spare fds, and
the next cell wakes it with its variables, its frozen leftovers and its budgets intact
(no restart, the memory budget still kills the tree)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest
from python_env.server.launcher import Server, run_server, settle
from websockets.sync.client import connect


@pytest.fixture(scope="module")
def quick_park() -> Iterator[Server]:
    with run_server(PYTHON_ENV_KERNEL_PARK_S="0.2", PYTHON_ENV_MEMORY_MB="128") as s:
        yield s


def step(ws, **action) -> dict:
    ws.send(json.dumps({"type": "step", "data": action}))
    reply = json.loads(ws.recv(timeout=60))
    assert reply["type"] == "observation", reply
    return reply["data"]["observation"]


def server_fds(server: Server) -> int:
    return len(os.listdir(f"/proc/{server.pid}/fd"))


def metric(server: Server, name: str) -> float:
    """One sample of /metrics (`name` with its labels, as served)."""
    for line in httpx.get(server.url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(f"python_env_{name} "):
            return float(line.split()[-1])
    return 0.0


def parked(server: Server) -> float:
    return metric(server, 'kernels{state="parked"}')


def test_a_parked_kernel_wakes_with_its_state(quick_park):
    with connect(quick_park.ws_url) as ws:
        ws.send(json.dumps({"type": "reset", "data": {}}))
        assert json.loads(ws.recv(timeout=60))["type"] == "observation"
        leave_a_thread = (
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
            "x = 41\n"
        )
        step(ws, kind="run", code=leave_a_thread)
        awake_fds = server_fds(quick_park)
        assert settle(lambda: parked(quick_park) == 1)
        assert server_fds(quick_park) < awake_fds  # the spare fds are closed
        starts = metric(quick_park, "kernel_starts_total")
        run = step(ws, kind="run", code="print(x + 1, threading.active_count())")["run"]
        assert run["stdout"] == "42 2\n" and not run["kernel_restarted"], run
        assert metric(quick_park, "kernel_starts_total") == starts
        assert parked(quick_park) == 0 or settle(lambda: parked(quick_park) == 1)


def test_the_memory_budget_holds_after_waking(quick_park):
    with connect(quick_park.ws_url) as ws:
        ws.send(json.dumps({"type": "reset", "data": {}}))
        json.loads(ws.recv(timeout=60))
        step(ws, kind="run", code="y = 1")
        assert settle(lambda: parked(quick_park) >= 1)
        tree_over_budget = (  # each process within its own limit, the tree over 128 MB
            "import os, time\n"
            "for _ in range(4):\n"
            "    if os.fork() == 0:\n"
            "        b = b'x' * (60 * 2**20)\n"
            "        time.sleep(5)\n"
            "        os._exit(0)\n"
            "time.sleep(5)\n"
        )
        run = step(ws, kind="run", code=tree_over_budget)["run"]
        assert run["memory_exceeded"] and not run["timed_out"], run
        run = step(ws, kind="run", code="print(y)")["run"]  # the tree died with its state
        assert run["kernel_restarted"], run


def test_at_capacity_a_cell_parks_the_longest_idle_kernel():
    from python_env.server.sandbox import Sandbox
    from python_env.server.sandbox.kernel import PARKER

    PARKER.configure(0, 64, capacity=2)  # no parking by time; two kernels awake at most
    try:
        with Sandbox(slots=1) as sb:
            kernels = [sb.kernel() for _ in range(3)]
            for i, k in enumerate(kernels):
                assert k.run(f"x = {i}").exit_code == 0
            parked = [k._proc is not None and k._proc.parked for k in kernels]
            assert parked == [True, False, False]  # the first, longest idle, made room
            for i, k in enumerate(reversed(kernels)):
                r = k.run("print(x)")
                assert r.stdout == f"{2 - i}\n" and not r.kernel_restarted, r
            assert sum(k._proc is not None and k._proc.parked for k in kernels) == 1
    finally:
        PARKER.configure(2.0, 64)
