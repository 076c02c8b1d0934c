"""python_env's real server whose `/metrics` reports a fixed load (BUSY_CONNECTIONS open
WebSocket connections of 64): for the session pool's least-loaded placement test.

Served by `run_server(module="busy_server", PYTHONPATH=<tests>, BUSY_CONNECTIONS=...)`.
The route goes first, so it answers even where the server has its own `/metrics`.
"""

from __future__ import annotations

import os

from python_env.server import app as server_app
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

CONNECTIONS = int(os.environ.get("BUSY_CONNECTIONS", "0"))


async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(
        "# TYPE python_env_ws_connections gauge\n"
        f"python_env_ws_connections {CONNECTIONS}\npython_env_sessions_max 64\n"
    )


server_app.app.router.routes.insert(0, Route("/metrics", metrics))

if __name__ == "__main__":
    server_app.main()
