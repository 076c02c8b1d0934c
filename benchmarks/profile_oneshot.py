"""Where a one-shot run's CPU goes: per phase of the child, the zygote, the caller.

Copies this checkout's sandbox package to a temporary directory, inserts marks (one
`getrusage` each: CPU time and minor faults, i.e. copy-on-write copies) at the
boundaries of the child's phases, loads the copy under another name and runs
`print(1 + 1)` `--runs` times through it (a spare child each time, as the engine does
by default). Prints, per phase, the child's mean CPU and faults (the last row, `exit`,
is what the kernel spent after the last mark: tearing down the address space), the
zygote's CPU and faults per run (from /proc) and the caller thread's CPU. The marks
cost a little themselves (~2 faults each). Not a test.

    python benchmarks/profile_oneshot.py [--runs 300]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_sandbox import import_copy  # this directory: run as a script
from python_env.server.sandbox.syscalls import process_cpu_s

SRC = Path(__file__).resolve().parents[1] / "server" / "sandbox"
MARKS = """
import resource as _res
MARKS = []


def _mark(name):
    r = _res.getrusage(_res.RUSAGE_SELF)
    MARKS.append((name, r.ru_utime + r.ru_stime, r.ru_minflt))


def dump_marks():
    line = "|".join(f"{n}:{c:.6f}:{f}" for n, c, f in MARKS)
    __import__("os").write(2, ("@@MARKS " + line + "\\n").encode())
"""
# (file, text to find, text to put in its place): each phase ends at its mark
EDITS = [
    ("caps.py", '"""The sandbox', MARKS + '\n"""The sandbox'),
    ("zygote.py", "from . import harness,", "from . import caps, harness,"),
    (
        "zygote.py",
        "        if pid == 0:\n            self._child(",
        "        if pid == 0:\n            caps._mark('after fork')\n            self._child(",
    ),
    (
        "zygote.py",
        "            isolation.apply_child(",
        "            caps._mark('fds, oom, signals')\n            isolation.apply_child(",
    ),
    (
        "isolation.py",
        "    if spare:\n        os.mkdir(workdir, 0o700)\n",
        "    from . import caps\n\n    caps._mark('ipc namespace')\n"
        "    if spare:\n        os.mkdir(workdir, 0o700)\n",
    ),
    (
        "isolation.py",
        "    set_rlimits(limits)\n",
        "    caps._mark('workdir, setsid, env')\n    set_rlimits(limits)\n    caps._mark('rlimits')\n",
    ),
    (
        "isolation.py",
        "    if spare:  # seccomp",
        "    caps._mark('nnp, landlock')\n    if spare:  # seccomp",
    ),
    (
        "zygote.py",
        "                payload = harness.await_code(4)\n",
        "                caps._mark('pdeathsig, seccomp')\n                payload = harness.await_code(4)\n"
        "                caps._mark('await code')\n",
    ),
    (
        "zygote.py",
        '                kind = "run"\n',
        "                caps._mark('uid drop')\n                kind = \"run\"\n",
    ),
    (
        "harness.py",
        "        setup_stdio()\n        write_files",
        "        setup_stdio()\n        caps._mark('stdio')\n        write_files",
    ),
    (
        "harness.py",
        '            compiled = compile(source, "<main>", "exec")\n',
        "            caps._mark('files, module')\n"
        '            compiled = compile(source, "<main>", "exec")\n'
        "            caps._mark('compile')\n",
    ),
    (
        "harness.py",
        "            exec(compiled, mod.__dict__)\n    except SystemExit",
        "            exec(compiled, mod.__dict__)\n            caps._mark('exec')\n    except SystemExit",
    ),
    (
        "harness.py",
        "    flush_stdio()\n    os._exit(code)",
        "    flush_stdio()\n    caps._mark('flush, finish')\n    caps.dump_marks()\n    os._exit(code)",
    ),
]


def instrumented(into: str) -> object:
    dst = os.path.join(into, "server", "sandbox")
    shutil.copytree(SRC, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for name, old, new in EDITS:
        path = os.path.join(dst, name)
        text = Path(path).read_text()
        if old not in text:
            raise SystemExit(f"profile_oneshot: {name} changed, update EDITS ({old[:40]!r})")
        Path(path).write_text(text.replace(old, new, 1))
    return import_copy(dst, "sandbox_profiled")


def _faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-oneshot-") as tmp:
        mod = instrumented(tmp)
        spawn = sys.modules["sandbox_profiled.spawn"]
        sb = mod.Sandbox(slots=1, limits=mod.Limits(wall_s=10, cpu_s=10))  # type: ignore[attr-defined]
        for _ in range(20):
            sb.run("print(1 + 1)")
        exits: list[dict[str, float]] = []
        on_exit = spawn._on_exit  # type: ignore[attr-defined]

        def record(c: object, watch: object) -> None:
            on_exit(c, watch)
            exits.append(c.exit)  # type: ignore[attr-defined]

        spawn._on_exit = record  # type: ignore[attr-defined]
        phases: dict[str, list[tuple[float, int]]] = collections.defaultdict(list)
        zp = sb.zygote_pids()[0]
        z0, zf0, t0 = process_cpu_s(zp) or 0.0, _faults(zp), time.thread_time()
        for _ in range(args.runs):
            r = sb.run("print(1 + 1)")
            assert r.stdout == "2\n", r
            line = next(x for x in r.stderr.splitlines() if x.startswith("@@MARKS"))
            prev = (0.0, 0)
            for item in line.split(" ", 1)[1].split("|"):
                name, cpu, flt = item.rsplit(":", 2)
                phases[name].append(((float(cpu) - prev[0]) * 1000, int(flt) - prev[1]))
                prev = (float(cpu), int(flt))
            e = exits[-1]
            cpu = float(e["utime"]) + float(e["stime"])
            phases["exit"].append(((cpu - prev[0]) * 1000, int(e["minflt"]) - prev[1]))
        n = args.runs
        caller = (time.thread_time() - t0) * 1000 / n
        zygote = ((process_cpu_s(zp) or 0.0) - z0) * 1000 / n
        zflt = (_faults(zp) - zf0) / n
        sb.close()
    print(f"{'child phase':24}{'CPU ms':>8}{'faults':>8}")
    total = [0.0, 0.0]
    for name, rows in phases.items():
        cpu, flt = statistics.mean(x[0] for x in rows), statistics.mean(x[1] for x in rows)
        total[0] += cpu
        total[1] += flt
        print(f"{name:24}{cpu:8.3f}{flt:8.1f}")
    print(f"{'child, all':24}{total[0]:8.3f}{total[1]:8.1f}")
    print(f"{'zygote, per run':24}{zygote:8.3f}{zflt:8.1f}")
    print(f"{'caller thread':24}{caller:8.3f}")
    print(
        f"total {total[0] + zygote + caller:.2f} ms per run; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
