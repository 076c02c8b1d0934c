"""Server benchmark: step latency, throughput under concurrency, CPU and memory.

Starts the real server (a subprocess on 127.0.0.1) and drives it over its WebSocket
session the way a user does. Requests go through a raw `websockets` client (JSON in,
JSON out) so that the figures are the server's, not a client library's; one extra
latency row uses the `PythonEnv` client to show what the typed client adds.

Baselines measured in the same run (the 2-core machine is shared and noisy, so compare
ratios, not absolute figures across runs):
- the same CPU-heavy loop executed in plain CPython in this process (native speed);
- `GET /health` over HTTP keep-alive and a `state` message over the WebSocket: the
  transport floor of the same framework (no sandbox involved).

Usage: python benchmarks/bench_server.py [--quick] [--levels 1,8,64,256] [--duration 8]
Writes benchmarks/results/bench_server[_quick].json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from common import (  # noqa: E402
    Deadline,
    Session,
    TreeMonitor,
    descendants,
    machine,
    open_sessions,
    pyplot,
    run_and_record,
    summarize_ms,
)
from python_env.server.launcher import run_server  # noqa: E402

TRIVIAL = "print(1 + 1)"
TRIVIAL_OUT = "2\n"
CPU_LOOP = "s = 0\nfor i in range(100000):\n    s += i\nprint(s)\n"
CPU_LOOP_OUT = "4999950000\n"
REQUEST_TIMEOUT_S = 60.0


class Fail(RuntimeError):
    """A reply that is not what the request must produce (counted as an error)."""


def check_run(data: dict[str, Any], expected: str) -> dict[str, Any]:
    obs = data["observation"]
    run = obs.get("run") or {}
    if run.get("stdout") != expected or run.get("exit_code") != 0:
        raise Fail(
            f"run gave {run.get('stdout')!r} exit={run.get('exit_code')} ({obs.get('message')})"
        )
    return run


# -- tasks ------------------------------------------------------------------------------


def pick_tasks() -> dict[str, Any]:
    """A function task with visible tests, and the task whose hidden-case count is the
    smallest >= 50 (else the largest), both with their reference solutions.

    The bank is loaded in this process only to read reference solutions and case counts
    (the server loads the same bank)."""
    from python_env.server.tasks import default_bank

    bank = list(default_bank())
    graded = [
        t
        for t in bank
        if t.family in ("implement", "fix-bug", "fix-syntax")
        and t.reference_solution
        and t.source != "humaneval"
    ]

    def n_cases(t: Any) -> int:
        return len(t.hidden_cases) + (1 if t.hidden_test_code else 0)

    with_tests = [t for t in graded if t.entry_point and t.visible_tests.strip()]
    test_task = sorted(
        with_tests, key=lambda t: (t.family != "implement", t.difficulty != "easy", t.id)
    )[0]
    big = [t for t in graded if n_cases(t) >= 50]
    submit_task = min(big, key=lambda t: (n_cases(t), t.id)) if big else max(graded, key=n_cases)
    return {
        "test": {
            "id": test_task.id,
            "solution": test_task.reference_solution,
            "max_steps": test_task.max_steps,
        },
        "submit": {
            "id": submit_task.id,
            "solution": submit_task.reference_solution,
            "hidden_cases": n_cases(submit_task),
        },
    }


# -- latency ----------------------------------------------------------------------------


async def time_steps(
    session: Session, n: int, action: dict[str, Any], expected: str, deadline: Deadline
):
    lat, sandbox_ms = [], []
    for _ in range(n):
        if deadline.over():
            break
        t = time.perf_counter()
        data = await session.step(**action)
        lat.append(time.perf_counter() - t)
        sandbox_ms.append(check_run(data, expected).get("wall_time_ms", 0.0))
    return lat, sandbox_ms


def native_cpu_loop(n: int) -> list[float]:
    """The same loop in plain CPython, in this process (compile + exec, stdout captured)."""
    out = []
    for _ in range(n):
        buf = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(buf):
            exec(compile(CPU_LOOP, "<loop>", "exec"), {})  # noqa: S102 - our own constant
        out.append(time.perf_counter() - t)
        assert buf.getvalue() == CPU_LOOP_OUT
    return out


async def typed_client_steps(url: str, n: int, deadline: Deadline) -> list[float]:
    from python_env import PythonAction, PythonEnv

    lat = []
    async with PythonEnv(base_url=url, message_timeout_s=REQUEST_TIMEOUT_S) as env:
        await env.reset()
        action = PythonAction(kind="run", code=TRIVIAL, persistent=True)
        for _ in range(5):
            await env.step(action)
        for _ in range(n):
            if deadline.over():
                break
            t = time.perf_counter()
            result = await env.step(action)
            lat.append(time.perf_counter() - t)
            assert result.observation.run and result.observation.run.stdout == TRIVIAL_OUT
    return lat


async def visible_tests(
    ws_url: str, tasks: dict[str, Any], n_test: int, budget: Deadline
) -> dict[str, Any]:
    """Edit in the reference, then test steps (a new episode before the budget runs out)."""
    tt = tasks["test"]
    lat, totals = [], set()
    async with Session(ws_url, REQUEST_TIMEOUT_S) as s:
        while len(lat) < n_test and not budget.over():
            await s.reset(task_id=tt["id"])
            await s.step(kind="edit", code=tt["solution"])
            for _ in range(max(1, tt["max_steps"] - 2)):
                if len(lat) >= n_test or budget.over():
                    break
                t = time.perf_counter()
                data = await s.step(kind="test")
                lat.append(time.perf_counter() - t)
                rep = data["observation"]["tests"]
                if not rep or rep["passed"] != rep["total"] or not rep["total"]:
                    raise Fail(f"visible tests of the reference failed: {rep}")
                totals.add(rep["total"])
    row = summarize_ms(lat[1:])
    row.update(task=tt["id"], visible_tests=sorted(totals))
    return {"visible tests": row}


async def submit(
    ws_url: str, tasks: dict[str, Any], n_submit: int, budget: Deadline
) -> dict[str, Any]:
    """reset + edit (reference) + submit; only the submit is timed. The first submit on a
    fresh server also computes the expected outputs (reported apart, as cold)."""
    st = tasks["submit"]
    lat, cold, grade = [], None, None
    async with Session(ws_url, REQUEST_TIMEOUT_S) as s:
        for i in range(n_submit + 1):
            if budget.over() and i > 1:
                break
            await s.reset(task_id=st["id"])
            await s.step(kind="edit", code=st["solution"])
            t = time.perf_counter()
            data = await s.step(kind="submit")
            dt = time.perf_counter() - t
            grade = data["observation"]["grade"]
            if not grade or not grade["passed"] or grade["cases_total"] < 1:
                raise Fail(f"reference did not pass: {grade}")
            if i == 0:
                cold = dt
            else:
                lat.append(dt)
    row = summarize_ms(lat)
    row.update(
        task=st["id"],
        cold_first_submit_ms=round((cold or 0) * 1000, 3),
        cases_total=grade["cases_total"] if grade else 0,
    )
    return {f"submit ({st['hidden_cases']} hidden cases)": row}


async def latency_suite(
    url: str, ws_url: str, tasks: dict[str, Any], quick: bool
) -> dict[str, Any]:
    n = 40 if quick else 300
    n_cpu = 10 if quick else 30
    n_test = 10 if quick else 60
    n_submit = 6 if quick else 30
    budget = Deadline(20 if quick else 120)
    out: dict[str, Any] = {}

    def record(
        name: str, lat: list[float], sandbox: list[float] | None = None, **extra: Any
    ) -> None:
        row = summarize_ms(lat)
        if sandbox:
            row["sandbox_wall_p50_ms"] = round(statistics.median(sandbox), 3)
        row.update(extra)
        out[name] = row

    # transport floor: HTTP keep-alive and a WebSocket message that never reaches the sandbox
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
        for _ in range(20):
            http.get("/health")
        lat = []
        for _ in range(n):
            t = time.perf_counter()
            assert http.get("/health").status_code == 200
            lat.append(time.perf_counter() - t)
    record("http_health (floor)", lat)

    kernel = {"kind": "run", "code": TRIVIAL, "persistent": True}
    oneshot = {"kind": "run", "code": TRIVIAL, "persistent": False}
    loop_k = {"kind": "run", "code": CPU_LOOP, "persistent": True}
    loop_o = {"kind": "run", "code": CPU_LOOP, "persistent": False}
    async with Session(ws_url, REQUEST_TIMEOUT_S) as s:
        await s.reset()
        t = time.perf_counter()
        check_run(await s.step(**kernel), TRIVIAL_OUT)  # starts the kernel
        out["kernel_first_step_ms"] = round((time.perf_counter() - t) * 1000, 3)
        for _ in range(5):  # warm every path
            await s.state()
            await time_steps(s, 1, kernel, TRIVIAL_OUT, budget)
            await time_steps(s, 1, oneshot, TRIVIAL_OUT, budget)
        await time_steps(s, 2, loop_k, CPU_LOOP_OUT, budget)
        await time_steps(s, 1, loop_o, CPU_LOOP_OUT, budget)
        native_cpu_loop(3)

        # interleaved rounds, so that every scenario sees the same machine conditions
        names = ("ws_state (floor)", "kernel trivial", "one-shot trivial")
        cpu_names = ("kernel 100k loop", "one-shot 100k loop", "native 100k loop (in-process)")
        lat_of: dict[str, list[float]] = {k: [] for k in names + cpu_names}
        sandbox_of: dict[str, list[float]] = {k: [] for k in names + cpu_names}

        def add(name: str, samples: tuple[list[float], list[float]]) -> None:
            lat_of[name] += samples[0]
            sandbox_of[name] += samples[1]

        for i in range(n):
            if budget.over():
                break
            t = time.perf_counter()
            await s.state()
            lat_of["ws_state (floor)"].append(time.perf_counter() - t)
            add("kernel trivial", await time_steps(s, 1, kernel, TRIVIAL_OUT, budget))
            add("one-shot trivial", await time_steps(s, 1, oneshot, TRIVIAL_OUT, budget))
            if i < n_cpu:
                add("kernel 100k loop", await time_steps(s, 1, loop_k, CPU_LOOP_OUT, budget))
                add("one-shot 100k loop", await time_steps(s, 1, loop_o, CPU_LOOP_OUT, budget))
                lat_of["native 100k loop (in-process)"] += native_cpu_loop(1)
        for name in names + cpu_names:
            record(name, lat_of[name], sandbox_of[name])

    record("kernel trivial (PythonEnv client)", await typed_client_steps(url, n // 2, budget))

    for name, scenario in (("visible tests", visible_tests), ("submit", submit)):
        try:
            out.update(
                await scenario(
                    ws_url, tasks, n_test if name == "visible tests" else n_submit, budget
                )
            )
        except Exception as exc:  # reported, and the other scenarios still run
            out[f"{name} (failed)"] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
            print(f"  {name}: FAILED: {exc}"[:400], flush=True)
    return out


# -- throughput -------------------------------------------------------------------------


class Counters:
    def __init__(self) -> None:
        self.steps = 0
        self.episodes = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.lat: list[float] = []

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{type(exc).__name__}: {str(exc)[:300]}")


async def worker_steps(s: Session, c: Counters, start: asyncio.Event, t_end: list[float]) -> None:
    """Trivial kernel steps, back to back, until the window closes."""
    await start.wait()
    action = {"kind": "run", "code": TRIVIAL, "persistent": True}
    try:
        while time.perf_counter() < t_end[0]:
            t = time.perf_counter()
            check_run(await s.step(**action), TRIVIAL_OUT)
            done = time.perf_counter()
            if done <= t_end[0]:
                c.steps += 1
                c.lat.append(done - t)
    except Exception as exc:  # counted and reported: the worker stops
        c.error(exc)


async def worker_episodes(
    s: Session, c: Counters, start: asyncio.Event, t_end: list[float]
) -> None:
    """Episodes: reset (frees the kernel) + 3 kernel steps (the first starts a kernel) +
    1 one-shot step."""
    await start.wait()
    plan = [True, True, True, False]
    try:
        while time.perf_counter() < t_end[0]:
            await s.reset()
            steps = 0
            for persistent in plan:
                t = time.perf_counter()
                check_run(
                    await s.step(kind="run", code=TRIVIAL, persistent=persistent), TRIVIAL_OUT
                )
                done = time.perf_counter()
                if done <= t_end[0]:
                    steps += 1
                    c.lat.append(done - t)
            if time.perf_counter() <= t_end[0]:
                c.episodes += 1
            c.steps += steps
    except Exception as exc:
        c.error(exc)


async def warm_session(s: Session, gate: asyncio.Semaphore) -> None:
    """A fresh free episode with its kernel started."""
    async with gate:
        await s.reset()
        check_run(await s.step(kind="run", code=TRIVIAL, persistent=True), TRIVIAL_OUT)


async def run_window(
    sessions: list[Session], worker: Any, duration: float, server_pid: int
) -> dict[str, Any]:
    c = Counters()
    start = asyncio.Event()
    t_end = [float("inf")]
    tasks = [asyncio.create_task(worker(s, c, start, t_end)) for s in sessions]
    monitor = TreeMonitor(server_pid).start()
    t0 = time.perf_counter()
    t_end[0] = t0 + duration
    start.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration + REQUEST_TIMEOUT_S + 10)
    stats = monitor.stop()
    return {
        "sessions": len(sessions),
        "duration_s": duration,
        "steps": c.steps,
        "episodes": c.episodes,
        "steps_per_s": round(c.steps / duration, 1),
        "episodes_per_s": round(c.episodes / duration, 1),
        "errors": c.errors,
        "error_samples": c.error_samples,
        "step_latency": summarize_ms(c.lat),
        "server_tree": stats.as_dict(),
    }


async def wait_tree(pid: int, target: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    n = len(descendants(pid))
    while n > target and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        n = len(descendants(pid))
    return n


async def throughput_suite(
    ws_url: str, server_pid: int, levels: list[int], duration: float
) -> list[dict[str, Any]]:
    rows = []
    baseline_procs = len(descendants(server_pid))
    for n in levels:
        row: dict[str, Any] = {"sessions": n, "baseline_descendants": baseline_procs}
        t = time.perf_counter()
        try:
            sessions = await open_sessions(ws_url, n, parallel=32, timeout_s=REQUEST_TIMEOUT_S)
        except Exception as exc:
            row["open_error"] = repr(exc)[:500]
            rows.append(row)
            print(f"  {n:>4} sessions: could not open: {exc!r}"[:300])
            continue
        row["open_s"] = round(time.perf_counter() - t, 3)
        try:
            gate = asyncio.Semaphore(32)
            monitor = TreeMonitor(server_pid).start()
            t = time.perf_counter()
            await asyncio.gather(*(warm_session(s, gate) for s in sessions))
            row["kernels_start_s"] = round(time.perf_counter() - t, 3)
            row["kernels_start_tree"] = monitor.stop().as_dict()
            row["kernel_steps"] = await run_window(sessions, worker_steps, duration, server_pid)
            row["episodes"] = await run_window(sessions, worker_episodes, duration, server_pid)
        except Exception as exc:
            row["error"] = repr(exc)[:500]
        finally:
            await asyncio.gather(*(s.close() for s in sessions))
        row["descendants_after_close"] = await wait_tree(server_pid, baseline_procs, 30)
        rows.append(row)
        ks, ep = row.get("kernel_steps", {}), row.get("episodes", {})
        print(
            f"  {n:>4} sessions: kernel steps {ks.get('steps_per_s', '-')}/s "
            f"(p50 {ks.get('step_latency', {}).get('p50_ms', '-')} ms, errors {ks.get('errors', '-')}), "
            f"episodes {ep.get('episodes_per_s', '-')}/s ({ep.get('steps_per_s', '-')} steps/s, "
            f"errors {ep.get('errors', '-')}), tree PSS peak "
            f"{ks.get('server_tree', {}).get('pss_peak_mb', '-')} MB, "
            f"procs peak {ks.get('server_tree', {}).get('procs_peak', '-')}",
            flush=True,
        )
    return rows


# -- report -----------------------------------------------------------------------------


def print_latency(lat: dict[str, Any]) -> None:
    print(f"\n{'scenario':<40} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'sandbox p50':>12}")
    for name, row in lat.items():
        if isinstance(row, dict) and "p50_ms" in row:
            sb = row.get("sandbox_wall_p50_ms", "")
            print(
                f"{name:<40} {row['n']:>5} {row['p50_ms']:>9.3f} {row['p99_ms']:>9.3f} {sb!s:>12}"
            )


def chart(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5))
    lat = {k: v for k, v in result["latency"].items() if isinstance(v, dict) and "p50_ms" in v}
    names = list(lat)
    p50 = [lat[k]["p50_ms"] for k in names]
    p99 = [lat[k]["p99_ms"] for k in names]
    y = range(len(names))
    ax1.barh(y, p50, color="#4c72b0", label="p50")
    ax1.scatter(p99, y, color="#c44e52", marker="|", s=200, label="p99", zorder=3)
    ax1.set_yticks(list(y), names, fontsize=8)
    ax1.invert_yaxis()
    ax1.set_xscale("log")
    ax1.set_xlabel("step latency, ms (log)")
    ax1.set_title("Latency, one session (raw WebSocket client)")
    ax1.legend(loc="lower right")
    for i, v in enumerate(p50):
        ax1.text(v, i, f" {v:.2f}", va="center", fontsize=7)

    rows = [r for r in result["throughput"] if "kernel_steps" in r]
    if rows:
        xs = [r["sessions"] for r in rows]
        ax2.plot(xs, [r["kernel_steps"]["steps_per_s"] for r in rows], "o-", label="kernel steps/s")
        ax2.plot(
            xs, [r["episodes"]["steps_per_s"] for r in rows], "s-", label="episode mix steps/s"
        )
        ax2.plot(xs, [r["episodes"]["episodes_per_s"] for r in rows], "^-", label="episodes/s")
        ax2.set_xscale("log", base=2)
        ax2.set_xticks(xs, [str(x) for x in xs])
        ax2.set_xlabel("concurrent sessions")
        ax2.set_ylabel("per second")
        ax2.set_title("Throughput against one server")
        ax3 = ax2.twinx()
        ax3.plot(
            xs,
            [r["kernel_steps"]["server_tree"]["pss_peak_mb"] for r in rows],
            "k--",
            alpha=0.5,
            label="tree PSS MB",
        )
        ax3.set_ylabel("server tree peak PSS, MB")
        h1, l1 = ax2.get_legend_handles_labels()
        h2, l2 = ax3.get_legend_handles_labels()
        ax2.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    m = result["machine"]
    fig.suptitle(
        f"python_env server - {m['nproc']} cores, {m['cpu_model']}, {m['date']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    levels = [int(x) for x in args.levels.split(",")]
    env = {
        "MAX_CONCURRENT_ENVS": str(max(256, max(levels) + 8)),
        "SESSION_TIMEOUT_S": "600",
    }
    tasks = pick_tasks()
    result: dict[str, Any] = {
        "benchmark": "bench_server",
        "quick": args.quick,
        "machine": machine(),
        "client": "raw websockets (JSON), one asyncio process; one row with the PythonEnv client",
        "server_env": env,
        "tasks": {"test": tasks["test"]["id"], "submit": tasks["submit"]["id"]},
    }
    with run_server(**env) as server:
        meta = httpx.get(f"{server.url}/metadata", timeout=30).json()
        result["server_isolation"] = meta.get("isolation")
        result["server_limits"] = meta.get("limits")
        print(
            f"server pid {server.pid} at {server.url}; isolation: {meta.get('isolation')}",
            flush=True,
        )
        result["latency"] = await latency_suite(server.url, server.ws_url, tasks, args.quick)
        print_latency(result["latency"])
        lat = result["latency"]
        native = lat["native 100k loop (in-process)"]["p50_ms"]
        floor = lat["ws_state (floor)"]["p50_ms"]
        result["ratios"] = {
            "kernel_100k_loop_vs_native": round(lat["kernel 100k loop"]["p50_ms"] / native, 2),
            "oneshot_100k_loop_vs_native": round(lat["one-shot 100k loop"]["p50_ms"] / native, 2),
            "kernel_trivial_vs_ws_floor": round(lat["kernel trivial"]["p50_ms"] / floor, 2),
            "oneshot_trivial_vs_ws_floor": round(lat["one-shot trivial"]["p50_ms"] / floor, 2),
        }
        print(f"\nratios (p50): {result['ratios']}")
        print(f"\nthroughput, {args.duration:g} s windows per workload:", flush=True)
        result["throughput"] = await throughput_suite(
            server.ws_url, server.pid, levels, args.duration
        )
        result["server_log_tail"] = server.log_tail(1500)
    errors = sum(
        r.get(w, {}).get("errors", 0)
        for r in result["throughput"]
        for w in ("kernel_steps", "episodes")
    ) + sum(1 for r in result["throughput"] if "error" in r or "open_error" in r)
    result["total_errors"] = errors
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="< 1 minute: fewer samples, levels 1,8,64")
    ap.add_argument("--levels", default=None, help="concurrency levels (default 1,8,64,256)")
    ap.add_argument("--duration", type=float, default=None, help="seconds per throughput window")
    args = ap.parse_args()
    args.levels = args.levels or ("1,8,64" if args.quick else "1,8,64,256")
    args.duration = args.duration or (2.5 if args.quick else 8.0)
    result, path, png = run_and_record("bench_server", args.quick, lambda: main_async(args), chart)
    print(f"\ntotal errors: {result['total_errors']}; elapsed {result['elapsed_s']} s")
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
