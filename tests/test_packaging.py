"""The wheel, installed into a fresh virtual environment, is found by OpenEnv's
discovery (AutoEnv / AutoAction) and ships openenv.yaml. Uses a private cache dir so
no stale discovery cache is read or left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import contextlib, io, json, sys
from importlib.resources import files
from openenv import AutoAction, AutoEnv
import python_env

url = sys.argv[1]
def qualname(obj):
    return type(obj).__module__ + "." + type(obj).__name__

names = {n: qualname(AutoEnv.from_env(n, base_url=url)) for n in ("python-env", "python_env", "python")}
action = AutoAction.from_env("python-env")
info = AutoEnv.get_env_info("python")
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    AutoEnv.list_environments()  # prints a table
yaml_text = (files("python_env") / "openenv.yaml").read_text()
client = AutoEnv.from_env("python-env", base_url=url)
with client.sync() as env:
    env.reset()
    out = env.step(action(code="print(2 ** 10)")).observation.run.stdout
print(json.dumps({
    "clients": names,
    "action": action.__module__ + "." + action.__name__,
    "info": {k: str(v) for k, v in (info.items() if isinstance(info, dict) else vars(info).items())},
    "listed": printed.getvalue(),
    "yaml": yaml_text,
    "stdout": out,
    "module_file": python_env.__file__,
}))
"""


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is required (pip install uv)")
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(work), str(ROOT)], check=True, capture_output=True
    )
    wheel = next(work.glob("openenv_python_env-*.whl"))
    venv = work / "venv"
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), str(wheel)], check=True)
    return work, python


def test_wheel_ships_yaml_and_is_discovered(fresh_venv, server):
    work, python = fresh_venv
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [str(python), "-c", PROBE, server.url],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(report["clients"].values()) == {"python_env.client.PythonEnv"}
    assert report["action"] == "python_env.models.PythonAction"
    assert "python-env:latest" in json.dumps(report["info"])
    assert "openenv-python-env" in report["listed"]
    assert "default_image: python-env:latest" in report["yaml"]
    assert report["stdout"] == "1024\n"
    assert str(work / "venv") in report["module_file"]  # the wheel, not the checkout

    listed = subprocess.run(
        [shutil.which("uv") or "uv", "pip", "list", "--python", str(python), "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "openenv" in names and "openenv-core" not in names


def test_the_installed_wheel_serves(fresh_venv):
    """The server as the Docker image runs it: from the installed wheel, not the checkout
    (a subpackage missing from pyproject's list fails here, not only in Docker)."""
    work, python = fresh_venv
    done = subprocess.run(
        [str(python), "-c", "import python_env.server.app, python_env.eval.runner"],
        cwd=work,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_package_of_the_checkout_is_in_the_wheel():
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    dirs = {"": "python_env", "server": "python_env.server", "eval": "python_env.eval"}
    found = set()
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        parts = rel.parts
        if not parts:
            found.add("python_env")
        elif parts[0] in ("server", "eval"):
            found.add(".".join([dirs[parts[0]], *parts[1:]]))
    assert found <= listed, sorted(found - listed)
