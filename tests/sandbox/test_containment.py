"""The whole run is contained, not each process: a tree's memory, tasks and CPU are one
budget, and nothing of a kernel runs between its cells. Each mechanism is tested for
real: cgroup v1 where this host delegates it, and the /proc fallback (with and without a
PID namespace, as in Docker's default runtime). Every hostile program is followed by a
correct run."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest
from python_env.server.sandbox import Limits, Sandbox

pytestmark = pytest.mark.timeout(120)
LIMITS = Limits(
    wall_s=20, cpu_s=20, memory_mb=300, max_output_bytes=4096, max_processes=24, disk_mb=32
)
NO_NAMESPACES = ["pid_namespace", "mount_namespace", "ipc_namespace", "private_tmpfs"]
MECHANISMS = {
    "cgroup_v1": [],
    "proc_watch": ["cgroup_v1"],
    "proc_watch, no pid namespace": ["cgroup_v1", *NO_NAMESPACES],
}


@pytest.fixture(scope="module", params=list(MECHANISMS))
def sb(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    s = Sandbox(slots=1, limits=LIMITS, disable=MECHANISMS[request.param])
    mechanism = request.param.split(",")[0]
    if mechanism not in s.isolation.active:
        s.close()
        pytest.skip(f"{mechanism}: {s.isolation.unavailable.get(mechanism)}")
    yield s
    assert s.run("print(6 * 7)").stdout == "42\n"  # still serving
    s.close()


def named(tag: str) -> str:
    """Code that gives the calling process a name /proc/*/comm shows (a marker)."""
    return (
        f"import ctypes\nctypes.CDLL(None).prctl(15, ctypes.c_char_p({tag!r}.encode()), 0, 0, 0)\n"
    )


def running(tag: str) -> list[int]:
    """Host pids of live (not zombie) processes named `tag`."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != tag:
                    continue
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(") ", 1)[1][0] not in "ZX":
                    out.append(int(pid))
        except OSError:
            pass
    return out


def settled(check, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def tag() -> str:
    return "pe" + secrets.token_hex(5)  # comm holds 15 characters


def test_children_each_under_the_process_limit_together_over_the_tree_budget(sb) -> None:
    r = sb.run(
        "import os, time\n"
        "kids = []\n"
        "for i in range(6):\n"  # 6 x 100 MB > the 300 MB tree budget; each < 300 MB
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        x = b'x' * (100 << 20)\n"
        "        time.sleep(5)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "for pid in kids:\n"
        "    os.waitpid(pid, 0)\n"
        "print('held 600 MB')\n"
    )
    assert r.memory_exceeded and "held" not in r.stdout, r
    assert r.wall_time_ms < LIMITS.wall_s * 1000 / 2  # killed when it went over, not at the end


def test_a_kernels_tree_has_the_same_budget(sb) -> None:
    k = sb.kernel()
    try:
        assert k.run("x = 1").exit_code == 0
        r = k.run(
            "import os, time\n"
            "for i in range(6):\n"
            "    if os.fork() == 0:\n"
            "        x = b'x' * (100 << 20)\n"
            "        time.sleep(5)\n"
            "        os._exit(0)\n"
            "time.sleep(5)\n"
        )
        assert r.memory_exceeded, r
        assert k.run("print(x)").kernel_restarted  # the tree died: a fresh kernel
    finally:
        k.close()


def test_a_fork_storm_is_capped(sb) -> None:
    r = sb.run(
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    for i in range(500):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as e:\n"
        "    print(n, type(e).__name__)\n"
    )
    if not r.stdout:  # the /proc watcher saw the tree over its task budget: killed whole
        assert "proc_watch" in sb.isolation.active and r.exit_code != 0, r
        return
    n, err = r.stdout.split()  # else fork() was refused at the cap
    assert int(n) < LIMITS.max_processes and err in ("BlockingIOError", "PermissionError"), r


def test_setsid_and_double_fork_do_not_outlive_the_run(sb) -> None:
    marker = tag()
    r = sb.run(
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        + "\n".join("        " + line for line in named(marker).splitlines())
        + "\n"
        "        while True:\n"
        "            time.sleep(0.01)\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
        "print('left a daemon')\n"
    )
    assert r.stdout == "left a daemon\n", r
    assert settled(lambda: not running(marker)), running(marker)


def test_nothing_of_a_kernel_runs_between_cells_and_all_of_it_dies_with_it(sb) -> None:
    child, thread = tag(), tag()
    k = sb.kernel()
    try:
        r = k.run(
            "import os, threading\n"
            "if os.fork() == 0:\n"
            + "\n".join("    " + line for line in named(child).splitlines())
            + "\n"
            "    while True:\n"
            "        pass\n"
            "def spin():\n" + "\n".join("    " + line for line in named(thread).splitlines()) + "\n"
            "    while True:\n"
            "        pass\n"
            "threading.Thread(target=spin, daemon=True).start()\n"
            "import time; time.sleep(0.2)\n"
            "print('busy')\n"
        )
        assert r.stdout == "busy\n", r
        assert settled(lambda: running(child)), "the busy child should exist"
        pid = running(child)[0]
        before = _cpu_s(pid)
        time.sleep(0.5)
        assert _cpu_s(pid) - before < 0.05  # frozen between cells
        assert _state(pid) in ("T", "t", "D", "S")
        assert k.run("print('next cell')").stdout == "next cell\n"  # thawed for the cell
        k.reset()
        assert settled(lambda: not running(child)), "reset must kill the kernel's children"
        k.run(
            "import os\nif os.fork() == 0:\n"
            + "\n".join("    " + line for line in named(child).splitlines())
            + "\n    while True:\n        pass\n"
            + "import time; time.sleep(0.2)\n"
        )
        assert settled(lambda: running(child))
    finally:
        k.close()
    assert settled(lambda: not running(child)), "close must kill the kernel's children"


def test_a_tree_of_busy_processes_stops_at_its_cpu_budget(sb) -> None:
    # a wall limit far beyond what 1 s of CPU takes even on a loaded machine: what
    # stops the tree must be its CPU budget
    budget = Limits(**{**LIMITS.as_dict(), "cpu_s": 1.0, "wall_s": 60.0})
    r = sb.run(
        "import os\n"
        "for i in range(3):\n"
        "    if os.fork() == 0:\n"
        "        while True:\n"
        "            pass\n"
        "while True:\n"
        "    pass\n",
        limits=budget,
    )
    assert r.timed_out, r
    assert r.wall_time_ms < budget.wall_s * 1000 / 2  # the CPU budget, not the wall limit


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(") ", 1)[1][0]


WRITER = (  # 1 MB files, each far under RLIMIT_FSIZE, until refused (or 400 MB)
    "n = 0\n"
    "try:\n"
    "    for i in range(400):\n"
    "        with open(f'f{i}', 'wb') as f:\n"
    "            f.write(b'x' * (1 << 20))\n"
    "        n += 1\n"
    "finally:\n"
    "    print(n, flush=True)\n"
)


@pytest.mark.parametrize("persistent", [False, True])
def test_a_run_cannot_write_more_than_its_disk_budget(sb, persistent: bool) -> None:
    """A tmpfs workdir refuses the write (ENOSPC); where there is none (no mount
    namespace) the watcher reads the files and stops the tree, reported the same way."""
    budget_mb = LIMITS.disk_mb
    k = sb.kernel(LIMITS) if persistent else None
    try:
        r = k.run(WRITER) if k is not None else sb.run(WRITER)
        assert r.exception_type == "OSError", r
        assert "No space left on device" in (r.exception_message or ""), r
        written = int(r.stdout.split()[0]) if r.stdout.strip() else 0
        print(f"{written} MB written under a {budget_mb} MB budget")
        # ENOSPC stops it at the budget; the watcher polls every 200 ms (overshoot)
        assert written < 400, r
        if k is not None:  # the session goes on, its files within the budget
            r = k.run("import os\nprint(sum(os.path.getsize(f) for f in os.listdir('.')))")
            assert r.exit_code == 0 and int(r.stdout) <= budget_mb << 20, r
    finally:
        if k is not None:
            k.close()
