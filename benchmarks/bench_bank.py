"""Bank at scale: a server's start-up, first /tasks, first /metadata and a reset by
split and index, with today's bank against a 10,000-task bank.

The 10,000-task bank is today's plus a synthetic source of clones of the built-in
function tasks (in groups of four sharing one withheld source, like variants),
written to a temp folder before each run: `lazy` serves it the way a manifest-backed
source does (an index read at start, each task checked and built on first use:
`bank_server.py`); `eager` loads the very same tasks as a JSONL file through
`PYTHON_ENV_TASKS` (every task checked at start), to show what laziness saves.
Rounds interleave `today` and `lazy` (in alternating order) so both see the same
machine; `eager` runs once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from common import machine, write_json
from python_env.server.launcher import run_server
from python_env.server.tasks import default_bank
from python_env.server.tasks.model import Task

HERE = Path(__file__).resolve().parent
TOTAL = 10_000


def spec_of(task: Task, task_id: str, title: str, base_id: str) -> dict[str, Any]:
    """A function task as a python_env JSONL specification (the hidden cases as lists)."""
    return {
        "id": task_id,
        "family": task.family,
        "difficulty": task.difficulty,
        "title": title,
        "statement": task.statement,
        "starter_code": task.starter_code,
        "reference_solution": task.reference_solution,
        "entry_point": task.entry_point,
        "visible_tests": task.visible_tests,
        "hidden_test_code": task.hidden_test_code,
        "comparator": task.comparator,
        "tolerance": task.tolerance,
        "expects_errors": task.expects_errors,
        "max_steps": task.max_steps,
        "hidden_cases": [{"args": list(c.args), "kwargs": c.kwargs} for c in task.hidden_cases],
        "base_id": base_id,
    }


def write_source(folder: Path, count: int) -> dict[str, Any]:
    """`count` synthetic tasks: `tasks.jsonl` (full specs) and `index.json` (one small
    row per task, with the byte offset of its spec)."""
    templates: list[Task] = []
    for t in default_bank():
        if t.family in ("implement", "fix-bug", "fix-syntax") and t.entry_point:
            try:
                json.dumps(spec_of(t, t.id, t.title, t.id))
            except TypeError:  # cases that are not JSON (sets, ...): not a template
                continue
            templates.append(t)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    index: list[dict[str, Any]] = []
    offset = 0
    with (folder / "tasks.jsonl").open("wb") as fh:
        for i in range(count):
            t = templates[i % len(templates)]
            group, member = divmod(i, 4)
            task_id, base_id = f"syn-{group:05d}-{member}", f"syn-src-{group:05d}"
            title = f"{t.title} (synthetic {group})"
            line = (json.dumps(spec_of(t, task_id, title, base_id)) + "\n").encode()
            fh.write(line)
            index.append(
                {
                    "id": task_id,
                    "family": t.family,
                    "difficulty": t.difficulty,
                    "title": title,
                    "base_id": base_id,
                    "offset": offset,
                    "hash": hashlib.sha256(line).hexdigest()[:32],
                }
            )
            offset += len(line)
    (folder / "index.json").write_text(json.dumps(index))
    return {
        "tasks": count,
        "templates": len(templates),
        "jsonl_mb": round(offset / 1e6, 1),
        "index_mb": round((folder / "index.json").stat().st_size / 1e6, 2),
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return round((time.perf_counter() - t0) * 1000, 1), value


def measure(name: str, **server: Any) -> dict[str, Any]:
    """Start a server, time what a first client does, stop it."""
    t0 = time.perf_counter()
    with run_server(startup_timeout_s=600, **server) as s:
        row: dict[str, Any] = {"bank": name, "startup_s": round(time.perf_counter() - t0, 2)}
        row["rss_mb"] = rss_mb(s.pid)
        with httpx.Client(base_url=s.url, timeout=120) as http:
            row["first_tasks_ms"], r = timed(lambda: http.get("/tasks"))
            tasks = r.json()
            row["tasks"], row["tasks_kb"] = len(tasks), round(len(r.content) / 1024)
            row["again_tasks_ms"], _ = timed(lambda: http.get("/tasks"))
            row["page_ms"], page = timed(
                lambda: http.get("/tasks", params={"split": "train", "offset": 10, "limit": 100})
            )
            total = int(page.headers["x-total-count"])
            assert len(page.json()) == min(100, total - 10), page.text[:200]
            row["first_metadata_ms"], meta = timed(lambda: http.get("/metadata"))
            assert meta.json()["splits"]["all"] == len(tasks)
            index = meta.json()["splits"]["train"] - 1  # the last task: one build, if lazy
            row["reset_by_index_ms"], reset = timed(
                lambda: http.post("/reset", json={"split": "train", "index": index})
            )
            assert reset.status_code == 200, reset.text[:300]
    print(
        f"  {name:>6}: {row['tasks']:>6} tasks, start {row['startup_s']:6.2f} s, "
        f"first /tasks {row['first_tasks_ms']:7.1f} ms, /metadata {row['first_metadata_ms']:7.1f} ms, "
        f"reset by index {row['reset_by_index_ms']:6.1f} ms, RSS {row['rss_mb']} MB",
        flush=True,
    )
    return row


def median(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="today/lazy rounds (default 3)")
    ap.add_argument("--quick", action="store_true", help="one round, no eager run")
    args = ap.parse_args()
    rounds = 1 if args.quick else args.rounds

    from bank_server import SOURCE_DIR

    today = len(default_bank())
    result: dict[str, Any] = {"benchmark": "bench_bank", "quick": args.quick, "machine": machine()}
    result["source"] = write_source(SOURCE_DIR, TOTAL - today)
    print(f"synthetic source: {result['source']}", flush=True)
    lazy_server = {"module": "bank_server", "PYTHONPATH": str(HERE)}
    runs: dict[str, list[dict[str, Any]]] = {"today": [], "lazy": [], "eager": []}
    t0 = time.perf_counter()
    for r in range(rounds):
        order = [("today", {}), ("lazy", lazy_server)]
        for name, server in order if r % 2 == 0 else order[::-1]:  # no order bias
            runs[name].append(measure(name, **server))
        if r == 0 and not args.quick:
            runs["eager"].append(measure("eager", PYTHON_ENV_TASKS=str(SOURCE_DIR / "tasks.jsonl")))
    result["runs"] = runs
    keys = ("startup_s", "first_tasks_ms", "first_metadata_ms", "reset_by_index_ms", "rss_mb")
    result["median"] = {k: {b: median(v, key=k) for b, v in runs.items() if v} for k in keys}
    result["ratios_lazy_vs_today"] = {
        k: round(result["median"][k]["lazy"] / max(result["median"][k]["today"], 1e-9), 2)
        for k in keys
    }
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    path = write_json(f"bench_bank{'_quick' if args.quick else ''}.json", result)
    shutil.rmtree(SOURCE_DIR, ignore_errors=True)
    print(f"\nmedians: {json.dumps(result['median'])}")
    print(f"10,000 lazy vs today's {today} (ratio): {result['ratios_lazy_vs_today']}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
