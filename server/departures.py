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
_played: dict[int, int] = {}
"""id(env) -> how many keys of `_envs` hold it: `connected` without a scan (an id is
stable while the environment is held here)."""


def _forget(env: Closable) -> None:
    n = _played.pop(id(env)) - 1
    if n:
        _played[id(env)] = n


def register(key: str, env: Closable) -> None:
    with _lock:
        old = _envs.get(key)
        if old is None:
            metrics.add("sessions")
        else:
            _forget(old)
        _envs[key] = env
        _played[id(env)] = _played.get(id(env), 0) + 1


def take(key: str) -> Closable | None:
    """The environment of connection `key`, forgotten here (None if it never reset)."""
    with _lock:
        env = _envs.pop(key, None)
        if env is not None:
            _forget(env)
    if env is not None:
        metrics.add("sessions", -1)
    return env


def connected(env: Closable) -> bool:
    """Is `env` played by a live WebSocket connection (so only its departure closes it)?"""
    with _lock:
        return id(env) in _played


def count() -> int:
    with _lock:
        return len(_envs)
