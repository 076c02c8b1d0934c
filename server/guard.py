"""The transport's guard: an ASGI middleware in front of OpenEnv's app.

OpenEnv's WebSocket handler is not copied here; this wraps it from the outside, for
three things it does not do:

- **Bad input gets a typed error and loses nothing.** Every JSON body and WebSocket
  frame is parsed here first with limits (depth, integer size, valid Unicode) and must
  be an object; what fails answers `INVALID_JSON` / `VALIDATION_ERROR` (HTTP 400 / a
  WebSocket error frame) instead of closing the session or answering 500. A refused
  frame is handed to OpenEnv as an unknown message type, so its error reply keeps its
  place in the order of replies; the reply is rewritten here to the real error.
- **A departed client's work stops at once.** A task of its own reads the socket while
  OpenEnv's handler waits for a step: when the client closes, drops, misses its pings
  or says `close`, the connection's environment is closed from here (see
  `departures`), messages it had queued are dropped, and nothing more is sent to it.
- **Idle connections are reaped here**, not by OpenEnv (whose clock counts a step in
  flight as idle): a connection with nothing in flight and no message for
  `SESSION_TIMEOUT_S` gets a `SESSION_TIMEOUT` error frame and is closed, and its
  environment with it. A step may run as long as its limits allow.
- **Typed error codes on the wire and an optional access token** (`PYTHON_ENV_TOKEN`).
  An environment's `ActionError` reaches OpenEnv's handler as `EXECUTION_ERROR` with
  the message `[CODE] text`; its frame is rewritten to `code=CODE, message=text`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from . import departures, metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_DEPTH = 64
"""Deepest nesting of arrays/objects accepted in a request (python_env needs 4)."""
MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest HTTP JSON body (uvicorn's default WebSocket frame limit is the same)."""

TOKEN_HEADER = "x-python-env-token"
TOKEN_COOKIE = "python_env_token"
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
"""Served without the token: health checks, and the API's description (no data)."""

_ACTION_ERROR = re.compile(r"\[([A-Z][A-Z_]*)\] (.*)", re.S)
_REFUSED = "python_env.refused:"


class BadInput(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def parse_json(raw: str | bytes) -> Any:
    """`json.loads` that fails only with BadInput: too deep, integers over Python's
    digit limit, invalid UTF-8 and lone surrogates (unencodable later) are refused."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise BadInput("INVALID_JSON", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, the int digit limit, bad UTF-8
        raise BadInput("INVALID_JSON", f"invalid JSON: {exc}"[:300]) from None
    # A lone surrogate can only come from a \uD800-\uDFFF escape: check strings only then.
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    escapes = "\\ud" in text or "\\uD" in text
    if not escapes and text.count("[") + text.count("{") <= MAX_DEPTH:
        return value  # too few brackets to nest too deep: no walk (most messages)
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, str) and escapes:
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadInput(
                    "INVALID_JSON", "a string holds a lone surrogate (not valid Unicode)"
                ) from None
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BadInput("INVALID_JSON", f"nested deeper than {MAX_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            todo.extend((child, depth + 1) for child in children)
    return value


class Guard:
    """See the module docstring. `token`: required of every client if set."""

    def __init__(self, app: ASGIApp, token: str = "", idle_timeout_s: float | None = None) -> None:
        self.app, self.token, self.idle_timeout_s = app, token, idle_timeout_s
        self.connections: set[_Connection] = set()
        self._reaper: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- the access token ----------------------------------------------------------------

    def _presented(self, scope: Scope) -> tuple[bool, bool]:
        """(authorized, from the query string): the token as a header, a bearer token,
        the cookie the web UI gets, or `?token=` (for a browser opening /web)."""
        if not self.token or scope["path"] in OPEN_PATHS:
            return True, False
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        offered = [headers.get(TOKEN_HEADER, "")]
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered.append(auth[7:].strip())
        if "cookie" in headers:
            morsel = SimpleCookie(headers["cookie"]).get(TOKEN_COOKIE)
            offered.append(morsel.value if morsel else "")
        if any(o and hmac.compare_digest(o.encode(), self.token.encode()) for o in offered):
            return True, False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = query.get("token", [""])[0]
        ok = bool(from_query) and hmac.compare_digest(from_query.encode(), self.token.encode())
        return ok, ok

    # -- HTTP ---------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorized, from_query = self._presented(scope)
        if not authorized:
            await _reply(send, 401, "UNAUTHORIZED", f"send the access token ({TOKEN_HEADER})")
            return
        if from_query:  # a browser: keep the token as a cookie for the page's own requests
            send = _with_cookie(send, self.token)
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if scope["method"] not in ("POST", "PUT", "PATCH") or (
            content_type and "json" not in content_type
        ):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await _reply(send, 413, "TOO_LARGE", f"bodies are at most {MAX_BODY_BYTES} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                parse_json(body)
            except BadInput as exc:
                await _reply(send, 400, exc.code, exc.message)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    # -- WebSocket ----------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorized, _ = self._presented(scope)
        if not authorized:
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send(_frame("UNAUTHORIZED", f"send the access token ({TOKEN_HEADER})"))
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["path"] != "/ws":
            await self.app(scope, receive, send)
            return
        connection = _Connection(self.app, scope, receive, send)
        self.connections.add(connection)
        if self.idle_timeout_s and self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap(self.idle_timeout_s))
        try:
            await connection.serve()
        finally:
            self.connections.discard(connection)

    async def _reap(self, timeout_s: float) -> None:
        """Every quarter of the timeout (at most 5 s): expire the idle connections."""
        while True:
            await asyncio.sleep(min(timeout_s / 4, 5.0))
            now = asyncio.get_running_loop().time()
            for connection in list(self.connections):
                if connection.idle_since(now) > timeout_s:
                    with contextlib.suppress(Exception):
                        await connection.expire(timeout_s)


class _Connection:
    """One `/ws` connection: OpenEnv's handler reads from `inbox`, fed by `_pump`."""

    def __init__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        self.app, self.scope, self.receive, self.send = app, scope, receive, send
        self.key = secrets.token_urlsafe(16)
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.refused: dict[str, dict[str, str]] = {}
        self.gone = False  # the socket is closed: nothing more can be sent
        self.closing: asyncio.Task[None] | None = None
        self.in_flight = 0  # messages handed to OpenEnv and not yet answered
        self.last = asyncio.get_running_loop().time()  # of the last message either way

    async def serve(self) -> None:
        with metrics.gauge("ws_connections"):
            await self._serve()

    async def _serve(self) -> None:
        app = asyncio.ensure_future(self.app(self.scope, self.inbox.get, self._send))
        pump = asyncio.ensure_future(self._pump())
        try:
            await asyncio.shield(app)
        except asyncio.CancelledError:
            app.cancel()
            raise
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            env = departures.take(self.key)  # the handler ended without a departure
            if env is not None and self.closing is None:
                self.closing = asyncio.ensure_future(asyncio.to_thread(env.close))
            if self.closing is not None:
                await asyncio.shield(self.closing)

    def idle_since(self, now: float) -> float:
        """Seconds with nothing in flight and no message (0 while a message is in flight)."""
        return 0.0 if self.in_flight or self.gone else now - self.last

    async def expire(self, timeout_s: float) -> None:
        """Idle past the timeout: say so, close the socket, end the handler and the env."""
        message = f"no message for {timeout_s:g} s (SESSION_TIMEOUT_S): the session ended"
        await self.send(_frame("SESSION_TIMEOUT", message))
        await self.send({"type": "websocket.close", "code": 1000})
        self.gone = True
        self._depart()
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    async def _pump(self) -> None:
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.receive":
                message, leaving = self._screen(message)
                self.in_flight += 1
                self.last = asyncio.get_running_loop().time()
                if leaving:
                    self._depart()
            elif kind == "websocket.disconnect":
                self.gone = True
                self._depart()
            self.inbox.put_nowait(message)
            if kind == "websocket.disconnect":
                return

    def _depart(self) -> None:
        """The client is gone (or said close): drop what it queued, close its env now."""
        while not self.inbox.empty():
            self.inbox.get_nowait()
        env = departures.take(self.key)
        if env is not None and self.closing is None:
            self.closing = asyncio.ensure_future(asyncio.to_thread(env.close))

    def _screen(self, message: Message) -> tuple[Message, bool]:
        """(the frame to hand to OpenEnv, whether it is a `close`)."""
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        try:
            value = parse_json(raw)
        except BadInput as exc:
            return self._refuse(exc.code, exc.message), False
        if not isinstance(value, dict):
            return self._refuse(
                "VALIDATION_ERROR", 'a message is a JSON object: {"type": ..., "data": {...}}'
            ), False
        kind, data = value.get("type"), value.get("data", {})
        if kind in ("reset", "step") and not isinstance(data, dict):
            return self._refuse("VALIDATION_ERROR", f"{kind} data must be a JSON object"), False
        if kind == "reset":  # tell the environment which connection plays it
            value["data"] = {**data, departures.WATCH_KEY: self.key}
        elif isinstance(raw, str):
            return message, kind == "close"
        return {"type": "websocket.receive", "text": json.dumps(value)}, kind == "close"

    def _refuse(self, code: str, message: str) -> Message:
        marker = _REFUSED + secrets.token_urlsafe(8)
        self.refused[marker] = {"code": code, "message": message}
        return {"type": "websocket.receive", "text": json.dumps({"type": marker})}

    async def _send(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            self.in_flight = max(0, self.in_flight - 1)
            self.last = asyncio.get_running_loop().time()
        if self.gone:
            return  # the client left: a late reply has no one to go to
        text = message.get("text")
        if message["type"] == "websocket.send" and text and text.startswith('{"type":"error"'):
            text, code = self._rewrite(text)
            metrics.error(code)
            message = {**message, "text": text}
        await self.send(message)

    def _rewrite(self, text: str) -> tuple[str, str]:
        """(the error frame with its real code, that code)."""
        reply = json.loads(text)
        data = reply.get("data") or {}
        note, code = str(data.get("message", "")), str(data.get("code", ""))
        if code == "UNKNOWN_TYPE" and _REFUSED in note:
            refused = self.refused.pop(note[note.index(_REFUSED) :], None)
            if refused:
                return json.dumps({"type": "error", "data": refused}), refused["code"]
        if code == "EXECUTION_ERROR" and (typed := _ACTION_ERROR.fullmatch(note)):
            data = {"code": typed[1], "message": typed[2]}
            return json.dumps({"type": "error", "data": data}), typed[1]
        return text, code


def _frame(code: str, message: str) -> Message:
    metrics.error(code)
    return {
        "type": "websocket.send",
        "text": json.dumps({"type": "error", "data": {"code": code, "message": message}}),
    }


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    metrics.error(code)
    body = json.dumps({"detail": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _with_cookie(send: Send, token: str) -> Send:
    cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode()

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
        await send(message)

    return sending
