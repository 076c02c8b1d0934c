"""One-shot isolated runs: this checkout's sandbox against a baseline, in one process.

The baseline is the sandbox package of another git revision (default `main`), taken
with `git archive` into a temporary directory and loaded under another name; both
sandboxes have every isolation layer and the whole-run budgets on (default settings,
one slot per core). Rounds alternate the order of the two variants, and each round
measures, per variant:

- p50 latency of `Sandbox.run("print(1 + 1)")` with one caller (`--runs` runs, a
  `--gap-ms` pause before each, as between an agent's steps: the pause is not timed);
- CPU per run over those runs: this process (the caller and the sandbox's threads,
  `time.process_time`) plus each slot's cgroup (`cpuacct.usage`: the zygote and every
  child it forked, exited ones included), or, without cgroups, the zygotes' CPU plus
  each run's own;
- runs/s with 8 caller threads for `--seconds`;
- p50 latency and this process's CPU per cell of a warm kernel (`Sandbox.kernel()`,
  the same code, `--runs` cells, no pause): the parent side of a session's step.

Prints the median of each figure over the rounds, the ratio candidate/baseline, the
load average, and writes benchmarks/results/sandbox.json. Not a test.

    python benchmarks/bench_sandbox.py [--rounds 5] [--runs 200] [--seconds 3] [--baseline main]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import python_env.server.sandbox as candidate
from python_env.server.sandbox import budget as candidate_budget
from python_env.server.sandbox.syscalls import process_cpu_s

ROOT = Path(__file__).resolve().parents[1]
CODE = "print(1 + 1)"


def load_baseline(ref: str, into: str) -> ModuleType:
    """The sandbox package of git revision `ref`, importable as `sandbox_baseline`."""
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "server/sandbox"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return import_copy(os.path.join(into, "server", "sandbox"), "sandbox_baseline")


def import_copy(path: str, name: str) -> ModuleType:
    """The sandbox package copied at `path`, imported as `name` beside this checkout's."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(path, "__init__.py"), submodule_search_locations=[path]
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    # one owner tag for both copies: each Sandbox sweeps the cgroups of "dead" owners,
    # and a second copy's tag under the same pid would look like a dead one's
    sys.modules[f"{name}.budget"]._TAG = candidate_budget._TAG  # type: ignore[attr-defined]
    return mod


def tree_cpu_s(sb: Any) -> float:
    """CPU of everything the sandbox forked (see module doc)."""
    groups = [b.cg for b in getattr(sb, "_slot_budgets", []) if b is not None and b.cg is not None]
    if groups:
        return sum(g.cpu_s() for g in groups)
    return sum(process_cpu_s(p) or 0.0 for p in sb.zygote_pids())


def latency_and_cpu(sb: Any, runs: int, gap_s: float) -> dict[str, float]:
    uses_groups = bool([b for b in getattr(sb, "_slot_budgets", []) if b is not None])
    ts: list[float] = []
    own = 0.0
    t0, c0 = time.process_time(), tree_cpu_s(sb)
    for _ in range(runs):
        if gap_s:
            time.sleep(gap_s)
        a = time.perf_counter()
        r = sb.run(CODE)
        ts.append((time.perf_counter() - a) * 1000)
        assert r.stdout == "2\n" and r.exit_code == 0, r
        own += r.cpu_time_ms
    server = (time.process_time() - t0) * 1000 / runs
    tree = (tree_cpu_s(sb) - c0) * 1000 / runs + (0.0 if uses_groups else own / runs)
    return {"p50_ms": statistics.median(ts), "cpu_ms": server + tree, "server_cpu_ms": server}


def kernel_cells(sb: Any, runs: int) -> dict[str, float]:
    k = sb.kernel()
    try:
        for _ in range(10):  # started and warm
            assert k.run(CODE).stdout == "2\n"
        ts: list[float] = []
        t0 = time.process_time()
        for _ in range(runs):
            a = time.perf_counter()
            r = k.run(CODE)
            ts.append((time.perf_counter() - a) * 1000)
            assert r.stdout == "2\n" and r.exit_code == 0, r
        server = (time.process_time() - t0) * 1000 / runs
    finally:
        k.close()
    return {"cell_p50_ms": statistics.median(ts), "cell_server_cpu_ms": server}


def throughput(sb: Any, callers: int, seconds: float) -> float:
    count = [0] * callers
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            assert sb.run(CODE).stdout == "2\n"
            count[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200, help="sequential runs per round")
    ap.add_argument("--seconds", type=float, default=3.0, help="8-caller window per round")
    ap.add_argument("--baseline", default="main", help="git revision of the baseline")
    ap.add_argument("--gap-ms", type=float, default=5.0, help="pause between the sequential runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sandbox.json"))
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="bench-sandbox-")
    baseline = load_baseline(args.baseline, tmp.name)
    limits = {"wall_s": 10, "cpu_s": 10}
    variants = {
        "baseline": baseline.Sandbox(limits=baseline.Limits(**limits)),  # type: ignore[attr-defined]
        "candidate": candidate.Sandbox(limits=candidate.Limits(**limits)),
    }
    for sb in variants.values():  # zygotes up, warm
        for _ in range(20):
            assert sb.run(CODE).stdout == "2\n"
    rows: dict[str, list[dict[str, float]]] = {n: [] for n in variants}
    loads = [os.getloadavg()[0]]
    t_start = time.monotonic()
    for rnd in range(args.rounds):
        order = list(variants) if rnd % 2 == 0 else list(reversed(variants))
        for name in order:
            row = latency_and_cpu(variants[name], args.runs, args.gap_ms / 1000)
            row["runs_per_s_8"] = throughput(variants[name], 8, args.seconds)
            row.update(kernel_cells(variants[name], args.runs))
            rows[name].append(row)
        loads.append(os.getloadavg()[0])
        print(
            f"round {rnd + 1}: "
            + "; ".join(
                f"{n} p50 {rows[n][-1]['p50_ms']:.2f} ms, CPU {rows[n][-1]['cpu_ms']:.2f} ms,"
                f" {rows[n][-1]['runs_per_s_8']:.0f}/s"
                for n in variants
            )
            + f" (load {loads[-1]:.1f})",
            flush=True,
        )
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "loadavg_1m": loads,
        },
        "baseline": args.baseline,
        "gap_ms": args.gap_ms,
        "isolation": {n: list(sb.isolation.active) for n, sb in variants.items()},
        "rounds": rows,
        "seconds": time.monotonic() - t_start,
    }
    for sb in variants.values():
        sb.close()
    tmp.cleanup()
    med = {n: {k: statistics.median(r[k] for r in rows[n]) for k in rows[n][0]} for n in rows}
    report["medians"] = med
    report["ratios"] = {k: med["candidate"][k] / med["baseline"][k] for k in med["baseline"]}
    print(f"\nmedians of {args.rounds} rounds{'':8}{'baseline':>10}{'candidate':>11}{'ratio':>8}")
    labels = {
        "p50_ms": f"p50 latency, 1 caller, {args.gap_ms:g} ms apart",
        "cpu_ms": "CPU per run, all processes (ms)",
        "server_cpu_ms": "  of which this process (ms)",
        "runs_per_s_8": "runs/s, 8 callers",
        "cell_p50_ms": "kernel cell p50, warm kernel (ms)",
        "cell_server_cpu_ms": "  this process's CPU per cell (ms)",
    }
    for k, label in labels.items():
        b, c = med["baseline"][k], med["candidate"][k]
        print(f"{label:36}{b:10.2f}{c:11.2f}{c / b:8.2f}")
    print(
        f"load average (1 min) {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs;"
        f" took {report['seconds']:.0f} s"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
