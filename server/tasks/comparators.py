"""Comparators: how a case's output is matched against the reference's, by name.

A task names its comparator (`exact`, `float`, `unordered`, `unordered-deep`, `lines`,
`tokens`, `loose`, `evalplus`, or one added with `register_comparator`); the name is checked when
the task loads (`require`), so a typo fails there and not at the first submit. Each
comparator takes (expected, actual, tolerance) on plain data and returns a bool.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .model import TaskError

Comparator = Callable[[Any, Any, float], bool]


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _structural(expected: Any, actual: Any, leaf: Callable[[Any, Any], bool]) -> bool:
    """Lists item by item and dicts key by key, down to `leaf` for everything else."""
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _structural(e, a, leaf) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            _structural(v, actual[k], leaf) for k, v in expected.items()
        )
    return leaf(expected, actual)


def _equal(expected: Any, actual: Any, tol: float | None) -> bool:
    """Structural equality on plain data; bools are not numbers; floats within `tol`."""

    def leaf(e: Any, a: Any) -> bool:
        if isinstance(e, bool) or isinstance(a, bool):
            return type(e) is type(a) and e == a
        if _is_num(e) and _is_num(a):
            if tol is not None and (isinstance(e, float) or isinstance(a, float)):
                if math.isnan(e) or math.isnan(a):
                    return math.isnan(e) and math.isnan(a)
                return math.isclose(e, a, rel_tol=tol, abs_tol=tol)
            return bool(e == a)
        return type(e) is type(a) and bool(e == a)

    return _structural(expected, actual, leaf)


def _canonical(value: Any, deep: bool) -> Any:
    """A sortable canonical form: lists sorted (all levels when deep)."""
    if isinstance(value, list):
        items = [_canonical(v, deep) if deep else v for v in value]
        return sorted(items, key=repr)
    if isinstance(value, dict) and deep:
        return {k: _canonical(v, deep) for k, v in value.items()}
    return value


def exact(expected: Any, actual: Any, tol: float) -> bool:
    return _equal(expected, actual, None)


def floats(expected: Any, actual: Any, tol: float) -> bool:
    return _equal(expected, actual, tol)


def unordered(expected: Any, actual: Any, tol: float) -> bool:
    """Top-level order does not matter (a list compared as a multiset)."""
    if not (isinstance(expected, list) and isinstance(actual, list)):
        return _equal(expected, actual, None)
    return _equal(_canonical(expected, False), _canonical(actual, False), None)


def unordered_deep(expected: Any, actual: Any, tol: float) -> bool:
    """Order does not matter at any list level (groups of groups, say)."""
    return _equal(_canonical(expected, True), _canonical(actual, True), None)


def _text_lines(text: Any) -> list[str] | None:
    if not isinstance(text, str):
        return None
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def lines(expected: Any, actual: Any, tol: float) -> bool:
    """Program output: same lines, ignoring trailing spaces and trailing blank lines."""
    e, a = _text_lines(expected), _text_lines(actual)
    return e is not None and e == a


def tokens(expected: Any, actual: Any, tol: float) -> bool:
    """Program output: same whitespace-separated tokens."""
    return (
        isinstance(expected, str) and isinstance(actual, str) and expected.split() == actual.split()
    )


def loose(expected: Any, actual: Any, tol: float) -> bool:
    """Python `==` semantics (True == 1), floats within tolerance: HumanEval's asserts."""

    def leaf(e: Any, a: Any) -> bool:
        if _is_num(e) or isinstance(e, bool):
            if (_is_num(a) or isinstance(a, bool)) and not isinstance(e, bool):
                return math.isclose(e, a, rel_tol=tol, abs_tol=tol)
            return bool(e == a)
        return type(e) is type(a) and bool(e == a)

    return _structural(expected, actual, leaf)


def evalplus(expected: Any, actual: Any, tol: float) -> bool:
    """EvalPlus's rule: Python `==`, except floats, which match within `tol` absolute
    plus 1e-7 relative (numpy's allclose, NaN equal to NaN)."""

    def leaf(e: Any, a: Any) -> bool:
        if _is_num(e) and _is_num(a) and (isinstance(e, float) or isinstance(a, float)):
            if math.isnan(e) or math.isnan(a):
                return math.isnan(e) and math.isnan(a)
            return abs(a - e) <= tol + 1e-7 * abs(e)
        return bool(e == a)

    return _structural(expected, actual, leaf)


COMPARATORS: dict[str, Comparator] = {
    "exact": exact,
    "float": floats,
    "unordered": unordered,
    "unordered-deep": unordered_deep,
    "lines": lines,
    "tokens": tokens,
    "loose": loose,
    "evalplus": evalplus,
}


def register_comparator(name: str, fn: Comparator) -> None:
    """Add a named custom comparator that tasks can refer to."""
    COMPARATORS[name] = fn


def require(name: str) -> Comparator:
    """The comparator called `name`; TaskError naming the known ones when there is none."""
    try:
        return COMPARATORS[name]
    except KeyError:
        raise TaskError(
            f"unknown comparator {name!r}: expected one of {sorted(COMPARATORS)}"
        ) from None


def compare(comparator: str, expected: Any, actual: Any, tol: float = 1e-6) -> bool:
    """`expected` and `actual` match under `comparator`; a crashing comparator is False."""
    fn = require(comparator)
    try:
        return fn(expected, actual, tol)
    except Exception:  # a comparator must never crash the grader
        return False
