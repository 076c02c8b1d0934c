"""PythonEnv: the client. It sends typed actions over the WebSocket session and parses
typed observations back; all behaviour lives on the server. Server errors arrive as the
typed exceptions of `errors.py`, from the sync and the async form alike."""

from __future__ import annotations

from typing import Any

from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient
from websockets.exceptions import ConnectionClosed

from .errors import error_from
from .models import PythonAction, PythonObservation, PythonState

TOKEN_HEADER = "X-Python-Env-Token"
"""The header that carries the access token (the server's PYTHON_ENV_TOKEN)."""

MESSAGE_TIMEOUT_S = 900.0
"""How long to wait for one reply. A step may legitimately run for its whole wall limit
(PYTHON_ENV_TIMEOUT_S, 10 s by default) and a submit for several runs, after waiting for
a sandbox slot; keep-alive pings (every 20 s, both ways) already notice a dead peer, so
this only bounds a live server that never answers. Raise it with the server's limits."""


class PythonEnv(EnvClient[PythonAction, PythonObservation, PythonState]):
    """Client for a python_env server.

    >>> with PythonEnv(base_url="http://localhost:8000") as env:
    ...     env.reset(task_id="implement-easy-fizzbuzz")
    ...     env.step(PythonAction(kind="run", code="print(1 + 1)"))

    `token`: the server's access token, if it has one (sent as `X-Python-Env-Token`).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        message_timeout_s: float = MESSAGE_TIMEOUT_S,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        if token:
            headers = {**(headers or {}), TOKEN_HEADER: token}
        super().__init__(base_url, message_timeout_s=message_timeout_s, headers=headers, **kwargs)

    async def _send_and_receive(self, message: dict[str, Any]) -> dict[str, Any]:
        """OpenEnv's exchange, with an error reply raised as its typed exception."""
        try:
            await self._send(message)
        except ConnectionClosed:
            pass  # a refused session sends its error frame, then closes: read it below
        reply = await self._receive()
        if reply.get("type") == "error":
            raise error_from(reply.get("data") or {})
        return reply

    async def _step_async(self, action: PythonAction, **kwargs: Any) -> StepResult:
        if kwargs:  # OpenEnv's client would drop them silently
            raise TypeError(
                f"step() takes only an action, not {sorted(kwargs)}: each run's limits are "
                "the server's (PYTHON_ENV_TIMEOUT_S, see /metadata)"
            )
        return await super()._step_async(action)

    def _step_payload(self, action: PythonAction) -> dict[str, Any]:
        return action.model_dump(exclude_defaults=True)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[PythonObservation]:
        fields = dict(payload.get("observation") or {})
        fields["done"] = payload.get("done", False)
        fields["reward"] = payload.get("reward")
        observation = PythonObservation.model_validate(fields)
        return StepResult(observation=observation, reward=observation.reward, done=observation.done)

    def _parse_state(self, payload: dict[str, Any]) -> PythonState:
        return PythonState.model_validate(payload)
