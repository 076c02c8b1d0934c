"""The contract of python_env: typed actions, observations and state.

Everything a client needs is a typed field here, never `metadata` (OpenEnv does not
reliably forward observation metadata). This module imports nothing of ours, so the
server, the grader and the client can all depend on it.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from openenv.core.env_server.types import Action, Observation, State
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

MAX_CODE_CHARS = 1_000_000
"""Largest `code` / `stdin` an action may carry (1 MB): bigger is a validation error."""

Family = Literal["implement", "fix-bug", "fix-syntax", "optimize", "review"]
Difficulty = Literal["easy", "medium", "hard"]
FAMILIES: tuple[Family, ...] = get_args(Family)
"""Every family, in display order: the one list every side (server, UI, eval) uses."""
DIFFICULTIES: tuple[Difficulty, ...] = get_args(Difficulty)
ActionKind = Literal["run", "edit", "test", "submit"]
ObservationKind = Literal["reset", "run", "edit", "test", "submit"]


class _Record(BaseModel):
    """A small typed record inside an observation; unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class ReviewFinding(_Record):
    """One defect an agent reports on a review task: where it is and what kind."""

    line: int = Field(ge=1, description="1-based line number in the snippet under review")
    category: str = Field(
        min_length=1, max_length=64, description="one of the task's review_categories"
    )


class TaskInfo(_Record):
    """What the agent may see of a task: never hidden cases or the reference solution."""

    task_id: str
    family: Family
    difficulty: Difficulty
    title: str
    statement: str
    starter_code: str = Field(description="the initial solution file (solution.py)")
    entry_point: str | None = Field(
        default=None, description="function the grader calls; None for stdin/stdout programs"
    )
    visible_tests: str = Field(default="", description="test code the agent can read and run")
    max_steps: int
    review_categories: list[str] = Field(
        default_factory=list, description="allowed finding categories (review tasks)"
    )


class RunOutput(_Record):
    """What one execution of the agent's code did, as the sandbox measured it."""

    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    exit_code: int | None = Field(default=None, description="None when killed by a signal")
    signal: int | None = None
    timed_out: bool = False
    memory_exceeded: bool = False
    exception_type: str | None = None
    exception_message: str | None = None
    wall_time_ms: float = 0.0
    cpu_time_ms: float = 0.0
    kernel_restarted: bool = Field(
        default=False, description="the persistent kernel died or was started fresh for this run"
    )


class TestCaseResult(_Record):
    """One visible test and its outcome."""

    __test__ = False  # not a pytest class

    name: str
    passed: bool
    message: str = ""


class TestReport(_Record):
    """Outcome of running the visible tests against the current solution."""

    __test__ = False

    passed: int = 0
    total: int = 0
    results: list[TestCaseResult] = Field(default_factory=list)
    error: str | None = Field(default=None, description="why the solution could not be loaded")


class GradeReport(_Record):
    """The verifier's verdict on a submission, from hidden cases the agent never sees."""

    score: float = Field(ge=0.0, le=1.0)
    passed: bool = Field(description="score reached the task's pass threshold")
    cases_passed: int = 0
    cases_total: int = 0
    details: dict[str, float] = Field(
        default_factory=dict, description="family-specific figures (speedup, precision, ...)"
    )
    feedback: str = Field(default="", description="a summary that reveals no hidden data")


class PythonAction(Action):
    """One move of the agent.

    - `run`: execute `code` (with `stdin`) in the sandbox; `persistent=True` uses the
      session's kernel, whose variables survive between runs; `solution.py` is
      importable from the working directory.
    - `edit`: replace the solution file with `code`.
    - `test`: run the visible tests against the current solution.
    - `submit`: grade the current solution (or `findings`, on review tasks) on hidden
      tests; ends the episode. With `code`, that becomes the solution first.
    """

    kind: ActionKind = "run"
    code: str = Field(default="", max_length=MAX_CODE_CHARS)
    stdin: str = Field(default="", max_length=MAX_CODE_CHARS)
    persistent: bool = Field(default=True, description="run in the session's kernel")
    findings: list[ReviewFinding] = Field(default_factory=list, max_length=200)


class PythonObservation(Observation):
    """What the agent sees after reset or a step; only the part for its kind is set."""

    kind: ObservationKind = "reset"
    message: str = Field(default="", description="one line for a person or a model to read")
    task: TaskInfo | None = Field(default=None, description="set after reset; None in free mode")
    run: RunOutput | None = None
    tests: TestReport | None = None
    grade: GradeReport | None = None
    reward_components: dict[str, float] = Field(default_factory=dict)
    step_count: int = 0
    max_steps: int | None = Field(default=None, description="None: no budget (free sandbox)")
    steps_remaining: int | None = None


class PythonState(State):
    """The episode as the server holds it (hidden data excluded)."""

    mode: Literal["idle", "free", "task"] = "idle"
    task_id: str | None = None
    family: Family | None = None
    difficulty: Difficulty | None = None
    solution: str = ""
    max_steps: int | None = None
    steps_remaining: int | None = None
    done: bool = False
    score: float | None = None
    total_reward: float = 0.0
    kernel_alive: bool = False


def _whole(value: object) -> object:
    """JSON has one number type: 3.0 is the integer 3 (as JSON Schema says); True is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Integers in 0..high; a whole float counts, a bool or a string does not. The seed's
# bound is the largest integer every JSON reader keeps exactly.
Seed = Annotated[StrictInt, Field(ge=0, le=2**53 - 1), BeforeValidator(_whole)]
Index = Annotated[StrictInt, Field(ge=0, le=2**31 - 1), BeforeValidator(_whole)]


class ResetOptions(BaseModel):
    """What `reset()` accepts (HTTP body, WebSocket `data`, `PythonEnv.reset(**options)`).

    Every combination this schema allows is served: no option starts a free sandbox;
    `split` alone draws from that split (`all` or a family), `index` alone indexes `all`.
    Options that contradict each other (a task option with `mode="free"`; `split`/`index`
    with `task_id`/`family`/`difficulty`) answer `BAD_RESET`.
    """

    model_config = ConfigDict(extra="forbid")

    seed: Seed | None = Field(default=None, description="reproducible task choice")
    episode_id: str | None = Field(default=None, max_length=255)
    task_id: str | None = Field(default=None, min_length=1, max_length=256)
    family: Family | None = None
    difficulty: Difficulty | None = None
    mode: Literal["free", "task"] | None = None
    split: str | None = Field(
        default=None, min_length=1, max_length=64, description="OpenEnv's task API: a split"
    )
    index: Index | None = Field(default=None, description="OpenEnv's task API: a task's index")
