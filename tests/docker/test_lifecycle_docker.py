"""A session's work dies with it, inside the container as on the host: a departed
client's cell and its children stop and leave no process, zombie or working directory;
`docker stop` (SIGTERM) ends runs in flight and removes the sandbox root before the
kill deadline; after `docker kill` a restarted container's server removes the root the
dead one left. Docker's default runtime has no cgroup here, so this is the `proc_watch`
fallback's lifecycle (subreapers, the server as the container's PID 1)."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from dockertier import HostNetworkDockerProvider, docker
from websockets.sync.client import connect

pytestmark = [
    pytest.mark.docker,
    pytest.mark.timeout(900),
    pytest.mark.filterwarnings(r"ignore:connect\(\) must be used as a context manager"),
]
LIMITS = {"PYTHON_ENV_TIMEOUT_S": "60", "PYTHON_ENV_CPU_S": "60", "MAX_CONCURRENT_ENVS": "8"}
STOP_DEADLINE_S = 5  # `docker stop -t`: SIGKILL after this, which exits 137
# Every process in the container: pid, parent, state and command (not this probe itself).
PROCS = (
    "import json, os\n"
    "out = []\n"
    "for p in os.listdir('/proc'):\n"
    "    if p.isdigit() and int(p) != os.getpid():\n"
    "        try:\n"
    "            stat = open(f'/proc/{p}/stat').read()\n"
    "            cmd = open(f'/proc/{p}/cmdline', 'rb').read().replace(b'\\0', b' ')\n"
    "        except OSError:\n"
    "            continue\n"
    "        f = stat[stat.rfind(')') + 2:].split()\n"
    "        out.append([int(p), int(f[1]), f[0], cmd.decode(errors='replace')[:400]])\n"
    "print(json.dumps(out))\n"
)
ZYGOTE = "_python_env_sandbox"  # in a zygote's command line
SPAWNING_CELL = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "open('child.pid', 'w').write(str(child.pid))\n"
    "print('started', flush=True)\n"
    "time.sleep(120)\n"
)


def settle(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """`check()` once it is truthy (polled, bounded), else its last value."""
    deadline = time.monotonic() + timeout_s
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(0.25)
        value = check()
    return value


class Container:
    def __init__(self, image: str) -> None:
        self.provider = HostNetworkDockerProvider()
        self.base_url = self.provider.start_container(image, env_vars=LIMITS)
        self.provider.wait_for_ready(self.base_url)
        assert self.provider.container_id is not None
        self.id = self.provider.container_id

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws"

    def procs(self) -> list[list[Any]]:
        return json.loads(docker("exec", self.id, "python", "-c", PROCS, timeout=60).stdout)

    def tmp(self) -> list[str]:
        """The container's /tmp, read from its filesystem (works once it has stopped)."""
        raw = docker_bytes("cp", f"{self.id}:/tmp", "-")
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            return tar.getnames()

    def roots(self) -> set[str]:
        """The sandbox roots (pysbx-<pid>-<token>) in the container's /tmp."""
        return {n.split("/")[1] for n in self.tmp() if n.count("/") >= 1 and "pysbx-" in n}

    def workdirs(self) -> list[str]:
        """Kernel working directories (k<n>) under any sandbox root."""
        return [n for n in self.tmp() if n.count("/") == 2 and n.split("/")[2].startswith("k")]

    def healthy(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.base_url}/health", timeout=5).status_code == 200
        return False


def docker_bytes(*args: str) -> bytes:
    import subprocess

    from dockertier import DOCKER_ENV

    out = subprocess.run(["docker", *args], capture_output=True, timeout=120, env=DOCKER_ENV)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.fixture
def container(docker_image: str) -> Iterator[Container]:
    c = Container(docker_image)
    try:
        yield c
    finally:
        print(c.provider.logs())
        c.provider.stop_container()


def _session(c: Container, persistent: bool = True, code: str = SPAWNING_CELL):
    """A session whose step is in flight: a cell (or a one-shot run) that forks a child
    and then sleeps, both for far longer than the test."""
    ws = connect(c.ws_url, close_timeout=1)
    ws.send(json.dumps({"type": "reset", "data": {"mode": "free"}}))
    assert json.loads(ws.recv(timeout=60))["type"] == "observation"
    ws.send(json.dumps({"type": "step", "data": {"code": code, "persistent": persistent}}))
    return ws


def _served(c: Container) -> None:
    """One short session: a kernel cell and a one-shot run, then close."""
    with connect(c.ws_url, close_timeout=1) as ws:
        ws.send(json.dumps({"type": "reset", "data": {"mode": "free"}}))
        assert json.loads(ws.recv(timeout=60))["type"] == "observation"
        for persistent in (True, False):
            step = {"code": "print(6 * 7)", "persistent": persistent}
            ws.send(json.dumps({"type": "step", "data": step}))
            reply = json.loads(ws.recv(timeout=60))
            assert reply["data"]["observation"]["run"]["stdout"] == "42\n", reply
    assert settle(lambda: not c.workdirs()), "the closed session's workdir stayed"


def _extra(procs: list[list[Any]]) -> list[list[Any]]:
    """Every process but the server (the container's PID 1) and its zygotes: what a
    session left behind (a zombie counts: it holds a pid)."""
    return [p for p in procs if p[0] != 1 and not (p[1] == 1 and ZYGOTE in p[3] and p[2] != "Z")]


def _sleepers(procs: list[list[Any]]) -> list[list[Any]]:
    return [p for p in procs if "time.sleep(120)" in p[3]]


def test_a_departed_sessions_cell_and_children_leave_nothing(container: Container) -> None:
    c = container
    _served(c)  # the zygotes start with the first run
    sockets = [_session(c) for _ in range(3)]
    busy = settle(lambda: len(_sleepers(c.procs())) >= 3)
    assert busy, f"the cells' children never started: {c.procs()}"
    assert c.workdirs(), "no kernel working directory while kernels run"
    for ws in sockets:  # the clients go away mid-cell
        ws.close()
    assert settle(lambda: not _extra(c.procs()) and not c.workdirs(), 30), _extra(c.procs())
    _served(c)  # the server is intact and a new session is served


def test_docker_stop_ends_runs_in_flight_and_removes_the_root(container: Container) -> None:
    c = container
    roots = settle(c.roots)
    assert len(roots) == 1, roots
    sockets = [_session(c, persistent=True), _session(c, persistent=False)]
    assert settle(lambda: len(_sleepers(c.procs())) >= 2), c.procs()
    docker("stop", "-t", str(STOP_DEADLINE_S), c.id, timeout=120)
    for ws in sockets:
        ws.close()
    state = json.loads(docker("inspect", "-f", "{{json .State}}", c.id).stdout)
    # 137 is Docker's SIGKILL at the deadline: the server did not finish stopping by then
    assert state["ExitCode"] != 137 and not state["OOMKilled"], state
    assert not c.roots(), f"the sandbox root outlived the server: {c.roots()}"


def test_a_restarted_container_removes_the_dead_servers_root(container: Container) -> None:
    c = container
    assert settle(lambda: len(c.roots()) == 1)
    ws = _session(c)
    assert settle(lambda: _sleepers(c.procs()))
    dead_roots = c.roots()
    docker("kill", "-s", "KILL", c.id)
    ws.close()
    assert c.roots() == dead_roots, "nothing should have removed the crashed server's root"
    docker("start", c.id)
    c.provider.wait_for_ready(c.base_url)
    live = settle(lambda: (r := c.roots()) and not r & dead_roots and r)
    assert live and len(live) == 1, f"roots after the restart: {c.roots()} (dead: {dead_roots})"
    assert c.healthy() and not _sleepers(c.procs())
