"""The public value types of the sandbox: limits in, results out (frozen, plain data)."""

from __future__ import annotations

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

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


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
