"""Many sessions on one host (issue #17, point 6): 4,096 concurrent WebSocket sessions,
each with a live kernel, and steps/s as sessions grow.

One server (a subprocess on 127.0.0.1). Sessions are opened in growing levels and kept
open (64, then up to 2,048, then up to 4,096 by default): each new session resets and
runs one cell (`x = 1`: its kernel now exists and holds its state). At each level every
open session then loops trivial kernel steps (`print(1 + 1)`) for `--duration` seconds,
all at once; a session checks its own state (`x`) on its last step. Reported per level:
steps/s, errors, step latency, the server's CPU per step (split: the server process, its
kernels and zygotes), the process tree's memory (PSS), the server's open fds, and what
the server's own `/metrics` says (kernels alive/parked, sessions) with the scrape's time.

Bounded: every request has a timeout, every level a duration, the whole run a deadline.
Usage: python benchmarks/bench_sessions.py [--levels 64,2048,4096] [--duration 20]
Writes benchmarks/results/bench_sessions[_quick].json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from common import (  # noqa: E402
    Deadline,
    Session,
    cpu_split,
    machine,
    pss_bytes,
    summarize_ms,
    tree,
    write_json,
)
from python_env.server.launcher import run_server  # noqa: E402

TIMEOUT_S = 120.0
OPEN_PARALLEL = 32


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def start_session(ws_url: str, gate: asyncio.Semaphore) -> Session:
    async with gate:
        s = await Session(ws_url, TIMEOUT_S).open()
        await s.reset()
        obs = (await s.step(kind="run", code="x = 1"))["observation"]
        if (obs.get("run") or {}).get("exit_code") != 0:
            raise RuntimeError(f"first cell failed: {obs.get('message')}")
        return s


class Window:
    def __init__(self) -> None:
        self.steps = 0
        self.errors: dict[str, int] = {}
        self.latency: list[float] = []

    def error(self, exc: BaseException) -> None:
        key = type(exc).__name__ + ": " + str(exc)[:120]
        self.errors[key] = self.errors.get(key, 0) + 1


async def loop_steps(s: Session, w: Window, t_end: float) -> None:
    while time.monotonic() < t_end:
        t = time.perf_counter()
        try:
            obs = (await s.step(kind="run", code="print(1 + 1)"))["observation"]
            if (obs.get("run") or {}).get("stdout") != "2\n":
                raise RuntimeError(f"wrong output: {obs.get('message')}")
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            w.error(exc)
            return
        w.latency.append(time.perf_counter() - t)
        w.steps += 1
    try:  # the session's state survived (parking included)
        obs = (await s.step(kind="run", code="print(x)"))["observation"]
        if (obs.get("run") or {}).get("stdout") != "1\n":
            raise RuntimeError(f"state lost: {obs.get('message')}")
    except Exception as exc:  # noqa: BLE001
        w.error(exc)


def scrape(url: str) -> dict[str, Any]:
    t = time.perf_counter()
    text = httpx.get(url + "/metrics", timeout=60).text
    took = time.perf_counter() - t
    out: dict[str, Any] = {"scrape_ms": round(took * 1000, 2)}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        name = name.removeprefix("python_env_")
        if name.startswith(("kernels", "sessions", "ws_connections", "errors_total")):
            out[name] = float(value)
    return out


async def level(
    url: str, sessions: list[Session], target: int, duration: float, pid: int
) -> dict[str, Any]:
    ws_url = url.replace("http://", "ws://") + "/ws"
    gate = asyncio.Semaphore(OPEN_PARALLEL)
    t0 = time.perf_counter()
    new = await asyncio.gather(
        *(start_session(ws_url, gate) for _ in range(target - len(sessions))),
        return_exceptions=True,
    )
    opened = [s for s in new if isinstance(s, Session)]
    failed = [e for e in new if not isinstance(e, Session)]
    sessions.extend(opened)
    open_s = time.perf_counter() - t0
    row: dict[str, Any] = {
        "sessions": len(sessions),
        "open_failures": len(failed),
        "open_new_s": round(open_s, 1),
    }
    if failed:
        row["open_error"] = repr(failed[0])[:300]
    await asyncio.sleep(1)
    cpu0, t_start = cpu_split(pid), time.monotonic()
    w = Window()
    t_end = t_start + duration
    await asyncio.gather(*(loop_steps(s, w, t_end) for s in sessions))
    wall = time.monotonic() - t_start
    cpu1 = cpu_split(pid)
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu1}
    pids = tree(pid)
    row.update(
        steps=w.steps,
        steps_per_s=round(w.steps / wall, 1),
        errors=sum(w.errors.values()),
        error_kinds=w.errors,
        latency=summarize_ms(w.latency),
        cpu_ms_per_step={k: round(v * 1000 / max(w.steps, 1), 3) for k, v in cpu.items()},
        cpu_cores_used=round(sum(cpu.values()) / wall, 2),
        processes=len(pids),
        tree_pss_mb=round(pss_bytes(pids) / 2**20),
        server_pss_mb=round(pss_bytes([pid]) / 2**20),
        server_fds=len(os.listdir(f"/proc/{pid}/fd")),
        metrics=scrape(url),
        loadavg=[round(x, 2) for x in os.getloadavg()],
    )
    return row


async def run(args: argparse.Namespace) -> dict[str, Any]:
    levels = [int(x) for x in args.levels.split(",")]
    result: dict[str, Any] = {"machine": machine(), "args": vars(args), "levels": []}
    result["client_nofile"] = raise_nofile()
    deadline = Deadline(args.deadline)
    env = {
        "MAX_CONCURRENT_ENVS": str(max(levels) + 16),
        "SESSION_TIMEOUT_S": "3600",
    }
    with run_server(**env) as server:
        sessions: list[Session] = []
        try:
            for n in levels:
                if deadline.over():
                    result["stopped"] = f"deadline reached before {n} sessions"
                    break
                row = await level(server.url, sessions, n, args.duration, server.pid)
                result["levels"].append(row)
                print(
                    f"{row['sessions']:>5} sessions: {row['steps_per_s']:>7} steps/s, "
                    f"{row['errors']} errors, {row['open_failures']} open failures, "
                    f"p50 {row['latency'].get('p50_ms')} ms, tree PSS {row['tree_pss_mb']} MB, "
                    f"fds {row['server_fds']}, metrics {row['metrics']}",
                    flush=True,
                )
                if row["open_failures"]:
                    break
        finally:
            t = time.perf_counter()
            await asyncio.gather(*(s.close() for s in sessions))
            result["close_all_s"] = round(time.perf_counter() - t, 1)
    rows = {r["sessions"]: r for r in result["levels"]}
    base = rows.get(min(levels))
    if base:
        for r in result["levels"]:
            r["steps_per_s_vs_first"] = round(r["steps_per_s"] / max(base["steps_per_s"], 1e-9), 3)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="64,2048,4096")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per level")
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds for the run")
    parser.add_argument("--quick", action="store_true", help="levels 16,64, 5 s each")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.duration = "16,64", 5.0
    result = asyncio.run(run(args))
    path = write_json(f"bench_sessions{'_quick' if args.quick else ''}.json", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
