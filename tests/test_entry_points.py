"""The ways a person starts things: the environment file as a script (a self-check
episode) and the console scripts, which honour --host/--port."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from python_env.server.launcher import free_port

ROOT = Path(__file__).resolve().parents[1]


def test_environment_file_plays_a_self_check_episode():
    done = subprocess.run(
        [sys.executable, str(ROOT / "server" / "python_env_environment.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["reset", "run", "test", "submit"]
    assert "stdout='3." in lines[1]  # the sandbox's Python version
    assert "score" in lines[3] and "done=True" in lines[3]
    assert lines[4].startswith("isolation: rlimits")


@pytest.mark.parametrize("script", ["python-env-server", "server"])
def test_console_script_honours_host_and_port(script):
    exe = shutil.which(script, path=str(Path(sys.executable).parent))
    assert exe, f"console script {script!r} is not installed"
    port = free_port()
    process = subprocess.Popen(
        [exe, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"{script} exited with {process.returncode}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{script} never answered on port {port}"
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
