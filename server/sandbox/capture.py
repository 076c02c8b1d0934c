"""Parent-side reading of a child's pipes: never buffer more than the cap, and tell
the caller when a stream keeps flooding past it (so the child gets killed)."""

from __future__ import annotations

import json
import os
from typing import Any

from . import caps


class StreamCap:
    """Keeps the first `cap` bytes; counts the rest. `flooding` once far past the cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        room = self.cap - len(self.buf)
        if room > 0:
            self.buf += data[:room]
        self.total += len(data)

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    @property
    def flooding(self) -> bool:
        return self.total > self.cap + max(1 << 20, self.cap)

    def text(self) -> str:
        return self.buf.decode("utf-8", errors="replace")


class LineReader:
    """Splits a result channel into lines; gives up (overflow) past `cap` bytes in all or
    a line longer than `max_line`. Only newly arrived bytes are searched for newlines, so
    a long line costs linear time however it is chunked."""

    def __init__(self, cap: int, max_line: int) -> None:
        self.cap, self.max_line = cap, max_line
        self.pending = bytearray()
        self.total = 0
        self.overflow = False

    def feed(self, data: bytes) -> list[bytes]:
        self.total += len(data)
        if self.overflow or self.total > self.cap:
            return self._give_up()
        if b"\n" not in data:
            self.pending += data
            return self._give_up() if len(self.pending) > self.max_line else []
        first, *lines, rest = data.split(b"\n")
        lines.insert(0, bytes(self.pending) + first)
        self.pending = bytearray(rest)
        if len(self.pending) > self.max_line or any(len(x) > self.max_line for x in lines):
            return self._give_up()
        return lines

    def _give_up(self) -> list[bytes]:
        self.overflow = True
        self.pending.clear()
        return []


def parse_line(raw: bytes, max_depth: int = caps.JSON_DEPTH) -> dict[str, Any] | None:
    """A JSON object from a child, or None if malformed, too many containers, or nested
    deeper than `max_depth` (the verifier's comparators recurse over it)."""
    if raw.count(b"[") + raw.count(b"{") > caps.JSON_CONTAINERS:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or _deeper_than(obj, max_depth):
        return None
    return obj


def _deeper_than(obj: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, list):
            stack.extend((x, depth + 1) for x in node if isinstance(x, list | dict))
        elif isinstance(node, dict):
            stack.extend((x, depth + 1) for x in node.values() if isinstance(x, list | dict))
    return False


def read_some(fd: int, n: int = caps.READ_CHUNK) -> bytes | None:
    """Non-blocking read: bytes, b"" at EOF, None if nothing is available now."""
    try:
        return os.read(fd, n)
    except BlockingIOError:
        return None
