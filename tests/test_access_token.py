"""The optional access token (PYTHON_ENV_TOKEN): every HTTP route but the open ones and
every WebSocket need it; `PythonEnv(token=...)` sends it; a browser opens the web UI once
with `?token=` and carries it on as a cookie. A server of its own, with the web UI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from python_env import PythonAction, PythonEnv
from python_env.errors import Unauthorized
from python_env.server.launcher import Server, run_server
from websockets.sync.client import connect

TOKEN = "correct-horse-battery"


@pytest.fixture(scope="module")
def guarded() -> Iterator[Server]:
    with run_server(PYTHON_ENV_TOKEN=TOKEN, ENABLE_WEB_INTERFACE="true") as s:
        yield s


def test_open_paths_need_no_token(guarded):
    for path in ("/health", "/openapi.json", "/docs"):
        assert httpx.get(guarded.url + path).status_code == 200, path


def test_http_routes_need_the_token(guarded):
    for method, path in (
        ("POST", "/reset"),
        ("GET", "/state"),
        ("GET", "/metadata"),
        ("GET", "/tasks"),
    ):
        for headers in ({}, {"X-Python-Env-Token": "wrong"}, {"Authorization": "Bearer wrong"}):
            r = httpx.request(
                method, guarded.url + path, headers=headers, json={} if method == "POST" else None
            )
            assert r.status_code == 401 and r.json()["detail"]["code"] == "UNAUTHORIZED", (
                path,
                headers,
            )
        for headers in ({"X-Python-Env-Token": TOKEN}, {"Authorization": f"Bearer {TOKEN}"}):
            r = httpx.request(
                method, guarded.url + path, headers=headers, json={} if method == "POST" else None
            )
            assert r.status_code == 200, (path, headers, r.text[:200])
    spec = httpx.get(guarded.url + "/openapi.json").json()
    assert "401" in spec["paths"]["/reset"]["post"]["responses"]


def test_websocket_needs_the_token(guarded):
    with connect(guarded.ws_url) as ws:
        reply = json.loads(ws.recv(timeout=30))
        assert reply["type"] == "error" and reply["data"]["code"] == "UNAUTHORIZED"
    with pytest.raises(Unauthorized):
        with PythonEnv(base_url=guarded.url) as env:
            env.reset()
    with PythonEnv(base_url=guarded.url, token=TOKEN) as env:
        env.reset()
        out = env.step(PythonAction(code="print('in')")).observation.run.stdout
    assert out == "in\n"


def test_the_web_ui_takes_the_token_once_then_a_cookie(guarded):
    assert httpx.get(guarded.url + "/web/").status_code == 401
    with httpx.Client(base_url=guarded.url, follow_redirects=True) as browser:
        first = browser.get("/web/", params={"token": TOKEN})
        assert first.status_code == 200 and "python_env_token" in browser.cookies
        assert browser.get("/web/").status_code == 200  # the cookie alone
        assert browser.get("/web/", params={"token": "wrong"}).status_code == 200  # cookie wins
    assert httpx.get(guarded.url + "/web/", params={"token": "wrong"}).status_code == 401


def test_the_token_is_a_setting():
    from python_env.server.config import Settings

    assert Settings.from_env({}).token == ""
    assert Settings.from_env({"PYTHON_ENV_TOKEN": " s3cret "}).token == "s3cret"
