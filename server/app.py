"""Transport only: the OpenEnv app (HTTP + WebSocket) behind the guard (`guard.py`),
typed errors as 4xx/503, honest schemas for /reset, /step and /state, read-only task
listing, and `main()`.

Run: `python -m python_env.server.app --port 8000` (or the `python-env-server` script),
or from a checkout `uvicorn server.app:app [--reload]` (see `server/__init__.py`).
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python server/app.py`
    import runpy
    import sys

    sys.path.pop(0)  # this folder's modules are the package's, not top-level ones
    runpy.run_module("python_env.server.app", run_name="__main__")
    raise SystemExit(0)

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, cast

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from openenv.core.env_server.http_server import create_fastapi_app
from openenv.core.env_server.serialization import serialize_observation
from openenv.core.env_server.types import ConcurrencyConfig
from pydantic import BaseModel, ConfigDict, Field

from ..models import (
    Difficulty,
    Family,
    PythonAction,
    PythonObservation,
    PythonState,
    ResetOptions,
    TaskInfo,
)
from . import allocator, metrics, open_files
from .config import Settings
from .guard import OPEN_PATHS, Guard
from .python_env_environment import ActionError, PythonEnvironment, PythonMetadata
from .runtime import close_runtime, get_runtime
from .tasks import UnknownTaskError

MAX_PAGE = 1000
"""Most tasks one paged `/tasks` request returns (an unpaged one returns them all)."""

TrainerSplit = Literal["all", "train", "validation", "test"]


class TaskSummary(BaseModel):
    """One line of `/tasks`: public, no hidden data."""

    id: str
    family: Family
    difficulty: Difficulty
    title: str
    source: str
    split: Literal["train", "validation", "test"]
    base_id: str | None = Field(description="the source task a variant derives from")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, for clients to match on (README: errors)")
    message: str


class ErrorReply(BaseModel):
    detail: ErrorDetail


class EpisodeReply(BaseModel):
    """An observation on the wire, as OpenEnv's clients read it."""

    observation: PythonObservation
    reward: float | None = None
    done: bool = False
    metadata: dict[str, Any] | None = None


class StepBody(BaseModel):
    """HTTP /step is stateless (a fresh environment per request): it validates the
    action and answers NO_EPISODE; play episodes over the WebSocket `/ws`."""

    model_config = ConfigDict(extra="forbid")
    action: PythonAction


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Route-specific error answers (the guard's 400/401/413: `_document_guard`)."""
    text = {
        404: "no such task, split or index (UNKNOWN_TASK, BAD_SPLIT)",
        409: "not possible now, or options that contradict each other (NO_EPISODE, BAD_RESET)",
    }
    return {s: {"model": ErrorReply, "description": text[s]} for s in statuses}


_EPISODE_ROUTES = {("/reset", "POST"), ("/step", "POST"), ("/state", "GET"), ("/metadata", "GET")}


async def _stateless(act: Callable[[PythonEnvironment], Any]) -> JSONResponse:
    """HTTP's stateless episode routes: a fresh environment per request, closed after."""

    def play() -> dict[str, Any]:
        env = PythonEnvironment()
        try:
            return serialize_observation(act(env))
        finally:
            env.close()

    return JSONResponse(await asyncio.to_thread(play))


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    concurrency = ConcurrencyConfig(
        max_concurrent_envs=settings.max_concurrent_envs,
        session_timeout=settings.session_timeout_s,
    )
    # OpenEnv's create_app reads ENABLE_WEB_INTERFACE itself; choose from the settings.
    if settings.web_interface:
        from openenv.core.env_server.web_interface import create_web_interface_app

        from .web_ui import build_python_tab

        app = create_web_interface_app(
            cast(Any, PythonEnvironment),
            PythonAction,
            PythonObservation,
            env_name="python_env",
            concurrency_config=concurrency,
            state_cls=PythonState,
            gradio_builder=build_python_tab,
            # Only the Python tab: OpenEnv's Playground would share one environment.
            show_default_tab=False,
        )
    else:
        app = create_fastapi_app(
            PythonEnvironment,
            PythonAction,
            PythonObservation,
            env_name="python_env",
            concurrency_config=concurrency,
            state_cls=PythonState,
        )

    # Start the sandbox and load the task bank before serving, so /health means "ready"
    # and no first request pays for it; stop the sandbox when the server stops.
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        open_files.raise_limit()  # thousands of sessions: a socket each, kernels a few fds
        allocator.cap_arenas(settings.malloc_arenas)  # before the sessions' threads
        await asyncio.to_thread(get_runtime)
        try:
            async with serve(app_):
                yield
        finally:
            await asyncio.to_thread(close_runtime)

    app.router.lifespan_context = lifespan

    @app.exception_handler(ActionError)
    async def action_error(_: Request, exc: ActionError) -> JSONResponse:
        metrics.error(exc.code)
        return JSONResponse(
            status_code=exc.http_status,
            content={"detail": {"code": exc.code, "message": exc.message}},
        )

    # OpenEnv's /reset, /step and /state publish generic models (and its /metadata a
    # closed one): serve the same routes with python_env's real models instead.
    app.router.routes = [
        r
        for r in app.router.routes
        if not any(
            (getattr(r, "path", ""), m) in _EPISODE_ROUTES for m in getattr(r, "methods", ())
        )
    ]

    @app.post(
        "/reset",
        response_model=None,
        tags=["Environment Control"],
        summary="Start an episode (stateless over HTTP: use /ws to play it)",
        responses={200: {"model": EpisodeReply}, **_errors(404, 409)},
    )
    async def reset(options: Annotated[ResetOptions | None, Body()] = None) -> JSONResponse:
        chosen = (options or ResetOptions()).model_dump(exclude_none=True)

        return await _stateless(lambda env: env.reset(**chosen))

    @app.post(
        "/step",
        response_model=None,
        tags=["Environment Control"],
        summary="Validate an action (stateless: always NO_EPISODE; play over /ws)",
        responses={200: {"model": EpisodeReply}, **_errors(409)},
    )
    async def step(body: StepBody) -> JSONResponse:
        return await _stateless(lambda env: env.step(body.action))

    @app.get(
        "/state",
        response_model=PythonState,
        tags=["State Management"],
    )
    def state() -> PythonState:
        return PythonEnvironment().state

    @app.get(
        "/metadata",
        response_model=PythonMetadata,
        tags=["Environment Info"],
    )
    def metadata() -> PythonMetadata:
        return PythonEnvironment().get_metadata()

    @app.get(
        "/tasks",
        tags=["Tasks"],
        summary="List tasks (no hidden data); page with offset/limit",
        response_model=list[TaskSummary],
        responses={
            200: {
                "headers": {
                    "X-Total-Count": {
                        "description": "tasks matching the filters, over every page",
                        "schema": {"type": "integer"},
                    }
                }
            }
        },
    )
    def list_tasks(
        family: Annotated[Family | None, Query()] = None,
        difficulty: Annotated[Difficulty | None, Query()] = None,
        split: Annotated[
            TrainerSplit | None, Query(description="train, validation or test (or all)")
        ] = None,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        limit: Annotated[
            int | None, Query(ge=1, le=MAX_PAGE, description="at most this many (default: all)")
        ] = None,
    ) -> JSONResponse:
        tasks = get_runtime().bank.query(split=split, family=family, difficulty=difficulty)
        page = tasks[offset : None if limit is None else offset + limit]
        return JSONResponse(page, headers={"X-Total-Count": str(len(tasks))})

    @app.get("/tasks/{task_id}", response_model=TaskInfo, tags=["Tasks"], responses=_errors(404))
    def get_task(task_id: str) -> TaskInfo:
        try:
            return get_runtime().bank.get(task_id).info()
        except UnknownTaskError as exc:
            raise HTTPException(
                status_code=404, detail={"code": "UNKNOWN_TASK", "message": str(exc).strip("'\"")}
            ) from None

    @app.get(
        "/metrics",
        tags=["Monitoring"],
        summary="Load and health in Prometheus' text format (cheap: scrape every second)",
        response_class=PlainTextResponse,
    )
    async def metrics_route() -> PlainTextResponse:
        runtime = get_runtime()
        extra = {
            ("sessions_max", "", ""): float(settings.max_concurrent_envs),
            ("slots", "state", "total"): float(runtime.sandbox.slots),
        }
        return PlainTextResponse(metrics.render(extra), media_type=metrics.CONTENT_TYPE)

    _document_guard(app, bool(settings.token))
    app.add_middleware(Guard, token=settings.token, idle_timeout_s=settings.session_timeout_s)
    return app


def _document_guard(app: FastAPI, token: bool) -> None:
    """Publish what the guard and OpenEnv's own routes answer besides their models: 400
    (INVALID_JSON) and 413 for any JSON body, 401 everywhere but the open paths when a
    token is set, and for OpenEnv's task API (`/{env_name}/...`) the one environment
    name served and its 404 (another name, an unknown split or index)."""
    build = app.openapi
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorReply"}}}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path, operations in schema.get("paths", {}).items():
                for op in operations.values():
                    responses = op.setdefault("responses", {})
                    if "requestBody" in op:
                        responses.setdefault(
                            "400", {"description": "malformed JSON", "content": error}
                        )
                        responses.setdefault(
                            "413", {"description": "body over 16 MiB", "content": error}
                        )
                    if token and path not in OPEN_PATHS:
                        responses.setdefault(
                            "401", {"description": "no or wrong token", "content": error}
                        )
                    if path.startswith("/{env_name}/"):
                        for param in op.get("parameters", []):
                            if param.get("name") == "env_name":
                                param["schema"] = {"type": "string", "enum": ["python_env"]}
                        responses.setdefault(
                            "404", {"description": "unknown environment, split or index"}
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
