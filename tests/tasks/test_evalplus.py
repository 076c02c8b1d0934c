"""The EvalPlus loader (HumanEval+ / MBPP+ JSONL), on a small fixture file of our own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from python_env.server.grading import Grader
from python_env.server.sandbox import Sandbox
from python_env.server.tasks.evalplus import load_evalplus, load_task_file, parse_evalplus
from python_env.server.tasks.jsonl import TaskFileError
from python_env.server.validate import validate_bank

FIXTURE = Path(__file__).parent / "fixtures" / "evalplus_mini.jsonl"


def test_rows_become_implement_tasks() -> None:
    tasks = {t.id: t for t in load_evalplus(FIXTURE)}
    assert sorted(tasks) == [
        "evalplus-humaneval-900",
        "evalplus-humaneval-901",
        "evalplus-mbpp-902",
    ]
    scale = tasks["evalplus-humaneval-900"]
    assert scale.family == "implement" and scale.source == "evalplus"
    assert scale.comparator == "evalplus" and scale.tolerance == 1e-9
    assert len(scale.hidden_cases) == 4  # base_input + plus_input
    assert (
        scale.starter_code.startswith("def scale(") and "NotImplementedError" in scale.starter_code
    )
    mbpp = tasks["evalplus-mbpp-902"]  # an MBPP+ prompt holds no code: starter from the reference
    assert "def reverse_words(s):" in mbpp.starter_code
    assert "NotImplementedError" in mbpp.starter_code


def test_the_bank_validates_and_grades_like_evalplus(sandbox: Sandbox, grader: Grader) -> None:
    tasks = {t.id: t for t in load_evalplus(FIXTURE)}
    report = validate_bank(tasks.values(), sandbox)
    assert report.ok, report.summary()
    scale = tasks["evalplus-humaneval-900"]
    close = "def scale(xs, k):\n    return [x * k + 1e-12 for x in xs]\n"
    far = "def scale(xs, k):\n    return [x * k + 1e-6 for x in xs]\n"
    assert grader.grade(scale, close).score == 1.0  # within atol
    assert grader.grade(scale, far).score < 1.0
    even = tasks["evalplus-humaneval-901"]
    as_int = "def is_even(n):\n    return int(n % 2 == 0)\n"
    assert grader.grade(even, as_int).score == 1.0  # EvalPlus compares with ==: 1 == True
    wrong = "def is_even(n):\n    return n % 2 == 1\n"
    assert grader.grade(even, wrong).score == 0.0


def test_task_files_of_either_format_load(tmp_path: Path) -> None:
    assert len(load_task_file(FIXTURE)) == 3
    mine = tmp_path / "mine.jsonl"
    mine.write_text(
        json.dumps(
            {
                "id": "mine-add",
                "family": "implement",
                "difficulty": "easy",
                "title": "Add",
                "statement": "Return a + b.",
                "entry_point": "add",
                "reference_solution": "def add(a, b):\n    return a + b\n",
                "hidden_cases": [[1, 2]],
            }
        )
        + "\n"
    )
    assert [t.id for t in load_task_file(mine)] == ["mine-add"]


def test_malformed_rows_name_the_line() -> None:
    row = json.loads(FIXTURE.read_text().splitlines()[1])
    del row["base_input"]
    with pytest.raises(TaskFileError, match=r"plus.jsonl:2 .*missing EvalPlus field"):
        parse_evalplus("\n" + json.dumps(row), "plus.jsonl")
    row = json.loads(FIXTURE.read_text().splitlines()[1])
    row["atol"] = -1
    with pytest.raises(TaskFileError, match="atol"):
        parse_evalplus(json.dumps(row), "plus.jsonl")


def test_the_server_serves_evalplus_files_named_in_python_env_tasks() -> None:
    from python_env.server.config import Settings
    from python_env.server.runtime import served_bank

    bank = served_bank(Settings.from_env({"PYTHON_ENV_TASKS": str(FIXTURE)}))
    assert "evalplus-humaneval-900" in bank and bank.get("evalplus-mbpp-902").source == "evalplus"
