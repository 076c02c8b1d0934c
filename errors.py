"""Typed errors of python_env's client: one class per error code the server sends.

Each has `.code` (the server's stable code) and `.message` (the server's text), and is a
`RuntimeError`, as OpenEnv's generic client raises for every server error, so code that
caught that keeps working. The README's error table lists them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class PythonEnvError(RuntimeError):
    """An error reply from a python_env server."""

    code = "UNKNOWN"

    def __init__(self, message: str, code: str | None = None, data: Any = None) -> None:
        super().__init__(f"[{code or self.code}] {message}")
        self.code = code or self.code
        self.message = message
        self.data = data if data is not None else {}


class NoEpisode(PythonEnvError):
    """step() before reset()."""

    code = "NO_EPISODE"


class EpisodeDone(PythonEnvError):
    """step() after the episode ended."""

    code = "EPISODE_DONE"


class NoTask(PythonEnvError):
    """test/submit in a free sandbox."""

    code = "NO_TASK"


class UnknownTask(PythonEnvError):
    """No task has that id (or matches)."""

    code = "UNKNOWN_TASK"


class BadReset(PythonEnvError):
    """Reset options that are invalid or conflict."""

    code = "BAD_RESET"


class BadSplit(PythonEnvError):
    """An unknown split, or an index outside it."""

    code = "BAD_SPLIT"


class BadStep(PythonEnvError):
    """step() options the server does not take."""

    code = "BAD_STEP"


class SessionClosed(PythonEnvError):
    """The session was closed."""

    code = "SESSION_CLOSED"


class SandboxUnavailable(PythonEnvError):
    """An infrastructure fault, not the candidate's: no reward, no step spent; retry."""

    code = "SANDBOX_UNAVAILABLE"


class CapacityReached(PythonEnvError):
    """The server has its maximum of sessions."""

    code = "CAPACITY_REACHED"


class Unauthorized(PythonEnvError):
    """Missing or wrong access token."""

    code = "UNAUTHORIZED"


class InvalidJson(PythonEnvError):
    """Not JSON, or JSON over the limits."""

    code = "INVALID_JSON"


class ValidationError(PythonEnvError):
    """A malformed message or action."""

    code = "VALIDATION_ERROR"


class UnknownType(PythonEnvError):
    """An unknown message type."""

    code = "UNKNOWN_TYPE"


class ExecutionError(PythonEnvError):
    """The server failed a request."""

    code = "EXECUTION_ERROR"


class SessionError(PythonEnvError):
    """The server could not hold the session."""

    code = "SESSION_ERROR"


class FactoryError(PythonEnvError):
    """The server could not create a session."""

    code = "FACTORY_ERROR"


class ReplicaLost(PythonEnvError):
    """Raised by the client, never sent by a server: the connection to the replica that
    held the episode was lost (the replica died or dropped it). A step in flight may or
    may not have been applied, so it is never resent: reset to start a new episode
    (a session pool puts it on a live replica)."""

    code = "REPLICA_LOST"


ERRORS: dict[str, type[PythonEnvError]] = {cls.code: cls for cls in PythonEnvError.__subclasses__()}


def error_from(data: dict[str, Any]) -> PythonEnvError:
    """The typed exception for an error reply's `data` ({"code", "message", ...})."""
    code = str(data.get("code") or "UNKNOWN")
    message = str(data.get("message") or "unknown error")
    cls = ERRORS.get(code, PythonEnvError)
    return cls(message, code, data)


def is_transient(exc: BaseException) -> bool:
    """A fault worth retrying: the sandbox could not serve the step (client or in-process
    environment alike: both carry the code)."""
    return getattr(exc, "code", None) == SandboxUnavailable.code


def retrying(call: Callable[[], T], *, attempts: int = 3, backoff_s: float = 0.5) -> T:
    """`call()`, retried (bounded, with backoff) while it fails with a transient fault;
    the last fault is raised: an infrastructure fault is reported, never scored as 0."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            time.sleep(backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
