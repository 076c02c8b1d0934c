"""The Ray tier's fixtures: the cluster `scripts/ray-tier.sh` started (its address in
PYTHON_ENV_RAY_ADDRESS) and two python_env replicas on it, one per node.

Outside that script (no Ray in the project's .venv, no cluster) every test here is
skipped: run the tier with `bash scripts/ray-tier.sh`. (This directory is not a
package: with it on sys.path, `import ray` still finds the real Ray, which wins.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from raytier import ADDRESS, SERVER_ENV


@pytest.fixture(scope="session")
def ray_address() -> str:
    pytest.importorskip(
        "ray.util", reason="the Ray tier runs in .venv-ray: bash scripts/ray-tier.sh"
    )
    if not ADDRESS:
        pytest.skip("no Ray cluster: run the tier with bash scripts/ray-tier.sh")
    return ADDRESS


@pytest.fixture(scope="session")
def replicas(ray_address: str) -> Iterator[list]:
    from python_env.eval.ray_replicas import start_replicas, stop_replicas

    stop_replicas(ray_address)  # none should be left, but a crashed earlier run may
    infos = start_replicas(ray_address, env=SERVER_ENV)
    try:
        yield infos
    finally:
        assert stop_replicas(ray_address) == len(infos)
