"""The session pool without Ray: two real servers on 127.0.0.1, one of them killed.

Sessions spread over both; a reset on a dead replica goes to the other; a step in
flight on a replica that dies raises `ReplicaLost` and is never resent (the session
has no episode afterwards: it does not silently reconnect); the same for the async
form and for the evaluation runner's sessions.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from python_env import errors
from python_env.models import PythonAction
from python_env.pool import SessionPool, parse_metrics
from python_env.server.launcher import Server, run_server

SERVER_ENV = {"MAX_CONCURRENT_ENVS": "16", "SESSION_TIMEOUT_S": "300", "PYTHON_ENV_TIMEOUT_S": "8"}
SLEEP = PythonAction(kind="run", code="import time; time.sleep(6)")
"""A step still running when the test kills its replica (1 s in)."""


@pytest.fixture(scope="module")
def survivor() -> Iterator[Server]:
    with run_server(**SERVER_ENV) as s:
        yield s


@pytest.fixture
def victim() -> Iterator[Server]:
    with run_server(**SERVER_ENV) as s:
        yield s


def _kill_later(server: Server, delay_s: float = 1.0) -> threading.Timer:
    timer = threading.Timer(delay_s, server.process.kill)
    timer.start()
    return timer


def test_parse_metrics_reads_unlabelled_samples() -> None:
    text = (
        "# HELP python_env_ws_connections open\n# TYPE python_env_ws_connections gauge\n"
        'python_env_ws_connections 7\npython_env_steps_total{kind="run"} 3\n'
        "python_env_sessions_max 64\nbroken line-without-number x\n"
    )
    assert parse_metrics(text) == {
        "python_env_ws_connections": 7.0,
        "python_env_sessions_max": 64.0,
    }


def test_pool_refuses_an_empty_or_bad_list() -> None:
    with pytest.raises(ValueError):
        SessionPool([])
    with pytest.raises(ValueError):
        SessionPool(["127.0.0.1:8000"])


def test_sessions_spread_and_a_dead_replica_loses_nothing(survivor: Server, victim: Server) -> None:
    with SessionPool([survivor.url, victim.url], down_for_s=60) as pool:
        envs = [pool.session() for _ in range(4)]
        for env in envs:
            env.reset(task_id="implement-rle-encode")
        assert Counter(env.replica for env in envs) == {survivor.url: 2, victim.url: 2}

        doomed = next(env for env in envs if env.replica == victim.url)
        idle = next(env for env in envs if env.replica == victim.url and env is not doomed)
        timer = _kill_later(victim)
        with pytest.raises(errors.ReplicaLost) as lost:
            doomed.step(SLEEP)
        timer.join()
        assert lost.value.code == "REPLICA_LOST"
        assert lost.value.data == {"replica": victim.url, "in_flight": True}
        # No silent reconnect: the episode is gone, the next step says so
        with pytest.raises(errors.NoEpisode):
            doomed.step(PythonAction(kind="run", code="print(1)"))
        # An idle session on the dead replica: its next step is lost too, never sent
        with pytest.raises(errors.ReplicaLost) as idle_lost:
            idle.step(PythonAction(kind="run", code="print(1)"))
        assert idle_lost.value.data["in_flight"] is False

        # Reset moves to the live replica; the new episode starts from step 0 there
        for env in (doomed, idle, pool.session()):
            obs = env.reset(task_id="implement-rle-encode").observation
            assert env.replica == survivor.url
            assert obs.step_count == 0
            run = env.step(PythonAction(kind="run", code="print(6 * 7)")).observation
            assert run.run is not None and run.run.stdout == "42\n"
            assert env.state().step_count == 1
        down = {r["url"]: r for r in pool.snapshot()}
        assert down[victim.url]["down"] and down[victim.url]["lost"] == 2
        assert not down[survivor.url]["down"]


def test_placement_follows_the_load_replicas_report() -> None:
    """With /metrics, the least-loaded replica takes the new sessions: one reporting 40
    of 64 connections gets none of six while the other's estimate stays below that."""
    import os
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    env = {**SERVER_ENV, "PYTHONPATH": path}
    with (
        run_server(module="busy_server", BUSY_CONNECTIONS="40", **env) as busy,
        run_server(module="busy_server", BUSY_CONNECTIONS="0", **env) as idle,
        SessionPool([busy.url, idle.url]) as pool,
    ):
        envs = [pool.session() for _ in range(6)]
        for e in envs:
            e.reset()
        assert [e.replica for e in envs] == [idle.url] * 6
        assert all(r["metrics"] for r in pool.snapshot())


def test_reset_fails_over_and_reports_when_no_replica_is_left(victim: Server) -> None:
    victim.process.kill()
    victim.process.wait()
    with SessionPool([victim.url]) as pool, pool.session() as env:
        with pytest.raises(errors.ReplicaLost, match="no live python_env replica"):
            env.reset()
        assert pool.snapshot()[0]["down"]


def test_async_sessions_fail_over_the_same_way(survivor: Server, victim: Server) -> None:
    async def play() -> None:
        pool = SessionPool([survivor.url, victim.url], down_for_s=60)
        envs = [pool.async_session() for _ in range(2)]
        for env in envs:
            await env.reset()
        assert {env.replica for env in envs} == {survivor.url, victim.url}
        doomed = next(env for env in envs if env.replica == victim.url)
        timer = _kill_later(victim)
        with pytest.raises(errors.ReplicaLost):
            await doomed.step(SLEEP)
        timer.join()
        with pytest.raises(errors.NoEpisode):
            await doomed.step(PythonAction(kind="run", code="print(1)"))
        await doomed.reset()
        assert doomed.replica == survivor.url
        result = await doomed.step(PythonAction(kind="run", code="print('ok')"))
        assert result.observation.run is not None and result.observation.run.stdout == "ok\n"
        for env in envs:
            await env.close()

    asyncio.run(play())


def test_the_runner_spreads_over_base_urls_and_replays_a_lost_episode(
    survivor: Server, victim: Server, tmp_path
) -> None:
    """`python-env-eval --base-url A --base-url B`, and the runner's failover: episodes
    in flight on a killed server are played again on the other, each recorded once."""
    import json

    from python_env.eval.__main__ import main
    from python_env.eval.policies import Agent, Decision, ReferencePolicy
    from python_env.eval.runner import (
        PoolSession,
        Runner,
        episode_specs,
        remote_catalog,
        select_tasks,
    )

    out = tmp_path / "spread"
    args = ["--base-url", survivor.url, "--base-url", victim.url, "--policy", "reference"]
    args += ["--count", "1", "--concurrency", "2", "--output", str(out), "--no-progress"]
    assert main([*args, "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {e["replica"] for e in report["episodes"]} == {survivor.url, victim.url}
    assert all(e["node"] is None and e["retries"] == 0 for e in report["episodes"])
    assert set(report["replicas"]) == {survivor.url, victim.url}

    started = threading.Semaphore(0)

    class Slow(Agent):
        def __init__(self, inner: Agent) -> None:
            self.inner, self.slept = inner, False

        def act(self, observation, turns_left):
            if not self.slept and turns_left > 2:
                self.slept = True
                started.release()
                return Decision(SLEEP)
            return self.inner.act(observation, turns_left)

    class SlowReference(ReferencePolicy):
        name = "slow-reference"

        def start(self, task, seed):
            return Slow(super().start(task, seed))

    tasks = [
        t
        for t in select_tasks(remote_catalog(survivor.url), count=2, seed=0)
        if t["family"] in ("implement", "fix-bug")
    ]
    specs = episode_specs(tasks, [0])
    assert len(specs) == 4

    def kill_when_busy() -> None:
        for _ in range(4):  # four sleeping steps at once: two on each server
            if not started.acquire(timeout=120):
                return
        victim.process.kill()

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    with SessionPool([survivor.url, victim.url], down_for_s=600) as pool:
        runner = Runner(
            SlowReference(),
            lambda: PoolSession(pool),
            output=tmp_path / "killed",
            concurrency=4,
            log_stream=None,
            progress=False,
            max_retries=2,
        )
        result = runner.run(specs)
    killer.join(timeout=10)
    assert victim.process.poll() is not None
    episodes = json.loads((tmp_path / "killed" / "report.json").read_text())["episodes"]
    assert Counter((e["task_id"], e["seed"]) for e in episodes) == Counter(
        (s.task_id, s.seed) for s in specs
    )
    assert result.new_episodes == 4
    assert all(e["error"] is None and e["passed"] for e in episodes)
    retried = [e for e in episodes if e["retries"]]
    assert len(retried) == 2  # the two on the killed server
    assert all(e["replica"] == survivor.url for e in retried)


def test_the_trl_adapter_places_rollouts_through_a_pool(
    survivor: Server, victim: Server, bank
) -> None:
    """`PythonEnvTools.pool`: rollouts spread over the replicas; one whose replica dies
    mid-episode raises ReplicaLost at the tool and at get_reward (never a reward)."""
    from python_env.eval.trl_adapter import PythonEnvTools

    task = bank.get("implement-rle-encode")
    with SessionPool([survivor.url, victim.url], down_for_s=600) as pool:
        PythonEnvTools.pool = pool
        try:
            tools = [PythonEnvTools(), PythonEnvTools()]
            for t in tools:
                t.reset(task_id=task.id)
            assert {t._client.replica for t in tools} == {survivor.url, victim.url}
            doomed = next(t for t in tools if t._client.replica == victim.url)
            fine = next(t for t in tools if t is not doomed)
            timer = _kill_later(victim)
            with pytest.raises(errors.ReplicaLost):
                doomed.run_code("import time; time.sleep(6)")
            timer.join()
            with pytest.raises(errors.ReplicaLost):
                doomed.get_reward()
            assert "solution.py updated" in fine.edit_solution(task.reference_solution)
            assert fine.get_reward() >= 1.0
            doomed.reset(task_id=task.id)  # the next rollout of this instance: elsewhere
            assert doomed._client.replica == survivor.url
            doomed.edit_solution(task.reference_solution)
            assert doomed.get_reward() >= 1.0

            # rollout_func through the pool (the victim is down: all on the survivor)
            from python_env.eval.trl_adapter import make_rollout_func, task_dataset_rows
            from test_trl_adapter import scripted_generate

            replies = [
                '```json\n{"action": "edit"}\n```\n```python\n' + task.reference_solution + "```",
                '```json\n{"action": "submit"}\n```',
            ]
            rollout = make_rollout_func(scripted_generate(replies, []), pool=pool)
            rows = task_dataset_rows(survivor.url, mode="text", family="implement")
            row = next(r for r in rows if r["task_id"] == task.id)
            assert rollout([row["prompt"]] * 2, None)["env_score"] == [1.0, 1.0]
        finally:
            PythonEnvTools.pool = None
            for t in tools:
                t._close()
