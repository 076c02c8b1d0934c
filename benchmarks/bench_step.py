"""Trivial step latency against the framework's floor (issue #16, target 1).

The floor is a minimal OpenEnv environment (one-field action, empty observation, a
`step` that does nothing) served by the same `create_fastapi_app` and uvicorn as
python_env, in a process of its own. python_env's trivial kernel step (`print(1 + 1)` in
the session's persistent kernel) should come back within `TARGET_MS` of the floor's
step. With `--coding-env PATH` (a checkout of OpenEnv's `envs/coding_env`, importable
with its dependencies, e.g. smolagents, in this interpreter) its trivial step is
measured side by side too, and the target is then coding_env's own step.

The rows between floor and kernel step say where python_env's time goes: `state` (the
guard and OpenEnv's handler, no environment step), `edit` (the environment's step,
pydantic models and the rubric, no sandbox), `run` (adds the kernel's pipe round trip,
the cell and the freeze check after it). Targets are measured round-robin in rounds, so
load on the shared machine falls on all alike; compare ratios, not absolute figures.

Usage: python benchmarks/bench_step.py [--coding-env PATH] [--steps 2000] [--rounds 10]
Writes benchmarks/results/bench_step.json. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Session, machine, summarize_ms, write_json  # noqa: E402
from python_env.server.launcher import (  # noqa: E402
    free_port,
    run_server,
    stop_process,
    wait_healthy,
)

TARGET_MS = 0.2  # python_env's kernel step may cost at most this much over the floor
TRIVIAL = "print(1 + 1)"


# -- the floor: a do-nothing OpenEnv environment ----------------------------------------


def floor_app() -> Any:
    from openenv.core.env_server.http_server import create_fastapi_app
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, ConcurrencyConfig, Observation, State

    class NoopAction(Action):
        code: str = ""

    class NoopEnvironment(Environment[NoopAction, Observation, State]):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self) -> None:
            super().__init__()
            self._state = State()

        def reset(self, seed: Any = None, episode_id: Any = None, **kwargs: Any) -> Observation:
            return Observation()

        def step(self, action: NoopAction, timeout_s: Any = None, **kwargs: Any) -> Observation:
            return Observation()

        @property
        def state(self) -> State:
            return self._state

    return create_fastapi_app(
        NoopEnvironment,
        NoopAction,
        Observation,
        env_name="floor",
        concurrency_config=ConcurrencyConfig(max_concurrent_envs=64),
    )


@contextlib.contextmanager
def serve(argv: list[str], cwd: str | None = None, **env: str) -> Iterator[str]:
    """A server subprocess on a free loopback port; yields its base URL once healthy."""
    port = free_port()
    log = open(os.devnull, "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        [*argv, "--port", str(port)],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, url, 120, what=str(argv))
        yield url
    finally:
        stop_process(proc)
        log.close()


def serve_floor(port: int) -> None:
    import uvicorn

    uvicorn.run(floor_app(), host="127.0.0.1", port=port, log_level="warning")


# -- measuring ---------------------------------------------------------------------------


class Target:
    """One kind of message against one server, on one open session."""

    def __init__(self, name: str, ws_url: str, message: dict[str, Any], check: Any = None):
        self.name, self.ws_url, self.message, self.check = name, ws_url, message, check
        self.session = Session(ws_url)
        self.samples: list[float] = []
        self.sandbox_ms: list[float] = []

    async def open(self, reset: dict[str, Any]) -> None:
        await self.session.open()
        await self.session.reset(**reset)

    async def measure(self, n: int) -> None:
        s = self.session
        for _ in range(n):
            t = time.perf_counter()
            data = await s.request(self.message)
            self.samples.append(time.perf_counter() - t)
            if self.check is not None:
                self.sandbox_ms.append(self.check(data))


def check_kernel(data: dict[str, Any]) -> float:
    run = data["observation"]["run"]
    if run["stdout"] != "2\n" or run["exit_code"] != 0:
        raise RuntimeError(f"unexpected run result: {run}")
    return float(run["wall_time_ms"])


async def measure(urls: dict[str, str], steps: int, rounds: int, warmup: int) -> dict[str, Any]:
    targets = [
        Target("floor step", urls["floor"], {"type": "step", "data": {"code": TRIVIAL}}),
        Target("floor state", urls["floor"], {"type": "state"}),
        Target("python_env state", urls["python_env"], {"type": "state"}),
        Target(
            "python_env edit",
            urls["python_env"],
            {"type": "step", "data": {"kind": "edit", "code": TRIVIAL}},
        ),
        Target(
            "python_env kernel step",
            urls["python_env"],
            {"type": "step", "data": {"kind": "run", "code": TRIVIAL}},
            check_kernel,
        ),
    ]
    if "coding_env" in urls:
        targets.append(
            Target(
                "coding_env step", urls["coding_env"], {"type": "step", "data": {"code": TRIVIAL}}
            )
        )
    for t in targets:
        await t.open({})
    try:
        for t in targets:  # warm: kernels started, caches filled
            await t.measure(warmup)
            t.samples.clear()
            t.sandbox_ms.clear()
        per_round = max(1, steps // rounds)
        for _ in range(rounds):
            for t in targets:
                await t.measure(per_round)
    finally:
        for t in targets:
            await t.session.close()
    rows = {t.name: summarize_ms(t.samples) for t in targets}
    kernel = next(t for t in targets if t.name == "python_env kernel step")
    rows["python_env kernel step"]["sandbox_wall_p50_ms"] = round(
        sorted(kernel.sandbox_ms)[len(kernel.sandbox_ms) // 2], 3
    )
    return rows


def verdict(rows: dict[str, Any]) -> dict[str, Any]:
    ours = rows["python_env kernel step"]["p50_ms"]
    floor = rows["floor step"]["p50_ms"]
    out: dict[str, Any] = {
        "kernel_step_p50_ms": ours,
        "floor_step_p50_ms": floor,
        "difference_ms": round(ours - floor, 3),
        "ratio": round(ours / floor, 3),
        "target": f"floor + {TARGET_MS} ms",
        "met": ours <= floor + TARGET_MS,
    }
    if "coding_env step" in rows:
        theirs = rows["coding_env step"]["p50_ms"]
        out.update(
            coding_env_step_p50_ms=theirs,
            ratio_to_coding_env=round(ours / theirs, 3),
            met_against_coding_env=ours <= theirs,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coding-env", type=Path, help="a checkout of OpenEnv's envs/coding_env")
    parser.add_argument("--steps", type=int, default=2000, help="timed messages per target")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.port)
        return

    info = machine()
    with contextlib.ExitStack() as stack:
        urls = {
            "floor": stack.enter_context(serve([sys.executable, __file__, "--serve-floor"])),
            "python_env": stack.enter_context(run_server()).url,
        }
        if args.coding_env:
            checkout = args.coding_env.resolve()
            app = f"{checkout.name}.server.app:app"
            urls["coding_env"] = stack.enter_context(
                serve(
                    [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"],
                    cwd=str(checkout.parent),
                    PYTHONPATH=os.pathsep.join([str(checkout.parent), str(checkout)]),
                )
            )
        ws = {k: v.replace("http://", "ws://") + "/ws" for k, v in urls.items()}
        rows = asyncio.run(measure(ws, args.steps, args.rounds, args.warmup))
    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"machine": info, "rows": rows, "verdict": verdict(rows)}
    path = write_json("bench_step.json", result)
    print(f"{'message':<26}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
    for name, row in rows.items():
        print(f"{name:<26}{row['p50_ms']:>9.3f}{row['p90_ms']:>9.3f}{row['p99_ms']:>9.3f}")
    v = result["verdict"]
    print(
        f"kernel step - floor = {v['difference_ms']:+.3f} ms (ratio {v['ratio']:.2f}); "
        f"target {v['target']}: {'met' if v['met'] else 'NOT met'}"
    )
    if "ratio_to_coding_env" in v:
        print(f"kernel step / coding_env step = {v['ratio_to_coding_env']:.2f}")
    print(f"sandbox-side wall p50 {rows['python_env kernel step']['sandbox_wall_p50_ms']} ms")
    print(f"load {info['loadavg_at_start']} -> {info['loadavg_at_end']}; wrote {path}")


if __name__ == "__main__":
    main()
