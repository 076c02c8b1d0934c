"""What whole-run containment costs the fast path: one sandbox with version 1's layers
only (no IPC namespace, no private tmpfs, no tree budget) against one with every layer,
interleaved run by run in one process, so both see the same machine.

Measures, per variant: one-shot run latency (p50) and CPU per run (server + zygote +
child; the zygote's share includes its slot cgroup's accounting), and a trivial kernel
cell's latency (p50, where the freezer check runs after every cell). Prints the ratios
(target: at most +10 % on a trivial run) and writes benchmarks/results/containment.json.

    python benchmarks/bench_containment.py [--rounds 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from python_env.server.sandbox import Limits, Sandbox

CODE = "print(1 + 1)"
V2_LAYERS = ["ipc_namespace", "private_tmpfs", "cgroup_v1", "proc_watch"]
LIMITS = Limits(wall_s=10, cpu_s=10)


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "containment.json"))
    args = ap.parse_args()
    variants = {
        "v1 layers": Sandbox(slots=1, limits=LIMITS, disable=V2_LAYERS),
        "all layers": Sandbox(slots=1, limits=LIMITS),
    }
    kernels = {name: sb.kernel() for name, sb in variants.items()}
    one_shot: dict[str, list[float]] = {n: [] for n in variants}
    cell: dict[str, list[float]] = {n: [] for n in variants}
    cpu: dict[str, float] = dict.fromkeys(variants, 0.0)
    for name, sb in variants.items():  # warm: zygotes up, kernels started
        assert sb.run(CODE).stdout == "2\n" and kernels[name].run(CODE).stdout == "2\n"
    zygotes = {n: sb.zygote_pids() for n, sb in variants.items()}
    for _ in range(args.rounds):
        for name, sb in variants.items():
            z0 = sum(_proc_cpu_s(p) for p in zygotes[name])
            c0 = time.process_time()
            t0 = time.perf_counter()
            r = sb.run(CODE)
            one_shot[name].append((time.perf_counter() - t0) * 1000)
            cpu[name] += (time.process_time() - c0) * 1000 + r.cpu_time_ms
            cpu[name] += (sum(_proc_cpu_s(p) for p in zygotes[name]) - z0) * 1000
            t0 = time.perf_counter()
            kernels[name].run(CODE)
            cell[name].append((time.perf_counter() - t0) * 1000)
    out: dict[str, object] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "rounds": args.rounds,
        "layers": {n: list(sb.isolation.active) for n, sb in variants.items()},
    }
    rows = {}
    for name in variants:
        rows[name] = {
            "one_shot_p50_ms": statistics.median(one_shot[name]),
            "one_shot_cpu_ms": cpu[name] / args.rounds,
            "kernel_cell_p50_ms": statistics.median(cell[name]),
        }
    out["results"] = rows
    base, new = rows["v1 layers"], rows["all layers"]
    out["ratios"] = {k: new[k] / base[k] for k in base}
    for sb in variants.values():
        sb.close()
    print(f"{'':24}{'v1 layers':>12}{'all layers':>12}{'ratio':>8}")
    for k in base:
        print(f"{k:24}{base[k]:12.3f}{new[k]:12.3f}{new[k] / base[k]:8.2f}")
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
