"""PythonEnv: the client. It sends typed actions over the WebSocket session and parses
typed observations back; all behaviour lives on the server."""

from __future__ import annotations

from typing import Any

from openenv.core import EnvClient
from openenv.core.client_types import StepResult

from .models import PythonAction, PythonObservation, PythonState


class PythonEnv(EnvClient[PythonAction, PythonObservation, PythonState]):
    """Client for a python_env server.

    >>> with PythonEnv(base_url="http://localhost:8000") as env:
    ...     env.reset(task_id="implement-easy-fizzbuzz")
    ...     env.step(PythonAction(kind="run", code="print(1 + 1)"))
    """

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
