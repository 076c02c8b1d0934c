"""The public value types of the sandbox: limits in, results out (frozen, plain data)."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


class SandboxError(Exception):
    """An engine-level failure that is not the candidate's fault (zygote cannot start, ...)."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: float = 10.0
    memory_mb: int = 1024
    max_output_bytes: int = 65536
    file_size_mb: int = 64
    disk_mb: int = 256  # everything a run or kernel writes: its workdir plus /dev/shm
    cpu_cores: float = 1.0  # the CPU share of a run's (or a kernel's) whole tree
    max_processes: int = 32
    max_open_files: int = 128

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    exit_code: int | None
    signal: int | None
    timed_out: bool
    memory_exceeded: bool
    exception_type: str | None
    exception_message: str | None
    wall_time_ms: float
    cpu_time_ms: float
    kernel_restarted: bool = False


DISK_FULL = "[Errno 28] No space left on device"


def decode_status(status: int | None) -> tuple[int | None, int | None]:
    """A wait status as (exit_code, signal); None (never reported) counts as SIGKILL."""
    if status is None:
        return None, signal.SIGKILL
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def hit_cpu_limit(sig: int | None, cpu_ms: float, limits: Limits) -> bool:
    """Killed by RLIMIT_CPU (SIGXCPU at the soft limit, SIGKILL at the hard one)."""
    return sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_ms >= limits.cpu_s * 1000 - 50)


def run_result(
    *,
    ended: bool,
    status: int | None,
    out: Any,
    err: Any,
    reply: Mapping[str, Any],
    limits: Limits,
    timed_out: bool,
    wall_ms: float,
    cpu_ms: float,
    restarted: bool = False,
    memory_hit: bool = False,
    disk_hit: bool = False,
) -> RunResult:
    """The one way a run's result is built, for one-shot runs and kernel cells alike:
    `ended`: the process is gone, with wait `status` (None if never reported); else a
    kernel cell returned and `reply` (the harness's {"exit", "exc", "msg"}) says how.
    `out`/`err` are the capped streams."""
    if ended:
        code, sig = decode_status(status)
    else:
        code, sig = int(reply.get("exit") or 0), None
    exc, msg = reply.get("exc"), reply.get("msg")
    if disk_hit:  # the fallback's disk budget (no tmpfs to say ENOSPC): the same error
        exc, msg = "OSError", f"{DISK_FULL} (the run's files went over {limits.disk_mb} MB)"
    return RunResult(
        stdout=out.text(),
        stderr=err.text(),
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        exit_code=code,
        signal=sig,
        timed_out=timed_out or hit_cpu_limit(sig, cpu_ms, limits),
        memory_exceeded=memory_hit or exc == "MemoryError",
        exception_type=exc,
        exception_message=msg if exc else None,
        wall_time_ms=wall_ms,
        cpu_time_ms=cpu_ms,
        kernel_restarted=restarted,
    )


@dataclass(frozen=True)
class CaseSpec:
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    stdin: str | None = None


CaseStatus = Literal["ok", "error", "timeout", "crash", "unserializable"]


@dataclass(frozen=True)
class CaseOutcome:
    status: CaseStatus
    output: Any = None
    error: str | None = None


@dataclass(frozen=True)
class CasesResult:
    outcomes: list[CaseOutcome]
    load_error: str | None
    timed_out: bool
    memory_exceeded: bool
    cpu_time_ms: float
    wall_time_ms: float
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class AssertionOutcome:
    name: str
    passed: bool
    message: str = ""


@dataclass(frozen=True)
class AssertionResult:
    tests: list[AssertionOutcome]
    load_error: str | None
    timed_out: bool

    @property
    def passed(self) -> int:
        return sum(t.passed for t in self.tests)


@dataclass(frozen=True)
class IsolationReport:
    active: tuple[str, ...]
    unavailable: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"active": list(self.active), "unavailable": dict(self.unavailable)}
