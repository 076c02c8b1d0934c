"""The malloc arena cap (`PYTHON_ENV_MALLOC_ARENAS`): read into its setting and applied
where the C library has `mallopt`. Every server test runs with it (the default); the soak
measures what it saves (benchmarks/README.md)."""

from __future__ import annotations

import ctypes
import platform

import pytest
from python_env.server import allocator
from python_env.server.config import Settings


def test_the_setting_defaults_to_two_arenas_and_zero_leaves_glibcs_default() -> None:
    assert Settings().malloc_arenas == 2
    assert Settings.from_env({"PYTHON_ENV_MALLOC_ARENAS": "4"}).malloc_arenas == 4
    assert Settings.from_env({"PYTHON_ENV_MALLOC_ARENAS": "0"}).malloc_arenas == 0
    assert allocator.cap_arenas(0) is False  # nothing is called


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's M_ARENA_MAX is glibc's")
def test_the_cap_is_applied_on_glibc() -> None:
    assert hasattr(ctypes.CDLL(None), "mallopt")
    assert allocator.cap_arenas(2) is True
