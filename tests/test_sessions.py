"""Session capacity and the idle-session reaper (a server of its own, small limits)."""

from __future__ import annotations

import contextlib
import json
import time

import pytest
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


def test_a_step_running_when_its_session_closes_records_nothing():
    """The transport closes a departed client's environment from another thread while a
    step runs: the step then records nothing (no step spent, no reward) and the
    environment refuses anything more."""
    import threading

    import pytest
    from python_env import PythonAction
    from python_env.server.python_env_environment import ActionError, PythonEnvironment

    env = PythonEnvironment()
    env.reset(task_id="implement-rle-encode")
    before = env.state.model_copy()
    outcome: list[BaseException | object] = []

    def step() -> None:
        try:
            outcome.append(env.step(PythonAction(code="import time; time.sleep(2)")))
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            outcome.append(exc)

    runner = threading.Thread(target=step)
    runner.start()
    time.sleep(0.5)
    env.close()
    runner.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], ActionError), outcome
    assert outcome[0].code == "SESSION_CLOSED"
    state = env.state
    assert state.step_count == before.step_count == 0
    assert state.steps_remaining == before.steps_remaining and state.total_reward == 0.0
    with pytest.raises(ActionError) as again:
        env.step(PythonAction(code="print(1)"))
    assert again.value.code == "SESSION_CLOSED"


def test_a_step_longer_than_the_idle_timeout_keeps_its_session_and_idle_ones_expire():
    """OpenEnv's reaper counts a step in flight as idle time; the guard reaps instead,
    so a cell that sleeps past SESSION_TIMEOUT_S (and the reaper's 5 s round) is answered
    and its session goes on; silence past the timeout ends the session with a typed
    frame and a closed socket."""
    env = {"SESSION_TIMEOUT_S": "2", "PYTHON_ENV_TIMEOUT_S": "30", "PYTHON_ENV_CPU_S": "30"}
    with run_server(**env) as server, connect(server.ws_url) as ws:
        ws.send(RESET)
        assert json.loads(ws.recv(timeout=30))["type"] == "observation"
        for code in ("import time; time.sleep(8); x = 41", "print(x + 1)"):
            ws.send(json.dumps({"type": "step", "data": {"code": code}}))
            reply = json.loads(ws.recv(timeout=60))
            assert reply["type"] == "observation", reply
        assert reply["data"]["observation"]["run"]["stdout"] == "42\n"
        t0 = time.monotonic()
        expired = json.loads(ws.recv(timeout=30))  # nothing sent: the timeout runs
        assert expired["type"] == "error" and expired["data"]["code"] == "SESSION_TIMEOUT"
        print(f"expired {time.monotonic() - t0:.1f} s after the last reply")
        with contextlib.suppress(TimeoutError), pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
