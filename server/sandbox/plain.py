"""Canonical conversion of Python values into JSON-safe plain data.

Both the reference and the candidate go through `to_plain` in their own child, and
only the resulting JSON crosses into the verifier. Type checks are exact (`type(x) is
int`), so a subclass with a forged `__eq__` cannot pass for a plain value.

`to_plain` is lenient where graders usually are (tuple == list). `encode`/`decode`
are the exact, reversible variant used to relay arguments and return values between
the test process and the candidate process in `run_assertions` (tuples stay tuples).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 100


class Unserializable(TypeError):
    """The value is not plain data (or too deep / cyclic)."""


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"$float": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def _sort_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, separators=(",", ":"))


def to_plain(value: Any, _depth: int = 0) -> Any:
    """None/bool/int/float/str stay; list/tuple -> list; str-keyed dict -> dict;
    set/frozenset -> {"$set": sorted}; other dicts -> {"$dict": sorted pairs};
    bytes -> {"$bytes": hex}; non-finite floats -> {"$float": "nan"|"inf"|"-inf"}."""
    if _depth > MAX_DEPTH:
        raise Unserializable("value nested too deeply (or cyclic)")
    t = type(value)
    if value is None or t is bool or t is int or t is str:
        return value
    if t is float:
        return _float(value)
    d = _depth + 1
    if t is list or t is tuple:
        return [to_plain(v, d) for v in value]
    if t is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: to_plain(v, d) for k, v in value.items()}
        pairs = [[to_plain(k, d), to_plain(v, d)] for k, v in value.items()]
        return {"$dict": sorted(pairs, key=_sort_key)}
    if t is set or t is frozenset:
        return {"$set": sorted((to_plain(v, d) for v in value), key=_sort_key)}
    if t is bytes:
        return {"$bytes": value.hex()}
    raise Unserializable(f"cannot convert {t.__name__} to plain data")


_TAG = "$t"


def encode(value: Any, _depth: int = 0) -> Any:
    """Exact, reversible JSON form of plain Python data (exact types only)."""
    if _depth > MAX_DEPTH:
        raise Unserializable("value nested too deeply (or cyclic)")
    t = type(value)
    if value is None or t is bool or t is int or t is str:
        return value
    if t is float:
        return value if math.isfinite(value) else {_TAG: "float", "v": repr(value)}
    d = _depth + 1
    if t is list:
        return [encode(v, d) for v in value]
    if t is tuple:
        return {_TAG: "tuple", "v": [encode(v, d) for v in value]}
    if t is dict:
        if all(type(k) is str for k in value) and _TAG not in value:
            return {k: encode(v, d) for k, v in value.items()}
        return {_TAG: "dict", "v": [[encode(k, d), encode(v, d)] for k, v in value.items()]}
    if t is set or t is frozenset:
        return {_TAG: t.__name__, "v": [encode(v, d) for v in value]}
    if t is bytes:
        return {_TAG: "bytes", "v": value.hex()}
    if t is complex:
        return {_TAG: "complex", "v": [repr(value.real), repr(value.imag)]}
    raise Unserializable(f"cannot pass {t.__name__} across the sandbox boundary")


def decode(data: Any) -> Any:
    """Inverse of `encode`; builds only builtin types."""
    t = type(data)
    if t is list:
        return [decode(v) for v in data]
    if t is not dict:
        return data
    tag = data.get(_TAG)
    if tag is None:
        return {k: decode(v) for k, v in data.items()}
    v = data.get("v")
    if tag == "tuple":
        return tuple(decode(x) for x in v)
    if tag == "dict":
        return {_hashable(decode(k)): decode(x) for k, x in v}
    if tag == "set":
        return {_hashable(decode(x)) for x in v}
    if tag == "frozenset":
        return frozenset(_hashable(decode(x)) for x in v)
    if tag == "float":
        return float(v)
    if tag == "bytes":
        return bytes.fromhex(v)
    if tag == "complex":
        return complex(float(v[0]), float(v[1]))
    raise ValueError(f"unknown tag {tag!r}")


def _hashable(x: Any) -> Any:
    return tuple(_hashable(v) for v in x) if type(x) is list else x


def dumps(value: Any) -> str:
    """One JSON line (never contains a raw newline)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
