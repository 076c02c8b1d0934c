"""A departed session's work ends at once: its kernel cell, one-shot runs and graded
runs are killed from another thread instead of running on to their time limit; and a
sleeping kernel cell holds nothing that other sessions' runs wait for."""

from __future__ import annotations

import threading
import time

import pytest
from python_env.server.sandbox import CaseSpec, Limits, Sandbox, SandboxError

pytestmark = pytest.mark.timeout(60)
LONG = Limits(wall_s=30, cpu_s=30, memory_mb=256, max_output_bytes=4096)


def _in_thread(fn) -> tuple[threading.Thread, list]:
    out: list = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 - the test asserts on it
            out.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out


def test_closing_a_kernel_kills_its_cell_in_flight() -> None:
    with Sandbox(slots=1, limits=LONG) as sb:
        k = sb.kernel()
        assert k.run("x = 1").exit_code == 0
        t, out = _in_thread(lambda: k.run("import time; time.sleep(25)"))
        time.sleep(0.5)
        pid = k.pid
        k.close()
        t.join(5)  # far below the cell's 25 s: the close ended it
        assert not t.is_alive() and out and out[0].signal is not None, out
        assert pid is not None and not _alive(pid)


def test_cancel_kills_the_owners_runs_and_refuses_new_ones() -> None:
    with Sandbox(slots=2, limits=LONG) as sb:
        owner = _Owner()

        def sleeping_run():
            with sb.owner(owner):
                return sb.run("import time; time.sleep(25)")

        def sleeping_grade():
            with sb.owner(owner):
                return sb.run_cases(
                    "def f(x):\n    import time; time.sleep(25)\n",
                    [CaseSpec(args=(1,))],
                    entry_point="f",
                )

        warm = [_in_thread(lambda: sb.run("pass")) for _ in range(2)]  # both zygotes up
        for t, _ in warm:
            t.join(30)
        threads = [_in_thread(sleeping_run), _in_thread(sleeping_grade)]
        deadline = time.monotonic() + 20
        while len(_owned(sb, owner)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # until both children run
        assert len(_owned(sb, owner)) == 2
        sb.cancel(owner)
        for t, _ in threads:
            t.join(5)
            assert not t.is_alive()
        run, grade = threads[0][1][0], threads[1][1][0]
        assert run.signal is not None and not run.timed_out, run
        assert grade.outcomes[0].status == "crash", grade
        with sb.owner(owner), pytest.raises(SandboxError):  # it starts nothing more
            sb.run("print(1)")
        sb.release(owner)
        with sb.owner(owner):
            assert sb.run("print(1)").stdout == "1\n"
        assert sb.run("print(2)").stdout == "2\n"  # other callers never noticed


def test_sleeping_kernel_cells_do_not_hold_the_slots() -> None:
    with Sandbox(slots=1, limits=LONG) as sb:
        kernels = [sb.kernel() for _ in range(3)]
        try:
            threads = [
                _in_thread(lambda k=k: k.run("import time; time.sleep(20)")) for k in kernels
            ]
            time.sleep(0.5)
            r = sb.run("print(1)")
            assert r.stdout == "1\n"
            # the cells still sleep: the run (one slot) did not wait for any of them
            assert all(t.is_alive() for t, _ in threads)
        finally:
            for k in kernels:
                k.close()


class _Owner:
    """A session stand-in (owners are held weakly, so plain object() will not do)."""


def _owned(sb: Sandbox, owner: object) -> set:
    with sb._owned_lock:
        return set(sb._owned.get(owner, ()))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False
