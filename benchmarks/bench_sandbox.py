"""Benchmark the sandbox engine against naive `subprocess.run([python, "-c", code])`.

Measures per-run latency (p50/p99, one caller) and throughput (runs/s with 1, 2 and 8
concurrent caller threads) for: the engine's one-shot run, a persistent kernel, the
naive subprocess; and a small graded suite (run_cases with 20 cases of a simple
function vs one naive subprocess per suite). Prints a table and writes
benchmarks/results/sandbox.json. Bounded: about a minute. Not a test.

    python benchmarks/bench_sandbox.py [--seconds 2.0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from python_env.server.sandbox import CaseSpec, Limits, Sandbox

CODE = "print(1 + 1)"
SOLUTION = "def add(a, b):\n    return a + b\n"
CASES = [CaseSpec((i, 2 * i)) for i in range(20)]
NAIVE_SUITE = (
    "import json\n" + SOLUTION + f"cases = {[list(c.args) for c in CASES]!r}\n"
    "print(json.dumps([add(*a) for a in cases]))\n"
)
LIMITS = Limits(wall_s=10, cpu_s=10)


def naive_run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    ).stdout


def latency(fn: Callable[[], object], seconds: float, max_n: int = 400) -> dict[str, float]:
    fn()  # warm
    ts: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(ts) < max_n:
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return {
        "p50_ms": statistics.median(ts),
        "p99_ms": ts[min(len(ts) - 1, int(len(ts) * 0.99))],
        "n": len(ts),
    }


def throughput(make: Callable[[], Callable[[], object]], threads: int, seconds: float) -> float:
    """Runs/s with `threads` callers; `make()` builds one caller's function."""
    fns = [make() for _ in range(threads)]
    for f in fns:
        f()
    count = [0] * threads
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        while time.monotonic() < stop:
            fns[i]()
            count[i] += 1

    ths = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    t0 = time.monotonic()
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return sum(count) / (time.monotonic() - t0)


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_run(sb: Sandbox, n: int = 200) -> dict[str, float]:
    """Total CPU (server + zygote + child) per one-shot run: unlike wall-clock latency,
    this hardly depends on how busy the shared host is."""
    sb.run(CODE)
    zyg = sb.zygote_pids()
    z0 = sum(_proc_cpu_s(p) for p in zyg)
    p0 = time.process_time()
    child = 0.0
    for _ in range(n):
        child += sb.run(CODE).cpu_time_ms
    parent = (time.process_time() - p0) * 1000 / n
    zygote = (sum(_proc_cpu_s(p) for p in zyg) - z0) * 1000 / n
    eng = {"server_ms": parent, "zygote_ms": zygote, "child_ms": child / n}
    eng["total_ms"] = sum(eng.values())
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p0 = time.process_time()
    for _ in range(n // 4):
        naive_run(CODE)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    naive = (
        ((r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) + (time.process_time() - p0))
        * 1000
        / (n // 4)
    )
    return {
        **{f"engine_{k}": v for k, v in eng.items()},
        "naive_total_ms": naive,
        "engine_max_runs_per_s_all_cores": 1000 * (os.cpu_count() or 1) / eng["total_ms"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "sandbox.json"))
    args = ap.parse_args()
    sec = args.seconds
    sb = Sandbox(limits=LIMITS)
    t0 = time.monotonic()
    kernels: list = []

    def make_kernel() -> Callable[[], object]:
        k = sb.kernel(LIMITS)
        kernels.append(k)
        return lambda: k.run(CODE)

    def check_engine() -> None:
        assert sb.run(CODE).stdout == "2\n"
        res = sb.run_cases(SOLUTION, CASES, entry_point="add")
        assert [o.output for o in res.outcomes] == [3 * i for i in range(20)]
        assert json.loads(naive_run(NAIVE_SUITE)) == [3 * i for i in range(20)]

    check_engine()
    methods: dict[str, Callable[[], Callable[[], object]]] = {
        "engine_oneshot": lambda: lambda: sb.run(CODE),
        "engine_kernel": make_kernel,
        "naive_subprocess": lambda: lambda: naive_run(CODE),
        "engine_suite_20_cases": lambda: lambda: sb.run_cases(SOLUTION, CASES, entry_point="add"),
        "naive_suite_20_cases": lambda: lambda: naive_run(NAIVE_SUITE),
    }
    results: dict[str, dict[str, float]] = {}
    for name, make in methods.items():
        row = latency(make(), sec)
        for n in (1, 2, 8):
            row[f"runs_per_s_{n}"] = throughput(make, n, sec)
        results[name] = row
    for k in kernels:
        k.close()
    cpu = cpu_per_run(sb)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "loadavg_1m": os.getloadavg()[0],
        },
        "isolation": sb.isolation.as_dict(),
        "slots": sb.slots,
        "results": results,
        "cpu_per_oneshot_run": cpu,
        "ratios": {
            "oneshot_latency_engine_over_naive": results["engine_oneshot"]["p50_ms"]
            / results["naive_subprocess"]["p50_ms"],
            "oneshot_throughput8_engine_over_naive": results["engine_oneshot"]["runs_per_s_8"]
            / results["naive_subprocess"]["runs_per_s_8"],
            "kernel_latency_over_naive": results["engine_kernel"]["p50_ms"]
            / results["naive_subprocess"]["p50_ms"],
            "suite_latency_engine_over_naive": results["engine_suite_20_cases"]["p50_ms"]
            / results["naive_suite_20_cases"]["p50_ms"],
            "suite_throughput8_engine_over_naive": results["engine_suite_20_cases"]["runs_per_s_8"]
            / results["naive_suite_20_cases"]["runs_per_s_8"],
        },
        "seconds": time.monotonic() - t0,
    }
    sb.close()
    print(f"isolation active: {', '.join(report['isolation']['active'])}")
    if report["isolation"]["unavailable"]:
        print(f"unavailable: {report['isolation']['unavailable']}")
    print(
        f"{'method':24s} {'p50 ms':>8s} {'p99 ms':>8s} {'1 thr/s':>9s} {'2 thr/s':>9s}"
        f" {'8 thr/s':>9s}"
    )
    for name, r in results.items():
        print(
            f"{name:24s} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['runs_per_s_1']:9.0f}"
            f" {r['runs_per_s_2']:9.0f} {r['runs_per_s_8']:9.0f}"
        )
    for k, v in report["ratios"].items():
        print(f"{k:40s} {v:6.3f}")
    print("CPU per one-shot run (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    print(
        f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}; took {report['seconds']:.0f} s"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
