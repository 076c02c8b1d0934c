"""The typed client, every way a user holds it, against the real server."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from python_env import PythonAction, PythonEnv, PythonObservation, PythonState


def test_sync_context_manager_plays_a_task_to_full_score(server, bank):
    task_id = httpx.get(f"{server.url}/tasks", params={"family": "implement"}).json()[0]["id"]
    reference = bank.get(task_id).reference_solution
    with PythonEnv(base_url=server.url) as env:
        result = env.reset(task_id=task_id)
        obs = result.observation
        assert isinstance(obs, PythonObservation) and obs.task and obs.task.task_id == task_id
        assert obs.steps_remaining == obs.max_steps

        result = env.step(PythonAction(kind="test"))
        assert result.observation.tests is not None
        assert result.observation.tests.passed < result.observation.tests.total
        first_test_reward = result.reward

        result = env.step(PythonAction(kind="edit", code=reference))
        assert result.observation.kind == "edit"
        rewards = [first_test_reward, result.reward]
        result = env.step(PythonAction(kind="test"))
        tests = result.observation.tests
        assert tests is not None and tests.passed == tests.total > 0
        rewards.append(result.reward)
        assert result.reward > 0 and result.observation.reward_components["progress"] > 0

        result = env.step(PythonAction(kind="submit"))
        grade = result.observation.grade
        assert result.done and grade is not None
        assert grade.score == 1.0 and grade.passed
        assert result.reward == pytest.approx(1.0)

        state = env.state()
        assert isinstance(state, PythonState)
        assert state.done and state.score == 1.0 and state.step_count == 4
        assert state.total_reward == pytest.approx(sum(rewards) + result.reward)


def test_async_client(server):
    async def play() -> tuple[str, str]:
        async with PythonEnv(base_url=server.url) as env:
            await env.reset()
            await env.step(PythonAction(code="import math"))
            result = await env.step(PythonAction(code="print(math.factorial(20))"))
            state = await env.state()
            return result.observation.run.stdout, state.mode

    stdout, mode = asyncio.run(play())
    assert stdout == "2432902008176640000\n" and mode == "free"


def test_sync_wrapper_of_async_client(server):
    env = PythonEnv(base_url=server.url).sync()
    with env:
        env.reset()
        result = env.step(PythonAction(code="print(sum(range(10)))"))
        assert result.observation.run.stdout == "45\n"


def test_close_leaves_the_server_running(server):
    env = PythonEnv(base_url=server.url)
    env.reset()
    env.step(PythonAction(code="print('x')"))
    env.close()
    assert httpx.get(f"{server.url}/health").status_code == 200
    with PythonEnv(base_url=server.url) as again:
        assert again.reset().observation.kind == "reset"


def test_budget_exhaustion_grades_and_ends(server):
    with PythonEnv(base_url=server.url) as env:
        obs = env.reset(family="fix-bug", seed=3).observation
        assert obs.max_steps
        result = None
        for _ in range(obs.max_steps):
            result = env.step(PythonAction(code="pass"))
        assert result is not None and result.done
        assert result.observation.grade is not None
        assert "budget" in result.observation.message
        assert env.state().steps_remaining == 0


def test_seeded_reset_is_reproducible(server):
    picks = []
    for _ in range(2):
        with PythonEnv(base_url=server.url) as env:
            picks.append(
                [env.reset(mode="task", seed=s).observation.task.task_id for s in (1, 2, 3, 4)]
            )
    assert picks[0] == picks[1]
    assert len(set(picks[0])) > 1


def test_concurrent_sessions_are_isolated(server):
    async def session(i: int) -> tuple[int, str, int]:
        async with PythonEnv(base_url=server.url) as env:
            await env.reset()
            await env.step(PythonAction(code=f"mine = {i}"))
            await env.step(PythonAction(code="import time; time.sleep(0.05)"))
            result = await env.step(PythonAction(code="print(mine)"))
            state = await env.state()
            return i, result.observation.run.stdout.strip(), state.step_count

    async def main():
        return await asyncio.gather(*(session(i) for i in range(24)))

    for i, stdout, steps in asyncio.run(main()):
        assert stdout == str(i) and steps == 3


def test_server_errors_are_typed_exceptions_sync_and_async(server):
    from python_env import errors

    cases = [
        (lambda env: env.step(PythonAction(code="print(1)")), errors.NoEpisode),
        (lambda env: env.reset(task_id="no-such-task"), errors.UnknownTask),
        (
            lambda env: env.reset(family="implement", difficulty="easy", mode="free"),
            errors.BadReset,
        ),
        (lambda env: env.reset(seed=False), errors.BadReset),
        (lambda env: env.reset(split="all", index=10**6), errors.BadSplit),
        (lambda env: env.reset(split="juggling"), errors.BadSplit),
        (lambda env: env.reset(colour="red"), errors.BadReset),
    ]
    with PythonEnv(base_url=server.url) as env:
        for call, expected in cases:
            with pytest.raises(expected) as caught:
                call(env)
            assert caught.value.code == expected.code and caught.value.message
            assert f"[{expected.code}]" in str(caught.value)
        env.reset()
        with pytest.raises(errors.NoTask):
            env.step(PythonAction(kind="submit"))
        env.reset(family="implement", seed=1)
        env.step(PythonAction(kind="submit"))
        with pytest.raises(errors.EpisodeDone):
            env.step(PythonAction(code="print(1)"))
        with pytest.raises(TypeError, match="only an action"):
            env.step(PythonAction(code="print(1)"), timeout_s=5)
        assert env.reset().observation.kind == "reset"  # the session is still usable

    async def play() -> list[type]:
        raised = []
        async with PythonEnv(base_url=server.url) as env:
            for call, _ in cases:
                try:
                    await call(env)
                except errors.PythonEnvError as exc:
                    raised.append(type(exc))
        return raised

    assert asyncio.run(play()) == [expected for _, expected in cases]


def test_capacity_reached_is_typed():
    from python_env.errors import CapacityReached
    from python_env.server.launcher import run_server

    with run_server(MAX_CONCURRENT_ENVS="1") as small:
        with PythonEnv(base_url=small.url) as first:
            first.reset()
            with pytest.raises(CapacityReached) as caught:
                with PythonEnv(base_url=small.url) as second:
                    second.reset()
            assert caught.value.code == "CAPACITY_REACHED"
