"""The ways a person starts things: the environment file as a script (a self-check
episode) and the console scripts, which honour --host/--port."""

from __future__ import annotations

import os
import shutil
import signal
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


def _play_one_episode(url: str) -> str:
    from python_env import PythonAction, PythonEnv

    with PythonEnv(base_url=url) as env:
        env.reset()
        return env.step(PythonAction(code="print('from a checkout')")).observation.run.stdout


@pytest.mark.parametrize("reload", [False, True], ids=["plain", "reload"])
def test_uvicorn_serves_server_app_from_the_repo_root(reload):
    """OpenEnv's `app: server.app:app` and its template's dev loop, from a checkout."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("uvicorn")),
        "server.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(["--reload", "--reload-dir", str(ROOT / "server")] if reload else []),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # --reload runs the server in a child: stop the group
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "uvicorn server.app:app never answered"
            time.sleep(0.2)
        assert _play_one_episode(f"http://127.0.0.1:{port}") == "from a checkout\n"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_openenv_uv_provider_starts_the_checkout(monkeypatch):
    """OpenEnv's UVProvider: `uv run --isolated --project <repo> -- uvicorn server.app:app`
    (in the current directory, so from the repo root), then a client plays through it."""
    from openenv.core.containers.runtime import UVProvider
    from python_env import PythonAction, PythonEnv

    if shutil.which("uv") is None:
        pytest.fail("uv is required (pip install uv)")
    monkeypatch.chdir(ROOT)
    provider = UVProvider(project_path=str(ROOT), host="127.0.0.1", context_timeout_s=600)
    try:
        with PythonEnv(provider=provider) as env:
            env.reset()
            out = env.step(PythonAction(code="print(6 * 7)")).observation.run.stdout
    finally:
        provider.stop()
    assert out == "42\n"
