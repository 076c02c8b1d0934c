"""python_env replicas on a Ray cluster (the `ray` extra): one server per node by default.

Each replica is a Ray actor (`ReplicaServer`) that runs the ordinary python_env server
(`python -m python_env.server.app`, HTTP + WebSocket) as a subprocess on its node and
watches it: a server that exits, or stops answering `/health` three times in a row, is
restarted on the same port (same URL). Placement is Ray's: a detached placement group
of one bundle per replica, STRICT_SPREAD (one node each) when there are no more
replicas than nodes, SPREAD otherwise. The actors are named and detached, so a later
driver finds them (`discover`) and `stop_replicas` stops them all.

    python -m python_env.eval.ray_replicas start --address 10.0.0.1:6379   # one per node
    python -m python_env.eval.ray_replicas status --address 10.0.0.1:6379
    python -m python_env.eval.ray_replicas stop --address 10.0.0.1:6379

Clients reach the replicas at the address Ray gives their node (`ray.util.
get_node_ip_address()`), so they must be on the cluster's network: use `SessionPool.
from_ray(address)` (`pool.py`) or `python-env-eval --ray ADDRESS`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from ..server.launcher import free_port, stop_process

NAMESPACE = "python_env"
ACTOR_PREFIX = "python-env-replica-"
GROUP_NAME = "python-env-replicas"
CHECK_INTERVAL_S = 2.0
FAILED_CHECKS = 3
"""Consecutive failed /health checks after which a live server is restarted."""


class RayError(Exception):
    """Ray is missing, the cluster unreachable, or the replicas could not be placed."""


@dataclass(frozen=True)
class ReplicaInfo:
    name: str
    url: str
    node_id: str
    pid: int
    restarts: int


# -- the actor ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the server's child process: SIGTERM when the actor process dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ReplicaServer:
    """A Ray actor holding one python_env server on its node (see the module)."""

    def __init__(
        self, name: str, env: Mapping[str, str], host: str | None, startup_timeout_s: float
    ) -> None:
        import ray

        self._name = name
        self._host = host or ray.util.get_node_ip_address()
        self._node_id = ray.get_runtime_context().get_node_id()
        self._port = free_port(self._host)
        self._env = {**os.environ, **env}
        self._startup_timeout_s = startup_timeout_s
        self._restarts = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        log = tempfile.NamedTemporaryFile(prefix=f"{name}_", suffix=".log", delete=False)
        log.close()
        self._log_path = Path(log.name)
        self._process = self._start()
        threading.Thread(target=self._watch, name="replica-watch", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def info(self) -> dict[str, Any]:
        with self._lock:
            return asdict(
                ReplicaInfo(self._name, self.url, self._node_id, self._process.pid, self._restarts)
            )

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self._log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        """Stop the server (the actor is killed by the caller afterwards)."""
        self._stopping.set()
        with self._lock:
            stop_process(self._process)
        with contextlib.suppress(OSError):
            self._log_path.unlink()

    def _start(self) -> subprocess.Popen:
        with open(self._log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "python_env.server.app"]
                + ["--host", self._host, "--port", str(self._port)],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._healthy():
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(
                    f"python_env server on {self.url} did not start: {self.log_tail()}"
                )
            time.sleep(0.2)
        return process

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def _watch(self) -> None:
        failed = 0
        while not self._stopping.wait(CHECK_INTERVAL_S):
            exited = self._process.poll() is not None
            failed = 0 if exited or self._healthy() else failed + 1
            if (exited or failed >= FAILED_CHECKS) and not self._stopping.is_set():
                with self._lock:
                    stop_process(self._process)
                    try:
                        self._process = self._start()
                        self._restarts += 1
                    except RuntimeError:
                        continue  # tried again at the next check
                failed = 0


# -- the driver's side -------------------------------------------------------------------


def _ray(address: str | None) -> Any:
    """The `ray` module, connected to the cluster at `address` in our namespace."""
    try:
        import ray
    except ImportError:
        raise RayError(
            "Ray is not installed: pip install 'openenv-python-env[ray]' (ray==2.60.0)"
        ) from None
    if not ray.is_initialized():
        try:
            ray.init(
                address=address,
                namespace=NAMESPACE,
                log_to_driver=False,
                logging_level="WARNING",
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    return ray


def _actor_names(ray: Any) -> list[str]:
    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a.get("namespace") == NAMESPACE and a["name"].startswith(ACTOR_PREFIX)
    )


def discover(address: str | None = None, timeout_s: float = 60.0) -> list[ReplicaInfo]:
    """The replicas running on the cluster (an empty list when none)."""
    ray = _ray(address)
    actors = [ray.get_actor(n, namespace=NAMESPACE) for n in _actor_names(ray)]
    try:
        infos = ray.get([a.info.remote() for a in actors], timeout=timeout_s)
    except ray.exceptions.RayError as exc:
        raise RayError(f"a replica did not answer: {exc}") from None
    return [ReplicaInfo(**i) for i in infos]


def start_replicas(
    address: str | None = None,
    *,
    count: int | None = None,
    env: Mapping[str, str] | None = None,
    host: str | None = None,
    cpus: float = 1.0,
    startup_timeout_s: float = 300.0,
) -> list[ReplicaInfo]:
    """Start `count` replicas (default: one per alive node) and wait until every one is
    healthy. `env`: the servers' settings (e.g. MAX_CONCURRENT_ENVS); `cpus`: the CPUs
    each reserves on its node; `host`: the address they bind (default: the node's)."""
    ray = _ray(address)
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    if _actor_names(ray):
        raise RayError("python_env replicas already run on this cluster: stop them first")
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    count = count or len(nodes)
    strategy = "STRICT_SPREAD" if count <= len(nodes) else "SPREAD"
    group = placement_group(
        [{"CPU": cpus}] * count, strategy=strategy, name=GROUP_NAME, lifetime="detached"
    )
    try:
        ray.get(group.ready(), timeout=120)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        raise RayError(
            f"cannot place {count} replica(s) of {cpus} CPU each ({strategy} over "
            f"{len(nodes)} node(s)): not enough free CPUs"
        ) from None
    actor = ray.remote(ReplicaServer)
    handles = [
        actor.options(
            name=f"{ACTOR_PREFIX}{i}",
            namespace=NAMESPACE,
            lifetime="detached",
            num_cpus=cpus,
            max_restarts=3,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=i
            ),
        ).remote(f"{ACTOR_PREFIX}{i}", dict(env or {}), host, startup_timeout_s)
        for i in range(count)
    ]
    try:
        infos = ray.get([h.info.remote() for h in handles], timeout=startup_timeout_s + 60)
    except ray.exceptions.RayError as exc:
        stop_replicas(address)
        raise RayError(f"a replica did not start: {exc}") from None
    return [ReplicaInfo(**i) for i in infos]


def stop_replicas(address: str | None = None, timeout_s: float = 60.0) -> int:
    """Stop every replica on the cluster (their servers first) and free their placement
    group; returns how many there were."""
    ray = _ray(address)
    from ray.util.placement_group import get_placement_group, remove_placement_group

    names = _actor_names(ray)
    actors = [ray.get_actor(n, namespace=NAMESPACE) for n in names]
    with contextlib.suppress(ray.exceptions.RayError):
        ray.get([a.stop.remote() for a in actors], timeout=timeout_s)
    for a in actors:
        ray.kill(a, no_restart=True)
    with contextlib.suppress(ValueError):
        remove_placement_group(get_placement_group(GROUP_NAME))
    return len(names)


def health(address: str | None = None) -> list[dict[str, Any]]:
    """Each replica's info and whether its `/health` answers from here."""
    out = []
    for info in discover(address):
        try:
            ok = httpx.get(f"{info.url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        out.append({**asdict(info), "healthy": ok})
    return out


@dataclass
class Fleet:
    """Replicas for one run: found on the cluster, or started for it (`owned`) and
    stopped by `close()`."""

    address: str | None
    replicas: list[ReplicaInfo]
    owned: bool

    def close(self) -> None:
        if self.owned:
            stop_replicas(self.address)


def ensure_replicas(address: str | None, *, count: int | None = None) -> Fleet:
    """The replicas running on the cluster, or new ones (one per node, or `count`)."""
    found = discover(address)
    if found:
        return Fleet(address, found, owned=False)
    return Fleet(address, start_replicas(address, count=count), owned=True)


# -- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m python_env.eval.ray_replicas",
        description="Start, list or stop python_env replicas on a Ray cluster.",
    )
    parser.add_argument("command", choices=("start", "status", "stop"))
    parser.add_argument("--address", default="auto", help="the Ray cluster (default: auto)")
    parser.add_argument("--count", type=int, help="replicas to start (default: one per node)")
    parser.add_argument("--cpus", type=float, default=1.0, help="CPUs each replica reserves")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a server setting, e.g. MAX_CONCURRENT_ENVS=256 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            env = dict(item.split("=", 1) for item in args.env)
            infos = start_replicas(args.address, count=args.count, env=env, cpus=args.cpus)
            print(json.dumps([asdict(i) for i in infos], indent=2))
        elif args.command == "status":
            print(json.dumps(health(args.address), indent=2))
        else:
            print(f"stopped {stop_replicas(args.address)} replica(s)")
    except RayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
