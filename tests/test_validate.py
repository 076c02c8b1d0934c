"""`openenv validate`, run as users run it: on the package and on a live server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _openenv(*args: str, cwd: Path = ROOT, timeout: float = 240) -> subprocess.CompletedProcess:
    exe = shutil.which("openenv", path=str(Path(sys.executable).parent)) or shutil.which("openenv")
    assert exe, "the `openenv` CLI must be installed with the package"
    return subprocess.run(
        [exe, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The package as a user validates (and `openenv push` uploads) it: the files git
    knows, plus the project's own `.venv` (which validate skips). Not the working tree:
    the tier environments (.venv-runtime, .venv-grpo) hold symlinks validate refuses."""
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    dest = tmp_path_factory.mktemp("checkout") / "python_env"
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def test_validate_static_passes(checkout: Path) -> None:
    result = _openenv("validate", str(checkout), "--level", "static", "--skip-build", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    statuses = {r["check_id"]: r["status"] for r in report["results"]}
    assert statuses.get("static.manifest") == "pass", statuses
    assert report["verdict"] == "pass"


def test_validate_default_levels_do_not_fail(checkout: Path) -> None:
    """Up to `semantic`: what this build cannot check is SKIP (verdict WARN), never FAIL."""
    result = _openenv("validate", str(checkout), "--json", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    failed = [r for r in report["results"] if r["status"] in ("fail", "error")]
    assert not failed, failed
    assert report["verdict"] in ("pass", "warn")


def test_multi_mode_deployment_ready() -> None:
    """OpenEnv's structural checks: uv.lock, `server = ...:main`, app.main() and its guard."""
    from openenv.cli._validation import get_deployment_modes, validate_multi_mode_deployment

    ok, issues = validate_multi_mode_deployment(ROOT)
    assert ok, issues
    assert all(get_deployment_modes(ROOT).values())


def test_validate_running_server(server) -> None:
    result = _openenv("validate", "--url", server.url, "--json", "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    criteria = {c["id"]: c["passed"] for c in report["criteria"]}
    assert report["passed"], criteria
    for check in (
        "openapi_version_available",
        "health_endpoint",
        "metadata_endpoint",
        "schema_endpoint",
        "mcp_endpoint",
        "mode_endpoint_consistency",
    ):
        assert criteria.get(check) is True, (check, criteria)
    assert report["mode"] == "simulation"
