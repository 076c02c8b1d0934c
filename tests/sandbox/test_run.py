"""One-shot runs: every RunResult field, stdin, files, queueing, zygote restart."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from python_env.server.sandbox import Limits, RunResult, Sandbox

pytestmark = pytest.mark.timeout(60)


def test_every_field_of_a_clean_run(sb: Sandbox) -> None:
    r = sb.run("print(1 + 1)")
    assert isinstance(r, RunResult)
    assert r.stdout == "2\n" and r.stderr == ""
    assert not r.stdout_truncated and not r.stderr_truncated
    assert r.exit_code == 0 and r.signal is None
    assert not r.timed_out and not r.memory_exceeded
    assert r.exception_type is None and r.exception_message is None
    assert r.wall_time_ms > 0 and r.cpu_time_ms > 0
    assert r.kernel_restarted is False


def test_uncaught_exception(sb: Sandbox) -> None:
    r = sb.run("x = 1\nprint('before')\n1 / 0\n")
    assert r.stdout == "before\n" and r.exit_code == 1
    assert r.exception_type == "ZeroDivisionError"
    assert r.exception_message == "division by zero"
    assert "Traceback" in r.stderr and 'File "<main>", line 3' in r.stderr
    assert "harness" not in r.stderr and "zygote" not in r.stderr


def test_syntax_error(sb: Sandbox) -> None:
    r = sb.run("def f(:\n  pass")
    assert r.exception_type == "SyntaxError" and r.exit_code == 1
    assert "SyntaxError" in r.stderr


@pytest.mark.parametrize(
    ("code", "exit_code", "stderr"),
    [
        ("import sys; sys.exit(3)", 3, ""),
        ("raise SystemExit", 0, ""),
        ("import sys; sys.exit('bye')", 1, "bye\n"),
        ("import os; os._exit(7)", 7, ""),
    ],
)
def test_exit_codes(sb: Sandbox, code: str, exit_code: int, stderr: str) -> None:
    r = sb.run(code)
    assert (r.exit_code, r.stderr, r.exception_type) == (exit_code, stderr, None)


def test_stdin_and_unicode(sb: Sandbox) -> None:
    r = sb.run("import sys\nfor line in sys.stdin: print(line.strip()[::-1])", stdin="abc\nhé→\n")
    assert r.stdout == "cba\n→éh\n"


def test_files_in_private_workdir(sb: Sandbox) -> None:
    files = {"solution.py": "def f():\n    return 41\n", "data/in.txt": "1"}
    r = sb.run(
        "import os, solution\nprint(solution.f() + int(open('data/in.txt').read()))\n"
        "print(sorted(os.listdir('.')))",
        files=files,
    )
    assert r.stdout.splitlines() == ["42", "['data', 'solution.py']"], r.stderr
    r2 = sb.run("import os; print(os.listdir('.'))")
    assert r2.stdout == "[]\n"  # nothing left over from the previous run
    with pytest.raises(ValueError):
        sb.run("pass", files={"../escape.py": ""})


def test_stderr_and_truncation_flags(sb: Sandbox) -> None:
    r = sb.run(
        "import sys\nsys.stderr.write('e' * 10000)\nprint('o' * 10)",
        limits=Limits(max_output_bytes=100),
    )
    assert r.stderr == "e" * 100 and r.stderr_truncated
    assert r.stdout == "o" * 10 + "\n" and not r.stdout_truncated


def test_scrubbed_environment(sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "hunter2")
    r = sb.run("import os\nprint(sorted(os.environ))\nprint(os.environ['HOME'] == os.getcwd())")
    assert "SANDBOX_TEST_SECRET" not in r.stdout and "hunter2" not in r.stdout
    assert r.stdout.splitlines()[1] == "True"
    r2 = sb.run(f"print(open('/proc/{os.getpid()}/environ').read())")
    assert "hunter2" not in r2.stdout and r2.exit_code != 0


def test_hash_seed_is_fixed(sb: Sandbox) -> None:
    code = "print(list({'apple', 'banana', 'cherry', 'date', 'elder'}))"
    assert len({sb.run(code).stdout for _ in range(3)}) == 1


def test_queueing_more_callers_than_slots(sb: Sandbox) -> None:
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        for j in range(3):
            r = sb.run(f"import time; time.sleep(0.01); print({i} * 100 + {j})")
            results[i * 100 + j] = r.stdout

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {k: f"{k}\n" for k in results} and len(results) == 24


def test_zygote_restart_after_kill_9() -> None:
    with Sandbox(slots=1) as s:
        assert s.run("print(1)").stdout == "1\n"
        (pid,) = s.zygote_pids()
        os.kill(pid, signal.SIGKILL)
        r = s.run("print(2)")
        assert r.stdout == "2\n" and r.exit_code == 0
        assert s.zygote_pids() != [pid]


def test_closed_sandbox_refuses() -> None:
    s = Sandbox(slots=1)
    s.close()
    s.close()  # idempotent
    with pytest.raises(Exception, match="closed"):
        s.run("print(1)")


def test_no_fd_leaks_in_the_parent(sb: Sandbox) -> None:
    sb.run("pass")
    warm = sb.kernel()  # the kernel zygotes are long-lived: started before counting
    warm.run("pass")
    warm.close()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        sb.run("print(1)", stdin="x")
        sb.run("import os; os._exit(3)")
    k = sb.kernel()
    k.run("x = 1")
    k.close()
    assert len(os.listdir("/proc/self/fd")) <= before + 1


def test_runs_survive_zygote_kills_under_load() -> None:
    with Sandbox(slots=2) as s:
        s.run("pass")
        bad: list[object] = []
        stop = threading.Event()

        def worker() -> None:
            while not stop.is_set():
                r = s.run("print(7)")
                if r.stdout != "7\n":
                    bad.append(r)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for _ in range(2):
            time.sleep(0.4)
            for pid in s.zygote_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # died and not restarted yet
        time.sleep(0.4)
        stop.set()
        for t in threads:
            t.join(30)
        assert bad == []
