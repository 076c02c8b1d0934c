"""Shared channels: nothing a run leaves in System V IPC, POSIX queues or /dev/shm
reaches another run, another session's kernel or the host, and nothing outlives it."""

from __future__ import annotations

import pytest
from python_env.server.sandbox import Sandbox

pytestmark = pytest.mark.timeout(60)

LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
KEY = 0x5E5510  # a fixed System V key both sides agree on, as an attacker would
CREATE = (
    LIBC + f"shm = libc.shmget({KEY}, 1 << 20, 0o1666)\n"  # IPC_CREAT | 0666
    "print('shm', shm, ctypes.get_errno())\n"
    f"msq = libc.msgget({KEY}, 0o1666)\n"
    "print('msq', msq, ctypes.get_errno())\n"
)
FIND = (
    LIBC + f"print('shm', libc.shmget({KEY}, 0, 0), ctypes.get_errno())\n"
    f"print('msq', libc.msgget({KEY}, 0), ctypes.get_errno())\n"
)


def _host_segments() -> set[str]:
    with open("/proc/sysvipc/shm") as f:
        return {line.split()[1] for line in f.readlines()[1:]}


def _values(stdout: str) -> dict[str, int]:
    return {name: int(v) for name, v, _ in (line.split() for line in stdout.splitlines())}


def test_system_v_segments_never_cross_runs_or_sessions(healthy: Sandbox) -> None:
    private = "ipc_namespace" in healthy.isolation.active  # else seccomp refuses IPC
    before = _host_segments()
    made = healthy.run(CREATE)
    assert made.exit_code == 0, made
    assert (_values(made.stdout)["shm"] >= 0) == private  # a run may use it privately...
    assert _host_segments() == before  # ...but nothing of it reached the host
    assert _values(healthy.run(FIND).stdout)["shm"] == -1  # nor a later run
    kernel_a, kernel_b = healthy.kernel(), healthy.kernel()
    try:
        assert (_values(kernel_a.run(CREATE).stdout)["shm"] >= 0) == private
        assert (_values(kernel_a.run(FIND).stdout)["shm"] >= 0) == private  # kept between cells
        assert _values(kernel_b.run(FIND).stdout)["shm"] == -1  # another session: nothing
        assert _values(healthy.run(FIND).stdout)["shm"] == -1  # a one-shot run: nothing
        assert _host_segments() == before
    finally:
        kernel_a.close()
        kernel_b.close()


def test_without_an_ipc_namespace_system_v_ipc_is_refused() -> None:
    with Sandbox(slots=1, disable=["ipc_namespace"]) as sb:
        if "seccomp" not in sb.isolation.active:
            pytest.skip("seccomp unavailable here")
        assert "ipc_namespace" in sb.isolation.unavailable
        got = _values(sb.run(CREATE).stdout)
        assert got == {"shm": -1, "msq": -1}, got
        r = sb.run(LIBC + "print(libc.shmget(0, 4096, 0o1600), ctypes.get_errno())")
        assert r.stdout.split() == ["-1", "1"], r  # EPERM, even for a private segment


def test_host_shared_memory_dirs_are_not_a_channel(healthy: Sandbox) -> None:
    r = healthy.run(
        "import os\n"
        "for d in ('/dev/shm', '/dev/mqueue'):\n"
        "    try:\n"
        "        open(os.path.join(d, 'x'), 'w').write('leak')\n"
        "        print(d, 'written')\n"
        "    except OSError as e:\n"
        "        print(d, type(e).__name__)\n"
    )
    assert "written" not in r.stdout, r
