"""The process-wide parts every session shares: the settings, one sandbox (its zygotes
and worker slots), the task bank and the grader. Built on first use, so constructing an
environment (OpenEnv does it for every HTTP request) stays cheap."""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from .config import Settings
from .grading import Grader
from .sandbox import Sandbox
from .sandbox.kernel import PARKER
from .sandbox_runtime import SandboxRuntime, choose, inspect
from .tasks import TaskBank, default_bank
from .tasks.cache import Store


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sandbox: Sandbox
    bank: TaskBank
    grader: Grader
    agent: SandboxRuntime  # the Python agent code runs under, and its packages


_lock = threading.Lock()
_runtime: Runtime | None = None


def served_bank(settings: Settings | None = None) -> TaskBank:
    """The task bank these settings serve (cached: built once per distinct setting)."""
    from .codeio import setup_for

    s = settings or Settings.from_env()
    return default_bank(s.procedural, s.task_paths, s.humaneval, s.variants, setup_for(s))


def build_sandbox(settings: Settings) -> Sandbox:
    PARKER.configure(settings.kernel_park_s, settings.max_concurrent_envs)
    return Sandbox(
        slots=settings.slots,
        limits=settings.limits,
        disable=settings.sandbox_disable,
        fault=settings.sandbox_fault,
        python=choose(settings.runtime_python).python,
    )


def get_runtime() -> Runtime:
    """The shared runtime, created once per process from the environment's settings."""
    global _runtime
    with _lock:
        if _runtime is None:
            settings = Settings.from_env()
            agent = inspect(settings.runtime_python)  # refuses an unusable interpreter
            sandbox = build_sandbox(settings)
            atexit.register(sandbox.close)
            grader = Grader(
                sandbox,
                store=Store(settings.cache_path),
                runtime_tag=f"{agent.python} {agent.version}",
            )
            bank = served_bank(settings)
            # The bank's digest (in /metadata) builds every lazy task: off the start path
            # and off the first request's, in the background (a request that comes first
            # waits for the same computation).
            threading.Thread(target=bank.digest, name="bank-digest", daemon=True).start()
            _runtime = Runtime(settings, sandbox, bank, grader, agent)
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
