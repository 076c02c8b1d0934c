"""The published OpenAPI contract is the real one: python_env's own models on /reset,
/step and /state, every status the server answers documented, and what the schema
allows the server accepts. schemathesis (every check, fixed seed, bounded examples)
holds the server to it over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx


def _ref(schema: dict) -> str:
    return schema["$ref"].rsplit("/", 1)[-1]


def test_episode_routes_publish_python_env_models(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    paths, models = spec["paths"], spec["components"]["schemas"]
    reset = paths["/reset"]["post"]
    body = reset["requestBody"]["content"]["application/json"]["schema"]
    assert "ResetOptions" in str(body)
    assert set(models["ResetOptions"]["properties"]) == {
        "seed", "episode_id", "task_id", "family", "difficulty", "mode", "split", "index"
    }  # fmt: skip
    assert models["ResetOptions"]["additionalProperties"] is False
    assert {"200", "400", "404", "409", "413", "422"} <= set(reset["responses"])
    step = paths["/step"]["post"]
    assert _ref(step["requestBody"]["content"]["application/json"]["schema"]) == "StepBody"
    assert "PythonAction" in str(models["StepBody"])
    assert {"400", "409", "422"} <= set(step["responses"])
    state = paths["/state"]["get"]["responses"]["200"]["content"]["application/json"]
    assert _ref(state["schema"]) == "PythonState"


def test_schemathesis_finds_nothing(server, tmp_path):
    exe = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [
            str(exe),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--workers",
            "1",
            "--no-color",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
