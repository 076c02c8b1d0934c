"""Session capacity and the idle-session reaper (a server of its own, small limits)."""

from __future__ import annotations

import contextlib
import json
import time

from python_env.server.launcher import run_server
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

RESET = json.dumps({"type": "reset", "data": {}})


def first_reply(url: str) -> dict:
    """Open a session, reset, and return the reply; a refused session is closed at once."""
    reply: dict = {}
    with contextlib.suppress(ConnectionClosed), connect(url) as ws:
        with contextlib.suppress(ConnectionClosed):
            ws.send(RESET)
        reply = json.loads(ws.recv(timeout=30))
    return reply


def test_idle_sessions_are_reaped_and_capacity_returns():
    with run_server(MAX_CONCURRENT_ENVS="2", SESSION_TIMEOUT_S="1") as server:
        with contextlib.ExitStack() as abandoned:
            for _ in range(2):  # two sessions that stay open and go silent
                ws = abandoned.enter_context(connect(server.ws_url))
                ws.send(RESET)
                assert json.loads(ws.recv(timeout=30))["type"] == "observation"
            abandoned.push(lambda *exc: isinstance(exc[1], ConnectionClosed))

            reply = first_reply(server.ws_url)
            assert reply["type"] == "error" and reply["data"]["code"] == "CAPACITY_REACHED"

            deadline = time.monotonic() + 30
            while (reply := first_reply(server.ws_url)).get("type") != "observation":
                assert time.monotonic() < deadline, "idle sessions were never reaped"
                time.sleep(1)
            assert reply["data"]["observation"]["kind"] == "reset"
