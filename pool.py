"""A client-side session pool: python_env sessions spread over several replicas.

A replica is a plain python_env server (on a Ray cluster, `eval/ray_replicas.py` starts
one per node). The pool places each new session on the least-loaded live replica and
fails over, under one rule: nothing is lost silently and no step is applied twice.

- Load: each replica's `/metrics` (`python_env_ws_connections`, relative to
  `python_env_sessions_max` when given), scraped at most once per `probe_interval_s`,
  plus the sessions this pool opened since that scrape. A replica without `/metrics`
  is probed with `/health` and weighed by this pool's own sessions on it.
- Reset: placed on a replica when the session has none (or lost its connection); a
  replica that refuses the connection, is full (`CAPACITY_REACHED`) or drops it is
  skipped and the reset goes to the next. Only when no replica takes it does reset
  raise `ReplicaLost`.
- Step: always on the session's replica. If the connection is lost before the reply,
  `ReplicaLost` is raised (the step may or may not have run there, so it is never
  resent) and the session has no episode until the next reset.

>>> pool = SessionPool(["http://10.0.0.1:8000", "http://10.0.0.2:8000"])
>>> with pool.session() as env:                 # the PythonEnv calls, sync
...     env.reset(task_id="implement-rle-encode")
...     env.step(PythonAction(kind="run", code="print(1 + 1)"))
>>> async with pool.async_session() as env:     # and async
...     await env.reset()
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from openenv.core.client_types import StepResult
from websockets.exceptions import WebSocketException
from websockets.protocol import State

from .client import MESSAGE_TIMEOUT_S, TOKEN_HEADER, PythonEnv
from .errors import CapacityReached, NoEpisode, ReplicaLost
from .models import PythonAction, PythonObservation, PythonState

T = TypeVar("T")

PROBE_TIMEOUT_S = 3.0
DEFAULT_CAPACITY = 64
"""MAX_CONCURRENT_ENVS's default: the capacity of a replica that does not report one."""
CONNECTION_LOST = (ConnectionError, OSError, WebSocketException, EOFError)
"""What a dead or vanished replica raises in the client (OpenEnv wraps a refused
connection in ConnectionError; a dropped one is websockets' ConnectionClosed)."""


@dataclass
class Replica:
    """One replica and what the pool knows of its load."""

    url: str
    node: str | None = None
    """Its Ray node id, when it runs on Ray."""
    sessions: int = 0
    """Sessions of this pool bound to it now."""
    reported: int | None = None
    """Connections it reported at the last scrape (None: no /metrics)."""
    capacity: int | None = None
    down_until: float = 0.0
    lost: int = 0
    """Connections this pool lost on it (steps in flight and idle sessions)."""
    _probed_at: float = field(default=-1e9, repr=False)
    _sessions_at_probe: int = field(default=0, repr=False)

    @property
    def load(self) -> float:
        """Estimated connections now, as a share of its capacity (the server's default
        capacity when it does not say)."""
        if self.reported is None:
            estimate = float(self.sessions)
        else:
            estimate = float(max(0, self.reported + self.sessions - self._sessions_at_probe))
        return estimate / (self.capacity or DEFAULT_CAPACITY)


def parse_metrics(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text page (`name value` lines), by name."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" in line:
            continue
        parts = line.split()
        if len(parts) >= 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return out


class SessionPool:
    """Sessions over several python_env replicas: `session()` (sync) or
    `async_session()` (async) give clients with PythonEnv's reset/step/state/close.

    `urls`: the replicas' base URLs; `nodes` optionally maps a URL to its Ray node id.
    `SessionPool.from_ray(address)` discovers the replicas a Ray cluster runs.
    `down_for_s`: how long a replica that failed is skipped (then probed again).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        nodes: Mapping[str, str | None] | None = None,
        token: str | None = None,
        message_timeout_s: float = MESSAGE_TIMEOUT_S,
        connect_timeout_s: float = 10.0,
        probe_interval_s: float = 1.0,
        down_for_s: float = 5.0,
    ) -> None:
        clean = list(dict.fromkeys(u.rstrip("/") for u in urls))
        if not clean:
            raise ValueError("a session pool needs at least one replica URL")
        for url in clean:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"replica URL must start with http:// or https://: {url!r}")
        nodes = {k.rstrip("/"): v for k, v in (nodes or {}).items()}
        self.replicas = [Replica(u, nodes.get(u)) for u in clean]
        self.token = token
        self.message_timeout_s = message_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.probe_interval_s = probe_interval_s
        self.down_for_s = down_for_s
        self._lock = threading.Lock()
        self._turn = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._open: set[AsyncPooledEnv] = set()

    @classmethod
    def from_ray(cls, address: str | None = None, **options: Any) -> SessionPool:
        """The replicas running on the Ray cluster at `address` (needs the `ray` extra)."""
        from .eval.ray_replicas import discover

        found = discover(address)
        if not found:
            raise ReplicaLost(f"no python_env replica runs on the Ray cluster at {address}")
        return cls([r.url for r in found], nodes={r.url: r.node_id for r in found}, **options)

    # -- sessions ------------------------------------------------------------------------

    def session(self) -> PooledEnv:
        """A sync session (its calls run on the pool's own event loop thread)."""
        return PooledEnv(self)

    def async_session(self) -> AsyncPooledEnv:
        """An async session (its calls run on the caller's event loop)."""
        return AsyncPooledEnv(self)

    def close(self) -> None:
        """Close every session of the pool and stop its event loop thread."""
        for env in list(self._open):
            if env._loop is not None and env._loop is self._loop:
                self._run(env.close())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop = self._thread = None

    def __enter__(self) -> SessionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> list[dict[str, Any]]:
        """Each replica's URL, node, this pool's sessions on it, its load and state."""
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "url": r.url,
                    "node": r.node,
                    "sessions": r.sessions,
                    "load": round(r.load, 4),
                    "metrics": r.reported is not None,
                    "down": r.down_until > now,
                    "lost": r.lost,
                }
                for r in self.replicas
            ]

    # -- placement -----------------------------------------------------------------------

    async def _place(self, exclude: set[str]) -> Replica:
        """The least-loaded live replica not in `exclude`, its session counted already
        (so that sessions placed at the same moment spread)."""
        candidates = [r for r in self.replicas if r.url not in exclude]
        now = time.monotonic()
        live = [r for r in candidates if r.down_until <= now]
        if not live:  # every one failed recently: probe them all again before giving up
            live = candidates
        with self._lock:  # claim the stale ones: sessions placed meanwhile use the last figures
            stale = [r for r in live if now - r._probed_at >= self.probe_interval_s]
            for r in stale:
                r._probed_at = now
        if stale:
            await asyncio.gather(*(self._probe(r) for r in stale))
        now = time.monotonic()
        with self._lock:
            up = [r for r in live if r.down_until <= now]
            if not up:
                tried = ", ".join(sorted(exclude | {r.url for r in live})) or "none"
                raise ReplicaLost(f"no live python_env replica (tried {tried})")
            self._turn += 1
            turn = self._turn
            best = min(
                up,
                key=lambda r: (
                    r.load,
                    r.sessions,
                    (self.replicas.index(r) - turn) % len(self.replicas),
                ),
            )
            best.sessions += 1
            return best

    async def _probe(self, replica: Replica) -> None:
        """Scrape `/metrics` (or, where there is none, `/health`); mark it down if it
        does not answer."""
        headers = {TOKEN_HEADER: self.token} if self.token else None
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, headers=headers) as http:
                response = await http.get(f"{replica.url}/metrics")
                figures = parse_metrics(response.text) if response.status_code == 200 else {}
                connections = figures.get("python_env_ws_connections")
                if connections is None:
                    health = await http.get(f"{replica.url}/health")
                    health.raise_for_status()
        except httpx.HTTPError:
            self._mark_down(replica)
            return
        with self._lock:
            replica._probed_at = time.monotonic()
            replica._sessions_at_probe = replica.sessions
            replica.reported = None if connections is None else int(connections)
            capacity = figures.get("python_env_sessions_max")
            replica.capacity = int(capacity) if capacity else None
            replica.down_until = 0.0

    def _mark_down(self, replica: Replica) -> None:
        with self._lock:
            replica.down_until = time.monotonic() + self.down_for_s
            replica._probed_at = time.monotonic()

    async def _check(self, replica: Replica) -> None:
        """After a lost connection: down unless it still answers /health."""
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as http:
                (await http.get(f"{replica.url}/health")).raise_for_status()
        except httpx.HTTPError:
            self._mark_down(replica)

    def _release(self, replica: Replica) -> None:
        with self._lock:
            replica.sessions = max(0, replica.sessions - 1)

    # -- the sync facade's event loop ----------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="python-env-pool", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


class _PinnedEnv(PythonEnv):
    """A PythonEnv that never reconnects behind the pool's back. OpenEnv's client
    reopens a closed socket on the next send: that would put a step of an episode on a
    fresh session, or on a restarted replica, that knows nothing of it."""

    opened = False

    async def _ensure_connected(self) -> None:
        if self.opened and (self._ws is None or self._ws.state is not State.OPEN):
            raise ConnectionError("the session's connection is gone")
        await super()._ensure_connected()
        self.opened = True


class AsyncPooledEnv:
    """One session of a `SessionPool` (async): `reset`, `step`, `state`, `close`, as
    `PythonEnv`; `.replica` and `.node` say where its episode runs."""

    def __init__(self, pool: SessionPool) -> None:
        self._pool = pool
        self._client: _PinnedEnv | None = None
        self._replica: Replica | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def replica(self) -> str | None:
        """The URL of the replica holding this session (None before the first reset)."""
        return self._replica.url if self._replica else None

    @property
    def node(self) -> str | None:
        """That replica's Ray node id (None when not on Ray)."""
        return self._replica.node if self._replica else None

    async def reset(self, **kwargs: Any) -> StepResult[PythonObservation]:
        """Start an episode (PythonEnv.reset's options), failing over to another replica
        when this one refuses, is full or drops the connection."""
        tried: set[str] = set()
        while True:
            if self._client is None or not self._connected():
                await self._unbind()
                await self._bind(tried)
            assert self._client is not None and self._replica is not None
            try:
                return await self._client.reset(**kwargs)
            except CapacityReached:
                tried.add(self._replica.url)
            except CONNECTION_LOST:
                tried.add(self._replica.url)
                await self._lost(in_flight=False)
            await self._unbind()

    async def step(self, action: PythonAction) -> StepResult[PythonObservation]:
        """One step on this session's replica; `ReplicaLost` if the connection is lost
        before the reply (never resent)."""
        if self._client is None:
            raise NoEpisode("step() before reset(): no replica holds an episode of this session")
        try:
            return await self._client.step(action)
        except CONNECTION_LOST as exc:
            url = self.replica
            in_flight = self._client.opened and not isinstance(exc, ConnectionError)
            await self._lost(in_flight=in_flight)
            await self._unbind()
            raise ReplicaLost(
                f"lost the connection to replica {url}"
                + (
                    " with the step in flight: it may or may not have run there and is not resent"
                    if in_flight
                    else " before the step was sent"
                )
                + "; the episode is over: reset() to start another on a live replica",
                data={"replica": url, "in_flight": in_flight},
            ) from exc

    async def state(self) -> PythonState:
        if self._client is None:
            raise NoEpisode("state() before reset(): this session has no replica")
        try:
            return await self._client.state()
        except CONNECTION_LOST as exc:
            url = self.replica
            await self._lost(in_flight=False)
            await self._unbind()
            raise ReplicaLost(f"lost the connection to replica {url}") from exc

    async def close(self) -> None:
        await self._unbind()

    async def __aenter__(self) -> AsyncPooledEnv:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- binding -------------------------------------------------------------------------

    def _connected(self) -> bool:
        ws = self._client._ws if self._client is not None else None
        return ws is not None and ws.state is State.OPEN

    async def _bind(self, tried: set[str]) -> None:
        """Connect to the least-loaded live replica not yet tried."""
        pool = self._pool
        while True:
            replica = await pool._place(tried)
            client = _PinnedEnv(
                base_url=replica.url,
                token=pool.token,
                message_timeout_s=pool.message_timeout_s,
                connect_timeout_s=pool.connect_timeout_s,
            )
            try:
                await client.connect()
            except CONNECTION_LOST:
                pool._release(replica)
                pool._mark_down(replica)
                tried.add(replica.url)
                continue
            self._client, self._replica = client, replica
            self._loop = asyncio.get_running_loop()
            pool._open.add(self)
            return

    async def _lost(self, *, in_flight: bool) -> None:
        replica = self._replica
        if replica is None:
            return
        with self._pool._lock:
            replica.lost += 1
        await self._pool._check(replica)

    async def _unbind(self) -> None:
        """Leave the replica (which stays named in `.replica` until the next bind)."""
        client, replica = self._client, self._replica
        if client is None or replica is None:
            return
        self._client = None
        self._pool._open.discard(self)
        self._pool._release(replica)
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection is best effort
            pass


class PooledEnv:
    """One session of a `SessionPool` (sync): `reset`, `step`, `state`, `close`, as
    `PythonEnv`; `.replica` and `.node` say where its episode runs."""

    def __init__(self, pool: SessionPool) -> None:
        self._pool = pool
        self._env = AsyncPooledEnv(pool)

    @property
    def replica(self) -> str | None:
        return self._env.replica

    @property
    def node(self) -> str | None:
        return self._env.node

    def reset(self, **kwargs: Any) -> StepResult[PythonObservation]:
        return self._pool._run(self._env.reset(**kwargs))

    def step(self, action: PythonAction) -> StepResult[PythonObservation]:
        return self._pool._run(self._env.step(action))

    def state(self) -> PythonState:
        return self._pool._run(self._env.state())

    def close(self) -> None:
        if self._pool._loop is not None:
            self._pool._run(self._env.close())

    def __enter__(self) -> PooledEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
