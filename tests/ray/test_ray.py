"""python_env on a local two-node Ray cluster (scripts/ray-tier.sh starts it, on loopback
only): a replica per node, health-checked and restarted; an evaluation run (the CLI's
`--ray`) spread over both; and a replica killed mid-run, whose episodes move to the
other replica, none lost and none counted twice (checked in report.json).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from python_env.eval.policies import Agent, Decision, ReferencePolicy
from python_env.eval.runner import PoolSession, Runner, episode_specs, remote_catalog, select_tasks
from python_env.models import PythonAction, PythonObservation, TaskInfo
from python_env.pool import SessionPool
from python_env.server.launcher import settle
from raytier import SAMPLE

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

COUNT = 1 if SAMPLE else 3
"""Tasks per family in the evaluation runs (a seeded sample)."""
SEED = 0


def _ray_nodes() -> set[str]:
    import ray

    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_one_replica_per_node_each_healthy(replicas: list, ray_address: str) -> None:
    from python_env.eval.ray_replicas import discover, health

    assert len(replicas) == 2
    assert {r.node_id for r in replicas} == _ray_nodes()
    assert len({r.url for r in replicas}) == 2
    assert all(r.url.startswith("http://127.0.0.1:") for r in replicas)
    assert sorted(discover(ray_address), key=lambda r: r.name) == sorted(
        replicas, key=lambda r: r.name
    )
    assert all(h["healthy"] for h in health(ray_address))
    pool = SessionPool.from_ray(ray_address)
    assert {r.url: r.node for r in pool.replicas} == {r.url: r.node_id for r in replicas}
    with pool, pool.session() as env:
        obs = env.reset(mode="task").observation
        assert obs.task is not None and env.replica in {r.url for r in replicas}


def test_a_dead_server_is_restarted_at_its_url(replicas: list, ray_address: str) -> None:
    from python_env.eval.ray_replicas import discover

    target = replicas[1]
    (before,) = [r for r in discover(ray_address) if r.name == target.name]
    os.kill(before.pid, signal.SIGKILL)

    def restarted() -> Any:
        (now,) = [r for r in discover(ray_address) if r.name == target.name]
        return now if now.restarts > before.restarts and _healthy(now.url) else None

    now = settle(restarted, timeout_s=300, interval_s=1.0)
    assert now, f"{target.name} was not restarted"
    assert (now.url, now.node_id) == (before.url, before.node_id)
    assert now.pid != before.pid


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def test_an_evaluation_run_spreads_over_both_nodes(
    replicas: list, ray_address: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["--ray", ray_address, "--policy", "reference", "--count", str(COUNT)]
    args += ["--seed", str(SEED), "--concurrency", "4", "--output", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "python_env.eval", *args, "--no-progress", "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = _report(out)
    episodes = report["episodes"]
    nodes = {r.url: r.node_id for r in replicas}
    assert episodes and all(e["error"] is None for e in episodes)
    # (optimize tasks also grade CPU time, which a loaded machine can fail)
    failed = [e for e in episodes if not e["passed"] and e["family"] != "optimize"]
    assert not failed, [(e["task_id"], e["feedback"]) for e in failed]
    assert all(nodes[e["replica"]] == e["node"] for e in episodes)
    assert {e["node"] for e in episodes} == _ray_nodes()  # both nodes played episodes
    assert report["run"]["replicas"] == [{"url": u, "node": n} for u, n in nodes.items()]
    assert sum(row["episodes"] for row in report["replicas"].values()) == len(episodes)
    assert len({(e["task_id"], e["seed"]) for e in episodes}) == len(episodes)


class _SlowAgent(Agent):
    """The reference agent, after a first step that sleeps: the step is still running
    when the test kills its replica."""

    def __init__(self, inner: Agent, started: threading.Semaphore) -> None:
        self._inner, self._started, self._slept = inner, started, False

    def act(self, observation: PythonObservation | None, turns_left: int) -> Decision:
        if not self._slept and turns_left > 2:
            self._slept = True
            self._started.release()
            return Decision(PythonAction(kind="run", code="import time; time.sleep(4)"))
        return self._inner.act(observation, turns_left)


class _SlowReference(ReferencePolicy):
    name = "slow-reference"

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Semaphore(0)

    def start(self, task: TaskInfo, seed: int) -> Agent:
        return _SlowAgent(super().start(task, seed), self.started)


def test_a_replica_killed_mid_run_loses_no_episode(
    replicas: list, ray_address: str, tmp_path: Path
) -> None:
    from python_env.eval.ray_replicas import discover

    infos = {r.url: r for r in discover(ray_address)}
    pool = SessionPool(list(infos), nodes={u: r.node_id for u, r in infos.items()})
    catalog = remote_catalog(next(iter(infos)))
    families = {"implement", "fix-bug"}
    tasks = [
        t for t in select_tasks(catalog, count=COUNT + 1, seed=SEED) if t["family"] in families
    ]
    specs = episode_specs(tasks, [SEED])
    policy = _SlowReference()
    out = tmp_path / "killed"
    runner = Runner(
        policy,
        lambda: PoolSession(pool),
        output=out,
        concurrency=4,
        log_stream=None,
        progress=False,
        max_retries=2,
    )
    victim = replicas[0]
    killed: dict[str, Any] = {}

    def kill_when_busy() -> None:
        for _ in range(4):  # four sleeping steps at once: two on each replica
            if not policy.started.acquire(timeout=300):
                return
        (now,) = [r for r in discover(ray_address) if r.name == victim.name]
        killed["busy"] = [s["sessions"] for s in pool.snapshot() if s["url"] == now.url][0]
        os.kill(now.pid, signal.SIGKILL)
        killed["url"] = now.url

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    with pool:
        result = runner.run(specs)
    killer.join(timeout=60)
    assert killed.get("url") == victim.url and killed["busy"] >= 1

    episodes = _report(out)["episodes"]
    keys = Counter((e["task_id"], e["seed"]) for e in episodes)
    assert keys == Counter((s.task_id, s.seed) for s in specs)  # each once, none lost
    assert result.new_episodes == len(specs)
    assert all(e["error"] is None and e["passed"] for e in episodes), [
        e["error"] for e in episodes if e["error"]
    ]
    retried = [e for e in episodes if e["retries"]]
    assert retried, "no episode was in flight on the killed replica"
    assert all(e["replica"] != victim.url for e in retried)  # moved to the other
    assert all(e["node"] != victim.node_id for e in retried)
    assert settle(lambda: _healthy(victim.url), timeout_s=300, interval_s=1.0)  # back
