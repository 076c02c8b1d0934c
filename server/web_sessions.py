"""One environment per web UI visitor, instead of OpenEnv's one instance shared by all.

OpenEnv's `WebInterfaceManager` holds a single environment for every browser; here
each browser session (one page load, keyed by Gradio's session hash) gets its own
`PythonEnvironment`, so a visitor's episode, solution and kernel are theirs alone.
A session opens on the visitor's first action and closes when the page goes away
(Gradio's unload event) or when Gradio drops the visitor's state after the idle
timeout. At most `capacity` are open at once: when full, sessions idle past the
timeout are closed first (should Gradio never have reported them), and then one more
gets `SessionLimitError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .python_env_environment import PythonEnvironment
from .web_render import View


class SessionLimitError(RuntimeError):
    """Every web session is taken; the visitor should try again later."""

    code = "CAPACITY_REACHED"


@dataclass(eq=False)
class Visitor:
    """One browser session: its environment, what its page shows, and a lock so that
    two clicks of the same visitor never step the environment at once."""

    session_hash: str
    env: PythonEnvironment
    view: View = field(default_factory=View)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False
    last_used: float = field(default_factory=time.monotonic)

    @contextmanager
    def use(self) -> Iterator[None]:
        """Hold the visitor for one click; it counts as in use until the click is done."""
        with self.lock:
            self.last_used = time.monotonic()
            try:
                yield
            finally:
                self.last_used = time.monotonic()


class WebSessions:
    """The open visitors, by session hash."""

    def __init__(
        self, factory: Callable[[], PythonEnvironment], capacity: int, idle_timeout_s: float
    ) -> None:
        self._factory = factory
        self.capacity = capacity
        self.idle_timeout_s = idle_timeout_s
        self._open: dict[str, Visitor] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def open(self, session_hash: str) -> Visitor:
        """The visitor of this session, created on first use."""
        with self._lock:
            visitor = self._open.get(session_hash)
            full = len(self._open) >= self.capacity
        if visitor is not None:
            return visitor
        if full:
            self._close_idle()
        with self._lock:
            if (visitor := self._open.get(session_hash)) is None:
                if len(self._open) >= self.capacity:
                    raise SessionLimitError(
                        f"all {self.capacity} web sessions are in use; try again later"
                    )
                visitor = self._open[session_hash] = Visitor(session_hash, self._factory())
            return visitor

    def _close_idle(self) -> None:
        now = time.monotonic()
        with self._lock:
            idle = [v for v in self._open.values() if now - v.last_used >= self.idle_timeout_s]
        for visitor in idle:
            self.close(visitor.session_hash, visitor)

    def close(self, session_hash: str, visitor: Visitor | None = None) -> None:
        """End a session (its page is gone) and free its kernel; with `visitor`, only if
        that is still the session's visitor. Closing twice is harmless."""
        with self._lock:
            current = self._open.get(session_hash)
            if current is None or (visitor is not None and current is not visitor):
                return
            del self._open[session_hash]
        with current.lock:  # a step in flight finishes first
            current.closed = True
            current.env.close()

    def expire(self, visitor: Visitor | None) -> None:
        """Gradio's `delete_callback`: the visitor's state outlived the idle timeout."""
        if visitor is not None:
            self.close(visitor.session_hash, visitor)
