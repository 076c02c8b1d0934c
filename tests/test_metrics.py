"""`GET /metrics`: Prometheus' text format, behind the access token like every data
route, and counters that move with real steps on the real server: resets, steps by kind,
runs by where they ran, grades, kernels alive and frozen, slots, errors by code, and
infrastructure faults (a server whose sandbox cannot start anything)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from python_env.server.launcher import Server, run_server, settle
from websockets.sync.client import connect

TOKEN = "metrics-token"
AUTH = {"X-Python-Env-Token": TOKEN}
TASK = "implement-rle-encode"

_SAMPLE = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\})? (\S+)'
)


def parse(text: str) -> dict[tuple[str, str], float]:
    """A strict reader of the text format as served here: HELP and TYPE before a
    metric's samples, at most one label, every value a float. {(name, label value): v}"""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helped: set[str] = set()
    samples: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert help_text and name not in helped, line
            helped.add(name)
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert kind in ("counter", "gauge") and name in helped and name not in types, line
            types[name] = kind
        else:
            m = _SAMPLE.fullmatch(line)
            assert m, f"not a sample line: {line!r}"
            name, _, value, number = m.groups()
            assert name in types, f"sample before its TYPE: {line!r}"
            assert (name, value or "") not in samples, f"duplicate sample: {line!r}"
            samples[name, value or ""] = float(number)
            if types[name] == "counter":
                assert name.endswith("_total") and samples[name, value or ""] >= 0, line
    return samples


@pytest.fixture(scope="module")
def guarded() -> Iterator[Server]:
    with run_server(PYTHON_ENV_TOKEN=TOKEN) as s:
        yield s


def scrape(server: Server) -> dict[tuple[str, str], float]:
    r = httpx.get(server.url + "/metrics", headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def value(samples: dict[tuple[str, str], float], name: str, label: str = "") -> float:
    return samples.get((f"python_env_{name}", label), 0.0)


def send(ws, message: dict | str) -> dict:
    ws.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(ws.recv(timeout=60))


def test_metrics_need_the_token(guarded):
    for headers in ({}, {"X-Python-Env-Token": "wrong"}):
        r = httpx.get(guarded.url + "/metrics", headers=headers, timeout=30)
        assert r.status_code == 401 and r.json()["detail"]["code"] == "UNAUTHORIZED"
    r = httpx.get(guarded.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    spec = httpx.get(guarded.url + "/openapi.json").json()
    assert "401" in spec["paths"]["/metrics"]["get"]["responses"]


def test_every_metric_is_served_with_its_type(guarded):
    samples = scrape(guarded)
    for name in ("ws_connections", "sessions", "resets_total", "errors_total", "scrapes_total"):
        assert any(k[0] == f"python_env_{name}" for k in samples), name
    assert value(samples, "slots", "total") >= 1
    assert value(samples, "sessions_max") == 64
    assert value(samples, "start_time_seconds") > 0


def test_counters_move_with_real_steps(guarded):
    before = scrape(guarded)
    with connect(guarded.ws_url, additional_headers=AUTH) as ws:
        assert send(ws, {"type": "step", "data": {"kind": "run", "code": "1"}})["data"]["code"] == (
            "NO_EPISODE"
        )
        assert send(ws, "{not json")["data"]["code"] == "INVALID_JSON"
        assert send(ws, {"type": "reset", "data": {"task_id": TASK}})["type"] == "observation"
        leave_a_thread = (
            "import threading, time\n"
            "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
            "x = 41\n"
        )
        for action in (
            {"kind": "run", "code": leave_a_thread},
            {"kind": "run", "code": "print(x + 1)", "persistent": False},
            {"kind": "test"},
        ):
            reply = send(ws, {"type": "step", "data": action})
            assert reply["type"] == "observation", reply
        during = scrape(guarded)
        assert send(ws, {"type": "step", "data": {"kind": "submit"}})["type"] == "observation"
        after_submit = scrape(guarded)

    def delta(samples, name, label=""):
        return value(samples, name, label) - value(before, name, label)

    assert delta(during, "ws_connections") == 1
    assert delta(during, "sessions") == 1
    assert delta(during, "resets_total") == 1
    assert delta(during, "steps_total", "run") == 2
    assert delta(during, "steps_total", "test") == 1
    assert delta(during, "runs_total", "kernel") == 1
    assert delta(during, "runs_total", "oneshot") == 1
    assert delta(during, "runs_total", "tests") == 1
    assert delta(during, "kernel_starts_total") == 1
    assert delta(during, "kernels", "alive") == 1
    assert delta(during, "kernels", "frozen") == 1  # the cell left a thread: frozen between
    assert delta(during, "slot_waits_total") >= 2  # the one-shot run and the visible tests
    assert delta(during, "step_seconds_total", "run") > 0
    assert delta(during, "errors_total", "NO_EPISODE") == 1
    assert delta(during, "errors_total", "INVALID_JSON") == 1
    assert delta(during, "scrapes_total") == 1
    grades = sum(delta(after_submit, "grades_total", v) for v in ("passed", "failed"))
    assert grades == 1 and delta(after_submit, "steps_total", "submit") == 1

    # the client left: its connection, session and kernel are gone from the gauges
    def wound_down():
        now = scrape(guarded)
        return all(
            value(now, name, label) == value(before, name, label)
            for name, label in (
                ("ws_connections", ""),
                ("sessions", ""),
                ("kernels", "alive"),
                ("kernels", "frozen"),
                ("slots", "busy"),
            )
        )

    assert settle(wound_down)


def test_http_errors_are_counted(guarded):
    before = scrape(guarded)
    r = httpx.post(guarded.url + "/reset", json={"task_id": "no-such-task"}, headers=AUTH)
    assert r.status_code == 404
    r = httpx.post(
        guarded.url + "/reset",
        content=b"{bad",
        headers={**AUTH, "content-type": "application/json"},
    )
    assert r.status_code == 400
    after = scrape(guarded)
    for code in ("UNKNOWN_TASK", "INVALID_JSON"):
        assert value(after, "errors_total", code) - value(before, "errors_total", code) == 1


def test_infrastructure_faults_are_counted():
    with run_server(PYTHON_ENV_SANDBOX_FAULT="spawn") as faulty:
        with connect(faulty.ws_url) as ws:
            send(ws, {"type": "reset", "data": {}})
            for persistent in (True, False):
                action = {"kind": "run", "code": "print(1)", "persistent": persistent}
                reply = send(ws, {"type": "step", "data": action})
                assert reply["data"]["code"] == "SANDBOX_UNAVAILABLE", reply
        r = httpx.get(faulty.url + "/metrics", timeout=30)  # no token set: open
        samples = parse(r.text)
    assert value(samples, "infrastructure_faults_total") == 2
    assert value(samples, "errors_total", "SANDBOX_UNAVAILABLE") == 2
    assert value(samples, "steps_total", "run") == 0
