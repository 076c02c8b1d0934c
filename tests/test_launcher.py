"""The launcher's process helpers that tests, benchmarks and the Ray replicas share:
`stop_process` ends even a process that ignores SIGTERM and reaps it; `wait_healthy`
fails with the process's exit status instead of waiting out its time."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from python_env.server.launcher import free_port, stop_process, wait_healthy

IGNORE_TERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_stop_process_terminates_a_process_that_obeys_sigterm():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(process)
    assert process.returncode == -signal.SIGTERM


def test_stop_process_kills_a_process_that_ignores_sigterm():
    process = subprocess.Popen([sys.executable, "-c", IGNORE_TERM], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"ready\n"
        stop_process(process, timeout_s=0.5)
        assert process.returncode == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_stop_process_leaves_an_exited_process_as_it_ended():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    stop_process(process)
    assert process.returncode == 3


def test_wait_healthy_reports_a_process_that_exits_before_answering():
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    try:
        with pytest.raises(RuntimeError, match=r"^floor exited with 7: see its log$"):
            wait_healthy(
                process,
                f"http://127.0.0.1:{free_port()}",
                60,
                what="floor",
                detail=lambda: ": see its log",
            )
    finally:
        stop_process(process)


def test_wait_healthy_gives_up_when_nothing_answers_in_time():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(RuntimeError, match=r"^server not healthy after 0 s$"):
            wait_healthy(process, f"http://127.0.0.1:{free_port()}", 0.3)
    finally:
        stop_process(process)
    assert process.returncode == -signal.SIGTERM
