"""The process-wide parts every session shares: one sandbox (its zygote and worker
slots), the task bank and the grader. Built on first use, so constructing an
environment (OpenEnv does it for every HTTP request) stays cheap."""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from .config import Settings
from .grading import Grader
from .sandbox import Sandbox
from .tasks import TaskBank, default_bank


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sandbox: Sandbox
    bank: TaskBank
    grader: Grader


_lock = threading.Lock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The shared runtime, created once per process."""
    global _runtime
    with _lock:
        if _runtime is None:
            settings = Settings.from_env()
            sandbox = Sandbox(slots=settings.slots, limits=settings.limits)
            atexit.register(sandbox.close)
            _runtime = Runtime(settings, sandbox, default_bank(), Grader(sandbox))
        return _runtime


def close_runtime() -> None:
    """Stop the shared sandbox (zygotes, kernels, its temp root) if it was started.

    The server calls this on shutdown: uvicorn re-raises SIGTERM after a graceful stop,
    so `atexit` alone would leave the sandbox's temp root behind."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.sandbox.close()


def package_version() -> str:
    try:
        return version("openenv-python-env")
    except PackageNotFoundError:
        return "0+unknown"
