"""A randomized, bounded soak of the real server: sessions connect, run, leave mid-cell,
reset, go idle until the server reaps them, and close, in random order; alongside, a few
well-behaved sessions that must get every step answered. Afterwards the server must be
back to exactly what it had idle: its processes, no working directories, its open
files, and memory within 10 % (the session lifecycle issue's accounting test).

    python benchmarks/soak.py --seconds 3600        # the long soak (figures in the README)

`tests/test_soak.py` runs it for about a minute. Every loop is bounded in count and
time; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from python_env.server.launcher import Server, descendants, run_server, sandbox_root, settle
from websockets.asyncio.client import connect

SERVER_ENV = {
    "MAX_CONCURRENT_ENVS": "48",
    "SESSION_TIMEOUT_S": "4",  # idle sessions are reaped during the soak, too
    "PYTHON_ENV_TIMEOUT_S": "6",
    "PYTHON_ENV_SLOTS": "2",
}
REPLY_TIMEOUT_S = 60.0
SLEEPY = "import time\ntime.sleep(30)\n"  # cut short by the departure, or the wall limit


@dataclass
class Tally:
    steps: int = 0
    good_steps: int = 0
    good_errors: list[str] = field(default_factory=list)
    departures: int = 0
    idles: int = 0
    closes: int = 0
    chaos_errors: int = 0


def snapshot(server: Server, root: str | None) -> dict[str, Any]:
    """What the server holds: its process tree, its fds, its memory, the workdirs."""
    pids = [server.pid, *descendants(server.pid)]
    fds = len(os.listdir(f"/proc/{server.pid}/fd"))
    pss = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
    workdirs = []
    if root is not None:
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            if rel != ".":
                workdirs.extend(os.path.join(rel, n) for n in dirnames + filenames)
            else:
                workdirs.extend(n for n in filenames)
                workdirs.extend(n for n in dirnames if not _is_area(n))
    return {"processes": len(pids), "fds": fds, "pss": pss, "workdirs": sorted(workdirs)}


def _is_area(name: str) -> bool:
    return name[:1] == "s" and "r" in name and name.replace("s", "", 1).replace("r", "").isdigit()


async def _send(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), timeout=REPLY_TIMEOUT_S))


async def well_behaved(url: str, tally: Tally, stop: float, k: int) -> None:
    """A session that resets and steps until the end: every step must be answered. A
    session closed under it (which must not happen) is one error, noted with how long the
    step before took, and the loop goes on in a new session."""
    t0 = time.monotonic()
    while time.monotonic() < stop:
        async with connect(url, max_size=2**24) as ws:
            await _send(ws, {"type": "reset", "data": {}})
            i = 0
            while time.monotonic() < stop:
                i += 1
                persistent = i % 3 != 0
                code = f"print({k} * {i})" if persistent else f"print({i})"
                sent = time.monotonic()
                reply = await _send(
                    ws, {"type": "step", "data": {"code": code, "persistent": persistent}}
                )
                want = f"{k * i if persistent else i}\n"
                got = reply.get("data", {}).get("observation", {}).get("run", {}).get("stdout")
                tally.good_steps += 1
                if reply["type"] != "observation" or got != want:
                    took = time.monotonic() - sent
                    note = f"at {sent - t0:.0f} s, the step took {took:.1f} s: "
                    tally.good_errors.append(note + json.dumps(reply)[:300])
                    if reply.get("data", {}).get("code") == "SESSION_CLOSED":
                        break  # a new session
                if i % 25 == 0:
                    await _send(ws, {"type": "reset", "data": {}})
                await asyncio.sleep(0.05)


async def chaotic(url: str, tally: Tally, stop: float, rng: random.Random, tasks: list) -> None:
    """Sessions that do everything a trainer's or a user's can, in random order."""
    while time.monotonic() < stop:
        ending = rng.choice(["close", "close", "depart", "depart", "idle", "drop"])
        try:
            ws = await connect(url, max_size=2**24)
            data = {"task_id": rng.choice(tasks)} if tasks and rng.random() < 0.5 else {}
            await _send(ws, {"type": "reset", "data": data})
            for _ in range(rng.randint(0, 4)):
                step = rng.choice(
                    [
                        {"code": "x = 1\nprint(x)"},
                        {"code": "print(sum(range(1000)))", "persistent": False},
                        {"code": "import os\nif os.fork() == 0:\n    while True: pass"},
                        {"kind": "test"} if "task_id" in data else {"code": "pass"},
                    ]
                )
                await _send(ws, {"type": "step", "data": step})
                tally.steps += 1
            if ending == "depart":  # leave mid-cell, without a word
                await ws.send(json.dumps({"type": "step", "data": {"code": SLEEPY}}))
                await asyncio.sleep(rng.uniform(0.05, 0.5))
                ws.transport.abort() if hasattr(ws, "transport") else await ws.close()
                tally.departures += 1
            elif ending == "drop":  # close the socket mid-cell (a clean TCP close)
                await ws.send(json.dumps({"type": "step", "data": {"code": SLEEPY}}))
                await asyncio.sleep(rng.uniform(0.05, 0.5))
                await ws.close()
                tally.departures += 1
            elif ending == "idle":  # the server's idle reaper ends it
                await asyncio.sleep(float(SERVER_ENV["SESSION_TIMEOUT_S"]) + rng.uniform(0, 2))
                with contextlib.suppress(Exception):
                    await ws.close()
                tally.idles += 1
            else:
                with contextlib.suppress(Exception):
                    await _send(ws, {"type": "close"})
                await ws.close()
                tally.closes += 1
        except Exception:  # noqa: BLE001 - a chaotic session may meet its own reaping
            tally.chaos_errors += 1
            await asyncio.sleep(0.1)


async def soak(server: Server, seconds: float, chaos: int, good: int, seed: int) -> Tally:
    from python_env.server.tasks import default_bank

    rng = random.Random(seed)
    tasks = [t.id for t in default_bank() if t.family in ("implement", "fix-bug")][:20]
    tally = Tally()
    stop = time.monotonic() + seconds
    jobs = [well_behaved(server.ws_url, tally, stop, k) for k in range(1, good + 1)]
    jobs += [
        chaotic(server.ws_url, tally, stop, random.Random(rng.random()), tasks)
        for _ in range(chaos)
    ]
    await asyncio.wait_for(asyncio.gather(*jobs), timeout=seconds + 120)
    return tally


def run(seconds: float, chaos: int = 8, good: int = 2, seed: int = 0) -> dict[str, Any]:
    """Start a server, measure it idle, soak it, and measure it again once settled."""
    import tempfile

    tmpdir = tempfile.mkdtemp(prefix="python_env_soak_")
    os.chmod(tmpdir, 0o755)
    with run_server(TMPDIR=tmpdir, **SERVER_ENV) as server:
        root = settle(lambda: sandbox_root(tmpdir))
        asyncio.run(soak(server, 3.0, chaos=2, good=1, seed=seed + 1))  # warm everything
        time.sleep(float(SERVER_ENV["SESSION_TIMEOUT_S"]) + 3)
        idle = settle(lambda: _quiet(server, root), 30) or snapshot(server, root)
        t0 = time.monotonic()
        tally = asyncio.run(soak(server, seconds, chaos, good, seed))
        took = time.monotonic() - t0
        after = settle(lambda: _back_to(server, root, idle), 60) or snapshot(server, root)
        log = server.log_tail(4000)
    return {"idle": idle, "after": after, "tally": tally.__dict__, "seconds": took, "log": log}


def _quiet(server: Server, root: str | None) -> dict[str, Any] | None:
    """A snapshot once two in a row agree (nothing still winding down)."""
    a = snapshot(server, root)
    time.sleep(0.5)
    b = snapshot(server, root)
    same = all(a[k] == b[k] for k in ("processes", "fds", "workdirs"))
    return b if same and not b["workdirs"] else None


def _back_to(server: Server, root: str | None, idle: dict[str, Any]) -> dict[str, Any] | None:
    now = snapshot(server, root)
    ok = (
        now["processes"] == idle["processes"]
        and now["fds"] <= idle["fds"]
        and not now["workdirs"]
        and now["pss"] <= idle["pss"] * 1.10
    )
    return now if ok else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--chaos", type=int, default=8, help="chaotic session loops")
    ap.add_argument("--good", type=int, default=2, help="well-behaved sessions")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = run(args.seconds, args.chaos, args.good, args.seed)
    out.pop("log")
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
