"""Shared fixtures: the real server, started as a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from python_env.server.launcher import Server, run_server

# Test servers (which inherit this environment) and in-process banks serve the built-in
# bank unless a test asks for more: CodeI/O's problems, on by default, would change
# every seeded pick. tests/tasks/test_codeio.py opts in with PYTHON_ENV_CODEIO=1.
os.environ.setdefault("PYTHON_ENV_CODEIO", "0")


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
