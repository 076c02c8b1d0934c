"""Procedural repair tasks: seeded fix-bug and fix-syntax variants of implement tasks.

Bug mutants change the reference at the AST level (operator swaps, off-by-one in
comparisons and constants, and/or swaps, swapped call arguments, dropped statements).
A mutant is only useful if the hidden cases reject it, and finding that out means
running code, which the bank must not do in the server process. So the choice is made
offline by `python -m python_env.server.validate --refresh-procedural`, which
grades candidates through the sandbox and records the rejected ones in
`data/procedural.json` (mutant index + a hash of its code, so a changed reference
invalidates stale entries instead of silently producing a different task). The bank
then rebuilds exactly those mutants, deterministically, without running anything.

Syntax mutants are textual breaks of the reference (a dropped colon, an unbalanced
paren, a bad indent, `=` for `==`, an unterminated string); `ast.parse` alone decides
whether they qualify, so they are generated at bank build from a seed.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from importlib import resources
from typing import Any, Literal

from .model import Task
from .spec import parses

BUGS_PER_TASK = 2
SYNTAX_PER_TASK = 1
PROCEDURAL_FILE = "procedural.json"

_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.Div: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


# -- bug mutants (AST) ------------------------------------------------------------------


def _sites(tree: ast.Module) -> list[tuple[str, int]]:
    """Every (kind, node-index) a mutation can apply to, in a stable order."""
    out: list[tuple[str, int]] = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _SWAPS:
            out.append(("op", i))
        elif isinstance(node, ast.BoolOp) and type(node.op) in _SWAPS:
            out.append(("op", i))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPS:
            out.append(("cmp", i))
        elif isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value <= 100:
            out.append(("const", i))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            out.append(("bool", i))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append(("not", i))
        elif (
            isinstance(node, ast.Call)
            and len(node.args) == 2
            and not node.keywords
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            out.append(("swap-args", i))
        elif hasattr(node, "body") and isinstance(getattr(node, "body", None), list):
            body = node.body
            if len(body) > 1:
                for j, stmt in enumerate(body):
                    if not isinstance(stmt, ast.Return) and not _is_docstring(stmt, j):
                        out.append((f"drop:{j}", i))
    return out


def _is_docstring(stmt: ast.stmt, index: int) -> bool:
    return (
        index == 0
        and isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _apply(tree: ast.Module, kind: str, index: int) -> ast.Module | None:
    tree = copy.deepcopy(tree)
    node: Any = list(ast.walk(tree))[index]
    if kind == "op":
        node.op = _SWAPS[type(node.op)]()
    elif kind == "cmp":
        node.ops = [_SWAPS[type(node.ops[0])](), *node.ops[1:]]
    elif kind == "const":
        node.value = node.value + 1 if node.value in (0, 1) else node.value - 1
    elif kind == "bool":
        node.value = not node.value
    elif kind == "not":
        return _replace_node(tree, node, node.operand)
    elif kind == "swap-args":
        node.args = [node.args[1], node.args[0]]
    elif kind.startswith("drop:"):
        j = int(kind.split(":")[1])
        node.body[j] = ast.Pass()
    return tree


def _replace_node(tree: ast.Module, old: ast.AST, new: ast.AST) -> ast.Module:
    class Swap(ast.NodeTransformer):
        def visit(self, node: ast.AST) -> Any:
            if node is old:
                return new
            return self.generic_visit(node)

    return Swap().visit(tree)


def bug_mutants(task: Task, only: set[int] | None = None) -> Iterator[tuple[int, str]]:
    """(index, code) of the AST bug mutants of the reference, in a seeded order.

    Mutants equal to the reference (or to an earlier mutant) after unparsing are
    skipped. `only` restricts the work to the given indexes (rebuilding recorded ones).
    """
    tree = ast.parse(task.reference_solution)
    original = ast.unparse(tree)
    sites = _sites(tree)
    order = list(range(len(sites)))
    random.Random(f"bug:{task.id}").shuffle(order)
    if only is not None:
        order = [i for i in order if i in only]
    seen = {original}
    for idx in order:
        kind, node_index = sites[idx]
        mutated = _apply(tree, kind, node_index)
        if mutated is None:
            continue
        try:
            code = ast.unparse(ast.fix_missing_locations(mutated)) + "\n"
        except Exception:  # an unparseable mutation (rare): skip it
            continue
        if code in seen or not parses(code):
            continue
        seen.add(code)
        yield idx, code


# -- syntax mutants (textual) -----------------------------------------------------------

_BLOCK = re.compile(r"^(\s*)(def|if|elif|else|for|while|try|except|with|class)\b.*:\s*$")


def _syntax_breaks(code: str) -> list[tuple[str, int]]:
    lines = code.splitlines()
    out: list[tuple[str, int]] = []
    for i, line in enumerate(lines):
        if _BLOCK.match(line):
            out.append(("colon", i))
        if line.rstrip().endswith(")") and line.count("(") == line.count(")"):
            out.append(("paren", i))
        if re.search(r"\bif .*==", line):
            out.append(("assign", i))
        if line.startswith("    ") and line.strip() and i > 0 and not _BLOCK.match(lines[i - 1]):
            out.append(("indent", i))
        if re.search(r"\"[^\"]*\"|'[^']*'", line) and '"""' not in line:
            out.append(("quote", i))
    return out


def _break(code: str, kind: str, i: int) -> str:
    lines = code.splitlines()
    line = lines[i]
    if kind == "colon":
        lines[i] = line.rstrip()[:-1]
    elif kind == "paren":
        lines[i] = line.rstrip()[:-1]
    elif kind == "assign":
        lines[i] = line.replace("==", "=", 1)
    elif kind == "indent":
        lines[i] = "   " + line
    elif kind == "quote":
        m = re.search(r"\"[^\"]*\"|'[^']*'", line)
        assert m is not None
        lines[i] = line[: m.end() - 1] + line[m.end() :]
    return "\n".join(lines) + "\n"


def syntax_mutant(task: Task, n: int, breaks: int) -> str | None:
    """The reference with `breaks` textual syntax errors on different lines, or None."""
    rng = random.Random(f"syntax:{task.id}:{n}")
    code = task.reference_solution
    sites = _syntax_breaks(code)
    rng.shuffle(sites)
    used: set[int] = set()
    for kind, i in sites:
        if len(used) == breaks:
            break
        if i in used or i - 1 in used or i + 1 in used:
            continue
        code = _break(code, kind, i)
        used.add(i)
    return code if used and not parses(code) else None


_VARIANTS = {
    "fix-bug": (
        "Fix the bug",
        "The code in solution.py was meant to do this but has a bug: find it and fix it. "
        "The visible tests may or may not reveal it.",
    ),
    "fix-syntax": (
        "Fix the syntax",
        "solution.py implements this correctly but does not parse: fix the syntax errors "
        "without changing what the code does.",
    ),
}


def variant(base: Task, family: Literal["fix-bug", "fix-syntax"], n: int, code: str) -> Task:
    """A repair task made from `base`: same hidden cases and reference, a broken starter."""
    title, note = _VARIANTS[family]
    return replace(
        base,
        id=f"proc-{family}-{base.id}-{n}",
        family=family,
        title=f"{title}: {base.title}",
        statement=f"{base.statement.strip()}\n\n{note}",
        starter_code=code,
        source="procedural",
        base_id=base.id,
    )


# -- the procedural set -----------------------------------------------------------------


def bases(tasks: Sequence[Task]) -> list[Task]:
    """Tasks procedural variants are made from: built-in implement tasks with an entry point."""
    return [
        t
        for t in tasks
        if t.family == "implement" and t.entry_point is not None and t.source == "builtin"
    ]


def load_choices() -> dict[str, list[list[Any]]]:
    """The recorded bug-mutant choices: {base_id: [[mutant_index, code_hash], ...]}."""
    path = resources.files(__package__).joinpath("data", PROCEDURAL_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return dict(data.get("bugs", {}))


def procedural_tasks(tasks: Sequence[Task]) -> list[Task]:
    """The seeded variants: recorded bug mutants plus syntax mutants, per base task."""
    choices = load_choices()
    out: list[Task] = []
    for base in bases(tasks):
        wanted = {int(i): h for i, h in choices.get(base.id, [])}
        n = 0
        for idx, code in bug_mutants(base, only=set(wanted)):
            if wanted[idx] == code_hash(code):
                n += 1
                out.append(variant(base, "fix-bug", n, code))
        made = 0
        for k in range(1, 20):
            if made == SYNTAX_PER_TASK:
                break
            broken = syntax_mutant(
                base, k, breaks={"easy": 1, "medium": 2, "hard": 3}[base.difficulty]
            )
            if broken is not None:
                made += 1
                out.append(variant(base, "fix-syntax", made, broken))
    return out
