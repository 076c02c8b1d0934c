"""python_env's real server, plus a record of every episode it plays, for the GRPO tier.

Served by `run_server(module="step_log_server")`: the same app and Environment as
`python -m python_env.server.app`, with `reset`/`step` wrapped to note each episode's
task, actions and rewards, readable at `GET /grpo-tier/episodes`. The test compares
that server-side record with what the trainer logged, so a rollout that never reached
the environment, or a reward the environment did not give, cannot pass unnoticed.
"""

from __future__ import annotations

import threading
from typing import Any

from python_env.server import app as server_app
from python_env.server.python_env_environment import PythonEnvironment

EPISODES: list[dict[str, Any]] = []
_LOCK = threading.Lock()
_CURRENT: dict[int, dict[str, Any]] = {}  # id(environment) -> its episode in EPISODES

_reset, _step = PythonEnvironment.reset, PythonEnvironment.step


def _logged_reset(self: PythonEnvironment, *args: Any, **kwargs: Any) -> Any:
    obs = _reset(self, *args, **kwargs)
    episode = {
        "task_id": obs.task.task_id if obs.task else None,
        "actions": [],
        "rewards": [],
        "done": bool(obs.done),
    }
    with _LOCK:
        EPISODES.append(episode)
        _CURRENT[id(self)] = episode
    return obs


def _logged_step(self: PythonEnvironment, action: Any, *args: Any, **kwargs: Any) -> Any:
    obs = _step(self, action, *args, **kwargs)
    with _LOCK:
        episode = _CURRENT[id(self)]
        episode["actions"].append(action.kind)
        episode["rewards"].append(float(obs.reward or 0.0))
        episode["done"] = bool(obs.done)
    return obs


PythonEnvironment.reset = _logged_reset  # type: ignore[method-assign]
PythonEnvironment.step = _logged_step  # type: ignore[method-assign]


@server_app.app.get("/grpo-tier/episodes")
def episodes() -> list[dict[str, Any]]:
    with _LOCK:
        return [dict(e) for e in EPISODES]


if __name__ == "__main__":
    server_app.main()
