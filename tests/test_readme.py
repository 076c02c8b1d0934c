"""The README's JSONL example is a real task: it loads, and its reference scores 1.0."""

from __future__ import annotations

import re
from pathlib import Path

from python_env.server.grading import Grader
from python_env.server.sandbox import Sandbox
from python_env.server.tasks import TaskBank

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_jsonl_example_loads_and_grades(tmp_path):
    block = re.search(r"```json\n(.*?)```", README.read_text(), re.S)
    assert block, "the README shows a JSONL task"
    path = tmp_path / "mine.jsonl"
    path.write_text(block.group(1))
    bank = TaskBank.from_jsonl(path)
    task = bank.get("my-add")
    sandbox = Sandbox(slots=1)
    try:
        grader = Grader(sandbox)
        assert grader.grade(task, task.reference_solution).score == 1.0
        assert grader.grade(task, "def add(a, b):\n    return a - b\n").score < 1.0
        assert grader.visible_tests(task, task.reference_solution).passed == 1
    finally:
        sandbox.close()
