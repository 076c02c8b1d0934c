"""The README's worked reward example is what the rubric and the grader really give.

The episode is replayed on a real task of the shape the README names (5 visible tests,
20 hidden cases): the test and submit outcomes come from the real grader in the
sandbox, the rewards from the real rubric, and the README's figures must match.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_env.models import PythonAction, PythonObservation, RunOutput
from python_env.server.grading import Grader
from python_env.server.rewards import PythonRubric
from python_env.server.sandbox import Sandbox
from python_env.server.tasks import Task
from python_env.server.tasks.spec import build_task

README = Path(__file__).resolve().parents[1] / "README.md"

VISIBLE = "from solution import double\n" + "".join(
    f"\n\ndef test_{x}():\n    assert double({x}) == {2 * x}\n" for x in range(1, 6)
)
TASK = build_task(
    {
        "id": "readme-double",
        "family": "implement",
        "difficulty": "easy",
        "title": "Double",
        "statement": "Return 2 * x.",
        "entry_point": "double",
        "reference_solution": "def double(x):\n    return 2 * x\n",
        "visible_tests": VISIBLE,
        "hidden_cases": [[x] for x in range(100, 120)],
    },
    source="jsonl",
)
TWO_OF_FIVE = "def double(x):\n    return 2 * x if x <= 2 else 0\n"
ALL_VISIBLE = "def double(x):\n    return 2 * x if x < 118 else 0\n"  # 18/20 hidden


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    with Sandbox(slots=1) as sb:
        yield Grader(sb)


def _readme_example() -> tuple[list[float], float]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("Worked example on a task") :]
    table = section[: section.index("Episode total")]
    rewards = [float(m.replace("−", "-")) for m in re.findall(r"\*\*([+−-]?[0-9.]+)\*\*", table)]
    total = float(re.search(r"Episode total: ([0-9]+\.[0-9]+)", section).group(1))  # type: ignore[union-attr]
    return rewards, total


def _episode(grader: Grader, task: Task) -> list[float]:
    rubric = PythonRubric()
    rubric.reset()
    steps = [
        (
            PythonAction(kind="test"),
            PythonObservation(kind="test", tests=grader.visible_tests(task, TWO_OF_FIVE)),
        ),
        (
            PythonAction(kind="run", code="[][1]"),
            PythonObservation(kind="run", run=RunOutput(exit_code=1, exception_type="IndexError")),
        ),
        (PythonAction(kind="edit", code=ALL_VISIBLE), PythonObservation(kind="edit")),
        (
            PythonAction(kind="test"),
            PythonObservation(kind="test", tests=grader.visible_tests(task, ALL_VISIBLE)),
        ),
        (
            PythonAction(kind="submit"),
            PythonObservation(kind="submit", grade=grader.grade(task, ALL_VISIBLE), done=True),
        ),
    ]
    return [round(rubric(action, obs), 6) for action, obs in steps]


def test_readme_reward_example_is_what_the_rubric_gives(grader: Grader) -> None:
    shown, total = _readme_example()
    got = _episode(grader, TASK)
    assert got == shown
    assert round(sum(got), 6) == total
    assert grader.visible_tests(TASK, TWO_OF_FIVE).passed == 2


def test_the_oracle_earns_exactly_one(grader: Grader) -> None:
    rubric = PythonRubric()
    rubric.reset()
    grade = grader.grade(TASK, TASK.reference_solution)
    assert rubric(PythonAction(kind="submit"), PythonObservation(kind="submit", grade=grade)) == 1.0
