"""The reward: an OpenEnv rubric summing a few named parts, each visible to the agent
in `reward_components`.

- `score`: on submit, the verifier's score in [0, 1] (the only large term).
- `progress`: on test, +0.1 times the *improvement* of the visible pass fraction over
  the best seen so far this episode (never for repeating a result, so it cannot be
  farmed; at most +0.1 per episode).
- `penalty`: -0.02 when a run or the tests raise, -0.05 on a timeout or memory limit.

The total of an episode therefore lies in [-1, 1.1]; an oracle that submits the
reference at once earns exactly 1.0.
"""

from __future__ import annotations

from typing import Any

from openenv.core.rubrics import Rubric

from ..models import PythonAction, PythonObservation

PROGRESS_WEIGHT = 0.1
ERROR_PENALTY = -0.02
LIMIT_PENALTY = -0.05


class SubmitScore(Rubric):
    """The hidden-test score, paid on submit."""

    def forward(self, action: PythonAction, observation: PythonObservation) -> float:
        return observation.grade.score if observation.grade is not None else 0.0


class VisibleProgress(Rubric):
    """Improvement of the visible-test pass fraction over the episode's best."""

    def __init__(self) -> None:
        super().__init__()
        self.best = 0.0

    def reset(self) -> None:
        self.best = 0.0

    def forward(self, action: PythonAction, observation: PythonObservation) -> float:
        tests = observation.tests
        if observation.kind != "test" or tests is None or tests.total == 0:
            return 0.0
        fraction = tests.passed / tests.total
        gain = max(0.0, fraction - self.best)
        self.best = max(self.best, fraction)
        return PROGRESS_WEIGHT * gain


class ExecutionPenalty(Rubric):
    """Small costs for code that raises and larger ones for hitting limits."""

    def forward(self, action: PythonAction, observation: PythonObservation) -> float:
        run = observation.run
        if run is not None:
            if run.timed_out or run.memory_exceeded:
                return LIMIT_PENALTY
            if run.exception_type or run.exit_code not in (0, None) or run.signal:
                return ERROR_PENALTY
        if observation.kind == "test" and observation.tests and observation.tests.error:
            return ERROR_PENALTY
        return 0.0


class PythonRubric(Rubric):
    """Sum of the parts above; `components()` names each part's last value."""

    def __init__(self) -> None:
        super().__init__()
        self.score = SubmitScore()
        self.progress = VisibleProgress()
        self.penalty = ExecutionPenalty()

    def reset(self) -> None:
        self.progress.reset()

    def forward(self, action: Any, observation: Any) -> float:
        return sum(child(action, observation) for child in self._rubric_children.values())

    def components(self) -> dict[str, float]:
        return {name: child.last_score or 0.0 for name, child in self._rubric_children.items()}
