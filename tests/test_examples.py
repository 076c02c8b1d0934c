"""The examples (the README's quick start as scripts) run against the real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=EXAMPLES.parent,
    )


def test_quickstart_sync(server):
    done = run_example("quickstart_sync.py", server.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2432902008176640000\n"


def test_quickstart_async_reads_the_url_from_the_environment(server):
    done = run_example("quickstart_async.py", env={"PYTHON_ENV_URL": server.url})
    assert done.returncode == 0, done.stderr
    assert done.stdout == "45\n"


def test_quickstart_task_episode(server):
    done = run_example("quickstart_task.py", server.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    task_id = lines[0].split(" - ")[0]
    task = httpx.get(f"{server.url}/tasks/{task_id}", timeout=60).json()
    assert (task["family"], task["difficulty"]) == ("fix-bug", "easy")
    assert any(line.startswith("visible tests: ") for line in lines)
    last = lines[-1].split()
    assert last[0] == "score" and 0.0 <= float(last[1]) <= 1.0 and last[-1] == "True"


def test_quickstart_autoenv(server, tmp_path):
    # AutoEnv caches discovery under the home directory: isolate it.
    done = run_example(
        "quickstart_autoenv.py",
        server.url,
        env={
            "HOME": str(tmp_path),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "TMPDIR": str(tmp_path),
        },
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1024\n"


def test_trl_example_imports_without_trl():
    done = run_example("trl_grpo.py", "--help")
    assert done.returncode == 0, done.stderr
    assert "--mode {tools,text}" in done.stdout


def test_inference_example_needs_a_key(server):
    done = run_example(
        "inference.py",
        env={"PYTHON_ENV_URL": server.url, "HF_TOKEN": "", "OPENAI_API_KEY": ""},
    )
    assert done.returncode == 2
    assert "needs an API key" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_is_covered(name):
    covered = {
        "quickstart_sync.py", "quickstart_async.py", "quickstart_task.py",
        "quickstart_autoenv.py", "trl_grpo.py", "inference.py",
    }  # fmt: skip
    assert name in covered, f"add a test for examples/{name}"
