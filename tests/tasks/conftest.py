"""Fixtures for the task-bank tests: one real sandbox and grader for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from python_env.server.grading import Grader
from python_env.server.sandbox import Sandbox
from python_env.server.tasks import TaskBank, default_bank


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def grader(sandbox: Sandbox) -> Grader:
    return Grader(sandbox)


@pytest.fixture(scope="session")
def bank() -> TaskBank:
    return default_bank()
