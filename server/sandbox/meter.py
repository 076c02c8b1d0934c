"""The sandbox's hooks into the server's `/metrics` (server/metrics.py) when it runs in
the server; loaded alone (by path, stdlib only, as tests and tools do) it counts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

try:
    from ..metrics import add, gauge, slot_wait
except ImportError:  # no server package around the sandbox

    def add(name: str, amount: float = 1, label: str = "", value: str = "") -> None:
        return None

    @contextmanager
    def gauge(name: str, label: str = "", value: str = "") -> Iterator[None]:
        yield

    @contextmanager
    def slot_wait() -> Iterator[None]:
        yield


__all__ = ["add", "gauge", "slot_wait"]
