"""Load tasks from JSON Lines: one task object per line.

Format (blank lines and lines starting with `#` are skipped):

    {"id": "my-add", "family": "implement", "difficulty": "easy",
     "title": "Add", "statement": "Return a + b.",
     "entry_point": "add",                      # null: a stdin/stdout program
     "reference_solution": "def add(a, b):\\n    return a + b\\n",
     "starter_code": "def add(a, b):\\n    ...\\n",   # optional for implement tasks
     "visible_tests": "from solution import add\\n\\ndef test_one():\\n    assert add(1, 2) == 3\\n",
     "hidden_cases": [[2, 3], {"args": [-1, 1]}, {"args": [0, 0], "kwargs": {}}],
     "comparator": "exact"}                     # exact|float|unordered|unordered-deep|lines|tokens|loose

Required: id, family (implement|fix-bug|fix-syntax|optimize|review), difficulty
(easy|medium|hard), title, statement, reference_solution (optional for review: the
snippet with its defects' fixes applied). Optional: starter_code, entry_point,
visible_tests, visible_examples ([[stdin, stdout], ...] for programs), hidden_cases
(function tasks: a list of positional args or {"args", "kwargs", "timing"}; programs: a
stdin string or {"stdin", "timing"}), hidden_test_code (`test_*` functions or
`check(candidate)`, run against the candidate), comparator, tolerance, expects_errors,
max_steps, pass_threshold, speedup_target, speed_slack (optimize; cases marked
"timing": true are timed), defects ([{line?, category, fix: [old, new], test}]) and
review_categories (review), cpu_s, tags.

Expected outputs are never part of the file: the grader computes them from the
reference in the sandbox. A malformed task is an error naming the file, the line
number and what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

from .model import Task, TaskError
from .spec import build_task


class TaskFileError(TaskError):
    """A task file could not be loaded; the message names the file and line."""


def parse_jsonl(text: str, name: str, *, source: str = "jsonl") -> list[Task]:
    """Tasks from JSONL text; `name` is used in error messages."""
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{name}:{number}"
        try:
            raw = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise TaskFileError(
                f"{where}: not valid JSON: {exc.msg} (column {exc.colno})"
            ) from None
        if not isinstance(raw, dict):
            raise TaskFileError(f"{where}: a task must be a JSON object, got {type(raw).__name__}")
        try:
            task = build_task(raw, source=source)
        except TaskError as exc:
            label = f" (task {raw['id']!r})" if isinstance(raw.get("id"), str) else ""
            raise TaskFileError(f"{where}{label}: {exc}") from None
        if task.id in seen:
            raise TaskFileError(
                f"{where}: duplicate task id {task.id!r} (first on line {seen[task.id]})"
            )
        seen[task.id] = number
        tasks.append(task)
    return tasks


def load_jsonl(path: str | Path) -> list[Task]:
    """Tasks from a JSONL file (see the module docstring for the format)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read task file: {exc.strerror or exc}") from None
    return parse_jsonl(text, str(path))
