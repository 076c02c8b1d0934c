"""to_plain / encode / decode: the only way values cross the sandbox boundary."""

from __future__ import annotations

import math

import pytest
from python_env.server.sandbox import to_plain
from python_env.server.sandbox.plain import Unserializable, decode, dumps, encode


def test_scalars_and_containers() -> None:
    assert to_plain(None) is None and to_plain(True) is True and to_plain(3) == 3
    assert to_plain((1, [2, (3,)])) == [1, [2, [3]]]
    assert to_plain({"a": {"b": 1.5}}) == {"a": {"b": 1.5}}
    assert to_plain(b"\x00\xff") == {"$bytes": "00ff"}


def test_sets_and_odd_dicts_are_deterministic() -> None:
    assert to_plain({3, 1, 2}) == {"$set": [1, 2, 3]}
    assert to_plain(frozenset({"b", "a"})) == {"$set": ["a", "b"]}
    assert to_plain({2: "x", 1: "y"}) == {"$dict": [[1, "y"], [2, "x"]]}
    # a str-keyed dict that looks like a tag cannot impersonate a set
    assert to_plain({"$set": [1]}) == {"$dict": [["$set", [1]]]}


def test_non_finite_floats() -> None:
    assert to_plain(math.nan) == {"$float": "nan"} == to_plain(float("nan"))
    assert to_plain([math.inf, -math.inf]) == [{"$float": "inf"}, {"$float": "-inf"}]
    dumps(to_plain(math.nan))  # valid JSON


def test_subclasses_and_objects_are_rejected() -> None:
    class Sneaky(int):
        def __eq__(self, other: object) -> bool:
            return True

    class AlwaysEqual:
        def __eq__(self, other: object) -> bool:
            return True

    for bad in (Sneaky(1), AlwaysEqual(), [AlwaysEqual()], lambda: 1, {1: object()}):
        with pytest.raises(Unserializable):
            to_plain(bad)


def test_cycles_are_rejected() -> None:
    a: list = []
    a.append(a)
    with pytest.raises(Unserializable):
        to_plain(a)


def test_encode_round_trip_keeps_types() -> None:
    v = (1, [2, (3, 4)], {"k": {1, 2}}, {(1, 2): frozenset({3})}, math.inf, b"x", 1 + 2j)
    back = decode(encode(v))
    assert back == v and type(back) is tuple and type(back[1][1]) is tuple
    assert math.isnan(decode(encode(math.nan)))
