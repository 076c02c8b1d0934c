"""Transport only: the OpenEnv app (HTTP + WebSocket), settings from the environment,
typed errors as 4xx, read-only task listing, and `main()`.

Run: `python -m python_env.server.app --port 8000` (or the `python-env-server` script).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.types import ConcurrencyConfig

from ..models import PythonAction, PythonObservation, PythonState, TaskInfo
from .config import Settings
from .python_env_environment import ActionError, PythonEnvironment, PythonMetadata
from .runtime import close_runtime, get_runtime
from .tasks import UnknownTaskError


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    gradio_builder = None
    if settings.web_interface:
        from .web_ui import build_python_tab

        gradio_builder = build_python_tab
    app = create_app(
        PythonEnvironment,
        PythonAction,
        PythonObservation,
        env_name="python_env",
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=settings.max_concurrent_envs,
            session_timeout=settings.session_timeout_s,
        ),
        state_cls=PythonState,
        gradio_builder=gradio_builder,
        # Only the Python tab: OpenEnv's Playground would share one environment.
        show_default_tab=False,
    )

    # Start the sandbox and load the task bank before serving, so /health means "ready"
    # and no first request pays for it; stop the sandbox when the server stops.
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(get_runtime)
        try:
            async with serve(app_):
                yield
        finally:
            await asyncio.to_thread(close_runtime)

    app.router.lifespan_context = lifespan

    @app.exception_handler(ActionError)
    async def action_error(_: Request, exc: ActionError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.http_status,
            content={"detail": {"code": exc.code, "message": exc.message}},
        )

    # OpenEnv pins /metadata to its closed model; serve the richer superset instead.
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", "") != "/metadata"]

    @app.get("/metadata", response_model=PythonMetadata, tags=["Environment Info"])
    def metadata() -> PythonMetadata:
        return PythonEnvironment().get_metadata()

    @app.get("/tasks", tags=["Tasks"], summary="List tasks (no hidden data)")
    def list_tasks(
        family: str | None = Query(default=None), difficulty: str | None = Query(default=None)
    ) -> list[dict]:
        tasks = PythonEnvironment().list_tasks(family or "all")
        return [t for t in tasks if difficulty is None or t["difficulty"] == difficulty]

    @app.get("/tasks/{task_id}", response_model=TaskInfo, tags=["Tasks"])
    def get_task(task_id: str) -> TaskInfo:
        try:
            return get_runtime().bank.get(task_id).info()
        except UnknownTaskError as exc:
            raise HTTPException(
                status_code=404, detail={"code": "UNKNOWN_TASK", "message": str(exc).strip("'\"")}
            ) from None

    return app


app = build_app()


def main() -> None:
    import uvicorn

    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description="Serve python_env (HTTP + WebSocket).")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
