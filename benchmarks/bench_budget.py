"""What the tree budgets cost, and how far the /proc fallback overshoots (prints only).

1. cgroup v1 driver (needs root and writable v1 hierarchies): median cost of create,
   attach of one pid to every controller, freeze + thaw, the three readings, remove.
2. /proc fallback: the cost of one poll per process (idle and with 500 MB resident),
   and the overshoot of the Watcher against trees allocating as fast as CPython can,
   at two intervals. The ground truth for the peak is the kernel's own accounting: the
   tree also runs in a memory cgroup with no limit (memory.max_usage_in_bytes).

    python benchmarks/bench_budget.py            # ~1 min; --quick: fewer rounds
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time

from python_env.server.sandbox import budget, cgroups, proctree

MB = 1 << 20
PREFIX = f"pe-bench-{os.getpid()}-{secrets.token_hex(3)}"

# the tree: a subreaper root that forks N allocating children once told to start
TREE = r"""
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER (no package import: fast)
n, mode = int(sys.argv[1]), sys.argv[2]
print("ready", flush=True)
sys.stdin.buffer.read(1)
for _ in range(n):
    if os.fork() == 0:
        if mode.startswith("bulk"):
            b = b"x" * 500_000_000
        else:
            keep = []
            for _ in range(40):
                a = bytearray(50 << 20)
                a[::4096] = b"x" * len(range(0, len(a), 4096))
                keep.append(a)
        if not mode.endswith("exit"):
            time.sleep(60)  # hold it: the tree only grows until it is killed
        os._exit(0)
for _ in range(n):
    os.wait()
"""

IDLE = "import sys; sys.stdin.buffer.read(1)"
HOLD = "import sys; b = b'x' * 500_000_000; print('ok', flush=True); sys.stdin.buffer.read(1)"


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e3:7.3f} ms (p90 {sorted(xs)[int(len(xs) * 0.9)] * 1e3:.3f})"


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench_cgroups(rounds: int) -> None:
    why = cgroups.probe()
    print(f"cgroup v1 driver: {'usable' if why is None else why}")
    if why is not None:
        return
    found = cgroups.detect()[0]
    create, attach, freeze, frozen_after, thaw, reads, remove = [], [], [], [], [], [], []
    for i in range(rounds):
        p = subprocess.Popen([sys.executable, "-c", IDLE], stdin=subprocess.PIPE)
        t = time.perf_counter()
        g = cgroups.Cgroup.create(PREFIX, f"g{i}", found)
        create.append(time.perf_counter() - t)
        try:
            t = time.perf_counter()
            g.attach(p.pid)
            attach.append(time.perf_counter() - t)
            t = time.perf_counter()
            g.freeze()
            freeze.append(time.perf_counter() - t)
            while not g.frozen():
                time.sleep(0.0001)
            frozen_after.append(time.perf_counter() - t)
            t = time.perf_counter()
            g.thaw()
            thaw.append(time.perf_counter() - t)
            t = time.perf_counter()
            g.memory_bytes(), g.cpu_s(), g.tasks()
            reads.append(time.perf_counter() - t)
        finally:
            t = time.perf_counter()
            g.remove()
            remove.append(time.perf_counter() - t)
            p.wait(5)
    cgroups.remove_prefix(PREFIX)
    print(f"  create (5 dirs)            {ms(create)}")
    print(f"  attach 1 pid (5 groups)    {ms(attach)}")
    print(f"  freeze (write)             {ms(freeze)}")
    print(f"  freeze until FROZEN        {ms(frozen_after)}")
    print(f"  thaw (write)               {ms(thaw)}")
    print(f"  read memory + cpu + tasks  {ms(reads)}")
    print(f"  remove (kill 1 + rmdir)    {ms(remove)}")


def bench_between_cells(rounds: int) -> None:
    """What a kernel step would pay to find its tree idle (busy()), or to freeze and thaw
    it when not."""
    for mech in (budget.CGROUP_V1, budget.PROC_WATCH):
        sel = budget.select_budget(PREFIX, force=mech if mech == budget.PROC_WATCH else None)
        if sel.mechanism != mech:
            continue
        p = subprocess.Popen([sys.executable, "-c", IDLE], stdin=subprocess.PIPE)
        b = sel.open(f"cells-{mech}")
        try:
            b.add(p.pid)
            assert not b.busy()
            busy = timed(b.busy, rounds)
            pair = timed(lambda b=b: (b.freeze(), b.thaw()), rounds)  # type: ignore[misc]
            print(f"{mech}: busy() on an idle tree {ms(busy)}; freeze + thaw {ms(pair)}")
            p.kill()
            p.wait(5)
            b.reset()
            print(f"{mech}: reset() of an emptied budget, for reuse {ms(timed(b.reset, rounds))}")
        finally:
            b.close()
            sel.close()
            p.kill()
            p.wait(5)
    cgroups.remove_prefix(PREFIX)


def bench_poll_cost(rounds: int) -> None:
    print(f"/proc poll cost (children files: {proctree._HAS_CHILDREN})")
    idle = subprocess.Popen([sys.executable, "-c", IDLE], stdin=subprocess.PIPE)
    hold = subprocess.Popen(
        [sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert hold.stdout is not None and hold.stdout.readline() == b"ok\n"
    try:
        nproc = len(proctree.parents())
        print(f"  /proc scan ({nproc} processes)  {ms(timed(proctree.parents, rounds))}")
        print(f"  tree() of 1 process        {ms(timed(lambda: proctree.tree(idle.pid), rounds))}")
        for label, p in (("idle python", idle), ("500 MB resident", hold)):
            pss = timed(lambda p=p: proctree.memory_bytes([p.pid]), rounds)  # type: ignore[misc]
            print(f"  Pss of 1 {label:16s}  {ms(pss)}")
            rss = timed(lambda p=p: proctree.rss_bytes([p.pid]), rounds)  # type: ignore[misc]
            print(f"  RSS of 1 {label:16s}  {ms(rss)}")
        stat = timed(lambda: (proctree.cpu_s([idle.pid]), proctree.tasks([idle.pid])), rounds)
        print(f"  cpu + tasks of 1 process   {ms(stat)}")
    finally:
        for p in (idle, hold):
            p.kill()
            p.wait(5)


def overshoot(mode: str, n: int, budget: int, interval_s: float) -> dict[str, float]:
    g = cgroups.Cgroup.create(PREFIX, f"o-{mode}-{interval_s}-{secrets.token_hex(3)}")
    root = subprocess.Popen(
        [sys.executable, "-c", TREE, str(n), mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    watcher = proctree.Watcher(interval_s)
    try:
        g.attach(root.pid)
        assert root.stdout is not None and root.stdout.readline() == b"ready\n"
        killed: list[float] = []
        w = watcher.watch(
            root.pid, budget, on_exceeded=lambda w: killed.append(time.monotonic()), record=True
        )
        assert root.stdin is not None
        start = time.monotonic()
        root.stdin.write(b"g")
        root.stdin.close()
        root.wait(60)
        # the root dies inside the Watcher's kill, before it calls back: wait for that
        deadline = time.monotonic() + 5
        while w.exceeded is not None and not killed and time.monotonic() < deadline:
            time.sleep(0.01)
        took = (killed[0] if killed else time.monotonic()) - start
        grow = [(t, m) for t, m in w.readings if m > 100 * MB]  # past the interpreters
        rate = (
            (grow[-1][1] - grow[0][1]) / max(1e-9, grow[-1][0] - grow[0][0])
            if len(grow) > 1
            else 0.0
        )
        return {
            "rate_mb_s": rate / MB,
            "watcher_peak_mb": w.peak_bytes / MB,
            "kernel_peak_mb": g.memory_peak() / MB,
            "killed": float(bool(killed)),
            "polls": w.polls,
            "s_to_kill": took,
            "poll_ms_per_proc": watcher.poll_s / max(1, watcher.polled) * 1e3,
        }
    finally:
        watcher.close()
        root.kill()
        root.wait(5)
        g.remove()


def bench_overshoot(repeats: int) -> None:
    if cgroups.probe() is not None:
        print("overshoot: needs a memory cgroup for the ground truth; skipped")
        return
    budget = 1024 * MB
    print(f"Watcher overshoot, budget {budget // MB} MB, {repeats} runs each (median [max])")
    for mode, n, what in (
        ("bulk", 4, "4 children each b'x' * 500_000_000, held"),
        ("loop", 4, "4 children each 40 x bytearray(50 MB) touched, held"),
        ("bulk-exit", 4, "4 children each b'x' * 500_000_000, then exit"),
    ):
        for interval in (0.05, 0.1):
            rs = [overshoot(mode, n, budget, interval) for _ in range(repeats)]
            cgroups.remove_prefix(PREFIX)

            def med(k: str, rs: list[dict[str, float]] = rs) -> str:
                xs = [r[k] for r in rs]
                return f"{statistics.median(xs):7.0f} [{max(xs):.0f}]"

            kills = sum(int(r["killed"]) for r in rs)
            missed = [f"{r['kernel_peak_mb']:.0f}" for r in rs if not r["killed"]]
            print(
                f"  {what}, interval {interval:.2f} s: killed {kills}/{len(rs)}; peak MB"
                f" watcher {med('watcher_peak_mb')}, kernel {med('kernel_peak_mb')};"
                f" kill after {statistics.median(r['s_to_kill'] for r in rs):.2f} s;"
                f" growth {med('rate_mb_s')} MB/s;"
                f" poll {statistics.median(r['poll_ms_per_proc'] for r in rs):.3f} ms/process"
                + (f"; not killed, kernel peak MB: {', '.join(missed)}" if missed else "")
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    try:
        bench_cgroups(20 if args.quick else 100)
        bench_between_cells(50 if args.quick else 300)
        bench_poll_cost(50 if args.quick else 300)
        bench_overshoot(2 if args.quick else 5)
    finally:
        cgroups.sweep(PREFIX, lambda name: True)
        cgroups.remove_prefix(PREFIX)


if __name__ == "__main__":
    main()
