"""Smoke load test: 64 concurrent WebSocket sessions x 20 steps against a server of its own.

Mixed steps (edit, visible tests, kernel runs whose state must persist per session,
one-shot runs), loopback only, every request with a timeout and the whole load under an
overall cap. Asserts zero errors and correct outputs, then that nothing leaked: the
server accepts sessions again up to its limit (and refuses one more), its process tree
(zygote, kernels) returns to the size it had before the load, and the sandbox's working
directories are gone. No wall-clock assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from typing import Any

from python_env.server import launcher
from python_env.server.launcher import descendants, run_server
from websockets.asyncio.client import connect

SESSIONS = 64
STEPS = 20
LIMIT = 80  # MAX_CONCURRENT_ENVS of this test's server
REQUEST_TIMEOUT_S = 30.0
LOAD_CAP_S = 120.0
SETTLE_S = 30.0


# -- /proc and the sandbox's temp root --------------------------------------------------


AREA = re.compile(r"s\d+r\d+")
"""The sandbox's persistent per-slot areas (made on first use of a slot); the working
directories of runs and kernels live inside them or beside them and must go away."""


def workdirs(root: str) -> set[str]:
    """Everything under the sandbox's root (relative paths), less the per-slot areas."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            path = name if rel == "." else os.path.join(rel, name)
            if not (rel == "." and name in dirnames and AREA.fullmatch(name)):
                out.add(path)
    return out


class Phases:
    """Prints how long each phase took (information only: nothing asserts on time)."""

    def __init__(self) -> None:
        self.t = time.monotonic()

    def mark(self, what: str) -> None:
        now = time.monotonic()
        print(f"[load] {what}: {now - self.t:.1f} s", flush=True)
        self.t = now


def settle(check: Any, timeout_s: float = SETTLE_S) -> Any:
    return launcher.settle(check, timeout_s)


# -- a minimal WebSocket session --------------------------------------------------------


class Session:
    def __init__(self, ws_url: str):
        self.ws_url = ws_url
        self.ws: Any = None

    async def __aenter__(self) -> Session:
        self.ws = await asyncio.wait_for(
            connect(self.ws_url, ping_interval=None, max_size=2**24), timeout=REQUEST_TIMEOUT_S
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.send(json.dumps({"type": "close"})), timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), timeout=5)

    async def send(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send(json.dumps(message))
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout=REQUEST_TIMEOUT_S))

    async def ok(self, message: dict[str, Any]) -> dict[str, Any]:
        reply = await self.send(message)
        assert reply["type"] == "observation", reply
        return reply["data"]["observation"]

    async def run(self, code: str, persistent: bool) -> str:
        obs = await self.ok(
            {"type": "step", "data": {"kind": "run", "code": code, "persistent": persistent}}
        )
        run = obs["run"]
        assert run["exit_code"] == 0 and not run["timed_out"], obs
        return run["stdout"]


# -- the load ---------------------------------------------------------------------------


async def episode_pair(ws_url: str, k: int, task: Any) -> int:
    """One session, 20 steps: a task episode (edit, test, runs) then a free one (runs).

    Returns the number of steps taken; any wrong reply raises."""
    steps = 0
    async with Session(ws_url) as s:
        obs = await s.ok({"type": "reset", "data": {"task_id": task.id}})
        assert obs["task"]["task_id"] == task.id
        await s.ok({"type": "step", "data": {"kind": "edit", "code": task.reference_solution}})
        obs = await s.ok({"type": "step", "data": {"kind": "test"}})
        report = obs["tests"]
        assert report["total"] >= 1 and report["passed"] == report["total"], report
        assert await s.run(f"x = {k}\nprint(x)", True) == f"{k}\n"
        assert await s.run("import solution\nprint(solution.__name__)", False) == "solution\n"
        steps += 4

        obs = await s.ok({"type": "reset", "data": {}})
        assert obs["task"] is None
        assert await s.run(f"x = {k * 1000}", True) == ""
        steps += 1
        for i in range(1, STEPS - steps + 1):
            if i % 4 == 0:  # one-shot: a fresh process, no kernel state
                assert await s.run("print('x' in globals())", False) == "False\n"
            else:  # kernel: this session's state, nobody else's
                assert await s.run("x += 1\nprint(x)", True) == f"{k * 1000 + i - i // 4}\n"
            steps += 1
    return steps


async def load(ws_url: str, task: Any) -> list[Any]:
    gate = asyncio.Semaphore(SESSIONS)

    async def one(k: int) -> int:
        async with gate:
            return await episode_pair(ws_url, k, task)

    return await asyncio.wait_for(
        asyncio.gather(*(one(k) for k in range(1, SESSIONS + 1)), return_exceptions=True),
        timeout=LOAD_CAP_S,
    )


async def fill_to_limit(ws_url: str) -> tuple[int, dict[str, Any]]:
    """Open LIMIT sessions (each resets), then one more; return (accepted, extra reply)."""
    opened: list[Session] = []
    accepted = 0
    try:
        for _ in range(LIMIT):
            s = await Session(ws_url).__aenter__()
            opened.append(s)
            if (await s.send({"type": "reset", "data": {}}))["type"] == "observation":
                accepted += 1
        extra = await Session(ws_url).__aenter__()
        opened.append(extra)
        # over capacity the server sends the error unasked, right after the handshake,
        # and closes: read it rather than send (a send could meet the closed socket)
        reply = json.loads(await asyncio.wait_for(extra.ws.recv(), timeout=REQUEST_TIMEOUT_S))
    finally:
        await asyncio.gather(*(s.__aexit__() for s in opened))
    return accepted, reply


def stable_count(pid: int) -> int:
    """The number of descendants once it has not changed for a second (bounded wait)."""
    previous, since = -1, time.monotonic()
    deadline = since + SETTLE_S
    while time.monotonic() < deadline:
        n = len(descendants(pid))
        if n != previous:
            previous, since = n, time.monotonic()
        elif time.monotonic() - since > 1.0:
            break
        time.sleep(0.1)
    return previous


def warm_up(ws_url: str, task: Any) -> None:
    """One session through every kind of step, so the sandbox's long-lived processes exist."""

    async def go() -> None:
        await episode_pair(ws_url, 0, task)

    asyncio.run(asyncio.wait_for(go(), timeout=LOAD_CAP_S))


def pick_task(bank: Any) -> Any:
    candidates = [
        t
        for t in bank
        if t.family == "implement"
        and t.entry_point
        and t.visible_tests.strip()
        and t.max_steps >= 6
    ]
    assert candidates, "no implement task with visible tests in the bank"
    return sorted(candidates, key=lambda t: (t.difficulty != "easy", t.id))[0]


def test_64_sessions_x_20_steps_no_errors_no_leaks(bank):
    task = pick_task(bank)
    tmpdir = tempfile.mkdtemp(prefix="python_env_load_")
    os.chmod(tmpdir, 0o755)  # sandbox children run under other uids: they must traverse it
    try:
        run_load(task, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def run_load(task: Any, tmpdir: str) -> None:
    with run_server(
        MAX_CONCURRENT_ENVS=str(LIMIT),
        SESSION_TIMEOUT_S="300",
        PYTHON_ENV_TIMEOUT_S="20",
        TMPDIR=tmpdir,
    ) as server:
        pid = server.process.pid
        clock = Phases()
        warm_up(server.ws_url, task)
        workroot = launcher.sandbox_root(tmpdir)
        assert workroot, f"no sandbox working-directory root in {tmpdir}: {os.listdir(tmpdir)}"
        baseline_procs = stable_count(pid)
        baseline_dirs = workdirs(workroot)
        clock.mark("warm-up")

        results = asyncio.run(load(server.ws_url, task))
        clock.mark(f"load: {SESSIONS} sessions x {STEPS} steps")
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"{len(errors)}/{SESSIONS} sessions failed, first: {errors[0]!r}"
        assert sum(results) == SESSIONS * STEPS

        # no leaked kernels or child processes: back to the pre-load tree size
        settle(lambda: len(descendants(pid)) <= baseline_procs)
        procs_now = len(descendants(pid))
        assert procs_now <= baseline_procs, (
            f"server has {procs_now} descendant processes after the load, {baseline_procs} before"
        )

        # no leaked working directories
        settle(lambda: not (workdirs(workroot) - baseline_dirs))
        leaked = workdirs(workroot) - baseline_dirs
        assert not leaked, f"sandbox working directories left behind: {sorted(leaked)[:10]}"
        clock.mark("processes and workdirs back to baseline")

        # no leaked sessions: the server takes LIMIT sessions again, and refuses one more
        def capacity() -> tuple[int, dict[str, Any]] | None:
            accepted, reply = asyncio.run(
                asyncio.wait_for(fill_to_limit(server.ws_url), timeout=LOAD_CAP_S)
            )
            return (accepted, reply) if accepted == LIMIT else None

        got = settle(capacity)
        assert got, "the server no longer accepts as many sessions as its limit after the load"
        accepted, reply = got
        assert reply["type"] == "error" and reply["data"]["code"] == "CAPACITY_REACHED", reply
        clock.mark(f"capacity: {LIMIT} sessions accepted again, one more refused")

        assert server.process.poll() is None, "the server died under load"


def test_stopped_server_removes_its_sandbox_root():
    tmpdir = tempfile.mkdtemp(prefix="python_env_stop_")
    os.chmod(tmpdir, 0o755)
    try:
        with run_server(TMPDIR=tmpdir) as server:

            async def one_kernel_run() -> None:
                async with Session(server.ws_url) as s:
                    await s.ok({"type": "reset", "data": {}})
                    assert await s.run("print(6 * 7)", True) == "42\n"

            asyncio.run(asyncio.wait_for(one_kernel_run(), timeout=LOAD_CAP_S))
            workroot = launcher.sandbox_root(tmpdir)
            assert workroot
        # run_server sent SIGTERM and waited for the exit
        settle(lambda: not os.path.exists(workroot), 15)
        assert not os.path.exists(workroot), f"{os.listdir(workroot)} left in {workroot}"
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
