"""Fixtures of the Docker tier: the image, freshly built once per run, and the removal
of every container the tier started."""

from __future__ import annotations

import contextlib
import subprocess

import pytest
from dockertier import BASE_IMAGE, BASE_SCRIPT, DOCKER_ENV, IMAGE, LABEL, ROOT, docker


@pytest.fixture(scope="session")
def docker_image() -> str:
    """A running engine, the local base image, and `python-env:latest` freshly built."""
    assert BASE_SCRIPT.is_file(), f"missing {BASE_SCRIPT}"
    base = subprocess.run(
        ["bash", str(BASE_SCRIPT)], capture_output=True, text=True, timeout=900, cwd=ROOT
    )
    if base.returncode != 0:
        pytest.fail(
            f"Docker engine / base image unavailable (exit {base.returncode}):\n"
            f"{base.stdout[-2000:]}\n{base.stderr[-4000:]}",
            pytrace=False,
        )
    base_image = base.stdout.strip().splitlines()[-1] if base.stdout.strip() else BASE_IMAGE
    build = subprocess.run(
        [
            "docker", "build", "--network", "host",
            "--build-arg", f"BASE_IMAGE={base_image}",
            "-f", "server/Dockerfile", "-t", IMAGE, ".",
        ],
        capture_output=True, text=True, timeout=900, cwd=ROOT, env=DOCKER_ENV,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(
            f"docker build failed (exit {build.returncode}):\n{build.stdout[-6000:]}\n"
            f"{build.stderr[-3000:]}",
            pytrace=False,
        )
    return IMAGE


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_containers():
    """Remove any container this tier started, even after a crash mid-test."""
    yield
    with contextlib.suppress(Exception):
        ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False)
