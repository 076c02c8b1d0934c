"""A randomized, bounded soak of the real server: sessions connect, run, leave mid-cell,
reset, go idle until the server reaps them, and close, in random order; alongside, a few
well-behaved sessions that must get every step answered. Afterwards the server must be
back to exactly what it had idle: its processes, no working directories, its open
files, and memory within 10 % (the session lifecycle issue's accounting test).

    python benchmarks/soak.py --seconds 3600 --rounds 4   # the long soak (README figures)

"Idle" is the server after a warm-up: the same mix at the same concurrency for
`--warm` seconds, then a quiet pause past the reaper's timeout. What a server opens or
grows once, on first use, is there by then and so is not counted as a leak: the
counter file each sandbox slot keeps open from its first run, the shared /dev/null,
the executor threads and the allocator's arenas and free lists they fill. What a
longer soak adds is. `cold` is the same snapshot after only a 3 s warm-up (reported,
not checked), and `rounds` splits the soak into settled parts, so a leak shows as a
figure that keeps growing from round to round while a warm-up does not.

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
    files = open_files(server.pid)
    pss = server_pss = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                    server_pss += int(line.split()[1]) * 1024 if pid == server.pid else 0
    workdirs = []
    if root is not None:
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            if rel != ".":
                workdirs.extend(os.path.join(rel, n) for n in dirnames + filenames)
            else:
                workdirs.extend(n for n in filenames)
                workdirs.extend(n for n in dirnames if not _is_area(n))
    return {
        "processes": len(pids),
        "fds": len(files),
        "pss": pss,
        "server_pss": server_pss,
        "workdirs": sorted(workdirs),
        "files": files,
    }


def open_files(pid: int) -> list[str]:
    """What the process's fds point at, sorted; sockets, pipes and anonymous inodes by
    kind only (their numbers differ between two snapshots of the same state)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            out.append(target.split(":[")[0] if ":[" in target else target)
    return sorted(out)


def files_changed(idle: dict[str, Any], now: dict[str, Any]) -> dict[str, list[str]]:
    """The open files `now` holds beyond `idle`'s (added) and the ones it lost (gone)."""
    added, gone = list(now["files"]), []
    for f in idle["files"]:
        if f in added:
            added.remove(f)
        else:
            gone.append(f)
    return {"added": added, "gone": gone}


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


WARM_S = 20.0
"""The warm-up before "idle" is measured (the soak's own mix and concurrency)."""


def run(
    seconds: float,
    chaos: int = 8,
    good: int = 2,
    seed: int = 0,
    rounds: int = 1,
    warm_s: float = WARM_S,
) -> dict[str, Any]:
    """Start a server, warm it up, measure it idle, soak it (in `rounds` parts, each
    followed by a settled snapshot), and measure it again once settled."""
    import tempfile

    tmpdir = tempfile.mkdtemp(prefix="python_env_soak_")
    os.chmod(tmpdir, 0o755)
    pause = float(SERVER_ENV["SESSION_TIMEOUT_S"]) + 3  # past the reaper's timeout
    with run_server(TMPDIR=tmpdir, **SERVER_ENV) as server:
        root = settle(lambda: sandbox_root(tmpdir))
        asyncio.run(soak(server, 3.0, chaos=2, good=1, seed=seed + 1))
        time.sleep(pause)
        cold = settle(lambda: _quiet(server, root), 30) or snapshot(server, root)
        if warm_s > 0:
            asyncio.run(soak(server, warm_s, chaos, good, seed + 2))
            time.sleep(pause)
        idle = settle(lambda: _quiet(server, root), 30) or snapshot(server, root)
        tally, parts, took = Tally(), [], 0.0
        for i in range(max(1, rounds)):
            t0 = time.monotonic()
            part = asyncio.run(soak(server, seconds / max(1, rounds), chaos, good, seed + 3 * i))
            took += time.monotonic() - t0
            for k, v in part.__dict__.items():
                setattr(tally, k, getattr(tally, k) + v)
            after = settle(lambda: _back_to(server, root, idle), 60) or snapshot(server, root)
            parts.append({"seconds": round(took), **_brief(after)})
        log = server.log_tail(4000)
    return {
        "cold": _brief(cold),
        "idle": idle,
        "after": after,
        "rounds": parts,
        "files_changed": files_changed(idle, after),
        "tally": tally.__dict__,
        "seconds": took,
        "log": log,
    }


def _brief(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snap.items() if k not in ("files", "workdirs")} | {
        "workdirs": len(snap["workdirs"])
    }


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
    ap.add_argument("--rounds", type=int, default=1, help="settled snapshots in the soak")
    ap.add_argument("--warm", type=float, default=WARM_S, help="warm-up seconds before idle")
    args = ap.parse_args()
    out = run(args.seconds, args.chaos, args.good, args.seed, args.rounds, args.warm)
    out.pop("log")
    out["idle"] = _brief(out["idle"])
    out["after"] = {k: v for k, v in out["after"].items() if k != "files"}
    print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
