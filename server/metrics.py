"""The server's load and health as Prometheus text (`GET /metrics`).

Cheap enough to scrape every second at thousands of sessions: every figure is a plain
number kept up to date by the code that changes it (a one-line hook where a session
opens, a kernel starts or freezes, a slot is taken, a step ends), so a scrape formats a
few dozen numbers and walks nothing: no /proc, no list of sessions. Counters only grow
(a scraper derives rates from them); gauges are "now".

The names, types and help texts are declared once in `METRICS`; a hook naming another
metric is a bug and raises KeyError.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PREFIX = "python_env_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

METRICS: dict[str, tuple[str, str]] = {
    # sessions
    "ws_connections": ("gauge", "WebSocket connections open now"),
    "sessions": ("gauge", "WebSocket sessions playing an episode (reset at least once)"),
    "sessions_max": ("gauge", "the most concurrent sessions this server accepts"),
    "resets_total": ("counter", "episodes started (WebSocket and HTTP)"),
    # steps, runs and grades
    "steps_total": ("counter", "steps carried out, by action kind"),
    "step_seconds_total": ("counter", "time spent in steps, by action kind"),
    "runs_total": ("counter", "code runs, by where they ran (kernel or oneshot)"),
    "grades_total": ("counter", "graded submissions, by verdict"),
    # kernels (one process per session that has run persistent code)
    "kernels": ("gauge", "session kernels, by state (alive, frozen)"),
    "kernel_starts_total": ("counter", "kernel processes started (first run or restart)"),
    # the sandbox's slots (one-shot and graded runs)
    "slots": ("gauge", "sandbox slots, by state (total, busy; queued: callers waiting)"),
    "slot_waits_total": ("counter", "slot acquisitions"),
    "slot_wait_seconds_total": ("counter", "time spent waiting for a slot"),
    # errors
    "errors_total": ("counter", "error replies, by code"),
    "infrastructure_faults_total": (
        "counter",
        "steps the sandbox could not serve (SandboxError, answered SANDBOX_UNAVAILABLE)",
    ),
    "scrapes_total": ("counter", "scrapes of /metrics"),
}

_lock = threading.Lock()
_values: dict[tuple[str, str, str], float] = {}  # (name, label key, label value) -> value
_started = time.time()


def add(name: str, amount: float = 1, label: str = "", value: str = "") -> None:
    """Add `amount` (may be negative for a gauge) to metric `name`{label=value}."""
    METRICS[name]  # noqa: B018  (a KeyError names an undeclared metric)
    key = (name, label, value)
    with _lock:
        _values[key] = _values.get(key, 0) + amount


def error(code: str) -> None:
    add("errors_total", 1, "code", code)


@contextmanager
def gauge(name: str, label: str = "", value: str = "") -> Iterator[None]:
    """Hold the gauge one higher while the block runs."""
    add(name, 1, label, value)
    try:
        yield
    finally:
        add(name, -1, label, value)


@contextmanager
def slot_wait() -> Iterator[None]:
    """Around waiting for a slot: counts the waiters and the time waited."""
    t0 = time.perf_counter()
    with gauge("slots", "state", "queued"):
        yield
    add("slot_waits_total")
    add("slot_wait_seconds_total", time.perf_counter() - t0)


def stepped(action: Any, observation: Any, t0: float) -> None:
    """A step ended well (`t0`: its `time.perf_counter()` at the start)."""
    kind = str(action.kind)
    add("steps_total", 1, "kind", kind)
    add("step_seconds_total", time.perf_counter() - t0, "kind", kind)
    if kind == "run":
        add("runs_total", 1, "where", "kernel" if action.persistent else "oneshot")
    elif kind == "test":
        add("runs_total", 1, "where", "tests")
    grade = getattr(observation, "grade", None)
    if grade is not None:
        add("grades_total", 1, "verdict", "passed" if grade.passed else "failed")


def snapshot() -> dict[tuple[str, str, str], float]:
    with _lock:
        return dict(_values)


def render(extra: dict[tuple[str, str, str], float] | None = None) -> str:
    """Every declared metric (zero if never touched), plus `extra` gauges read at
    scrape time (cheap, O(1) facts such as the configured slot count)."""
    add("scrapes_total")
    values = snapshot()
    values.update(extra or {})
    lines: list[str] = []
    for name, (kind, help_text) in METRICS.items():
        full = PREFIX + name
        lines.append(f"# HELP {full} {help_text}")
        lines.append(f"# TYPE {full} {kind}")
        series = sorted((k, v) for k, v in values.items() if k[0] == name)
        if not series:
            lines.append(f"{full} 0")
        for (_, label, value), number in series:
            labels = f'{{{label}="{_escape(value)}"}}' if label else ""
            lines.append(f"{full}{labels} {_number(number)}")
    lines.append(f"# HELP {PREFIX}start_time_seconds when this server started (Unix time)")
    lines.append(f"# TYPE {PREFIX}start_time_seconds gauge")
    lines.append(f"{PREFIX}start_time_seconds {_number(_started)}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
