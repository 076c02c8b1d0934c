"""What pre-importing packages in the zygote costs and saves, measured in one run.

Each variant is a real `Sandbox` (one slot, all isolation layers, the sandbox runtime's
interpreter) whose zygote pre-imports the stdlib part of `WARM_IMPORTS` plus the
variant's packages. Pre-importing makes every fork copy a bigger address space (more page tables,
more copy-on-write faults), so runs that never use the package get slower, while runs
that import it skip the import. The variants are interleaved run by run, so they see the
same machine; read the ratios against the `stdlib` variant (version 1's zygote).

For each variant and workload: p50 wall time of `Sandbox.run` as the caller sees it and
the child's CPU; for each variant: the zygote's PSS, its start time and its own CPU per
run (the fork, which the child's CPU does not include); and per extra
package set, the fraction of runs that must import it for pre-importing to pay off.
Writes benchmarks/results/warm_imports.json. Bounded: about 2 minutes on an idle machine. Not a test.

    python benchmarks/bench_warm_imports.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CLK_TCK, machine, pss_bytes, write_json  # noqa: E402
from python_env.server import sandbox_runtime  # noqa: E402
from python_env.server.sandbox import Limits, Sandbox, spawn, zygote  # noqa: E402

THIRD_PARTY = ("numpy", "pandas", "scipy.linalg", "scipy.optimize", "sympy")
VARIANTS: dict[str, tuple[str, ...]] = {
    "stdlib": (),  # the zygote of version 1
    "numpy": ("numpy",),
    "numpy+sympy": ("numpy", "sympy"),
    "numpy+pandas": ("numpy", "pandas"),
    "scientific": ("numpy", "pandas", "scipy.linalg", "scipy.optimize", "sympy"),
}
WORKLOADS = {
    "trivial": "print(1 + 1)",
    "numpy": "import numpy as np\nprint(int(np.arange(10).sum()))",
    "sympy": "import sympy\nprint(sympy.factorint(60)[2])",
    "pandas": "import pandas as pd\nprint(int(pd.Series([1, 2, 3]).sum()))",
    "scientific": (
        "import numpy as np, pandas as pd, scipy.linalg, scipy.optimize, sympy\n"
        "x = scipy.optimize.brentq(lambda t: t * t - 2, 0, 2)\n"
        "print(round(x, 3), sympy.factorint(60)[2], int(pd.Series(np.ones(3)).sum()))"
    ),
}
EXPECTED = {
    "trivial": "2\n",
    "numpy": "45\n",
    "sympy": "2\n",
    "pandas": "6\n",
    "scientific": "1.414 2 3\n",
}
LIMITS = Limits(wall_s=30, cpu_s=30)
_MAIN = 'importlib.import_module(n + ".zygote").main(sys.argv[3:])'


def own_cpu_ms(pid: int) -> float:
    """utime + stime of one process itself (the zygote: the fork, not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


def bootstrap(extra: tuple[str, ...]) -> str:
    """The zygote's own bootstrap, its WARM_IMPORTS made stdlib-only plus `extra`."""
    if _MAIN not in zygote.BOOTSTRAP:
        raise SystemExit("zygote.BOOTSTRAP changed: update bench_warm_imports.bootstrap()")
    patched = (
        f'z = importlib.import_module(n + ".zygote"); z.WARM_IMPORTS = tuple('
        f"m for m in z.WARM_IMPORTS if m not in {THIRD_PARTY!r}) + {extra!r}; "
    )
    return zygote.BOOTSTRAP.replace(_MAIN, patched + "z.main(sys.argv[3:])")


def start(python: str, extra: tuple[str, ...]) -> tuple[Sandbox, float]:
    """A one-slot sandbox whose zygote pre-imports `extra` too; (sandbox, start s)."""
    sb = Sandbox(slots=1, limits=LIMITS, python=python)
    plain = spawn.BOOTSTRAP
    spawn.BOOTSTRAP = bootstrap(extra)
    try:
        t0 = time.perf_counter()
        assert sb.isolation.active  # starts the (only) zygote
        took = time.perf_counter() - t0
    finally:
        spawn.BOOTSTRAP = plain
    absent = tuple(m for m in THIRD_PARTY if m not in extra)
    check = (
        f"import sys; print(all(m in sys.modules for m in {extra!r}), "
        f"any(m in sys.modules for m in {absent!r}))"
    )
    if sb.run(check).stdout != "True False\n":
        raise SystemExit(f"the zygote did not pre-import exactly {extra}")
    return sb, took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15, help="runs per variant and workload")
    args = ap.parse_args()
    rt = sandbox_runtime.inspect("")
    if not rt.source.startswith("declared"):
        raise SystemExit("no .venv-runtime: run `bash runtime/install.sh` first")
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {
        (v, w): [] for v in VARIANTS for w in WORKLOADS
    }
    t_start = time.perf_counter()
    with ExitStack() as stack:
        boxes: dict[str, Sandbox] = {}
        info: dict[str, dict[str, Any]] = {}
        for name, extra in VARIANTS.items():
            sb, took = start(rt.python, extra)
            stack.enter_context(sb)
            boxes[name] = sb
            info[name] = {"extra_imports": list(extra), "zygote_start_s": round(took, 3)}
        for sb in boxes.values():  # warm each once, untimed
            for code in WORKLOADS.values():
                sb.run(code)
        zygote = {name: sb.zygote_pids()[0] for name, sb in boxes.items()}
        cpu0 = {name: own_cpu_ms(zygote[name]) for name in boxes}
        for _ in range(args.rounds):
            for w, code in WORKLOADS.items():
                for name, sb in boxes.items():
                    t0 = time.perf_counter()
                    r = sb.run(code)
                    wall = (time.perf_counter() - t0) * 1000
                    if r.stdout != EXPECTED[w]:
                        raise SystemExit(f"{name}/{w}: {r.stdout!r} {r.stderr[-500:]!r}")
                    samples[(name, w)].append((wall, r.cpu_time_ms))
        for name, sb in boxes.items():
            runs = args.rounds * len(WORKLOADS)
            used = own_cpu_ms(sb.zygote_pids()[0]) - cpu0[name]
            info[name]["zygote_cpu_per_run_ms"] = round(used / runs, 2)
            info[name]["zygote_pss_mb"] = round(pss_bytes(sb.zygote_pids()) / 2**20, 1)
            if sb.zygote_pids() != [zygote[name]]:
                raise SystemExit(f"{name}: the zygote restarted (its variant was lost)")

    table: dict[str, dict[str, Any]] = {}
    for name in VARIANTS:
        row: dict[str, Any] = dict(info[name])
        for w in WORKLOADS:
            walls = [s[0] for s in samples[(name, w)]]
            cpus = [s[1] for s in samples[(name, w)]]
            row[w] = {
                "wall_p50_ms": round(statistics.median(walls), 2),
                "cpu_p50_ms": round(statistics.median(cpus), 2),
            }
        table[name] = row
    base = table["stdlib"]
    for name, row in table.items():
        for w in WORKLOADS:
            row[w]["vs_stdlib"] = round(row[w]["wall_p50_ms"] / base[w]["wall_p50_ms"], 2)
        # pre-importing pays off when more than this fraction of one-shot runs use the
        # variant's packages (cost: a dearer run that does not; gain: the import skipped),
        # in wall time and in CPU (fork in the zygote + child), which bounds throughput
        row["trivial"]["cpu_with_fork_ms"] = round(
            row["trivial"]["cpu_p50_ms"] + row["zygote_cpu_per_run_ms"], 2
        )
        if name != "stdlib":
            used = {"numpy": "numpy", "numpy+sympy": "sympy", "numpy+pandas": "pandas"}.get(
                name, "scientific"
            )
            row["break_even"] = {"workload": used}
            for key, cost_key in (("wall", "wall_p50_ms"), ("cpu", "cpu_with_fork_ms")):
                gain_key = "wall_p50_ms" if key == "wall" else "cpu_p50_ms"
                cost = row["trivial"][cost_key] - base["trivial"][cost_key]
                gain = base[used][gain_key] - row[used][gain_key]
                frac = round(cost / (cost + gain), 4) if cost + gain > 0 else None
                row["break_even"][key] = frac
    result = {
        "machine": machine(),
        "python": rt.python,
        "rounds": args.rounds,
        "warm_imports": list(zygote.WARM_IMPORTS),
        "variants": table,
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }
    path = write_json("warm_imports.json", result)
    print("wall p50 ms of Sandbox.run (x the stdlib variant) [child CPU p50 ms]")
    print(f"{'variant':<13} {'zygote PSS':>10} " + " ".join(f"{w:>24}" for w in WORKLOADS))
    for name, row in table.items():
        cells = " ".join(
            f"{row[w]['wall_p50_ms']:>8.1f} ({row[w]['vs_stdlib']:>4.2f}x) [{row[w]['cpu_p50_ms']:>5.1f}]"
            for w in WORKLOADS
        )
        print(f"{name:<13} {row['zygote_pss_mb']:>8.1f}MB {cells}")
        line = (
            f"{'':<13} zygote CPU per run (the fork) {row['zygote_cpu_per_run_ms']} ms; "
            f"trivial run CPU with the fork {row['trivial']['cpu_with_fork_ms']} ms"
        )
        if "break_even" in row:
            line += f"; pays off above {row['break_even']} of runs"
        print(line)
    print(json.dumps(result["machine"]), "->", path)


if __name__ == "__main__":
    main()
