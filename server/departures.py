"""Which environment each WebSocket connection is playing, so that the connection's
watcher (`server/guard.py`) can close it the moment its client is gone, even while a step
runs in OpenEnv's session executor (which only calls `close()` after the step).

The watcher adds `WATCH_KEY` (a random per-connection key) to every reset it forwards;
`PythonEnvironment.reset` registers itself under that key. Clients cannot set the key:
the watcher overwrites it, and HTTP resets accept only `ResetOptions`.

While its connection lives, an environment is closed only from here (`take` then
`close`): OpenEnv's idle reaper counts a step in flight as idle time (its clock moves
only when a reply is sent), so it would end a session whose step runs longer than
`SESSION_TIMEOUT_S`; the guard reaps idle connections itself, knowing what is in flight.
"""

from __future__ import annotations

import threading
from typing import Protocol

from . import metrics

WATCH_KEY = "__python_env_connection__"


class Closable(Protocol):
    def close(self) -> None: ...


_lock = threading.Lock()
_envs: dict[str, Closable] = {}


def register(key: str, env: Closable) -> None:
    with _lock:
        if key not in _envs:
            metrics.add("sessions")
        _envs[key] = env


def take(key: str) -> Closable | None:
    """The environment of connection `key`, forgotten here (None if it never reset)."""
    with _lock:
        env = _envs.pop(key, None)
    if env is not None:
        metrics.add("sessions", -1)
    return env


def connected(env: Closable) -> bool:
    """Is `env` played by a live WebSocket connection (so only its departure closes it)?"""
    with _lock:
        return any(e is env for e in _envs.values())


def count() -> int:
    with _lock:
        return len(_envs)
