"""Shared channels: nothing a run leaves in System V IPC, POSIX queues or /dev/shm
reaches another run, another session's kernel or the host, and nothing outlives it."""

from __future__ import annotations

import os

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


WRITE_SHM = (
    "import os\n"
    "try:\n"
    "    open('/dev/shm/planted', 'w').write('leak')\n"
    "except OSError as e:\n"
    "    print(type(e).__name__)\n"
)
SEE_SHM = "import os\nprint(sorted(os.listdir('/dev/shm')))"


def test_dev_shm_is_private_to_a_run_and_to_a_kernel(healthy: Sandbox) -> None:
    host = set(os.listdir("/dev/shm"))
    healthy.run(WRITE_SHM)
    assert healthy.run(SEE_SHM).stdout == "[]\n"  # the next run starts empty
    k1, k2 = healthy.kernel(), healthy.kernel()
    try:
        k1.run(WRITE_SHM)
        assert "planted" in k1.run(SEE_SHM).stdout  # kept between a kernel's cells
        assert "planted" not in k2.run(SEE_SHM).stdout  # never another session's
        assert healthy.run(SEE_SHM).stdout == "[]\n"
    finally:
        k1.close()
        k2.close()
    assert set(os.listdir("/dev/shm")) == host  # nothing reached the host's
    r = healthy.run("open('/dev/mqueue/x', 'w')")
    assert r.exit_code != 0, r


def test_multiprocessing_pool_works_where_runs_have_their_own_dev_shm(healthy: Sandbox) -> None:
    program = (
        "import multiprocessing as mp\n"
        "def sq(x):\n    return x * x\n"
        "if __name__ == '__main__':\n"
        "    with mp.Pool(2) as p:\n        print(sum(p.map(sq, range(100))))\n"
    )
    if "private_tmpfs" not in healthy.isolation.active:
        r = healthy.run(program)  # no private /dev/shm: a clear error, never a hang
        assert r.exit_code != 0 and "Permission" in r.stderr, r
        return
    assert healthy.run(program).stdout == "328350\n"
    k = healthy.kernel()
    try:
        assert k.run(program).stdout == "328350\n"
    finally:
        k.close()


def test_a_run_cannot_write_more_than_its_disk_budget(healthy: Sandbox) -> None:
    if "private_tmpfs" not in healthy.isolation.active:
        pytest.skip("no private tmpfs here")
    fill = (
        "n = 0\n"
        "try:\n"
        "    for i in range(10_000):\n"
        "        with open(f'f{i}', 'wb') as f:\n"
        "            f.write(b'x' * (4 << 20))\n"
        "        n += 4\n"
        "except OSError as e:\n"
        "    print(n, e.errno)\n"
    )
    budget = healthy.limits.disk_mb
    written, errno_ = map(int, healthy.run(fill).stdout.split())
    assert written <= budget and errno_ == 28, (written, budget)  # ENOSPC at the budget
    k = healthy.kernel()
    try:
        written, errno_ = map(int, k.run(fill).stdout.split())
        assert written <= budget and errno_ == 28
    finally:
        k.close()
    assert healthy.run("print(1)").stdout == "1\n"
