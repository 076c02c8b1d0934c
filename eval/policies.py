"""Policies the runner can evaluate: `reference`, `starter` and `openai`.

A `Policy` starts one `Agent` per episode; the agent sees each observation and answers
with a `Decision`: an action, or an error when its reply was unusable (a wasted step).

- `reference` edits the solution to the task's reference solution (on review tasks it
  submits the known defects as findings) and submits: it must score 1.0 on every task,
  which makes it a check on the task bank and the grader. The server never exposes a
  reference, so this policy reads it from the task bank installed in *this* process
  (`python_env.server.tasks.default_bank()`): it only works when that bank matches the
  server's (same package version and the same `PYTHON_ENV_TASKS` /
  `PYTHON_ENV_HUMANEVAL` settings).
- `starter` submits the starter code unchanged (a floor: it should not pass).
- `openai` asks any OpenAI-compatible chat endpoint (`API_BASE_URL`, `MODEL_NAME`,
  `HF_TOKEN` or `OPENAI_API_KEY`) for one action per turn; see `prompts.py`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from ..models import PythonAction, PythonObservation, ReviewFinding, TaskInfo
from .prompts import HINT, SYSTEM_PROMPT, ReplyError, parse_reply, render_observation, render_task

DEFAULT_API_BASE_URL = "https://router.huggingface.co/v1"
DEFAULT_MODEL_NAME = "Qwen/Qwen2.5-72B-Instruct"


class PolicyError(Exception):
    """A policy cannot be built (bad configuration): reported as one line by the CLI."""


class FatalPolicyError(Exception):
    """A failure that will repeat on every episode (bad key, unknown model, endpoint down):
    the runner stops instead of recording the same error for every task."""


@dataclass
class Decision:
    """What an agent wants to do next: `action`, or `error` when its reply was unusable."""

    action: PythonAction | None
    error: str | None = None


class Agent(ABC):
    """Plays one episode."""

    @abstractmethod
    def act(self, observation: PythonObservation | None, turns_left: int) -> Decision:
        """The next move. `observation` is None after an unusable reply (nothing new
        happened in the environment); `turns_left` counts this turn."""


class Policy(ABC):
    """Makes agents; `label` names the policy in logs (the model for `openai`)."""

    name: str = "policy"

    @property
    def label(self) -> str:
        return self.name

    @abstractmethod
    def start(self, task: TaskInfo, seed: int) -> Agent:
        """A fresh agent for one episode of `task`."""

    def close(self) -> None:
        """Release resources (HTTP clients, ...)."""
        return None


# -- scripted policies -----------------------------------------------------------------


class _Script(Agent):
    def __init__(self, actions: list[PythonAction]):
        self._actions = actions

    def act(self, observation: PythonObservation | None, turns_left: int) -> Decision:
        if turns_left <= 1 or len(self._actions) <= 1:
            return Decision(self._actions[-1])
        return Decision(self._actions.pop(0))


class StarterPolicy(Policy):
    """Submits the starter code as it is."""

    name = "starter"

    def start(self, task: TaskInfo, seed: int) -> Agent:
        return _Script([PythonAction(kind="submit")])


class ReferencePolicy(Policy):
    """Edits to the reference solution (or submits the known defects) and submits.

    Reads the reference from the task bank of this process, never from the server.
    """

    name = "reference"

    def __init__(self, bank: Any = None):
        if bank is None:
            from ..server.runtime import served_bank

            bank = served_bank()
        self._bank = bank

    def start(self, task: TaskInfo, seed: int) -> Agent:
        from ..server.tasks import UnknownTaskError

        try:
            hidden = self._bank.get(task.task_id)
        except UnknownTaskError:
            raise RuntimeError(
                f"task {task.task_id!r} is not in the local task bank: the reference policy "
                "needs the same bank (package version, PYTHON_ENV_TASKS, PYTHON_ENV_HUMANEVAL) "
                "as the server"
            ) from None
        if task.family == "review":
            findings = [ReviewFinding(line=d.line, category=d.category) for d in hidden.defects]
            return _Script([PythonAction(kind="submit", findings=findings)])
        return _Script(
            [
                PythonAction(kind="edit", code=hidden.reference_solution),
                PythonAction(kind="submit"),
            ]
        )


class MixedPolicy(ReferencePolicy):
    """A seeded stochastic policy, for pass@k offline: per episode it submits the
    reference, the starter or a bug mutant of the reference (review: the known defects
    or no findings), drawn from `random.Random(f"{seed}:{task_id}")`, so the same seed
    plays the same way and different seeds (samples) differ."""

    name = "mixed"
    CHOICES = ("reference", "starter", "mutant")

    def start(self, task: TaskInfo, seed: int) -> Agent:
        import random

        choice = random.Random(f"{seed}:{task.task_id}").choice(self.CHOICES)
        if choice == "reference":
            return super().start(task, seed)
        if task.family == "review" or choice == "starter":
            return _Script([PythonAction(kind="submit", findings=[])])
        from ..server.tasks.mutate import bug_mutants

        hidden = self._bank.get(task.task_id)
        mutant = next((code for _, code in bug_mutants(hidden)), hidden.starter_code)
        return _Script([PythonAction(kind="edit", code=mutant), PythonAction(kind="submit")])


# -- OpenAI-compatible chat endpoints ----------------------------------------------------


@dataclass
class OpenAISettings:
    """Where and how to ask the model; `from_env` reads the hackathon variables."""

    api_key: str
    base_url: str = DEFAULT_API_BASE_URL
    model: str = DEFAULT_MODEL_NAME
    temperature: float = 0.2
    max_tokens: int = 2048
    timeout_s: float = 120.0
    max_retries: int = 2

    @classmethod
    def from_env(
        cls,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        **overrides: Any,
    ) -> OpenAISettings:
        key = api_key or os.environ.get("HF_TOKEN") or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise PolicyError("the openai policy needs an API key: set HF_TOKEN or OPENAI_API_KEY")
        return cls(
            api_key=key,
            base_url=base_url or os.environ.get("API_BASE_URL") or DEFAULT_API_BASE_URL,
            model=model or os.environ.get("MODEL_NAME") or DEFAULT_MODEL_NAME,
            **{k: v for k, v in overrides.items() if v is not None},
        )


class OpenAIPolicy(Policy):
    """A multi-turn chat agent over any OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(self, settings: OpenAISettings):
        try:
            import openai
        except ImportError:
            raise PolicyError(
                "the openai policy needs the 'openai' package: pip install 'openenv-python-env[eval]'"
            ) from None
        self.settings = settings
        self._openai = openai
        self._client = openai.OpenAI(
            api_key=settings.api_key,
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )

    @property
    def label(self) -> str:
        return self.settings.model

    def start(self, task: TaskInfo, seed: int) -> Agent:
        return _ChatAgent(self, task, seed)

    def complete(self, messages: list[dict[str, str]], seed: int) -> str:
        """One chat completion; API failures become `FatalPolicyError` or `RuntimeError`."""
        openai = self._openai
        try:
            response = self._client.chat.completions.create(
                model=self.settings.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.settings.temperature,
                max_tokens=self.settings.max_tokens,
                seed=seed,
            )
        except (
            openai.AuthenticationError,
            openai.PermissionDeniedError,
            openai.NotFoundError,
        ) as exc:
            raise FatalPolicyError(f"{self.settings.base_url}: {_api_message(exc)}") from None
        except openai.APITimeoutError:
            raise RuntimeError(
                f"the model endpoint timed out after {self.settings.timeout_s:.0f} s"
            ) from None
        except openai.APIConnectionError as exc:
            raise FatalPolicyError(
                f"cannot reach the model endpoint {self.settings.base_url}: {exc}"
            ) from None
        except openai.APIError as exc:
            raise RuntimeError(f"model endpoint error: {_api_message(exc)}") from None
        choices = getattr(response, "choices", None) or []
        if not choices:
            return ""
        return choices[0].message.content or ""

    def close(self) -> None:
        self._client.close()


class _ChatAgent(Agent):
    def __init__(self, policy: OpenAIPolicy, task: TaskInfo, seed: int):
        self._policy = policy
        self._seed = seed
        self.messages: list[dict[str, str]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": render_task(task)},
        ]
        self._first = True
        self._pending_error: str | None = None

    def act(self, observation: PythonObservation | None, turns_left: int) -> Decision:
        if self._pending_error is not None:
            hint = HINT.format(error=self._pending_error)
            self.messages.append({"role": "user", "content": f"{hint}\nsteps left: {turns_left}"})
            self._pending_error = None
        elif observation is not None and not self._first:
            text = render_observation(observation, turns_left=turns_left)
            self.messages.append({"role": "user", "content": text})
        self._first = False
        reply = self._policy.complete(self.messages, self._seed)
        self.messages.append({"role": "assistant", "content": reply})
        try:
            return Decision(parse_reply(reply))
        except ReplyError as exc:
            self._pending_error = str(exc)
            return Decision(None, error=f"unparseable reply: {exc}")


def _api_message(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"HTTP {status}: {message}" if status else str(message)


POLICIES = ("reference", "starter", "mixed", "openai")


def make_policy(name: str, **options: Any) -> Policy:
    """Build a policy by name; `PolicyError` for unknown names or bad settings."""
    if name == "reference":
        return ReferencePolicy()
    if name == "starter":
        return StarterPolicy()
    if name == "mixed":
        return MixedPolicy()
    if name == "openai":
        return OpenAIPolicy(OpenAISettings.from_env(**options))
    raise PolicyError(f"unknown policy {name!r}: expected one of {', '.join(POLICIES)}")
