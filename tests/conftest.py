"""Shared fixtures: the real server, started as a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from python_env.server.launcher import Server, run_server


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with run_server(
        MAX_CONCURRENT_ENVS="64", SESSION_TIMEOUT_S="300", PYTHON_ENV_TIMEOUT_S="5"
    ) as s:
        yield s


@pytest.fixture(scope="session")
def bank():
    """The task bank as the server loads it (for reference solutions in oracle tests)."""
    from python_env.server.tasks import default_bank

    return default_bank()
