"""Persistent kernels: REPL state, per-run limits, restart after a kill, reset."""

from __future__ import annotations

import signal

import pytest
from python_env.server.sandbox import Limits, Sandbox

pytestmark = pytest.mark.timeout(60)
K = Limits(wall_s=1.5, cpu_s=5, memory_mb=256, max_output_bytes=1000)


def test_state_persists_and_trailing_expression_echoes(sb: Sandbox) -> None:
    k = sb.kernel(K)
    try:
        r1 = k.run("x = 1")
        assert r1.exit_code == 0 and r1.stdout == "" and not r1.kernel_restarted
        assert k.alive
        r2 = k.run("print(x)\nx += 1")
        assert r2.stdout == "1\n"
        assert k.run("x * 10").stdout == "20\n"
        assert k.run("None").stdout == ""
        r3 = k.run("undefined_name")
        assert r3.exception_type == "NameError" and r3.exit_code == 1 and k.alive
        assert k.run("print(x)").stdout == "2\n"  # an exception does not lose state
        assert k.run("import sys; sys.exit(4)").exit_code == 4 and k.alive
        assert k.run("print(x)").stdout == "2\n"
    finally:
        k.close()


def test_cells_past_the_inline_limit_come_in_a_memfd(sb: Sandbox) -> None:
    """A cell's code up to CODE_INLINE travels in its message, larger in a memfd: both
    run, in the same namespace, with stdin."""
    from python_env.server.sandbox.caps import CODE_INLINE

    k = sb.kernel(K)
    try:
        big = "x = " + repr("a" * (CODE_INLINE + 10)) + "\nprint(len(x))\n"
        r = k.run(big, stdin="in\n")
        assert r.exit_code == 0 and r.stdout == f"{CODE_INLINE + 10}\n", r
        r = k.run("print(len(x), input())", stdin="small\n")
        assert r.stdout == f"{CODE_INLINE + 10} small\n" and not r.kernel_restarted, r
    finally:
        k.close()


def test_stdin_files_and_output_cap(sb: Sandbox) -> None:
    with_k = sb.kernel(K)
    try:
        r = with_k.run("print(input()[::-1])", stdin="abc\n")
        assert r.stdout == "cba\n"
        r = with_k.run("print(open('notes.txt').read())", files={"notes.txt": "hi"})
        assert r.stdout == "hi\n"
        r = with_k.run("print('x' * 5000)")
        assert r.stdout_truncated and len(r.stdout) == 1000
        r = with_k.run("import sys\nfor _ in range(100000): sys.stdout.write('y' * 1000)")
        assert r.stdout_truncated
        assert with_k.run("print('after')").stdout == "after\n"
    finally:
        with_k.close()


def test_timeout_kills_and_next_run_restarts(sb: Sandbox) -> None:
    k = sb.kernel(K)
    try:
        k.run("x = 5")
        r = k.run("while True: pass")
        assert r.timed_out and r.signal == signal.SIGKILL and not k.alive
        r2 = k.run("print('x' in dir())")
        assert r2.kernel_restarted and r2.stdout == "False\n"
        assert not k.run("print(1)").kernel_restarted
    finally:
        k.close()


def test_crash_is_reported_and_restarts(sb: Sandbox) -> None:
    k = sb.kernel(K)
    try:
        r = k.run("import os; os._exit(9)")
        assert r.exit_code == 9
        assert k.run("import ctypes; ctypes.string_at(0)").kernel_restarted
        assert k.run("print(2)").kernel_restarted
    finally:
        k.close()


def test_reset_forgets_state(sb: Sandbox) -> None:
    k = sb.kernel(K)
    try:
        k.run("y = 3")
        k.reset()
        r = k.run("print('y' in dir())")
        assert r.stdout == "False\n" and not r.kernel_restarted
        k.close()
        k.close()
        assert not k.alive
    finally:
        k.close()


def test_memory_and_cpu_accounting(sb: Sandbox) -> None:
    k = sb.kernel(K)
    try:
        r = k.run("x = bytearray(1024 ** 3)")
        assert r.memory_exceeded and k.alive
        r = k.run("s = 0\nfor i in range(3 * 10 ** 6): s += i")
        assert r.cpu_time_ms > 10 and r.exit_code == 0
    finally:
        k.close()


def test_kernels_are_isolated_from_each_other(sb: Sandbox) -> None:
    a, b = sb.kernel(K), sb.kernel(K)
    try:
        a.run("secret = 'a'\nopen('mine.txt', 'w').write('a')")
        assert b.run("print('secret' in dir())").stdout == "False\n"
        wd = a.run("import os; print(os.getcwd())").stdout.strip()
        r = b.run(f"print(open({wd + '/mine.txt'!r}).read())")
        assert r.exception_type in ("PermissionError", "FileNotFoundError")
    finally:
        a.close()
        b.close()


def test_cell_that_breaks_the_control_channel(sb: Sandbox) -> None:
    k = sb.kernel(K)
    try:
        r = k.run("import os\nos.write(3, b'garbage')\nos.close(3)")
        assert r.exit_code is None or r.exception_type is not None or not k.alive
        assert k.run("print(1)").stdout == "1\n"
    finally:
        k.close()


def test_a_closed_kernel_is_freed_while_the_parker_runs(sb: Sandbox) -> None:
    """The parker's passes must not keep kernels alive (a list held between passes once
    copied every kernel into the next pass's list: every Kernel ever made stayed)."""
    import gc
    import time
    import weakref

    k = sb.kernel(K)
    assert k.run("x = 1").exit_code == 0
    time.sleep(1.2)  # past a pass of the parker (every 0.5 s at its default)
    k.close()
    ref = weakref.ref(k)
    del k
    deadline = time.monotonic() + 10
    while ref() is not None and time.monotonic() < deadline:
        time.sleep(0.3)
        gc.collect()
    assert ref() is None
