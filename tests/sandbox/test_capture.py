"""The parent's reading of a child's result channel: bounded in memory and time
whatever the child writes (found in review: forged lines of `[[],[],...]` cost the
server ~20x their size in memory and seconds of CPU)."""

from __future__ import annotations

from python_env.server.sandbox.caps import JSON_CONTAINERS as MAX_CONTAINERS
from python_env.server.sandbox.capture import LineReader, parse_line


def test_lines_split_across_chunks_are_joined():
    reader = LineReader(1 << 20, 1 << 10)
    assert reader.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}']
    assert reader.feed(b": 2}") == []
    assert reader.feed(b"\n") == [b'{"b": 2}']


def test_a_long_line_arriving_in_chunks_is_read_once():
    line = b'{"o": [' + b",".join([b"7"] * 1_000_000) + b"]}\n"
    reader = LineReader(16 << 20, 8 << 20)
    lines = []
    for i in range(0, len(line), 1 << 16):
        lines += reader.feed(line[i : i + (1 << 16)])
    assert len(lines) == 1 and len(parse_line(lines[0])["o"]) == 1_000_000


def test_overflow_past_the_line_or_total_cap():
    reader = LineReader(1 << 20, 100)
    assert reader.feed(b"x" * 101) == [] and reader.overflow
    reader = LineReader(1 << 20, 100)
    assert reader.feed(b"x" * 150 + b"\n") == [] and reader.overflow
    reader = LineReader(1000, 100)
    for _ in range(20):
        reader.feed(b'{"i": 1}\n' * 10)
    assert reader.overflow


def test_forged_lines_are_refused_before_they_cost_memory():
    many = b'{"o": [' + b",".join([b"[]"] * (MAX_CONTAINERS + 1)) + b"]}"
    assert parse_line(many) is None
    assert parse_line(b'{"o": ' + b"[" * 121 + b"]" * 121 + b"}") is None
    assert parse_line(b'{"o": ' + b"[" * 50_000 + b"]" * 50_000 + b"}") is None
    assert parse_line(b"[1, 2]") is None and parse_line(b"{not json") is None
    assert parse_line(b'{"o": ' + b"[" * 100 + b"]" * 100 + b"}") is not None
