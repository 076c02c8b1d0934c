"""python_env for TRL's `GRPOTrainer` (no torch or trl import here: trl calls into us).

Two integrations, following TRL's OpenEnv guide (trl >= 1.x):

1. `environment_factory=PythonEnvTools` (TRL's recommended pattern). Each rollout gets
   one instance: TRL calls `reset(**example)` with the dataset row (give it a `task_id`
   column, optionally `seed`) and appends the returned task text to the prompt; the
   model then calls the public methods as tools (`run_code`, `edit_solution`,
   `run_tests`, `submit`); `get_reward()` is the episode's environment reward.
   Requires a model whose chat template supports tool calling.

2. `rollout_func=make_rollout_func(generate, base_url=...)` for plain-text models: the
   adapter plays whole multi-turn episodes itself with the same JSON-action protocol
   as the evaluation runner (`prompts.py`), calling `generate(messages)` for each
   model turn, and returns TRL's rollout dict (`prompt_ids`, `completion_ids`,
   `logprobs`, `env_mask`) plus `env_reward` / `env_score` / `task_id` columns that
   reach the reward function (`env_reward_func`).

Rewards are python_env's own: the sum of step rewards of the episode (the hidden-test
score on submit, small progress and penalty terms). An episode the model ends without
submitting is graded as if submitted (`grade_unsubmitted`, on by default), just as the
server grades an episode whose step budget runs out.

Build the dataset with `task_dataset_rows(base_url, mode="tools" | "text")`.

Over several servers (replicas, e.g. on Ray): give a `SessionPool` (`pool.py`) instead
of one URL, `PythonEnvTools.pool = pool` or `make_rollout_func(..., pool=pool)`; each
rollout's session goes to the least-loaded replica. A rollout whose replica is lost
mid-episode (`ReplicaLost`) is never scored: `make_rollout_func` plays it again from
the start on a live replica (`max_retries`), `PythonEnvTools` raises it to the trainer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..client import PythonEnv
from ..errors import ReplicaLost, retrying
from ..models import PythonAction, PythonObservation, ReviewFinding
from ..pool import PooledEnv, SessionPool
from .prompts import (
    HINT,
    SYSTEM_PROMPT,
    ReplyError,
    parse_reply,
    render_observation,
    render_task,
    task_id_from_prompt,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
Env = PythonEnv | PooledEnv
"""A session: with one server, or placed by a session pool."""
_FINDING = re.compile(r"^\s*(\d+)\s*[:,\s]\s*([A-Za-z][\w-]*)\s*$")


def default_base_url() -> str:
    """`PYTHON_ENV_URL`, or a local server on port 8000."""
    return os.environ.get("PYTHON_ENV_URL", DEFAULT_BASE_URL)


# -- 1. environment_factory ----------------------------------------------------------------


class PythonEnvTools:
    """One python_env session whose public methods TRL exposes to the model as tools.

    TRL inspects the class: every public method other than `reset` and `get_reward` is a
    tool, described by its signature and docstring. Helpers are therefore private.
    """

    base_url: str | None = None
    """Server for new instances (class-wide; `None`: `PYTHON_ENV_URL` or port 8000)."""
    pool: SessionPool | None = None
    """Replicas for new instances instead (class-wide): each session on the least loaded."""
    grade_unsubmitted: bool = True
    """`get_reward` submits an episode the model left unsubmitted, so it gets a score."""

    def __init__(self, base_url: str | None = None) -> None:
        self._client: Env = (
            self.pool.session()
            if self.pool is not None and base_url is None
            else PythonEnv(base_url=base_url or self.base_url or default_base_url())
        )
        self._lost: ReplicaLost | None = None
        self._task_id: str | None = None
        self._rewards: list[float] = []
        self._score: float | None = None
        self._done = True

    # TRL's protocol -----------------------------------------------------------------

    def reset(self, **kwargs: Any) -> str | None:
        """Start the episode of a dataset row (`task_id`, or `family`/`difficulty`, `seed`);
        returns the task text TRL appends to the prompt."""
        options = {
            k: kwargs[k]
            for k in ("task_id", "family", "difficulty", "seed")
            if kwargs.get(k) is not None
        }
        if not options:
            options = {"mode": "task"}
        obs = self._client.reset(**options).observation
        assert obs.task is not None, "python_env started no task"
        self._task_id = obs.task.task_id
        self._rewards, self._score, self._done, self._lost = [], None, False, None
        return "\n\n" + render_task(obs.task)

    def get_reward(self) -> float:
        """The episode's environment reward (sum of step rewards); called by TRL once the
        rollout is over, so an unsubmitted episode is graded first (`grade_unsubmitted`).
        An episode whose replica was lost has no reward: `ReplicaLost` is raised."""
        if self._lost is not None:
            raise self._lost
        if not self._done and self.grade_unsubmitted:
            self._act(PythonAction(kind="submit"))
        return float(sum(self._rewards))

    # tools ----------------------------------------------------------------------------

    def run_code(self, code: str, stdin: str = "") -> str:
        """
        Run Python code in the task's sandboxed interpreter; variables persist between runs
        and solution.py is importable.

        Args:
            code: The Python source code to execute.
            stdin: Text given to the program on standard input.

        Returns:
            What the code printed, and any exception it raised.
        """
        return self._act(PythonAction(kind="run", code=code, stdin=stdin))

    def edit_solution(self, code: str) -> str:
        """
        Replace the whole of solution.py with new code.

        Args:
            code: The complete new content of solution.py.

        Returns:
            A confirmation and the number of steps left.
        """
        return self._act(PythonAction(kind="edit", code=code))

    def run_tests(self) -> str:
        """
        Run the task's visible tests against solution.py.

        Returns:
            Which tests passed and why the others failed.
        """
        return self._act(PythonAction(kind="test"))

    def submit(self, findings: list[str] | None = None) -> str:
        """
        Submit solution.py for grading on hidden tests; this ends the task.

        Args:
            findings: Review tasks only: the defects found, each as "LINE:CATEGORY", e.g. "3:off-by-one".

        Returns:
            The grade: a score between 0 and 1.
        """
        try:
            parsed = _parse_findings(findings or [])
        except ValueError as exc:
            return f"error: {exc}; nothing was submitted"
        return self._act(PythonAction(kind="submit", findings=parsed))

    # helpers --------------------------------------------------------------------------

    def _act(self, action: PythonAction) -> str:
        if self._done:
            return "error: the episode is over; nothing was done"
        # SANDBOX_UNAVAILABLE is retried, then raised to the trainer: never a reward of 0
        try:
            obs = retrying(lambda: self._client.step(action)).observation
        except ReplicaLost as exc:  # the episode is gone: no reward for it either
            self._lost, self._done = exc, True
            raise
        self._record(obs)
        return render_observation(obs)

    def _record(self, obs: PythonObservation) -> None:
        self._rewards.append(float(obs.reward or 0.0))
        if obs.grade is not None:
            self._score = obs.grade.score
        self._done = bool(obs.done)

    def _close(self) -> None:
        self._client.close()


def _parse_findings(items: Sequence[Any]) -> list[ReviewFinding]:
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(ReviewFinding.model_validate(item))
            continue
        match = _FINDING.match(str(item))
        if not match:
            raise ValueError(f"finding {item!r} is not LINE:CATEGORY")
        out.append(ReviewFinding(line=int(match.group(1)), category=match.group(2)))
    return out


def env_reward_func(
    completions: list[Any], env_reward: list[float] | None = None, **kwargs: Any
) -> list[float]:
    """A TRL reward function returning the `env_reward` column of `make_rollout_func`."""
    if env_reward is None:
        environments = kwargs.get("environments") or []
        return [float(e.get_reward()) for e in environments]
    return [float(r) for r in env_reward]


# -- 2. rollout_func -----------------------------------------------------------------------


@dataclass
class Generation:
    """One model turn: the token ids of the prompt it saw and of what it wrote."""

    text: str
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


GenerateFn = Callable[[list[dict[str, str]]], Generation]
"""messages (system/user/assistant dicts) -> the model's next turn."""


@dataclass
class EpisodeRollout:
    """A played episode, flattened for GRPO: the first prompt, then model and env tokens."""

    task_id: str
    seed: int
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    env_mask: list[int]
    reward: float
    score: float
    steps: int
    wasted_steps: int
    messages: list[dict[str, str]]


def rollout_episode(
    env: Env,
    generate: GenerateFn,
    task_id: str,
    seed: int = 0,
    *,
    grade_unsubmitted: bool = True,
) -> EpisodeRollout:
    """Play `task_id` with `generate` as the policy, over the client `env` (connected).

    Each model turn costs one step of the task's budget; an unparseable reply costs a step
    and gets a hint back. The token sequence is stitched turn by turn: what a turn's
    prompt adds after the previous turn's prompt and completion is environment text
    (`env_mask` 0, logprob 0), the completion is the model's (`env_mask` 1).
    """
    obs = env.reset(task_id=task_id, seed=seed).observation
    assert obs.task is not None, "python_env started no task"
    budget = obs.max_steps or obs.task.max_steps
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": render_task(obs.task)},
    ]
    rewards: list[float] = []
    score = 0.0
    wasted = 0
    steps = 0
    first: Generation | None = None
    completion: list[int] = []
    logprobs: list[float] = []
    mask: list[int] = []
    seen = 0  # tokens of the conversation already accounted for
    done = obs.done
    while not done and steps < budget:
        steps += 1
        gen = generate(messages)
        if first is None:
            first = gen
            seen = len(gen.prompt_ids)
        else:
            extra = gen.prompt_ids[seen:]
            completion += extra
            logprobs += [0.0] * len(extra)
            mask += [0] * len(extra)
            seen = max(seen, len(gen.prompt_ids))
        completion += gen.completion_ids
        logprobs += list(gen.logprobs) or [0.0] * len(gen.completion_ids)
        mask += [1] * len(gen.completion_ids)
        seen += len(gen.completion_ids)
        messages.append({"role": "assistant", "content": gen.text})
        try:
            action = parse_reply(gen.text)
        except ReplyError as exc:
            wasted += 1
            rewards.append(0.0)
            messages.append(
                {
                    "role": "user",
                    "content": f"{HINT.format(error=exc)}\nsteps left: {budget - steps}",
                }
            )
            continue
        obs = retrying(partial(env.step, action)).observation  # see _act
        rewards.append(float(obs.reward or 0.0))
        done = bool(obs.done)
        if obs.grade is not None:
            score = obs.grade.score
        messages.append({"role": "user", "content": render_observation(obs, budget - steps)})
    if not done and grade_unsubmitted:
        obs = retrying(lambda: env.step(PythonAction(kind="submit"))).observation
        rewards.append(float(obs.reward or 0.0))
        if obs.grade is not None:
            score = obs.grade.score
    return EpisodeRollout(
        task_id=task_id,
        seed=seed,
        prompt_ids=list(first.prompt_ids) if first else [],
        completion_ids=completion,
        logprobs=logprobs,
        env_mask=mask,
        reward=float(sum(rewards)),
        score=score,
        steps=steps,
        wasted_steps=wasted,
        messages=messages,
    )


def make_rollout_func(
    generate: GenerateFn | None = None,
    *,
    generate_factory: Callable[[Any], GenerateFn] | None = None,
    base_url: str | None = None,
    pool: SessionPool | None = None,
    episodes_per_prompt: int = 1,
    seed: int = 0,
    max_retries: int = 2,
) -> Callable[[list[Any], Any], dict[str, list[Any]]]:
    """A TRL `rollout_func(prompts, trainer)` playing one episode per completion.

    Each prompt must contain the `Task id: ...` line `render_task` writes (build the
    dataset with `task_dataset_rows(mode="text")`). TRL's sampler already repeats every
    prompt `num_generations` times in `prompts`, so one episode is played per element
    (`episodes_per_prompt=1`) and the outputs line up with TRL's inputs. The model turn
    is `generate`, or `generate_factory(trainer)` (built at each call, so it can use the
    trainer's current model). With `pool`, the session is placed by the pool, and an
    episode whose replica is lost is played again from its reset (up to `max_retries`).
    """
    if (generate is None) == (generate_factory is None):
        raise ValueError("give exactly one of generate and generate_factory")
    counter = {"episodes": 0}

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        turn = generate_factory(trainer) if generate_factory is not None else generate
        assert turn is not None
        n = max(1, episodes_per_prompt)
        out: dict[str, list[Any]] = {
            key: []
            for key in (
                "prompt_ids",
                "completion_ids",
                "logprobs",
                "env_mask",
                "env_reward",
                "env_score",
                "task_id",
            )
        }
        session: Env = (
            pool.session()
            if pool is not None
            else PythonEnv(base_url=base_url or default_base_url())
        )
        with session as env:
            for prompt in prompts:
                task_id = task_id_from_prompt(_prompt_text(prompt))
                if task_id is None:
                    raise ValueError("a prompt has no 'Task id: ...' line (see task_dataset_rows)")
                for _ in range(n):
                    play = partial(rollout_episode, env, turn, task_id, seed + counter["episodes"])
                    episode = _replayed(play, max_retries)
                    counter["episodes"] += 1
                    out["prompt_ids"].append(episode.prompt_ids)
                    out["completion_ids"].append(episode.completion_ids)
                    out["logprobs"].append(episode.logprobs)
                    out["env_mask"].append(episode.env_mask)
                    out["env_reward"].append(episode.reward)
                    out["env_score"].append(episode.score)
                    out["task_id"].append(task_id)
        return out

    return rollout_func


def _replayed(play: Callable[[], EpisodeRollout], max_retries: int) -> EpisodeRollout:
    """`play()`, played again while its replica was lost (bounded); the last loss raised."""
    for attempt in range(max_retries + 1):
        try:
            return play()
        except ReplicaLost:
            if attempt >= max_retries:
                raise
    raise AssertionError("unreachable")


TOOLS_PROMPT = (
    "Solve the Python programming task below with the tools: run_code to experiment, "
    "edit_solution to write solution.py, run_tests to check it against the visible tests, "
    "and submit when it is correct (on review tasks, submit the defects you find as "
    "findings instead of editing). Every tool call costs one step of a limited budget."
)


def task_dataset_rows(
    base_url: str | None = None,
    *,
    mode: str = "tools",
    family: str | None = None,
    difficulty: str | None = None,
) -> list[dict[str, Any]]:
    """Dataset rows for GRPO, one per task of the server: `prompt` and `task_id`.

    `mode="tools"` (for `environment_factory`): a short instruction; `reset` appends the
    task. `mode="text"` (for `make_rollout_func`): the system prompt and the full task.
    """
    import httpx

    from ..models import TaskInfo

    if mode not in ("tools", "text"):
        raise ValueError(f"mode must be 'tools' or 'text', got {mode!r}")
    url = (base_url or default_base_url()).rstrip("/")
    params = {k: v for k, v in (("family", family), ("difficulty", difficulty)) if v}
    rows = []
    for summary in httpx.get(f"{url}/tasks", params=params, timeout=30).json():
        if mode == "tools":
            prompt = [{"role": "user", "content": TOOLS_PROMPT}]
        else:
            info = httpx.get(f"{url}/tasks/{summary['id']}", timeout=30).json()
            prompt = [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": render_task(TaskInfo.model_validate(info))},
            ]
        rows.append({"prompt": prompt, "task_id": summary["id"]})
    return rows


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict))
    return str(prompt)
