"""A client-only process imports no web server: `import python_env` pulls in neither
gradio nor fastapi (see openenv_light.py), `PythonEnv` stays an OpenEnv `EnvClient` in
its sync and async forms, OpenEnv's full package is still there on first use, and a
server with its web UI and a client work side by side in one process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ["gradio", "fastapi", "fastmcp", "starlette", "uvicorn", "python_env.server"]


def run_python(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_python_env_pulls_in_no_server(server):
    seen = run_python(
        """
        import asyncio, json, sys
        import python_env
        from python_env import PythonAction, PythonEnv
        heavy = json.loads(sys.argv[2])
        after_import = sorted(m for m in heavy if m in sys.modules)
        with PythonEnv(base_url=sys.argv[1]) as env:
            env.reset()
            sync_out = env.step(PythonAction(code="print(6 * 7)")).observation.run.stdout

        async def play():
            async with PythonEnv(base_url=sys.argv[1]) as env:
                await env.reset()
                return (await env.step(PythonAction(code="print(7 * 6)"))).observation.run.stdout

        async_out = asyncio.run(play())
        after_use = sorted(m for m in heavy if m in sys.modules)
        from openenv.core import EnvClient, SyncEnvClient  # the real package, on first use
        from openenv.core.env_server import create_app, Environment
        print(json.dumps({
            "after_import": after_import,
            "after_use": after_use,
            "client": issubclass(PythonEnv, EnvClient),
            "sync": isinstance(PythonEnv(base_url=sys.argv[1]).sync(), SyncEnvClient),
            "docker": callable(PythonEnv.from_docker_image),
            "server_api": callable(create_app) and isinstance(Environment, type),
            "out": [sync_out, async_out],
        }))
        """,
        server.url,
        json.dumps(HEAVY),
    )
    assert seen["after_import"] == [] and seen["after_use"] == []
    assert seen["client"] and seen["sync"] and seen["docker"] and seen["server_api"]
    assert seen["out"] == ["42\n", "42\n"]


def test_server_with_web_ui_and_client_in_one_process():
    seen = run_python(
        """
        import json, os, threading, time
        import python_env  # the client first, as a test or a notebook would
        from python_env import PythonAction, PythonEnv
        import httpx, uvicorn
        from python_env.server.app import build_app
        from python_env.server.config import Settings
        from python_env.server.launcher import free_port

        port = free_port()
        app = build_app(Settings(web_interface=True))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        web = httpx.get(url + "/web/", timeout=30, follow_redirects=True).status_code
        with PythonEnv(base_url=url) as env:
            env.reset()
            out = env.step(PythonAction(code="print('both')")).observation.run.stdout
        server.should_exit = True
        thread.join(30)
        print(json.dumps({"web": web, "out": out}))
        """
    )
    assert seen == {"web": 200, "out": "both\n"}
