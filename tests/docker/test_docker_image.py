"""The Docker tier: the image built from `server/Dockerfile`, started the way OpenEnv users
start it (`PythonEnv.from_docker_image`), an episode over WebSocket, hostile programs
inside the container, the isolation report of Docker's default unprivileged runtime,
the image run as uid 1000 (as Hugging Face Spaces do), and cleanup on `close()`.

Run: `bash scripts/docker-tier.sh` (or `pytest -m docker tests/docker`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from dockertier import (
    HostNetworkDockerProvider,
    listed,
)
from python_env import PythonAction, PythonEnv

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

# Small limits keep the hostile programs quick.
LIMITS = {
    "PYTHON_ENV_TIMEOUT_S": "4",
    "PYTHON_ENV_MEMORY_MB": "512",
    "PYTHON_ENV_MAX_OUTPUT_BYTES": "65536",
    "MAX_CONCURRENT_ENVS": "8",
}
ALWAYS = {"rlimits", "setsid", "wall_timeout", "scrubbed_env", "private_workdir"}


@dataclass
class Started:
    env: Any  # SyncEnvClient of PythonEnv
    provider: HostNetworkDockerProvider
    base_url: str

    def run(self, code: str, **kw):
        result = self.env.step(PythonAction(kind="run", code=code, **kw))
        assert result.observation.run is not None, result.observation.message
        return result.observation.run

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False


def _start(image: str, **kwargs) -> Started:
    provider = HostNetworkDockerProvider()
    env = PythonEnv.from_docker_image(image, provider=provider, **kwargs).sync()
    return Started(env, provider, provider.base_url)


@pytest.fixture(scope="module")
def root_container(docker_image: str) -> Iterator[Started]:
    """The image as `docker run` starts it by default: root inside the container."""
    started = _start(docker_image, env_vars=LIMITS)
    try:
        yield started
    finally:
        if started.provider.container_id:
            print(started.provider.logs())
        started.env.close()


def test_episode_over_websocket(root_container: Started) -> None:
    from python_env.server.tasks import default_bank

    task = next(t for t in default_bank() if t.family == "implement" and t.entry_point)
    env = root_container.env
    obs = env.reset(task_id=task.id).observation
    assert obs.task is not None and obs.task.task_id == task.id
    assert obs.steps_remaining == obs.max_steps

    run = root_container.run("import sys; print(sys.version_info[:2])")
    assert run.stdout.strip() == "(3, 11)" and run.exit_code == 0

    tests = env.step(PythonAction(kind="test")).observation.tests
    assert tests is not None and tests.total > 0 and tests.passed < tests.total

    env.step(PythonAction(kind="edit", code=task.reference_solution))
    tests = env.step(PythonAction(kind="test")).observation.tests
    assert tests is not None and tests.passed == tests.total

    result = env.step(PythonAction(kind="submit"))
    assert result.done and result.observation.grade is not None
    assert result.observation.grade.score == 1.0 and result.observation.grade.passed
    state = env.state()
    assert state.done and state.score == 1.0 and state.step_count == 5


def test_hostile_programs_are_contained(root_container: Started) -> None:
    env, port = root_container.env, root_container.base_url.rsplit(":", 1)[1]
    env.reset(mode="free")

    run = root_container.run("while True:\n    pass\n")
    assert run.timed_out, run

    run = root_container.run("x = []\nwhile True:\n    x.append(bytearray(10**7))\n")
    assert run.memory_exceeded or run.exception_type == "MemoryError", run

    run = root_container.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    assert run.timed_out or run.exit_code != 0 or run.signal, run
    assert root_container.healthy()

    run = root_container.run("import sys\nsys.stdout.write('x' * 100_000_000)\n")
    assert run.stdout_truncated and len(run.stdout) <= 2 * 65536, len(run.stdout)

    run = root_container.run(
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "print('CONNECTED')\n"
    )
    assert "CONNECTED" not in run.stdout and run.exit_code != 0, run

    run = root_container.run(
        "import os, signal\n"
        "for pid in (os.getppid(), 1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError as e:\n"
        "        print(pid, type(e).__name__)\n",
        persistent=False,
    )
    assert root_container.healthy() and root_container.provider.running()

    # The server's own package (task data, reference solutions) is unreadable to a run,
    # even without a mount namespace: Landlock and the dropped uid keep it out.
    run = root_container.run(
        "import glob, sys\n"
        "try:\n"
        "    from python_env.server.tasks import default_bank\n"
        "    print('IMPORTED', len(default_bank()))\n"
        "except Exception as e:\n"
        "    print('import:', type(e).__name__)\n"
        "for path in glob.glob('/app/**/tasks/data/*.toml', recursive=True)[:1] + [\n"
        "    p + '/python_env/server/tasks/data/implement_easy.toml' for p in sys.path]:\n"
        "    try:\n"
        "        print('READ', path, len(open(path).read()))\n"
        "    except OSError as e:\n"
        "        print(path, type(e).__name__)\n",
        persistent=False,
    )
    assert "IMPORTED" not in run.stdout and "READ" not in run.stdout, run.stdout

    # After all that, an ordinary run still works, in the kernel and in a fresh process.
    assert root_container.run("print(6 * 7)").stdout == "42\n"
    assert root_container.run("print(6 * 7)", persistent=False).stdout == "42\n"


def check_tree_budgets(started: Started) -> None:
    """Whole-run containment where no cgroup is writable: the /proc watcher holds a tree's
    memory, and what a kernel cell leaves running is frozen until the next cell."""
    meta = httpx.get(f"{started.base_url}/metadata", timeout=30).json()["isolation"]
    assert "proc_watch" in meta["active"] and "cgroup_v1" in meta["unavailable"], meta
    started.env.reset(mode="free")
    run = started.run(
        "import os, time\n"
        "for i in range(8):\n"  # 8 x 100 MB: each under 512 MB, together over it
        "    if os.fork() == 0:\n"
        "        x = b'x' * (100 << 20)\n"
        "        time.sleep(3)\n"
        "        os._exit(0)\n"
        "time.sleep(3.5)\n"
        "print('held 800 MB')\n",
        persistent=False,
    )
    assert run.memory_exceeded and "held" not in run.stdout, run
    ticker = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    while True:\n"
        "        open('ticks', 'a').write('.')\n"
        "        time.sleep(0.01)\n"
        "time.sleep(0.3)\n"
        "print(len(open('ticks').read()))\n"
    )
    first = int(started.run(ticker).stdout)
    time.sleep(1.0)  # between cells: the ticking child must not run
    second = int(started.run("print(len(open('ticks').read()))").stdout)
    assert first > 0 and second - first < 10, (first, second)  # ~100 if it had run
    # no tmpfs workdir in this runtime: the watcher holds the disk budget (256 MB)
    writer = (
        "for i in range(600):\n"
        "    with open(f'f{i}', 'wb') as f:\n"
        "        f.write(b'x' * (1 << 20))\n"
    )
    run = started.run(writer)
    assert run.exception_type == "OSError" and "No space left" in str(run.exception_message), run
    run = started.run("import os\nprint(sum(os.path.getsize(f) for f in os.listdir('.')))")
    assert run.exit_code == 0 and int(run.stdout) <= 256 << 20, run
    # no IPC namespace in this runtime: seccomp refuses System V IPC (no shared channel)
    run = started.run(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.shmget(0x5E5510, 4096, 0o1666), ctypes.get_errno())",
        persistent=False,
    )
    assert run.stdout.split() == ["-1", "1"], run  # EPERM
    # bad input gets a typed error, and the server stays up
    bad = httpx.post(
        f"{started.base_url}/reset",
        content=b'{"seed": 1' + b"0" * 5000 + b"}",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert bad.status_code == 400 and started.healthy(), bad.text
    started.env.reset(mode="free")
    assert started.run("print(6 * 7)").stdout == "42\n"


def test_whole_run_budgets_hold_in_the_default_runtime(root_container: Started) -> None:
    check_tree_budgets(root_container)


def test_isolation_report_inside_docker(root_container: Started) -> None:
    meta = httpx.get(f"{root_container.base_url}/metadata", timeout=30).json()
    isolation = meta["isolation"]
    active, unavailable = set(isolation["active"]), dict(isolation["unavailable"])
    print("active:", sorted(active), "\nunavailable:", unavailable)
    assert ALWAYS <= active
    # Root inside Docker's default runtime keeps CAP_SETUID and may install seccomp.
    assert {"uid_drop", "no_new_privs", "seccomp"} <= active
    # Every layer is either on, or reported off with a reason (never silently missing).
    assert not active & set(unavailable)
    assert all(reason for reason in unavailable.values())
    assert meta["limits"]["wall_s"] == 4.0 and meta["limits"]["memory_mb"] == 512


def test_close_removes_the_container(root_container: Started) -> None:
    name = root_container.provider.name
    assert name and listed(name)
    root_container.env.close()
    assert not listed(name), f"`docker ps -a` still lists {name} after close()"


def test_cap_sys_admin_restores_the_namespaces(docker_image: str) -> None:
    """The README's recipe for more protection in Docker: with CAP_SYS_ADMIN the engine
    adds the PID, network and mount namespaces, and every layer is on."""
    extra = ("--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined")
    started = _start(docker_image, env_vars=LIMITS, extra_args=extra)
    try:
        isolation = httpx.get(f"{started.base_url}/metadata", timeout=30).json()["isolation"]
        namespaces = {"pid_namespace", "ipc_namespace", "net_namespace", "mount_namespace"}
        assert namespaces | {"private_tmpfs"} <= set(isolation["active"])
        # one tree-budget mechanism holds: cgroups if Docker gave a writable hierarchy
        budgets = {"cgroup_v1", "proc_watch"}
        assert set(isolation["unavailable"]) <= budgets, isolation
        assert len(budgets & set(isolation["active"])) == 1, isolation
        started.env.reset(mode="free")
        assert started.run("print(6 * 7)").stdout == "42\n"
    finally:
        started.env.close()


def test_image_runs_as_uid_1000_like_a_space(docker_image: str) -> None:
    """Hugging Face runs the image as uid 1000 with the web UI on: it works, and the
    isolation report says what that uid cannot have."""
    started = _start(docker_image, user="1000", env_vars={**LIMITS, "ENABLE_WEB_INTERFACE": "true"})
    name = started.provider.name
    try:
        started.env.reset(mode="free")
        run = started.run("import os\nprint(os.getuid(), os.access('/app/env', os.W_OK))")
        assert run.stdout.split() == ["1000", "False"], run
        meta = httpx.get(f"{started.base_url}/metadata", timeout=30).json()
        isolation = meta["isolation"]
        print("uid 1000:", isolation)
        assert "uid_drop" in isolation["unavailable"] and "uid_drop" not in isolation["active"]
        assert ALWAYS <= set(isolation["active"])
        page = httpx.get(f"{started.base_url}/web/", timeout=30, follow_redirects=True)
        assert page.status_code == 200 and "gradio" in page.text.lower()
        check_tree_budgets(started)
    finally:
        started.env.close()
    assert name and not listed(name)
