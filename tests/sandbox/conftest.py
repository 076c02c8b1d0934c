"""Fixtures for the sandbox suite: one shared engine (2 slots) with short limits, so the
hostile programs are contained quickly. Every test uses real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from python_env.server.sandbox import Limits, Sandbox

FAST = Limits(
    wall_s=3.0,
    cpu_s=3.0,
    memory_mb=512,
    max_output_bytes=4096,
    file_size_mb=8,
    disk_mb=48,
    max_processes=16,
    max_open_files=64,
)


@pytest.fixture(scope="session")
def sb() -> Iterator[Sandbox]:
    s = Sandbox(slots=2, limits=FAST)
    yield s
    s.close()


@pytest.fixture
def healthy(sb: Sandbox) -> Iterator[Sandbox]:
    """The engine must serve the next run correctly after whatever the test did."""
    yield sb
    r = sb.run("print(6 * 7)")
    assert (r.stdout, r.exit_code, r.timed_out) == ("42\n", 0, False), r
