"""A tiny stand-in for `pytest` inside the test process (real pytest costs ~250 ms to
import). Enough for test code that uses raises/approx/skip/fail/mark; a skip is a
failure for the verdict."""

from __future__ import annotations

import math
import re
import types
from typing import Any


class Skipped(BaseException):
    """pytest.skip(): counts as not passed."""


class Failed(Exception):
    pass


class _Raises:
    def __init__(self, expected: Any, match: str | None = None) -> None:
        self.expected, self.match = expected, match
        self.value: Any = None

    def __enter__(self) -> _Raises:
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        if et is None:
            raise Failed(f"DID NOT RAISE {self.expected}")
        if not issubclass(et, self.expected):
            return False
        if self.match is not None and not re.search(self.match, str(ev)):
            raise Failed(f"Regex {self.match!r} does not match {str(ev)!r}")
        self.value = ev
        return True


class _Approx:
    def __init__(self, expected: Any, rel: float | None = None, abs: float | None = None):
        self.expected, self.rel, self.abs = expected, rel, abs

    def _close(self, a: Any, b: Any) -> bool:
        if isinstance(b, (list, tuple)):
            return (
                isinstance(a, (list, tuple))
                and len(a) == len(b)
                and all(self._close(x, y) for x, y in zip(a, b, strict=True))
            )
        if isinstance(b, dict):
            return (
                isinstance(a, dict)
                and a.keys() == b.keys()
                and all(self._close(a[k], b[k]) for k in b)
            )
        if not isinstance(a, (int, float)) or isinstance(a, bool):
            return bool(a == b)
        rel = 1e-6 if self.rel is None else self.rel
        tol = max(rel * abs(b), 1e-12 if self.abs is None else self.abs)
        return a == b or math.isclose(a, b, rel_tol=0, abs_tol=tol)

    def __eq__(self, other: object) -> bool:
        return self._close(other, self.expected)

    def __repr__(self) -> str:
        return f"approx({self.expected!r})"


class _Mark:
    def __getattr__(self, name: str) -> Any:
        def deco(*args: Any, **kwargs: Any) -> Any:
            if len(args) == 1 and callable(args[0]) and not kwargs:
                return args[0]
            return lambda fn: fn

        return deco


def module() -> types.ModuleType:
    m = types.ModuleType("pytest")

    def skip(reason: str = "", **_: Any) -> None:
        raise Skipped(f"skipped: {reason}")

    def fail(reason: str = "", **_: Any) -> None:
        raise Failed(reason)

    def fixture(*args: Any, **kwargs: Any) -> Any:
        return args[0] if args and callable(args[0]) else (lambda fn: fn)

    m.__dict__.update(
        raises=_Raises,
        approx=_Approx,
        skip=skip,
        fail=fail,
        xfail=skip,
        mark=_Mark(),
        fixture=fixture,
        Skipped=Skipped,
        Failed=Failed,
    )
    return m
