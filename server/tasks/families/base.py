"""What a family plug-in is, and the grading toolkit it is given.

A family module holds everything specific to one kind of task: the checks its spec must
pass when it loads, its sandbox limits, how a submission is scored, its oracle answer
(what must score 1.0) and self-checks (what the validator asserts of every task), and
the prompt text the evaluation runner and the TRL adapter show. It knows nothing of the
sandbox: it runs code through a `Toolkit` (the grader, `server/grading.py`), so the
import graph goes one way: tasks <- grading <- environment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ....models import Family, GradeReport, ReviewFinding, TaskInfo, TestReport
from ..model import HiddenCase, Task, TaskError
from ..source import check_parses


class Toolkit(Protocol):
    """The grader's public operations a family uses (implemented by `grading.Grader`)."""

    timing_rounds: int

    def limits_for(self, task: Task, *, cpu_s: float | None = None) -> Any: ...

    def expected(self, task: Task) -> list[Any]: ...

    def run_cases(
        self, task: Task, source: str, cases: Sequence[HiddenCase], *, limits: Any = None
    ) -> Any: ...

    def run_reference(self, task: Task, cases: Sequence[HiddenCase], *, limits: Any) -> Any: ...

    def run_assertions(
        self, task: Task, source: str, test_code: str, *, limits: Any = None
    ) -> Any: ...

    def count(
        self, task: Task, expected: list[Any], result: Any, notes: list[str], offset: int = 0
    ) -> int: ...

    def case_verdicts(
        self, task: Task, source: str, indices: Sequence[int], *, limits: Any = None
    ) -> list[bool]: ...

    def correctness(self, task: Task, solution: str) -> tuple[int, int, list[str]]: ...

    def visible_checks(self, task: Task, solution: str, notes: list[str]) -> tuple[int, int]: ...

    def visible_tests(self, task: Task, solution: str) -> TestReport: ...


@dataclasses.dataclass(frozen=True)
class Answer:
    """A submission: solution code, and findings on review tasks (None elsewhere)."""

    solution: str
    findings: list[ReviewFinding] | None = None


def make_report(
    task: Task,
    score: float,
    passed: int,
    total: int,
    feedback: str,
    details: dict[str, float] | None = None,
) -> GradeReport:
    """A GradeReport with the score clamped to [0, 1] and `passed` from the threshold."""
    score = min(1.0, max(0.0, score))
    return GradeReport(
        score=score,
        passed=score >= task.pass_threshold,
        cases_passed=passed,
        cases_total=total,
        details=details or {},
        feedback=feedback[:1000],
    )


def summary(passed: int, total: int, notes: list[str]) -> str:
    return "; ".join([f"{passed}/{total} checks passed", *notes])


class FamilyRules:
    """The default rules (implement's): a submission scores the fraction of checks it
    passes. Subclasses override only what differs."""

    families: tuple[Family, ...] = ()
    numbered_listing: bool = False
    """Show the starter with line numbers (findings cite lines)."""
    cost: int = 2
    """Relative validation cost (lower first, so a thread pool drains evenly)."""

    def prompt(self, task: TaskInfo) -> str:
        """Text added to the task prompt the evaluation runner and the TRL adapter show."""
        return ""

    # -- spec checks (at load) ------------------------------------------------------------

    def prepare(self, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        """Fill in fields this family derives (before the common checks)."""
        return spec

    def default_starter(self, reference: str, entry_point: str | None) -> str | None:
        """The starter when the spec gives none; None: the spec must give one."""
        return None

    def check_starter(self, starter: str) -> None:
        """Raise TaskError when the starter is not what this family needs."""
        check_parses(starter, "starter_code")

    def check(self, fields: dict[str, Any], spec: Mapping[str, Any]) -> None:
        """Family-specific fields and rules; may set entries of `fields` (Task kwargs)."""
        if not fields["hidden_cases"] and not fields["hidden_test_code"]:
            raise TaskError("no hidden_cases (or hidden_test_code): nothing to grade")

    # -- limits ---------------------------------------------------------------------------

    def limit_changes(self, task: Task) -> dict[str, Any]:
        """Changes to the sandbox's limits for this family's graded runs."""
        return {}

    # -- grading --------------------------------------------------------------------------

    def grade(self, kit: Toolkit, task: Task, answer: Answer) -> GradeReport:
        passed, total, notes = kit.correctness(task, answer.solution)
        score = passed / total if total else 0.0
        return make_report(task, score, passed, total, summary(passed, total, notes))

    # -- oracle and self-checks -----------------------------------------------------------

    def oracle(self, task: Task) -> Answer:
        """The answer that must score 1.0."""
        return Answer(task.reference_solution)

    def starter(self, task: Task) -> Answer:
        """The answer of an agent that changes nothing: must not pass."""
        return Answer(task.starter_code)

    def self_check(self, kit: Toolkit, task: Task, starter: GradeReport) -> list[str]:
        """Problems beyond the common ones (reference 1.0, starter fails)."""
        return []
