"""Session capacity and the idle-session reaper (a server of its own, small limits)."""

from __future__ import annotations

import json
import time

from websockets.sync.client import connect

from .conftest import run_server


def test_idle_sessions_are_reaped_and_capacity_returns():
    with run_server(MAX_CONCURRENT_ENVS="2", SESSION_TIMEOUT_S="1") as server:
        abandoned = [connect(server.ws_url) for _ in range(2)]
        for ws in abandoned:
            ws.send(json.dumps({"type": "reset", "data": {}}))
            assert json.loads(ws.recv(timeout=30))["type"] == "observation"

        with connect(server.ws_url) as third:
            third.send(json.dumps({"type": "reset", "data": {}}))
            reply = json.loads(third.recv(timeout=30))
            assert reply["type"] == "error" and reply["data"]["code"] == "CAPACITY_REACHED"

        deadline = time.monotonic() + 30
        while True:
            with connect(server.ws_url) as fresh:
                fresh.send(json.dumps({"type": "reset", "data": {}}))
                reply = json.loads(fresh.recv(timeout=30))
            if reply["type"] == "observation":
                break
            assert time.monotonic() < deadline, "idle sessions were never reaped"
            time.sleep(1)
        for ws in abandoned:
            ws.close()
