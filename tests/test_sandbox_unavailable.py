"""An infrastructure fault is an error, never a score: with the sandbox unable to start
anything (the test-only PYTHON_ENV_SANDBOX_FAULT=spawn), every step that needs it answers
SANDBOX_UNAVAILABLE with no reward, nothing recorded and no step spent; the session stays
usable; the client raises `SandboxUnavailable`; the evaluation runner and the TRL adapter
retry and then report an error, never a 0."""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Iterator

import pytest
from python_env import PythonAction, PythonEnv
from python_env.errors import PythonEnvError, SandboxUnavailable
from python_env.eval.policies import StarterPolicy
from python_env.eval.report import summarize
from python_env.eval.runner import EpisodeLog, EpisodeSpec, RemoteSession, play_episode
from python_env.eval.trl_adapter import PythonEnvTools
from python_env.server.launcher import Server, run_server
from websockets.sync.client import connect

TASK = "implement-rle-encode"


@pytest.fixture(scope="module")
def faulty() -> Iterator[Server]:
    with run_server(PYTHON_ENV_SANDBOX_FAULT="spawn") as s:
        yield s


def send(ws, message: dict) -> dict:
    ws.send(json.dumps(message))
    return json.loads(ws.recv(timeout=60))


def test_a_fault_is_a_typed_error_that_spends_and_records_nothing(faulty):
    with connect(faulty.ws_url) as ws:
        reset = send(ws, {"type": "reset", "data": {"task_id": TASK}})["data"]["observation"]
        budget = reset["max_steps"]
        for action in (
            {"kind": "run", "code": "print(1)"},
            {"kind": "run", "code": "print(1)", "persistent": False},
            {"kind": "test"},
            {"kind": "submit"},
            {"kind": "run", "code": "print(1)"},  # the same step again: same answer
        ):
            reply = send(ws, {"type": "step", "data": action})
            assert reply["type"] == "error", (action, reply)
            assert reply["data"]["code"] == "SANDBOX_UNAVAILABLE", reply
            state = send(ws, {"type": "state"})["data"]
            assert state["step_count"] == 0 and state["steps_remaining"] == budget
            assert state["done"] is False and state["score"] is None
            assert state["total_reward"] == 0.0
        # the session is usable: what needs no sandbox works and counts
        reply = send(ws, {"type": "step", "data": {"kind": "edit", "code": "x = 1\n"}})
        assert reply["type"] == "observation"
        assert send(ws, {"type": "state"})["data"]["step_count"] == 1


def test_the_sync_and_async_client_raise_sandbox_unavailable(faulty):
    with PythonEnv(base_url=faulty.url) as env:
        env.reset(task_id=TASK)
        with pytest.raises(SandboxUnavailable) as caught:
            env.step(PythonAction(kind="submit"))
        assert caught.value.code == "SANDBOX_UNAVAILABLE" and "retry" in caught.value.message
        assert isinstance(caught.value, PythonEnvError) and isinstance(caught.value, RuntimeError)
        assert env.state().step_count == 0

    async def play() -> PythonEnvError:
        async with PythonEnv(base_url=faulty.url) as env:
            await env.reset()
            try:
                await env.step(PythonAction(code="print(1)"))
            except PythonEnvError as exc:
                return exc
        raise AssertionError("no error")

    assert isinstance(asyncio.run(play()), SandboxUnavailable)


def test_the_runner_reports_an_error_never_a_score(faulty):
    session = RemoteSession(faulty.url)
    spec = EpisodeSpec(task_id=TASK, family="implement", difficulty="easy", seed=0)
    log = EpisodeLog(io.StringIO(), threading.Lock(), live=True)
    try:
        record = play_episode(session, StarterPolicy(), spec, log)
    finally:
        session.close()
    assert record.error and "SANDBOX_UNAVAILABLE" in record.error
    overall = summarize([record])["starter"]["overall"]
    assert overall["errors"] == 1 and overall["mean_score"] is None


def test_the_trl_tools_raise_instead_of_rewarding(faulty):
    tools = PythonEnvTools(base_url=faulty.url)
    try:
        tools.reset(task_id=TASK)
        with pytest.raises(SandboxUnavailable):
            tools.run_code("print(1)")
        with pytest.raises(SandboxUnavailable):
            tools.get_reward()  # grades the unsubmitted episode: an error, not a 0
    finally:
        tools._close()


def test_after_a_fault_the_same_step_retried_on_a_working_sandbox_counts_once():
    """The fault passes (here: the episode's runtime is swapped from a closed sandbox to
    a live one); the retried step then counts once, with its reward."""
    from dataclasses import replace

    from python_env.server.grading import Grader
    from python_env.server.python_env_environment import ActionError, PythonEnvironment
    from python_env.server.runtime import build_sandbox, get_runtime

    live = get_runtime()
    broken_sandbox = build_sandbox(live.settings)
    broken_sandbox.close()  # every run now fails as an infrastructure fault
    broken = replace(live, sandbox=broken_sandbox, grader=Grader(broken_sandbox))
    env = PythonEnvironment()
    try:
        env.reset(task_id=TASK)
        env._runtime = broken
        action = PythonAction(kind="run", code="print('ok')", persistent=False)
        with pytest.raises(ActionError) as caught:
            env.step(action)
        assert caught.value.code == "SANDBOX_UNAVAILABLE" and env.state.step_count == 0
        env._runtime = live
        obs = env.step(action)
        assert obs.run is not None and obs.run.stdout == "ok\n"
        assert env.state.step_count == 1 and obs.step_count == 1
    finally:
        env.close()


def test_the_rollback_snapshot_is_whole():
    """A step snapshots the state with a shallow copy to roll back a fault: right only
    while every field is immutable (a list or a model in the state would be shared
    between the snapshot and the state, and a fault would keep its change)."""
    import types
    import typing

    from python_env.models import PythonState

    immutable = {str, int, float, bool, type(None)}

    def leaves(annotation: object) -> list[object]:
        if typing.get_origin(annotation) is typing.Literal:
            return [type(v) for v in typing.get_args(annotation)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            return [x for a in typing.get_args(annotation) for x in leaves(a)]
        return [annotation]

    mutable = {
        name: field.annotation
        for name, field in PythonState.model_fields.items()
        if not set(leaves(field.annotation)) <= immutable
    }
    assert not mutable, mutable
