"""The session pool's own overhead: 2 replicas vs 1 on this host, same total capacity.

Three configurations play the same closed loop of episodes with N concurrent async
sessions (each episode: reset a task, 4 trivial `run` steps, 1 `test` step, which takes
a sandbox slot), for a fixed time each:
- `direct`: one server (PYTHON_ENV_SLOTS=2, MAX_CONCURRENT_ENVS=64), plain `PythonEnv`
  clients, a session reused across episodes: the baseline, no pool;
- `pool-1`: the same server through a `SessionPool` of one replica (placement at each
  reset, the pinned-connection checks, the sync-free async path);
- `pool-2`: two servers on this host with half each (SLOTS=1, MAX_CONCURRENT_ENVS=32)
  through a `SessionPool` of both: what splitting one host costs or gains.
`direct` and `pool-1` alternate round by round on one server, so load drifts hit both.

Before that, the pool's own cost per call, on that server: one sync session, blocks of
100 trivial `run` steps, a plain `PythonEnv` and a pool session alternating (the sync
facade is what the evaluation runner and TRL's tools use).

Usage: python benchmarks/bench_pool.py [--quick] [--sessions 16] [--duration 10]
Writes benchmarks/results/bench_pool[_quick].json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, pyplot, run_and_record, summarize_ms  # noqa: E402
from python_env.client import PythonEnv  # noqa: E402
from python_env.models import PythonAction  # noqa: E402
from python_env.pool import SessionPool  # noqa: E402
from python_env.server.launcher import run_server  # noqa: E402

TASK = "implement-rle-encode"
RUN = PythonAction(kind="run", code="print(1 + 1)")
TEST = PythonAction(kind="test")
ONE = {"PYTHON_ENV_SLOTS": "2", "MAX_CONCURRENT_ENVS": "64", "SESSION_TIMEOUT_S": "600"}
HALF = {"PYTHON_ENV_SLOTS": "1", "MAX_CONCURRENT_ENVS": "32", "SESSION_TIMEOUT_S": "600"}


async def _episode(env: Any, steps: list[float], resets: list[float]) -> None:
    t = time.perf_counter()
    await env.reset(task_id=TASK)
    resets.append(time.perf_counter() - t)
    for action in (RUN, RUN, RUN, RUN, TEST):
        t = time.perf_counter()
        result = await env.step(action)
        steps.append(time.perf_counter() - t)
        assert not result.observation.done


def _latency_block(env: Any, steps: int) -> list[float]:
    env.reset()
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        env.step(RUN)
        out.append(time.perf_counter() - t)
    return out


def _latency(url: str, rounds: int, steps: int = 100) -> dict[str, Any]:
    """p50 of a trivial step, one sync session: plain PythonEnv vs a pool session."""
    direct: list[float] = []
    pooled: list[float] = []
    with PythonEnv(base_url=url) as plain, SessionPool([url]) as pool, pool.session() as env:
        _latency_block(plain, 20)  # warm both
        _latency_block(env, 20)
        for _ in range(rounds * 2):
            direct += _latency_block(plain, steps)
            pooled += _latency_block(env, steps)
    return {"direct": summarize_ms(direct), "pool": summarize_ms(pooled)}


async def _load(make: Any, sessions: int, duration_s: float) -> dict[str, Any]:
    """`sessions` concurrent sessions playing episodes until `duration_s` is spent."""
    steps: list[float] = []
    resets: list[float] = []
    episodes = 0
    errors = 0
    end = time.monotonic() + duration_s

    async def worker() -> None:
        nonlocal episodes, errors
        env = make()
        try:
            while time.monotonic() < end:
                try:
                    await _episode(env, steps, resets)
                    episodes += 1
                except Exception:  # noqa: BLE001 - counted, the benchmark goes on
                    errors += 1
        finally:
            with contextlib.suppress(Exception):
                await env.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    wall = time.perf_counter() - t0
    return {
        "sessions": sessions,
        "wall_s": round(wall, 2),
        "episodes": episodes,
        "errors": errors,
        "episodes_per_s": round(episodes / wall, 2),
        "steps_per_s": round(len(steps) / wall, 1),
        "step": summarize_ms(steps),
        "reset": summarize_ms(resets),
    }


def _merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one configuration: their median throughput, and every round."""
    return {
        "steps_per_s": round(statistics.median(r["steps_per_s"] for r in runs), 1),
        "episodes_per_s": round(statistics.median(r["episodes_per_s"] for r in runs), 2),
        "step_p50_ms": round(statistics.median(r["step"]["p50_ms"] for r in runs), 3),
        "reset_p50_ms": round(statistics.median(r["reset"]["p50_ms"] for r in runs), 3),
        "errors": sum(r["errors"] for r in runs),
        "rounds": runs,
    }


async def bench(sessions: int, duration_s: float, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "machine": machine(),
        "settings": {"sessions": sessions, "duration_s": duration_s, "rounds": rounds},
    }
    direct: list[dict[str, Any]] = []
    pooled: list[dict[str, Any]] = []
    with run_server(**ONE) as server:
        out["latency"] = await asyncio.to_thread(_latency, server.url, rounds)
        pool = SessionPool([server.url])
        await _load(lambda: PythonEnv(base_url=server.url), sessions, min(3.0, duration_s))
        for _ in range(rounds):
            direct.append(await _load(lambda: PythonEnv(base_url=server.url), sessions, duration_s))
            pooled.append(await _load(pool.async_session, sessions, duration_s))
    two: list[dict[str, Any]] = []
    with run_server(**HALF) as a, run_server(**HALF) as b:
        pool = SessionPool([a.url, b.url])
        await _load(pool.async_session, sessions, min(3.0, duration_s))
        for _ in range(rounds):
            two.append(await _load(pool.async_session, sessions, duration_s))
    out["direct"], out["pool-1"], out["pool-2"] = _merge(direct), _merge(pooled), _merge(two)
    base = out["direct"]["steps_per_s"]
    lat = out["latency"]
    out["ratios"] = {
        "pool - direct trivial step p50 ms (sync, 1 session)": round(
            lat["pool"]["p50_ms"] - lat["direct"]["p50_ms"], 3
        ),
        "pool-1 / direct steps/s": round(out["pool-1"]["steps_per_s"] / base, 3),
        "pool-2 / direct steps/s": round(out["pool-2"]["steps_per_s"] / base, 3),
        "pool-1 - direct reset p50 ms": round(
            out["pool-1"]["reset_p50_ms"] - out["direct"]["reset_p50_ms"], 3
        ),
        "pool-1 - direct step p50 ms": round(
            out["pool-1"]["step_p50_ms"] - out["direct"]["step_p50_ms"], 3
        ),
    }
    return out


def chart(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    names = ["direct", "pool-1", "pool-2"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    bars = left.bar(names, [result[n]["steps_per_s"] for n in names], color="#5c6bc0")
    left.bar_label(bars, fmt="%.0f")
    left.set_ylabel("steps/s (median of rounds)")
    left.set_title(f"{result['settings']['sessions']} sessions, same total capacity")
    width = 0.38
    xs = range(len(names))
    right.bar([x - width / 2 for x in xs], [result[n]["step_p50_ms"] for n in names], width)
    right.bar([x + width / 2 for x in xs], [result[n]["reset_p50_ms"] for n in names], width)
    right.set_xticks(list(xs))
    right.set_xticklabels(names)
    right.legend(["step p50", "reset p50"])
    right.set_ylabel("ms")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 4 s")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    duration = 4.0 if args.quick else args.duration
    result, path, png = run_and_record(
        "bench_pool", args.quick, lambda: bench(args.sessions, duration, args.rounds), chart
    )
    for name in ("direct", "pool-1", "pool-2"):
        r = result[name]
        print(
            f"{name:7s} {r['steps_per_s']:7.1f} steps/s  {r['episodes_per_s']:6.2f} episodes/s  "
            f"step p50 {r['step_p50_ms']:.2f} ms  reset p50 {r['reset_p50_ms']:.2f} ms  "
            f"errors {r['errors']}"
        )
    lat = result["latency"]
    print(
        f"1 sync session, trivial step p50: direct {lat['direct']['p50_ms']:.3f} ms, "
        f"pool {lat['pool']['p50_ms']:.3f} ms"
    )
    print(result["ratios"])
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
