"""Helpers of the Docker tier: `docker` calls and a container provider for OpenEnv's
`from_docker_image` that works on this machine (host network only)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from openenv.core.containers.runtime.providers import ContainerProvider

ROOT = Path(__file__).resolve().parents[2]
BASE_SCRIPT = ROOT.parent / "shared" / "docker" / "local-base-image.sh"
IMAGE = os.environ.get("PYTHON_ENV_IMAGE", "python-env:latest")
BASE_IMAGE = os.environ.get("OPENENV_LOCAL_BASE", "openenv-local-base:latest")
LABEL = "python-env-docker-tier"
# The classic builder: the Dockerfile must not need BuildKit (and buildx may be absent).
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env=DOCKER_ENV
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostNetworkDockerProvider(ContainerProvider):
    """`docker run --network host -e PORT=<free port>`: this machine's Docker engine has
    no bridge network, so OpenEnv's LocalDockerProvider (`-p port:8000`) cannot work."""

    def __init__(self, ready_timeout_s: float = 180.0) -> None:
        docker("version", timeout=30)
        self.ready_timeout_s = ready_timeout_s
        self.name: str | None = None
        self.container_id: str | None = None
        self.base_url = ""

    def start_container(
        self,
        image: str,
        port: int | None = None,
        env_vars: dict[str, str] | None = None,
        user: str | None = None,
        extra_args: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> str:
        port = port or free_port()
        self.name = f"python-env-test-{uuid.uuid4().hex[:10]}"
        cmd = ["run", "-d", "--name", self.name, "--label", LABEL, "--network", "host"]
        cmd += ["-e", f"PORT={port}"]
        for key, value in (env_vars or {}).items():
            cmd += ["-e", f"{key}={value}"]
        if user is not None:
            cmd += ["--user", user]
        cmd += [*extra_args, image]
        self.container_id = docker(*cmd, timeout=60).stdout.strip()
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    def running(self) -> bool:
        if self.container_id is None:
            return False
        result = docker("inspect", "-f", "{{.State.Running}}", self.container_id, check=False)
        return result.stdout.strip() == "true"

    def logs(self) -> str:
        if self.container_id is None:
            return ""
        result = docker("logs", "--tail", "60", self.container_id, check=False)
        return (result.stdout + result.stderr)[-4000:]

    def wait_for_ready(self, base_url: str, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.ready_timeout_s)
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    return
            if not self.running():
                raise RuntimeError(f"container exited before it was healthy:\n{self.logs()}")
            time.sleep(0.5)
        raise TimeoutError(f"{base_url} not healthy in time:\n{self.logs()}")

    def stop_container(self) -> None:
        if self.container_id is not None:
            docker("rm", "-f", self.container_id, timeout=60, check=False)
            self.container_id = None


def listed(name: str) -> bool:
    """Does `docker ps -a` still list a container of this name?"""
    out = docker("ps", "-a", "--filter", f"name=^/{name}$", "--format", "{{.Names}}").stdout
    return name in out.split()
