"""Every HTTP route of the real server, and bad input over HTTP."""

from __future__ import annotations

import httpx


def test_health(server):
    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    assert r.json()["status"] == "healthy"


def test_docs_and_openapi(server):
    r = httpx.get(f"{server.url}/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    for path in ("/reset", "/step", "/state", "/metadata", "/tasks", "/tasks/{task_id}"):
        assert path in paths


def test_schema_lists_typed_fields(server):
    schema = httpx.get(f"{server.url}/schema").json()
    assert set(schema["action"]["properties"]) >= {
        "kind",
        "code",
        "stdin",
        "persistent",
        "findings",
    }
    assert set(schema["observation"]["properties"]) >= {"run", "tests", "grade", "task", "message"}
    assert set(schema["state"]["properties"]) >= {"mode", "task_id", "solution", "steps_remaining"}


def test_metadata_reports_tasks_isolation_and_limits(server):
    meta = httpx.get(f"{server.url}/metadata").json()
    assert meta["name"] == "python_env"
    assert meta["version"]
    assert sum(sum(d.values()) for d in meta["task_counts"].values()) >= 100
    assert set(meta["task_counts"]) == {"implement", "fix-bug", "fix-syntax", "optimize", "review"}
    assert "rlimits" in meta["isolation"]["active"]
    assert meta["limits"]["wall_s"] > 0 and meta["limits"]["max_code_chars"] == 1_000_000
    assert meta["max_concurrent_envs"] == 64


def test_reset_free_sandbox_over_http(server):
    r = httpx.post(f"{server.url}/reset", json={})
    assert r.status_code == 200
    body = r.json()
    assert body["done"] is False
    assert body["observation"]["kind"] == "reset"
    assert body["observation"]["task"] is None
    assert body["observation"]["max_steps"] is None


def test_reset_with_task_over_http(server):
    task_id = httpx.get(f"{server.url}/tasks", params={"family": "implement"}).json()[0]["id"]
    body = httpx.post(f"{server.url}/reset", json={"task_id": task_id}).json()
    task = body["observation"]["task"]
    assert task["task_id"] == task_id
    assert task["statement"] and task["starter_code"] is not None
    assert "reference_solution" not in task and "hidden_cases" not in task


def test_reset_unknown_task_is_404_with_code(server):
    r = httpx.post(f"{server.url}/reset", json={"task_id": "no-such-task"})
    assert r.status_code == 404
    assert r.json()["detail"]["code"] == "UNKNOWN_TASK"
    assert "no-such-task" in r.json()["detail"]["message"]


def test_reset_options_are_typed_by_the_schema_and_conflicts_are_409(server):
    for bad in ({"family": "juggling"}, {"seed": False}, {"seed": -1}, {"colour": "red"}):
        r = httpx.post(f"{server.url}/reset", json=bad)
        assert r.status_code == 422, (bad, r.text[:200])
    r = httpx.post(f"{server.url}/reset", json={"mode": "free", "family": "implement"})
    assert r.status_code == 409 and r.json()["detail"]["code"] == "BAD_RESET"
    r = httpx.post(f"{server.url}/reset", json={"split": "all", "index": 0, "task_id": "x"})
    assert r.status_code == 409 and r.json()["detail"]["code"] == "BAD_RESET"


def test_http_step_is_stateless_and_says_so(server):
    r = httpx.post(f"{server.url}/step", json={"action": {"kind": "run", "code": "print(1)"}})
    assert r.status_code == 409
    assert r.json()["detail"]["code"] == "NO_EPISODE"
    assert "WebSocket" in r.json()["detail"]["message"]


def test_http_step_validation_errors_are_422(server):
    cases = [
        {"action": {"kind": "dance"}},
        {"action": {"code": 42}},
        {"action": {"kode": "print(1)"}},
        {"action": {"code": "x" * 1_000_001}},
        {"action": {"kind": "submit", "findings": [{"line": 0, "category": "bug"}]}},
        {},
    ]
    for payload in cases:
        r = httpx.post(f"{server.url}/step", json=payload, timeout=30)
        assert r.status_code == 422, (payload.get("action", {}).keys(), r.text[:200])


def test_state_route(server):
    r = httpx.get(f"{server.url}/state")
    assert r.status_code == 200
    state = r.json()
    assert state["mode"] == "idle" and state["step_count"] == 0


def test_task_routes_hide_hidden_data(server, bank):
    summaries = httpx.get(f"{server.url}/tasks").json()
    assert len(summaries) >= 100
    assert set(summaries[0]) >= {"id", "family", "difficulty", "title"}
    task = bank.get(summaries[0]["id"])
    detail = httpx.get(f"{server.url}/tasks/{task.id}")
    assert detail.status_code == 200
    text = detail.text
    assert task.reference_solution.strip() not in text
    assert "hidden" not in detail.json()
    easy = httpx.get(f"{server.url}/tasks", params={"difficulty": "easy"}).json()
    assert easy and all(t["difficulty"] == "easy" for t in easy)
    missing = httpx.get(f"{server.url}/tasks/nope")
    assert missing.status_code == 404 and missing.json()["detail"]["code"] == "UNKNOWN_TASK"


def test_bad_json_is_a_typed_400_never_a_500(server):
    bodies = [
        b"{not json",
        b'{"action": {"kind": "run", "stdin": "\\ud800"}}',  # a lone surrogate
        b'{"action": {"kind": "run"}, "seed": ' + b"9" * 5000 + b"}",  # over the digit limit
        b"[" * 5000 + b"]" * 5000,  # nesting
    ]
    for route in ("/step", "/reset"):
        for body in bodies:
            r = httpx.post(
                f"{server.url}{route}", content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code == 400, (route, body[:40], r.text[:200])
            assert r.json()["detail"]["code"] == "INVALID_JSON"
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_openenv_task_api(server):
    splits = httpx.get(f"{server.url}/python_env/splits").json()
    names = [s["name"] for s in splits]
    assert names[0] == "all" and "review" in names
    total = httpx.post(f"{server.url}/python_env/num_tasks", json={"split": "all"}).json()
    assert total["num_tasks"] >= 100
    first = httpx.post(f"{server.url}/python_env/task", json={"split": "optimize", "index": 0})
    assert first.status_code == 200 and first.json()["task"]["family"] == "optimize"
    page = httpx.post(
        f"{server.url}/python_env/task_range", json={"split": "all", "start": 0, "stop": 5}
    ).json()["tasks"]
    assert len(page) == 5
    bad = httpx.post(f"{server.url}/python_env/task", json={"split": "all", "index": 10**6})
    assert bad.status_code == 404 and bad.json()["detail"]["code"] == "BAD_SPLIT"
    unknown = httpx.post(f"{server.url}/python_env/num_tasks", json={"split": "nope"})
    assert unknown.status_code == 404 and unknown.json()["detail"]["code"] == "BAD_SPLIT"
    typed = httpx.post(f"{server.url}/python_env/num_tasks", json={"split": {"a": 1}})
    assert typed.status_code == 422
    reset = httpx.post(f"{server.url}/reset", json={"split": "all", "index": 10**6})
    assert reset.status_code == 404 and reset.json()["detail"]["code"] == "BAD_SPLIT"
    reset = httpx.post(f"{server.url}/reset", json={"split": "optimize", "index": 0}).json()
    assert reset["observation"]["task"]["task_id"] == first.json()["task"]["id"]
