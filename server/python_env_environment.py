"""The episode: what each action does, the step budget, and when an episode ends.

Execution is delegated to the sandbox, task choice to the bank, verdicts to the grader
and rewards to the rubric; this file reads as the rules of the game.

Rules
- `reset()` with no task and no filter starts a free sandbox: only `run` and `edit`
  (a `solution.py` for the runs), no budget, nothing to grade.
- `reset(task_id=...)`, or any of `family` / `difficulty` / `mode="task"`, starts a
  task (seeded choice is reproducible). The solution starts as the starter code.
- Every step costs one step of the task's budget. When the budget is spent without a
  submit, the current solution is graded as if submitted and the episode ends.
- `submit` grades the solution (or the findings, on review tasks) on hidden cases and
  ends the episode; a submit with `code` makes it the solution first (edit + submit in
  one round trip). What grading a task needs (expected outputs, compiled checks) is
  computed in the background from its reset on, once per machine (the store), so a
  submit finds it ready (one that comes first waits for it).
- Protocol mistakes (no episode, episode over, unknown task, test/submit without a
  task) raise `ActionError`: nothing is recorded and no step is spent.
- An infrastructure fault (`SandboxError`: the sandbox could not run or grade, through
  no fault of the candidate's) is `SANDBOX_UNAVAILABLE` the same way: no reward, no
  step spent, the session stays usable and the same step may be retried.
- After `close()` (the client left, even mid-step) nothing more is recorded.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python server/python_env_environment.py`
    import runpy
    import sys

    sys.path.pop(0)  # this folder's modules are the package's, not top-level ones
    runpy.run_module("python_env.server.python_env_environment", run_name="__main__")
    raise SystemExit(0)

import threading
import time
from typing import Any, Literal
from uuid import uuid4

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import EnvironmentMetadata
from pydantic import Field, ValidationError

from ..models import (
    MAX_CODE_CHARS,
    GradeReport,
    PythonAction,
    PythonObservation,
    PythonState,
    ResetOptions,
    ReviewFinding,
    RunOutput,
    TaskInfo,
)
from . import departures, metrics
from .grading import GRADING_VERSION
from .rewards import PythonRubric
from .runtime import Runtime, get_runtime, package_version
from .sandbox import Kernel, RunResult, SandboxError
from .tasks import Task, UnknownTaskError
from .tasks.bank import UnknownSplitError
from .tasks.splits import RULE as SPLIT_RULE

SOLUTION_FILE = "solution.py"


class ActionError(ValueError):
    """A request the episode cannot accept; `code` is stable for clients to match on.

    Over HTTP it becomes a 4xx response, over WebSocket an error message; the
    session and everything recorded so far are untouched.
    """

    # HTTP status per code (the README's error table); anything else is 400.
    STATUS = {
        "UNKNOWN_TASK": 404,
        "BAD_SPLIT": 404,
        "NO_EPISODE": 409,
        "EPISODE_DONE": 409,
        "NO_TASK": 409,
        "BAD_RESET": 409,
        "BAD_STEP": 409,
        "SESSION_CLOSED": 409,
        "SANDBOX_UNAVAILABLE": 503,
    }

    def __init__(self, code: str, message: str):
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return self.STATUS.get(self.code, 400)


class PythonMetadata(EnvironmentMetadata):
    """OpenEnv's metadata plus what a user picks a server by."""

    task_counts: dict[str, dict[str, int]]
    isolation: dict[str, Any]
    limits: dict[str, Any]
    max_concurrent_envs: int
    grading_version: str = GRADING_VERSION
    bank_hash: str = ""
    runtime: dict[str, Any]  # the Python agent code runs under: path, version, packages
    splits: dict[str, int] = Field(
        default_factory=dict, description="every split reset(split=...) takes: its task count"
    )
    split_counts: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="train / validation / test: tasks per family"
    )
    split_rule: str = SPLIT_RULE
    variants: str = Field(
        default="mixed", description="how sources with variants are served: none, mixed, all"
    )
    withheld: int = Field(default=0, description="sources served as their variants instead")


class PythonEnvironment(Environment[PythonAction, PythonObservation, PythonState]):
    """One session of python_env."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self) -> None:
        super().__init__(rubric=PythonRubric())
        self._state = PythonState()
        self._task: Task | None = None
        self._kernel: Kernel | None = None
        self._runtime: Runtime | None = None
        self._closed = False
        self._kernel_lock = threading.Lock()  # close() may come from another thread

    @property
    def runtime(self) -> Runtime:
        """The shared sandbox/bank/grader, fetched on first real use (not on construction)."""
        if self._runtime is None:
            self._runtime = get_runtime()
        return self._runtime

    # -- OpenEnv API --------------------------------------------------------------

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        family: str | None = None,
        difficulty: str | None = None,
        mode: Literal["free", "task"] | None = None,
        split: str | None = None,
        index: int | None = None,
        **kwargs: Any,
    ) -> PythonObservation:
        watch = kwargs.pop(departures.WATCH_KEY, None)
        if kwargs:
            raise ActionError("BAD_RESET", f"unknown reset options: {sorted(kwargs)}")
        try:
            opts = ResetOptions.model_validate(
                {
                    "seed": seed,
                    "episode_id": episode_id,
                    "task_id": task_id,
                    "family": family,
                    "difficulty": difficulty,
                    "mode": mode,
                    "split": split,
                    "index": index,
                }
            )
        except ValidationError as exc:
            raise ActionError("BAD_RESET", _brief(exc)) from None
        if self._closed:
            raise ActionError("SESSION_CLOSED", "this session is closed")
        if watch is not None:
            departures.register(str(watch), self)
        task = self._choose(opts)

        self._release_kernel()
        self._reset_rubric()
        self._task = task
        self._state = PythonState(
            episode_id=opts.episode_id or str(uuid4()),
            mode="task" if task else "free",
            task_id=task.id if task else None,
            family=task.family if task else None,
            difficulty=task.difficulty if task else None,
            solution=task.starter_code if task else "",
            max_steps=task.max_steps if task else None,
            steps_remaining=task.max_steps if task else None,
        )
        if task is not None:
            self.runtime.grader.prepare(task)
        info = task.info() if task else None
        metrics.add("resets_total")
        return self._observe(
            "reset",
            message=f"task {task.id}: {task.title}" if task else "free sandbox: run any Python",
            task=info,
            reward=0.0,
        )

    def step(
        self, action: PythonAction, timeout_s: float | None = None, **kwargs: Any
    ) -> PythonObservation:
        if timeout_s is not None or kwargs:
            raise ActionError(
                "BAD_STEP",
                "step takes only an action: each run's limits are the server's "
                "(PYTHON_ENV_TIMEOUT_S, see /metadata), not per step",
            )
        if self._closed:
            raise ActionError("SESSION_CLOSED", "this session is closed")
        state = self._state
        if state.mode == "idle":
            raise ActionError(
                "NO_EPISODE",
                "call reset() first (HTTP /step is stateless: use the WebSocket session)",
            )
        if state.done:
            raise ActionError("EPISODE_DONE", "the episode is over; call reset() to start anew")
        if self._task is None and action.kind in ("test", "submit"):
            raise ActionError("NO_TASK", f"'{action.kind}' needs a task; this is a free sandbox")

        # every field of the state is immutable (tests/test_sandbox_unavailable.py pins
        # it): a shallow copy is a whole snapshot for the rollback, at a tenth the cost
        before, t0 = state.model_copy(), time.perf_counter()
        try:
            with self.runtime.sandbox.owner(self):  # close() ends this step's runs at once
                observation = self._act(action)
        except SandboxError as exc:
            self._state = before  # nothing recorded, no step spent: the client may retry
            if self._closed:  # e.g. its kernel was closed while it started: not a fault
                raise ActionError("SESSION_CLOSED", "this session was closed mid-step") from None
            metrics.add("infrastructure_faults_total")
            raise ActionError(
                "SANDBOX_UNAVAILABLE", f"the sandbox could not serve this step; retry: {exc}"
            ) from None
        except ActionError:  # closed before the sandbox was reached
            self._state = before
            raise
        if self._closed:  # the client left while the step ran: record nothing of it
            self._state = before
            raise ActionError("SESSION_CLOSED", "this session was closed mid-step")
        observation.reward = self._apply_rubric(action, observation)
        observation.reward_components = self.rubric_components()
        state.total_reward += observation.reward
        metrics.stepped(action, observation, t0)
        return observation

    def _act(self, action: PythonAction) -> PythonObservation:
        """Spend a step and carry the action out (the sandbox may raise SandboxError)."""
        state = self._state
        state.step_count += 1
        if state.steps_remaining is not None:
            state.steps_remaining -= 1

        if action.kind == "run":
            observation = self._run(action)
        elif action.kind == "edit":
            state.solution = action.code
            lines = len(action.code.splitlines())
            observation = self._observe("edit", message=f"{SOLUTION_FILE} updated ({lines} lines)")
        elif action.kind == "test":
            assert self._task is not None
            report = self.runtime.grader.visible_tests(self._task, state.solution)
            summary = f"visible tests: {report.passed}/{report.total} passed"
            if report.error:
                summary = f"visible tests could not run: {report.error}"
            observation = self._observe("test", message=summary, tests=report)
        else:
            if action.code:  # the solution travels with the submit: one round trip
                state.solution = action.code
            grade, summary = self._grade(action.findings)
            observation = self._observe("submit", message=summary, grade=grade)

        if not state.done and state.steps_remaining == 0 and self._task is not None:
            grade, summary = self._grade(action.findings)
            observation.grade, observation.done = grade, True
            observation.message += f"; step budget spent, graded as submitted: {summary}"
        return observation

    @property
    def state(self) -> PythonState:
        self._state.kernel_alive = bool(self._kernel and self._kernel.alive)
        return self._state

    def close(self) -> None:
        """Free the session's kernel (and its working directory), for good. Safe to call
        from another thread while a step runs (the transport does, when the client goes)
        and more than once. While a WebSocket connection plays this environment, only its
        departure closes it (see `departures`): a close from anywhere else is ignored."""
        if departures.connected(self):
            return
        with self._kernel_lock:
            self._closed = True
        if self._runtime is not None:  # one-shot and graded runs of a step in flight
            self._runtime.sandbox.cancel(self)
        self._release_kernel()

    def get_metadata(self) -> PythonMetadata:
        runtime = self.runtime
        settings = runtime.settings
        return PythonMetadata(
            name="python_env",
            description=(
                "Sandboxed CPython for coding agents: run code, edit a solution, "
                "run visible tests, submit for grading on hidden tests."
            ),
            version=package_version(),
            task_counts=runtime.bank.counts(),
            isolation=runtime.sandbox.isolation.as_dict(),
            limits={
                "wall_s": settings.limits.wall_s,
                "cpu_s": settings.limits.cpu_s,
                "memory_mb": settings.limits.memory_mb,
                "max_output_bytes": settings.limits.max_output_bytes,
                "max_code_chars": MAX_CODE_CHARS,
                "slots": runtime.sandbox.slots,
            },
            max_concurrent_envs=settings.max_concurrent_envs,
            grading_version=GRADING_VERSION,
            bank_hash=runtime.bank.digest(),
            runtime=runtime.agent.as_dict(),
            splits=runtime.bank.split_sizes(),
            split_counts=runtime.bank.split_counts(),
            variants=settings.variants,
            withheld=runtime.bank.withheld,
        )

    # -- OpenEnv's task API (read-only: ids, family, difficulty, title, split; no hidden data) --

    def list_splits(self) -> list[str]:
        """`all`, the trainer splits `train` / `validation` / `test`, then one per family."""
        return self.runtime.bank.split_names()

    def list_tasks(self, split: str) -> list[dict[str, Any]]:
        return self.get_task_range(split)

    def num_tasks(self, split: str) -> int:
        try:
            return self.runtime.bank.size(split)
        except UnknownSplitError as exc:
            raise ActionError("BAD_SPLIT", str(exc)) from None

    def get_task(self, split: str, index: int) -> dict[str, Any]:
        size = self.num_tasks(split)
        if not 0 <= index < size:
            raise ActionError(
                "BAD_SPLIT", f"index {index} is outside split {split!r} (0..{size - 1})"
            )
        return self.runtime.bank.listing(split, index, index + 1)[0]

    def get_task_range(
        self, split: str, start: int | None = None, stop: int | None = None
    ) -> list[dict[str, Any]]:
        try:
            return self.runtime.bank.listing(split, start, stop)
        except UnknownSplitError as exc:
            raise ActionError("BAD_SPLIT", str(exc)) from None

    # -- actions ------------------------------------------------------------------

    def _run(self, action: PythonAction) -> PythonObservation:
        files = {SOLUTION_FILE: self._state.solution}
        if action.persistent:
            result = self._session_kernel().run(action.code, stdin=action.stdin, files=files)
        else:
            result = self.runtime.sandbox.run(action.code, stdin=action.stdin, files=files)
        run = _run_output(result)
        return self._observe("run", message=_summarize_run(run), run=run)

    def _grade(self, findings: list[ReviewFinding]) -> tuple[GradeReport, str]:
        """Grade the current solution on hidden cases; this ends the episode."""
        assert self._task is not None
        grade = self.runtime.grader.grade(self._task, self._state.solution, findings=findings)
        self._state.done = True
        self._state.score = grade.score
        verdict = "passed" if grade.passed else "not passed"
        return grade, f"score {grade.score:.3f} ({verdict}): {grade.feedback}"

    # -- helpers ------------------------------------------------------------------

    def _choose(self, opts: ResetOptions) -> Task | None:
        """The task `opts` ask for, or None for a free sandbox (see ResetOptions)."""
        filters = (opts.task_id, opts.family, opts.difficulty)
        by_split = opts.split is not None or opts.index is not None
        if opts.mode == "free" and (by_split or any(x is not None for x in filters)):
            raise ActionError("BAD_RESET", "mode='free' cannot be combined with a task option")
        if by_split and any(x is not None for x in filters):
            raise ActionError(
                "BAD_RESET", "split/index choose the task: not with task_id, family or difficulty"
            )
        if by_split:
            split = opts.split or "all"
            if opts.index is not None:
                return self._select(self.get_task(split, opts.index)["id"], None, None, None)
            self.num_tasks(split)  # BAD_SPLIT for an unknown split
            return self._select(None, None, None, opts.seed, split=split)
        if opts.mode == "task" or any(x is not None for x in filters):
            return self._select(opts.task_id, opts.family, opts.difficulty, opts.seed)
        return None

    def _select(
        self,
        task_id: str | None,
        family: str | None,
        difficulty: str | None,
        seed: int | None,
        split: str | None = None,
    ) -> Task:
        try:
            return self.runtime.bank.select(
                task_id=task_id, family=family, difficulty=difficulty, seed=seed, split=split
            )
        except UnknownTaskError as exc:
            raise ActionError("UNKNOWN_TASK", str(exc).strip("'\"")) from None
        except ValueError as exc:
            if task_id is None:  # the filters are valid (ResetOptions): none matched
                raise ActionError("UNKNOWN_TASK", str(exc)) from None
            raise ActionError("BAD_RESET", str(exc)) from None

    def _observe(self, kind: Any, message: str, task: TaskInfo | None = None, **parts: Any):
        state = self._state
        return PythonObservation(
            kind=kind,
            message=message,
            task=task,
            done=state.done,
            step_count=state.step_count,
            max_steps=state.max_steps,
            steps_remaining=state.steps_remaining,
            **parts,
        )

    def rubric_components(self) -> dict[str, float]:
        assert isinstance(self.rubric, PythonRubric)
        return self.rubric.components()

    def _session_kernel(self) -> Kernel:
        """The session's kernel, started on first use; never one more after close()."""
        with self._kernel_lock:
            if self._closed:
                raise ActionError("SESSION_CLOSED", "this session was closed mid-step")
            if self._kernel is None:
                self._kernel = self.runtime.sandbox.kernel()
            return self._kernel

    def _release_kernel(self) -> None:
        with self._kernel_lock:
            kernel, self._kernel = self._kernel, None
        if kernel is not None:
            kernel.close()  # kills a cell in flight (from any thread)


def _brief(exc: ValidationError) -> str:
    """A validation error in one line, without echoing the offending values."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
    )


def _run_output(result: RunResult) -> RunOutput:
    return RunOutput(
        stdout=result.stdout,
        stderr=result.stderr,
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        exit_code=result.exit_code,
        signal=result.signal,
        timed_out=result.timed_out,
        memory_exceeded=result.memory_exceeded,
        exception_type=result.exception_type,
        exception_message=result.exception_message,
        wall_time_ms=result.wall_time_ms,
        cpu_time_ms=result.cpu_time_ms,
        kernel_restarted=result.kernel_restarted,
    )


def _summarize_run(run: RunOutput) -> str:
    if run.timed_out:
        return "timed out: the process group was killed"
    if run.memory_exceeded:
        return "memory limit exceeded"
    if run.exception_type:
        return f"raised {run.exception_type}: {run.exception_message}"
    if run.signal:
        return f"killed by signal {run.signal}"
    return f"exit code {run.exit_code} in {run.wall_time_ms:.1f} ms"


def _self_check() -> None:
    """Play a short episode in-process and print it (`python server/python_env_environment.py`)."""
    env = PythonEnvironment()
    try:
        obs = env.reset(seed=0, mode="task")
        assert obs.task is not None
        print(f"reset  -> {obs.task.task_id}: {obs.task.title} ({obs.max_steps} steps)")
        obs = env.step(PythonAction(kind="run", code="import sys; print(sys.version.split()[0])"))
        print(f"run    -> {obs.message}; stdout={obs.run.stdout.strip() if obs.run else ''!r}")
        obs = env.step(PythonAction(kind="test"))
        print(f"test   -> {obs.message} (reward {obs.reward:+.3f})")
        obs = env.step(PythonAction(kind="submit"))
        print(f"submit -> {obs.message} (reward {obs.reward:+.3f}, done={obs.done})")
        print(f"isolation: {', '.join(env.runtime.sandbox.isolation.active)}")
    finally:
        env.close()
        env.runtime.sandbox.close()


if __name__ == "__main__":
    _self_check()
