"""Tree budgets with real processes: the cgroup v1 driver (as root, where the host has
writable v1 hierarchies) and the /proc fallback (everywhere). Every test removes the
groups and processes it made; every wait is bounded."""

from __future__ import annotations

import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from python_env.server.sandbox import budget, cgroups, proctree

MB = 1 << 20
CGROUP_WHY = cgroups.probe()
needs_cgroup = pytest.mark.skipif(CGROUP_WHY is not None, reason=f"cgroup v1: {CGROUP_WHY}")
MECHANISMS = [
    pytest.param(budget.CGROUP_V1, marks=needs_cgroup),
    budget.PROC_WATCH,
]

# every child starts with this: say "ready", wait for "g" (so it is attached before it
# forks or allocates); -S and no package import keep the start fast
READY = "import os, sys, time\nprint('ready', flush=True)\nsys.stdin.read(1)\n"
BUSY = READY + "while True: pass\n"
SUBREAPER = "import ctypes\nctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\n"


def alive(pid: int) -> bool:
    """Running or stopped (a zombie is gone: it holds nothing and runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def wait_for(pred: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


class Env:
    """Makes roots and budgets, and removes all of them afterwards."""

    def __init__(self) -> None:
        self.prefix = f"pe-test-{os.getpid()}-{secrets.token_hex(3)}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.budgets: list[budget.TreeBudget] = []
        self.selections: dict[str, budget.Budgets] = {}

    def spawn(self, code: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [sys.executable, "-S", "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.procs.append(p)
        assert p.stdout is not None
        assert select.select([p.stdout], [], [], 30)[0], "child did not start"
        assert p.stdout.readline() == b"ready\n"
        return p

    def go(self, p: subprocess.Popen[bytes]) -> None:
        assert p.stdin is not None
        p.stdin.write(b"g")
        p.stdin.flush()

    def open_budget(self, mechanism: str, **limits: Any) -> budget.TreeBudget:
        if mechanism not in self.selections:
            force = budget.PROC_WATCH if mechanism == budget.PROC_WATCH else None
            sel = budget.select_budget(self.prefix, force=force)
            assert sel.mechanism == mechanism, sel.report
            self.selections[mechanism] = sel
        b = self.selections[mechanism].open(f"{os.getpid()}-{secrets.token_hex(4)}", **limits)
        self.budgets.append(b)
        return b

    def started(
        self, mechanism: str, code: str, **limits: Any
    ) -> tuple[budget.TreeBudget, subprocess.Popen[bytes]]:
        b = self.open_budget(mechanism, **limits)
        p = self.spawn(code)
        b.add(p.pid)
        self.go(p)
        return b, p

    def close(self) -> None:
        for b in self.budgets:
            b.close()
        for p in self.procs:
            proctree.kill_tree(p.pid)
            p.kill()
            p.wait(10)
        for sel in self.selections.values():
            sel.close()
        if CGROUP_WHY is None:
            cgroups.remove_prefix(self.prefix)
            found = cgroups.detect()[0]
            left = [h.base for h in found.values() if os.path.exists(f"{h.base}/{self.prefix}")]
            assert not left, f"cgroup directories left: {left}"


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    try:
        yield e
    finally:
        e.close()


# -- the interface, on both mechanisms ---------------------------------------------------


def test_select_budget_reports_the_mechanism_and_why() -> None:
    sel = budget.select_budget("pe-test-unused", force=budget.PROC_WATCH)
    assert sel.report == (budget.PROC_WATCH, "forced by configuration")
    sel.close()
    auto = budget.select_budget("pe-test-unused")
    if CGROUP_WHY is None:
        assert auto.report == (budget.CGROUP_V1, None)
    else:
        assert auto.report == (budget.PROC_WATCH, f"cgroup: {CGROUP_WHY}")
    auto.close()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_busy_sees_a_child_or_a_thread_besides_the_first(env: Env, mechanism: str) -> None:
    idle, _ = env.started(mechanism, READY + "time.sleep(30)\n")
    assert wait_for(lambda: idle.tasks() == 1)
    assert not idle.busy()
    child, _ = env.started(mechanism, READY + "os.fork() or time.sleep(30); time.sleep(30)\n")
    assert wait_for(child.busy)
    thread_code = (
        READY + "import threading\nthreading.Thread(target=time.sleep, args=(30,)).start()\n"
    )
    thread, _ = env.started(mechanism, thread_code)
    assert wait_for(lambda: thread.tasks() == 2)
    assert thread.busy()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_freeze_stops_the_whole_tree_and_thaw_resumes_it(env: Env, mechanism: str) -> None:
    # a busy root and a busy child
    b, _ = env.started(mechanism, READY + "os.fork()\nwhile True: pass\n")
    assert wait_for(lambda: len(b.pids()) == 2 and b.cpu_s() > 0.05)
    b.freeze()
    if isinstance(b, budget.CgroupBudget):
        assert wait_for(b.cg.frozen, 5)
    time.sleep(0.05)  # the last tick of accounting
    before = b.cpu_s()
    time.sleep(0.3)
    assert b.cpu_s() == before
    b.thaw()
    assert wait_for(lambda: b.cpu_s() > before + 0.05, 5)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kill_of_a_frozen_tree(env: Env, mechanism: str) -> None:
    b, p = env.started(mechanism, READY + "os.fork()\nwhile True: pass\n")
    assert wait_for(lambda: len(b.pids()) == 2)
    b.freeze()
    assert b.kill()
    assert p.wait(10) == -signal.SIGKILL
    assert wait_for(lambda: b.pids() == [])


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kill_empties_the_tree_even_a_setsid_double_fork(env: Env, mechanism: str) -> None:
    code = (
        SUBREAPER
        + READY
        + "for _ in range(3):\n"
        + "    if os.fork() == 0:\n"
        + "        os.setsid()\n"
        + "        if os.fork() == 0: time.sleep(60)\n"
        + "        os._exit(0)\n"
        + "while True:\n"
        + "    try: os.wait()\n"
        + "    except ChildProcessError: time.sleep(0.01)\n"
    )
    b, p = env.started(mechanism, code)

    def left_the_session() -> list[int]:
        try:
            return [x for x in b.pids() if os.getsid(x) != os.getsid(p.pid)]
        except ProcessLookupError:
            return []

    # the 3 grandchildren, in sessions of their own, their parents gone
    assert wait_for(lambda: len(left_the_session()) == 3 and len(b.pids()) == 4)
    grandchildren = left_the_session()
    assert b.kill()
    assert p.wait(10) == -signal.SIGKILL
    assert wait_for(lambda: b.pids() == [])
    assert wait_for(lambda: not [g for g in grandchildren if alive(g)])


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_tree_over_its_memory_budget_is_stopped(env: Env, mechanism: str) -> None:
    # 4 children of 80 MB each (none big on its own), 320 MB together, budget 200 MB
    code = (
        READY
        + "for _ in range(4):\n"
        + "    if os.fork() == 0:\n"
        + "        b = bytearray(80 << 20); b[::4096] = b'x' * len(range(0, len(b), 4096))\n"
        + "        time.sleep(60); os._exit(0)\n"
        + "time.sleep(60)\n"
    )
    b, p = env.started(mechanism, code, memory_bytes=200 * MB)
    assert wait_for(b.memory_exceeded, 30)
    if isinstance(b, budget.ProcBudget):
        assert p.wait(10) == -signal.SIGKILL  # the watcher killed the whole tree
    else:
        assert isinstance(b, budget.CgroupBudget)
        assert b.cg.oom_kills() >= 1  # the kernel killed a child; the caller kills the rest
        assert b.memory_bytes() <= 200 * MB
    assert b.kill()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_reset_readies_a_budget_for_the_next_run(env: Env, mechanism: str) -> None:
    over = (
        READY
        + "b = bytearray(150 << 20); b[::4096] = b'x' * len(range(0, len(b), 4096))\ntime.sleep(60)\n"
    )
    b, first = env.started(mechanism, over, memory_bytes=100 * MB)
    assert wait_for(b.memory_exceeded, 30)
    assert first.wait(10) == -signal.SIGKILL
    assert b.reset()
    assert not b.memory_exceeded() and b.pids() == [] and b.cpu_s() < 0.05
    again = env.spawn(READY + "b = bytearray(20 << 20)\nsys.exit(7)\n")
    b.add(again.pid)
    env.go(again)
    assert again.wait(30) == 7
    assert not b.memory_exceeded()


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_tree_under_its_budget_runs_to_the_end(env: Env, mechanism: str) -> None:
    code = (
        READY
        + "pids = []\n"
        + "for _ in range(2):\n"
        + "    pid = os.fork()\n"
        + "    if pid == 0:\n"
        + "        b = bytearray(40 << 20); b[::4096] = b'x' * len(range(0, len(b), 4096))\n"
        + "        time.sleep(0.3); os._exit(0)\n"
        + "    pids.append(pid)\n"
        + "sys.exit(sum(os.waitpid(x, 0)[1] for x in pids))\n"
    )
    b, p = env.started(mechanism, code, memory_bytes=400 * MB)
    assert p.wait(30) == 0
    assert not b.memory_exceeded()


# -- cgroup v1 only ------------------------------------------------------------------


@needs_cgroup
def test_cgroup_oom_kill_is_counted_and_signalled_on_the_eventfd(env: Env) -> None:
    code = (
        READY
        + "for _ in range(3):\n"
        + "    if os.fork() == 0:\n"
        + "        b = bytearray(60 << 20); b[::4096] = b'x' * len(range(0, len(b), 4096))\n"
        + "        time.sleep(60); os._exit(0)\n"
        + "time.sleep(60)\n"
    )
    b = env.open_budget(budget.CGROUP_V1, memory_bytes=100 * MB)
    assert isinstance(b, budget.CgroupBudget)
    assert not select.select([b.oom_fd], [], [], 0)[0]
    p = env.spawn(code)
    b.add(p.pid)
    env.go(p)
    assert select.select([b.oom_fd], [], [], 30)[0], "no OOM event"
    assert int.from_bytes(os.read(b.oom_fd, 8), sys.byteorder) >= 1
    assert wait_for(lambda: b.cg.oom_kills() >= 1)
    assert b.memory_exceeded()


@needs_cgroup
def test_cgroup_counts_tmpfs_pages_no_process_maps(env: Env) -> None:
    """A memfd written (never mapped) is memory the tree holds: the cgroup charges it,
    Pss cannot see it (the documented gap of the /proc fallback)."""
    code = (
        READY
        + "fd = os.memfd_create('x')\nos.write(fd, b'x' * (64 << 20))\nprint('w', flush=True)\ntime.sleep(60)\n"
    )
    b = env.open_budget(budget.CGROUP_V1)
    p = env.spawn(code)
    b.add(p.pid)
    env.go(p)
    assert p.stdout is not None and select.select([p.stdout], [], [], 30)[0]
    assert p.stdout.readline() == b"w\n"
    assert b.memory_bytes() >= 64 * MB
    assert proctree.memory_bytes([p.pid]) < 64 * MB


@needs_cgroup
def test_cgroup_a_forked_child_joins_its_group_itself(env: Env) -> None:
    g = cgroups.Cgroup.create(env.prefix, f"{os.getpid()}-join")
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # only os calls and file writes here, then _exit
        try:
            cgroups.join(g.procs_files())
            os.write(w, b"j")
            time.sleep(30)
        finally:
            os._exit(0)
    try:
        assert select.select([r], [], [], 10)[0] and os.read(r, 1) == b"j"
        assert g.pids() == [child] and g.tasks() == 1
    finally:
        os.close(r)
        os.close(w)
        assert g.remove()
        os.waitpid(child, 0)


@needs_cgroup
def test_cgroup_limits_can_be_lowered_and_raised_again(env: Env) -> None:
    g = cgroups.Cgroup.create(env.prefix, f"{os.getpid()}-limits")
    try:
        for mb in (100, 300, 50):
            g.limit(memory_bytes=mb * MB, tasks=mb, cpu_cores=mb / 100)
            with open(f"{g.dirs['memory']}/memory.limit_in_bytes") as f:
                assert int(f.read()) == mb * MB
            memsw = f"{g.dirs['memory']}/memory.memsw.limit_in_bytes"
            if os.path.exists(memsw):
                with open(memsw) as f:
                    assert int(f.read()) == mb * MB
            with open(f"{g.dirs['pids']}/pids.max") as f:
                assert int(f.read()) == mb
            with open(f"{g.dirs['cpu']}/cpu.cfs_quota_us") as f:
                assert int(f.read()) == mb * 1000
    finally:
        assert g.remove()


@needs_cgroup
def test_cgroup_pids_max_stops_a_fork_storm(env: Env) -> None:
    code = (
        READY
        + "made = refused = 0\n"
        + "for _ in range(200):\n"
        + "    try:\n"
        + "        if os.fork() == 0: time.sleep(60); os._exit(0)\n"
        + "        made += 1\n"
        + "    except BlockingIOError: refused += 1\n"
        + "print(made, refused, flush=True)\n"
        + "time.sleep(60)\n"
    )
    b, p = env.started(budget.CGROUP_V1, code, tasks=20)
    assert p.stdout is not None and select.select([p.stdout], [], [], 30)[0]
    made, refused = map(int, p.stdout.readline().split())
    assert made == 19 and refused == 181  # the root is one of the 20
    assert b.tasks() == 20
    assert b.kill()
    assert b.pids() == []


@needs_cgroup
def test_cgroup_cpu_quota_holds_a_busy_tree_near_its_share(env: Env) -> None:
    b, _ = env.started(budget.CGROUP_V1, READY + "os.fork()\nwhile True: pass\n", cpu_cores=0.5)
    assert wait_for(lambda: b.cpu_s() > 0.05)
    t0, c0 = time.monotonic(), b.cpu_s()
    time.sleep(1.0)
    cores = (b.cpu_s() - c0) / (time.monotonic() - t0)
    assert 0.05 < cores < 0.8, cores  # two busy processes, half a core between them


@needs_cgroup
def test_cgroup_remove_leaves_nothing_and_sweep_takes_dead_owners_only(env: Env) -> None:
    g = cgroups.Cgroup.create(env.prefix, f"{os.getpid()}-remove")
    p = env.spawn(READY + "os.fork(); time.sleep(60)\n")
    g.attach(p.pid)
    env.go(p)
    assert wait_for(lambda: len(g.pids()) == 2)
    assert g.remove()
    assert not [d for d in g.dirs.values() if os.path.exists(d)]
    assert p.wait(10) == -signal.SIGKILL

    dead = subprocess.Popen([sys.executable, "-S", "-c", "pass"])
    dead.wait(30)
    me = budget.owner_tag()
    mine = cgroups.Cgroup.create(env.prefix, f"{me}-live")
    names = [f"{dead.pid}-abcd-left", f"{os.getpid()}-0000-previous-server"]
    orphans = [cgroups.Cgroup.create(env.prefix, n) for n in names]
    try:
        assert sorted(cgroups.sweep(env.prefix, budget.owner_is_dead)) == sorted(names)
        assert not [d for o in orphans for d in o.dirs.values() if os.path.exists(d)]
        assert all(os.path.isdir(d) for d in mine.dirs.values())
    finally:
        mine.remove()
        for o in orphans:
            o.remove()


def test_cgroup_hierarchies_parse_co_mounts_sub_roots_and_v2_only() -> None:
    mountinfo = "\n".join(
        [
            "30 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755",
            "31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
            "32 30 0:28 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory",
            "33 30 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
            "34 30 0:30 / /sys/fs/cgroup/name\\040sys rw - cgroup cgroup rw,name=systemd",
        ]
    )
    own = "4:memory:/docker/abc/run\n3:cpu,cpuacct:/a\n2:pids:/\n0::/\n"
    found, v2 = cgroups.hierarchies(mountinfo, own)
    assert not v2
    assert found["cpu"] is found["cpuacct"]
    assert found["cpu"].base == "/sys/fs/cgroup/cpu,cpuacct/a"
    assert found["memory"].base == "/sys/fs/cgroup/memory/run" and found["memory"].read_only
    assert found["pids"].base == "/sys/fs/cgroup/pids"
    assert "freezer" not in found
    only_v2 = "40 23 0:35 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    assert cgroups.hierarchies(only_v2, "0::/\n") == ({}, True)


# -- the /proc fallback only -----------------------------------------------------------


def _fork_tree(subreaper: bool) -> tuple[int, int]:
    """A child (a subreaper or not) whose grandchild left by setsid + double fork;
    returns (child, grandchild)."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # only os calls here, then _exit: safe in a threaded parent
        try:
            os.close(r)
            if subreaper:
                proctree.make_subreaper()
            if os.fork() == 0:
                os.setsid()
                g = os.fork()
                if g == 0:
                    time.sleep(60)
                    os._exit(0)
                os.write(w, str(g).encode())
                os._exit(0)
            os.wait()
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    try:
        assert select.select([r], [], [], 10)[0]
        return child, int(os.read(r, 32))
    finally:
        os.close(r)


def test_descendants_keep_a_setsid_double_fork_under_a_subreaper() -> None:
    child, grandchild = _fork_tree(subreaper=True)
    try:
        assert wait_for(lambda: proctree.descendants(child) == [grandchild])
        assert proctree.kill_tree(child)
        os.waitpid(child, 0)
        assert wait_for(lambda: not alive(grandchild))
    finally:
        proctree.kill([child, grandchild])


def test_without_a_subreaper_a_double_fork_leaves_the_tree() -> None:
    child, grandchild = _fork_tree(subreaper=False)
    try:
        assert wait_for(lambda: proctree.descendants(child) == [] and alive(grandchild))
    finally:
        proctree.kill([child, grandchild])
        os.waitpid(child, 0)


def test_pss_counts_copy_on_write_pages_once(env: Env) -> None:
    """4 forks sharing 100 MB they inherited: Pss sums to ~100 MB, RSS to ~500 MB."""
    code = (
        READY
        + "b = bytearray(100 << 20); b[::4096] = b'x' * len(range(0, len(b), 4096))\n"
        + "for _ in range(4):\n"
        + "    if os.fork() == 0: time.sleep(60); os._exit(0)\n"
        + "print('forked', flush=True); time.sleep(60)\n"
    )
    p = env.spawn(code)
    env.go(p)
    assert p.stdout is not None and select.select([p.stdout], [], [], 30)[0]
    assert p.stdout.readline() == b"forked\n"
    pids = proctree.tree(p.pid)
    assert len(pids) == 5
    pss = proctree.memory_bytes(pids)
    assert 100 * MB <= pss < 200 * MB, pss / MB


def test_watcher_counts_shared_copy_on_write_pages_once(env: Env) -> None:
    """Summed RSS of this tree is ~500 MB, its Pss ~100 MB: a 300 MB budget holds."""
    code = (
        READY
        + "b = bytearray(100 << 20); b[::4096] = b'x' * len(range(0, len(b), 4096))\n"
        + "for _ in range(4):\n"
        + "    if os.fork() == 0: time.sleep(60); os._exit(0)\n"
        + "print('forked', flush=True); time.sleep(60)\n"
    )
    watcher = proctree.Watcher(0.02)
    try:
        p = env.spawn(code)
        w = watcher.watch(p.pid, 300 * MB)
        env.go(p)
        assert p.stdout is not None and select.select([p.stdout], [], [], 30)[0]
        assert p.stdout.readline() == b"forked\n"
        polls = w.polls
        assert wait_for(lambda: w.polls >= polls + 5)
        assert proctree.rss_bytes(proctree.tree(p.pid)) > 300 * MB
        assert p.poll() is None and w.exceeded is None
    finally:
        watcher.close()


def test_watcher_calls_back_once_and_skips_a_paused_tree(env: Env) -> None:
    code = (
        READY
        + "b = bytearray(100 << 20); b[::4096] = b'x' * len(range(0, len(b), 4096))\ntime.sleep(60)\n"
    )
    seen: list[str | None] = []
    watcher = proctree.Watcher(0.02)
    try:
        paused = env.spawn(code)
        wp = proctree.Watch([paused.pid], 50 * MB, lambda w: seen.append("paused"), paused=True)
        watcher.add(wp)
        killed = env.spawn(code)
        wk = watcher.watch(killed.pid, 50 * MB, lambda w: seen.append(w.exceeded))
        env.go(paused)
        env.go(killed)
        assert killed.wait(30) == -signal.SIGKILL
        assert wait_for(lambda: seen == ["memory"], 5)
        assert wk.peak_bytes > 50 * MB and wk.polls >= 1
        time.sleep(0.2)
        assert paused.poll() is None and wp.polls == 0 and seen == ["memory"]
    finally:
        watcher.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
def test_pss_refused_for_a_non_dumpable_process_falls_back_to_its_private_rss() -> None:
    """As an unprivileged uid (a Space), smaps_rollup of a non-dumpable child is refused:
    the reading falls back to RssAnon + RssShmem (an over-count) instead of 0."""
    r, w = os.pipe()
    target = os.fork()
    if target == 0:
        try:
            os.setresuid(1000, 1000, 1000)
            hold = bytearray(64 << 20)
            hold[::4096] = b"x" * len(range(0, len(hold), 4096))
            os.write(w, b"r")
            time.sleep(30)
        finally:
            os._exit(0)
    reader = -1
    try:
        assert select.select([r], [], [], 10)[0] and os.read(r, 1) == b"r"
        reader = os.fork()
        if reader == 0:
            try:
                os.setresuid(1000, 1000, 1000)
                try:
                    open(f"/proc/{target}/smaps_rollup").close()
                    refused = 0
                except PermissionError:
                    refused = 1
                os.write(w, f"{refused} {proctree.pss_bytes(target)}\n".encode())
            finally:
                os._exit(0)
        assert select.select([r], [], [], 10)[0]
        refused, seen = map(int, os.read(r, 64).split())
        assert refused == 1
        with open(f"/proc/{target}/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        # at least what it holds, at most its RSS (pages shared with pytest: in full)
        assert 64 * MB <= seen <= rss
    finally:
        os.close(r)
        os.close(w)
        proctree.kill([target])
        os.waitpid(target, 0)
        if reader > 0:
            os.waitpid(reader, 0)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_busy_tree_stops_at_its_cpu_time_budget(env: Env, mechanism: str) -> None:
    b, p = env.started(mechanism, READY + "os.fork()\nwhile True: pass\n", cpu_s=0.5)
    assert p.wait(30) == -signal.SIGKILL
    assert b.cpu_exceeded() and not b.memory_exceeded()
    assert wait_for(lambda: b.pids() == [])


# -- a disk budget for the tree's files (where the workdir is not a tmpfs) ----------------

WRITER = READY + (
    "d = sys.argv[1]\n"
    "for i in range(10 ** 6):\n"  # many files under any per-file limit, as fast as it can
    "    with open(f'{d}/f{i}', 'wb') as f:\n"
    "        f.write(b'x' * (1 << 20))\n"
)


def test_disk_usage_counts_blocks_entries_and_links_once(tmp_path) -> None:
    from python_env.server.sandbox import diskuse

    (tmp_path / "a").write_bytes(b"x" * (1 << 20))
    (tmp_path / "sub").mkdir()
    os.link(tmp_path / "a", tmp_path / "sub" / "b")
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(1 << 30)  # 1 GiB long, nothing allocated
    for i in range(100):
        (tmp_path / "sub" / f"e{i}").touch()
    used = diskuse.usage([str(tmp_path)])
    assert (1 << 20) + 103 * diskuse.ENTRY_BYTES <= used < (1 << 20) + (1 << 18), used
    assert diskuse.usage([str(tmp_path / "gone")]) == 0
    assert diskuse.usage([str(tmp_path)], stop_at=1000) > 1000  # stops early, still over


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_tree_writing_past_its_disk_budget_is_killed(env: Env, mechanism: str, tmp_path) -> None:
    b = env.open_budget(mechanism, disk=([str(tmp_path)], 64 * MB))
    p = env.spawn(WRITER.replace("sys.argv[1]", repr(str(tmp_path))))
    b.add(p.pid)
    env.go(p)
    assert wait_for(lambda: not alive(p.pid), 30), "the writer outlived its disk budget"
    assert b.disk_exceeded() and not b.memory_exceeded()
    written = sum(f.stat().st_size for f in tmp_path.iterdir())
    print(f"{mechanism}: {written / MB:.0f} MB written under a 64 MB budget")
    assert written > 64 * MB  # it did go over (polled), and was stopped far short of 10**6 MB


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_check_disk_after_a_run_catches_what_the_last_poll_missed(
    env: Env, mechanism: str, tmp_path
) -> None:
    b = env.open_budget(mechanism, disk=([str(tmp_path)], 8 * MB))
    p = env.spawn(READY + "time.sleep(60)\n")
    b.add(p.pid)
    env.go(p)
    assert not b.check_disk() and alive(p.pid)
    (tmp_path / "big").write_bytes(b"x" * (9 * MB))
    assert b.check_disk() and b.disk_exceeded()
    assert wait_for(lambda: not alive(p.pid))
