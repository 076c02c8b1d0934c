"""Parent-side reading of a child's pipes: never buffer more than the cap, and tell
the caller when a stream keeps flooding past it (so the child gets killed)."""

from __future__ import annotations

import json
import os
from typing import Any


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
    """Splits a result channel into lines; gives up (overflow) past `cap` bytes total."""

    def __init__(self, cap: int, max_line: int) -> None:
        self.cap, self.max_line = cap, max_line
        self.pending = bytearray()
        self.total = 0
        self.overflow = False

    def feed(self, data: bytes) -> list[bytes]:
        self.total += len(data)
        if self.overflow or self.total > self.cap:
            self.overflow = True
            self.pending.clear()
            return []
        self.pending += data
        *lines, rest = bytes(self.pending).split(b"\n")
        self.pending = bytearray(rest)
        if len(self.pending) > self.max_line:
            self.overflow = True
        return lines


def parse_line(raw: bytes, max_depth: int = 120) -> dict[str, Any] | None:
    """A JSON object from a child, or None if malformed or nested too deeply (a forged
    line must not be able to blow the verifier's stack)."""
    depth = peak = 0
    in_str = esc = False
    for ch in raw:
        if in_str:
            if esc:
                esc = False
            elif ch == 0x5C:
                esc = True
            elif ch == 0x22:
                in_str = False
        elif ch == 0x22:
            in_str = True
        elif ch in (0x5B, 0x7B):
            depth += 1
            peak = max(peak, depth)
            if peak > max_depth:
                return None
        elif ch in (0x5D, 0x7D):
            depth -= 1
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def read_some(fd: int, n: int = 1 << 16) -> bytes | None:
    """Non-blocking read: bytes, b"" at EOF, None if nothing is available now."""
    try:
        return os.read(fd, n)
    except BlockingIOError:
        return None
