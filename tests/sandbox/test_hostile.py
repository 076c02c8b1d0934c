"""Hostile programs: each must be contained, and the engine must serve the next run
(the `healthy` fixture checks that after every test)."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
import uuid

import pytest
from python_env.server.sandbox import Limits, Sandbox

pytestmark = pytest.mark.timeout(60)
SHORT = Limits(
    wall_s=1.5,
    cpu_s=5,
    memory_mb=256,
    max_output_bytes=4096,
    file_size_mb=8,
    max_processes=16,
    max_open_files=64,
)


def _contained_tree(sb: Sandbox) -> bool:
    active = sb.isolation.active
    return "pid_namespace" in active or "uid_drop" in active


def test_infinite_loop_wall_timeout(healthy: Sandbox) -> None:
    r = healthy.run("while True: pass", limits=SHORT)
    assert r.timed_out and r.signal == signal.SIGKILL and r.exit_code is None


def test_cpu_limit(healthy: Sandbox) -> None:
    r = healthy.run("while True: pass", limits=Limits(wall_s=20, cpu_s=1))
    assert r.timed_out and r.signal in (signal.SIGXCPU, signal.SIGKILL)


def test_sigterm_ignored(healthy: Sandbox) -> None:
    r = healthy.run(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True: time.sleep(0.01)",
        limits=SHORT,
    )
    assert r.timed_out and r.signal == signal.SIGKILL


def test_memory_bomb(healthy: Sandbox) -> None:
    r = healthy.run("x = bytearray(2 * 1024 ** 3)", limits=SHORT)
    assert r.memory_exceeded and r.exception_type == "MemoryError"
    r2 = healthy.run("xs = []\nwhile True: xs.append(' ' * 10 ** 6)", limits=SHORT)
    assert r2.memory_exceeded or r2.signal is not None


def test_fork_bomb(healthy: Sandbox) -> None:
    if not _contained_tree(healthy):
        pytest.skip("no PID namespace and no per-slot uid: a fork bomb would hit the host")
    r = healthy.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        limits=SHORT,
    )
    assert r.timed_out or r.signal is not None


def test_thread_bomb(healthy: Sandbox) -> None:
    r = healthy.run(
        "import threading, time\nn = 0\ntry:\n    while True:\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "        n += 1\nexcept Exception as e:\n    print('stopped', type(e).__name__)\n"
        "import os, sys; sys.stdout.flush(); os._exit(0)",
        limits=SHORT,
    )
    assert r.stdout.startswith("stopped") or r.timed_out or r.memory_exceeded, r


def test_huge_file_write(healthy: Sandbox) -> None:
    r = healthy.run(
        "chunk = b'x' * (1 << 20)\nwith open('big', 'wb') as f:\n"
        "    for _ in range(10 * 1024):\n        f.write(chunk)\n",
        limits=SHORT,
    )
    assert r.exception_type == "OSError" and "too large" in (r.exception_message or "")


def test_one_gigabyte_print_is_cut_off_promptly(healthy: Sandbox) -> None:
    t0 = time.monotonic()
    r = healthy.run(
        "import sys\nchunk = 'x' * 65536\nfor _ in range(16384):\n    sys.stdout.write(chunk)\n",
        limits=Limits(wall_s=30),
    )
    assert r.stdout_truncated and len(r.stdout) == Limits().max_output_bytes
    assert not r.timed_out and r.exit_code != 0
    assert time.monotonic() - t0 < 25  # far below the wall limit: stopped at the cap


def test_network_to_loopback_listener_fails(healthy: Sandbox) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    try:
        r = healthy.run(
            f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), 2)\n"
            "s.sendall(b'leak')\nprint('connected')",
            limits=SHORT,
        )
        assert "connected" not in r.stdout and r.exception_type is not None
        with pytest.raises(TimeoutError):
            srv.accept()
    finally:
        srv.close()


def test_server_owned_files_are_unreadable(healthy: Sandbox) -> None:
    fd, path = tempfile.mkstemp(prefix="sbx-secret-")
    os.write(fd, b"TOP-SECRET")
    os.close(fd)
    os.chmod(path, 0o600)
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        for target in (path, __file__, "/etc/shadow", os.path.join(here, "conftest.py")):
            r = healthy.run(f"print(open({target!r}).read()[:100])", limits=SHORT)
            assert "TOP-SECRET" not in r.stdout and "import" not in r.stdout, target
            assert "root:" not in r.stdout, target
            denied = r.exception_type in ("PermissionError", "FileNotFoundError")
            assert denied or r.stdout == "\n", (target, r)  # /etc/shadow may be masked
    finally:
        os.unlink(path)


def test_repo_and_task_data_are_hidden(healthy: Sandbox) -> None:
    import python_env

    root = os.path.dirname(os.path.abspath(python_env.__file__))
    r = healthy.run(f"import os\nprint(os.listdir({os.path.join(root, 'server')!r}))", limits=SHORT)
    assert r.exception_type in ("PermissionError", "FileNotFoundError"), r
    r2 = healthy.run("import python_env.server.tasks", limits=SHORT)
    assert r2.exception_type is not None


def test_kill_parent(healthy: Sandbox) -> None:
    zygotes = healthy.zygote_pids()
    r = healthy.run(
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('still here')",
        limits=SHORT,
    )
    assert r.exit_code is not None or r.signal is not None
    for pid in zygotes:
        os.kill(pid, 0)  # still alive


def test_kill_everything(healthy: Sandbox) -> None:
    if not _contained_tree(healthy):
        pytest.skip("kill(-1) without PID namespace or uid drop would hit the host")
    zygotes = healthy.zygote_pids()
    r = healthy.run(
        "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\n"
        "except OSError as e:\n    print(type(e).__name__)\nprint('done')",
        limits=SHORT,
    )
    assert r.exit_code is not None or r.signal is not None
    if "seccomp" in healthy.isolation.active:
        assert r.stdout == "PermissionError\ndone\n"
    for pid in zygotes:
        os.kill(pid, 0)


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


def test_daemon_grandchild_dies_with_the_run(healthy: Sandbox) -> None:
    marker = f"sbx-daemon-{uuid.uuid4().hex}"
    outdir = tempfile.mkdtemp(prefix="sbx-marker-")
    os.chmod(outdir, 0o777)
    target = os.path.join(outdir, "marker")
    daemon = (
        f"import time\ntime.sleep(0.5)\nopen({target!r}, 'w').write('escaped')\n"
        f"time.sleep(30)  # {marker}"
    )
    code = (
        "import os, sys\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', {daemon!r}])\n"
        "    os._exit(0)\nprint('parent done')"
    )
    try:
        r = healthy.run(code, limits=SHORT)
        assert r.stdout == "parent done\n", r
        deadline = time.monotonic() + 3
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_with(marker) == []
        time.sleep(1.0)
        assert not os.path.exists(target)
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, signal.SIGKILL)
        if os.path.exists(target):
            os.unlink(target)
        os.rmdir(outdir)


def test_ctypes_segfault(healthy: Sandbox) -> None:
    r = healthy.run(
        "import resource\nprint(resource.getrlimit(resource.RLIMIT_CORE), flush=True)\n"
        "import ctypes\nctypes.string_at(0)",
        limits=SHORT,
    )
    assert r.signal == signal.SIGSEGV and r.exit_code is None
    assert r.stdout == "(0, 0)\n"  # no core dump


def test_deep_recursion(healthy: Sandbox) -> None:
    r = healthy.run("def f(n):\n    return f(n + 1)\nf(0)", limits=SHORT)
    assert r.exception_type == "RecursionError"
    r2 = healthy.run(
        "import sys\nsys.setrecursionlimit(10 ** 7)\ndef f(n):\n    return f(n + 1)\nf(0)",
        limits=SHORT,
    )
    assert r2.signal is not None or r2.exception_type is not None


def test_namespace_and_privilege_escapes_fail(healthy: Sandbox) -> None:
    r = healthy.run(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x10000000), libc.unshare(0x40000000))\n"
        "try:\n    os.setuid(0)\nexcept OSError as e:\n    print('setuid', e.errno)\n"
        "print(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))",
        limits=SHORT,
    )
    lines = r.stdout.splitlines()
    assert lines[0] == "-1 -1" and lines[2] == "-1", r


def test_max_processes_one_means_no_forking(healthy: Sandbox) -> None:
    if "uid_drop" not in healthy.isolation.active:
        pytest.skip("RLIMIT_NPROC is not enforced for root without a per-slot uid")
    r = healthy.run(
        "import os\ntry:\n    os.fork()\n    print('forked')\n"
        "except OSError as e:\n    print(type(e).__name__)",
        limits=Limits(wall_s=5, max_processes=1),
    )
    assert r.stdout == "BlockingIOError\n", r


def test_no_run_can_serve_another_over_a_unix_socket(healthy: Sandbox) -> None:
    """A kernel that listens on a pathname socket in its (chmod-opened) workdir would be
    an oracle for grading children, whose CPU time is what the optimize family measures
    (Landlock does not mediate connect() to a pathname socket). socket() is refused;
    socketpair(), which asyncio and multiprocessing use, still works."""
    serve = (
        "import os, socket\n"
        "os.chmod('.', 0o777)\n"
        "try:\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    s.bind('oracle.sock')\n"
        "    s.listen()\n"
        "    print('LISTENING', os.getcwd())\n"
        "except OSError as e:\n"
        "    print('refused', type(e).__name__)\n"
        "a, b = socket.socketpair()\n"
        "a.send(b'ok')\n"
        "print(b.recv(2).decode())\n"
    )
    kernel = healthy.kernel()
    try:
        result = kernel.run(serve)
        assert "LISTENING" not in result.stdout and "refused PermissionError" in result.stdout
        assert result.stdout.strip().endswith("ok")
    finally:
        kernel.close()
    one_shot = healthy.run(serve)
    assert "refused PermissionError" in one_shot.stdout and one_shot.stdout.strip().endswith("ok")


DEEP_TREE = (
    "import os\n"
    "print(os.getcwd())\n"
    "for _ in range(1200):\n"
    "    os.mkdir('d')\n"
    "    os.chdir('d')\n"
    "open('cache', 'w').write('answers for later runs')\n"
)


def test_a_deep_directory_tree_does_not_outlive_its_run(healthy: Sandbox) -> None:
    """shutil.rmtree recurses: a 1 200-deep tree once survived its run and served later
    runs of the slot as a cache (found in review)."""
    result = healthy.run(DEEP_TREE)
    workdir = result.stdout.splitlines()[0]
    assert result.exit_code == 0, result.stderr
    assert not os.path.exists(workdir)

    kernel = healthy.kernel()
    try:
        workdir = kernel.run(DEEP_TREE).stdout.splitlines()[0]
        kernel.reset()  # used to raise RecursionError and wedge the session
        assert not os.path.exists(workdir)
        assert kernel.run("print('fresh')").stdout == "fresh\n"
    finally:
        kernel.close()
