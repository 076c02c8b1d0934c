"""The one I/O loop of the parent side: one-shot runs (`spawn.pump`) and kernel cells
(`kernel.Kernel`) serve their pipes and exit notices here, under one set of rules for
the wall deadline, the kill grace, and the tree's CPU and memory budgets.

poll(2), built per run: a handful of fds, and nothing to make, tear down or keep open
between runs (a parked kernel holds no poll set)."""

from __future__ import annotations

import math
import select
import time
from collections.abc import Callable

from .caps import KILL_GRACE_S
from .treebudget import RunGuard


class Watch:
    """The fds a loop polls, each with what to do when it is ready."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self._on: dict[int, Callable[[], object]] = {}

    def add(self, fd: int, on_ready: Callable[[], object]) -> None:
        self._on[fd] = on_ready
        self._poll.register(fd, select.POLLIN)

    def remove(self, fd: int | None) -> None:
        """Stop polling `fd` (at its EOF, or before it is closed); idempotent."""
        if fd is not None and self._on.pop(fd, None) is not None:
            self._poll.unregister(fd)

    def clear(self) -> None:
        """Drop every fd and handler: a handler refers back to its owner (a run, a
        kernel), and the cycle would otherwise wait for the garbage collector."""
        for fd in list(self._on):
            self.remove(fd)

    def wait(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` and run the handlers of the fds that are ready."""
        for fd, _ in self._poll.poll(math.ceil(timeout_s * 1000)):
            on_ready = self._on.get(fd)  # an earlier handler may have removed it
            if on_ready is not None:
                on_ready()


def serve(
    watch: Watch,
    deadline: float,
    *,
    done: Callable[[], bool],
    kill: Callable[[str], None],
    guard: RunGuard | None = None,
) -> bool:
    """Run `watch` until `done()`. At the wall `deadline`, `kill("timeout")` and wait
    KILL_GRACE_S more for `done()`; over the tree's CPU budget `kill("CPU budget")`,
    and when its OOM fd fires `kill("memory limit")` (`guard` records which). Returns
    True if the deadline was hit; `done()` may then still be False (the grace ran out:
    the exit was never reported)."""
    oom_fd = guard.oom_fd if guard is not None else None
    if guard is not None and oom_fd is not None:

        def on_oom() -> None:
            guard.on_oom()
            kill("memory limit")

        watch.add(oom_fd, on_oom)
    timed_out = False
    try:
        while not done():
            now = time.monotonic()
            if guard is not None and not timed_out and guard.check_cpu(now):
                kill("CPU budget")
            left = deadline - now
            if left <= 0:
                if timed_out:
                    break
                timed_out = True
                kill("timeout")
                deadline = time.monotonic() + KILL_GRACE_S
                continue
            watch.wait(left if guard is None else max(0.0, min(left, guard.next_check - now)))
    finally:
        watch.remove(oom_fd)
    return timed_out
