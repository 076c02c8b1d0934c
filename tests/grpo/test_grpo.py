"""The GRPO tier: TRL's GRPOTrainer, on CPU, trains a tiny model built locally (no
download) for two optimizer steps against a real python_env server, through both of
the adapter's integrations, and the run is checked against the server's own record
of the episodes it played (`step_log_server`): every rollout is one server episode
that took at least one step and ended graded, and the rewards the trainer logged are
the environment's rewards.

The trainer runs in its own venv (`.venv-grpo`: torch, TRL), made or reused by
`scripts/grpo-tier.sh --install`. Run: `bash scripts/grpo-tier.sh` (or
`pytest -m grpo tests/grpo`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from python_env.server.launcher import Server, run_server

pytestmark = [pytest.mark.grpo, pytest.mark.timeout(1800)]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TIER_PYTHON = ROOT / ".venv-grpo" / "bin" / "python"
STEPS = 2
ROLLOUTS_PER_STEP = 4  # 2 prompts x 2 generations
RUN = [
    "--tiny",
    "--family=fix-bug",
    "--difficulty=easy",
    "--limit=2",
    f"--max-steps={STEPS}",
    "--num-generations=2",
    f"--batch-size={ROLLOUTS_PER_STEP}",
    "--seed=0",
]


@pytest.fixture(scope="module")
def tier_python() -> Path:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "grpo-tier.sh"), "--install"], check=True, timeout=1500
    )
    return TIER_PYTHON


@pytest.fixture(scope="module")
def logged_server() -> Iterator[Server]:
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    with run_server(
        module="step_log_server",
        PYTHONPATH=path,
        MAX_CONCURRENT_ENVS="16",
        SESSION_TIMEOUT_S="300",
        PYTHON_ENV_TIMEOUT_S="5",
    ) as server:
        yield server


def episodes(server: Server) -> list[dict[str, Any]]:
    return httpx.get(f"{server.url}/grpo-tier/episodes", timeout=30).json()


def train(
    python: Path, server: Server, tmp_path: Path, *args: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the example; returns its summary and the episodes the server played for it."""
    before = len(episodes(server))
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [
            str(python),
            str(ROOT / "examples" / "trl_grpo.py"),
            f"--base-url={server.url}",
            f"--output-dir={tmp_path / 'out'}",
            f"--summary={summary}",
            *RUN,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        env={**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-4000:] + server.log_tail()
    return json.loads(summary.read_text()), episodes(server)[before:]


def check_against_server(summary: dict[str, Any], played: list[dict[str, Any]]) -> None:
    assert summary["optimizer_steps"] == STEPS
    assert summary["rollouts_per_step"] == ROLLOUTS_PER_STEP
    assert [s["step"] for s in summary["steps"]] == list(range(1, STEPS + 1))
    # Every rollout reached the environment: one episode each, stepped and graded.
    assert len(played) == STEPS * ROLLOUTS_PER_STEP
    for episode in played:
        assert episode["task_id"] in summary["tasks"]
        assert episode["actions"] and episode["done"]  # graded: submitted or budget spent
    # The rewards the trainer logged are the environment's, step by step.
    for i, step in enumerate(summary["steps"]):
        (logged,) = step["rewards"].values()  # the one reward source: the environment
        batch = played[i * ROLLOUTS_PER_STEP : (i + 1) * ROLLOUTS_PER_STEP]
        server_rewards = [sum(e["rewards"]) for e in batch]
        assert sorted(logged) == pytest.approx(sorted(server_rewards), abs=1e-6)
        assert step["reward"] == pytest.approx(sum(server_rewards) / len(batch), abs=1e-6)


def test_rollout_func_reaches_the_environment(tier_python, logged_server, tmp_path):
    summary, played = train(
        tier_python, logged_server, tmp_path, "--mode=text", "--max-new-tokens=16"
    )
    check_against_server(summary, played)
    assert all("rewards/env_reward_func/mean" in s["logs"] for s in summary["steps"])


def test_environment_factory_tool_calls_reach_the_environment(tier_python, logged_server, tmp_path):
    summary, played = train(
        tier_python,
        logged_server,
        tmp_path,
        "--mode=tools",
        "--max-new-tokens=64",
        "--max-tool-calls=2",
        "--warmup-steps=120",
    )
    check_against_server(summary, played)
    warmup = summary["warmup"]
    assert warmup["loss_last"] < warmup["loss_first"] / 10
    calls = summary["tool_calls"]
    assert calls["parsed_calls"] >= 1, calls
    # Each server step is a parsed call the tools executed, or get_reward's final submit.
    steps = sum(len(e["actions"]) for e in played)
    assert len(played) <= steps <= calls["parsed_calls"] + len(played)
    assert any(kind != "submit" for e in played for kind in e["actions"])
