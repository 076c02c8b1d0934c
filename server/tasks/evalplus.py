"""Load HumanEval+ / MBPP+ files in EvalPlus's JSONL format as implement tasks.

One problem per line, with EvalPlus's fields:

    {"task_id": "HumanEval/0", "prompt": "def f(x):\\n    \\"\\"\\"...\\"\\"\\"\\n",
     "entry_point": "f", "canonical_solution": "    return x + 1\\n",
     "base_input": [[1], [2]], "plus_input": [[10 ** 6]], "atol": 0}

`base_input` and `plus_input` are lists of positional-argument lists; every one of them
is a hidden case. As in EvalPlus, the expected outputs are the canonical solution's
(computed in the sandbox, never stored), and an output matches by Python `==`, or,
when `atol` is non-zero, floats within `atol` (comparator `evalplus`). The prompt plus
the canonical solution is the reference (MBPP+ prompts hold no code: then the canonical
solution is the whole reference). Other fields (`test`, `contract`, `assertion`) are
ignored. Point `PYTHON_ENV_TASKS` at such a file (`load_task_file` tells the two
formats apart by their fields), or call `load_evalplus(path)`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from .jsonl import TaskFileError
from .model import Task, TaskError
from .spec import build_task

REQUIRED = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input")


def looks_like_evalplus(row: Any) -> bool:
    """An EvalPlus row (rather than a python_env JSONL task)."""
    return isinstance(row, dict) and "base_input" in row and "canonical_solution" in row


def _difficulty(canonical: str) -> str:
    n = len([line for line in canonical.splitlines() if line.strip()])
    return "easy" if n <= 3 else "medium" if n <= 10 else "hard"


def _inputs(row: dict[str, Any], key: str) -> list[list[Any]]:
    value = row.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, list) for v in value):
        raise TaskError(f"{key!r} must be a list of argument lists")
    return value


def task_from_row(row: dict[str, Any]) -> Task:
    """One EvalPlus problem as an implement task (ids: `evalplus-humaneval-0`, ...)."""
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise TaskError(f"missing EvalPlus field(s) {missing}")
    for key in ("task_id", "prompt", "entry_point", "canonical_solution"):
        if not isinstance(row[key], str):
            raise TaskError(f"field {key!r} must be a string")
    atol = row.get("atol", 0) or 0
    if isinstance(atol, bool) or not isinstance(atol, int | float) or atol < 0:
        raise TaskError(f"'atol' must be a non-negative number, got {atol!r}")
    source_id = row["task_id"]
    slug = source_id.lower().replace("/", "-").replace("_", "-")
    entry = row["entry_point"]
    prompt = row["prompt"]
    canonical = row["canonical_solution"]
    has_code = f"def {entry}" in prompt
    reference = prompt + canonical if has_code else canonical
    cases = _inputs(row, "base_input") + _inputs(row, "plus_input")
    spec: dict[str, Any] = {
        "id": f"evalplus-{slug}",
        "family": "implement",
        "difficulty": _difficulty(canonical),
        "title": f"{source_id}: {entry}",
        "statement": (
            f"Complete `{entry}` in solution.py as specified ({source_id}, EvalPlus).\n\n"
            f"{prompt.strip()}\n"
        ),
        "reference_solution": reference,
        "entry_point": entry,
        "hidden_cases": [list(args) for args in cases],
        "comparator": "evalplus",
        "tags": ["evalplus"],
    }
    if atol:
        spec["tolerance"] = float(atol)
    if has_code:
        spec["starter_code"] = prompt.rstrip() + "\n    raise NotImplementedError\n"
    return build_task(spec, source="evalplus")


def parse_evalplus(text: str, name: str) -> list[Task]:
    """Tasks from EvalPlus JSONL text; errors name `name` and the line."""
    tasks: list[Task] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise TaskFileError(f"{where}: a problem must be a JSON object")
        try:
            tasks.append(task_from_row(row))
        except TaskError as exc:
            raise TaskFileError(f"{where} ({row.get('task_id')!r}): {exc}") from None
    return tasks


def load_evalplus(path: str | Path) -> list[Task]:
    """Tasks from a HumanEval+ / MBPP+ file (`.jsonl` or `.jsonl.gz`)."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                text = fh.read()
        else:
            text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_evalplus(text, str(path))


def load_task_file(path: str | Path) -> list[Task]:
    """A task file in either format: EvalPlus rows or python_env JSONL tasks."""
    from .jsonl import load_jsonl

    path = Path(path)
    if path.suffix == ".gz":
        return load_evalplus(path)
    try:
        with path.open(encoding="utf-8") as fh:
            first = next((line for line in fh if line.strip() and not line.startswith("#")), "")
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read task file: {exc.strerror or exc}") from None
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        row = None
    return load_evalplus(path) if looks_like_evalplus(row) else load_jsonl(path)
