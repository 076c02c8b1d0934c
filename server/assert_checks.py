"""Assert-only test code, compiled into calls the verifier checks itself.

Most graded test code (HumanEval's: 155 of 164 problems) is a list of test functions
that each hold one assert on one call of the candidate: `assert candidate(ARGS) == E`,
`assert not candidate(ARGS)`, `assert abs(candidate(ARGS) - E) < T`... Such a test
needs no test process: its inputs and expected values are fixed by the test code, so
they are evaluated once (in the sandbox, from the test code as written, `plan_source`)
and kept per machine; a submission is then one child that answers the calls
(`cases.run_calls`) and the verifier applies each assert to the decoded return value
with the same Python operator (`holds`). Calls go in the tests' order to one candidate
process, as they do through run_assertions' proxy; expected values never enter it.

Anything else (loops, helpers applied to the result, pytest, a name the test code
rebinds, inputs that differ between two evaluations, e.g. unseeded random ones) is not
compiled (`None`): it runs through run_assertions as before.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Any

from .sandbox.plain import decode

PLAN_VERSION = 2
"""Bump when the compiled form or its evaluation changes (part of the cache key).
2: the plan is evaluated twice and kept only when both agree."""

PLAN_ENTRY = "__python_env_plan__"
"""The function the plan program serves: `(-1)` probes, `(i)` evaluates test i."""

_CANDIDATE = "candidate"
_CONSTANT_IS = (True, False, None)


@dataclasses.dataclass(frozen=True)
class Spec:
    """One test as the plan program evaluates it (source text of each expression)."""

    name: str
    form: str  # eq, req, ne, is, isnot, truth, not, absdiff
    args: list[str]
    kwargs: dict[str, str]
    extra: list[str]  # E (eq, req, ne, is, isnot), E and T (absdiff), none otherwise


@dataclasses.dataclass(frozen=True)
class Checks:
    """A compiled test module: per test, the encoded call and how to judge its value.
    `as_json()` is what the per-machine store keeps (encoded, so it reads back exact)."""

    names: list[str]
    forms: list[str]
    calls: list[tuple[Any, Any]]  # (encoded args tuple, encoded kwargs dict)
    encoded_extras: list[list[Any]]
    extras: list[list[Any]] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", [[decode(x) for x in r] for r in self.encoded_extras])

    def as_json(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "forms": self.forms,
            "calls": [list(c) for c in self.calls],
            "extras": self.encoded_extras,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checks:
        return cls(
            names=list(data["names"]),
            forms=list(data["forms"]),
            calls=[(a, k) for a, k in data["calls"]],
            encoded_extras=list(data["extras"]),
        )


def _is_candidate_call(node: ast.AST, names: frozenset[str]) -> bool:
    """A call of the candidate (`candidate(...)` or the entry point by its name)."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in names
        and not any(isinstance(a, ast.Starred) for a in node.args)
        and all(k.arg is not None for k in node.keywords)
    )


def _pure(node: ast.AST, banned: set[str]) -> bool:
    """No reference to the candidate, no walrus, await or yield."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id in banned:
            return False
        if isinstance(n, (ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom)):
            return False
    return True


def _form(test: ast.expr, names: frozenset[str]) -> tuple[str, ast.Call, list[ast.expr]] | None:
    """(form, the candidate call, the other expressions) of a supported assert."""

    def _is_call(node: ast.AST) -> bool:
        return _is_candidate_call(node, names)

    if _is_call(test):
        assert isinstance(test, ast.Call)
        return "truth", test, []
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _is_call(test.operand):
        assert isinstance(test.operand, ast.Call)
        return "not", test.operand, []
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    op, left, right = test.ops[0], test.left, test.comparators[0]
    if _is_call(left):
        assert isinstance(left, ast.Call)
        if isinstance(op, ast.Eq):
            return "eq", left, [right]
        if isinstance(op, ast.NotEq):
            return "ne", left, [right]
        if isinstance(op, (ast.Is, ast.IsNot)) and isinstance(right, ast.Constant):
            if any(right.value is c for c in _CONSTANT_IS):
                return ("is" if isinstance(op, ast.Is) else "isnot"), left, [right]
        return None
    if _is_call(right) and isinstance(op, ast.Eq):
        assert isinstance(right, ast.Call)
        return "req", right, [left]
    if (  # abs(candidate(...) - E) < T
        isinstance(op, ast.Lt)
        and isinstance(left, ast.Call)
        and isinstance(left.func, ast.Name)
        and left.func.id == "abs"
        and len(left.args) == 1
        and not left.keywords
        and isinstance(left.args[0], ast.BinOp)
        and isinstance(left.args[0].op, ast.Sub)
        and _is_call(left.args[0].left)
    ):
        call = left.args[0].left
        assert isinstance(call, ast.Call)
        return "absdiff", call, [left.args[0].right, right]
    return None


def _test_spec(fn: ast.FunctionDef, entry: str) -> Spec | None:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # a docstring
    if (  # `candidate = <entry>` (visible tests alias the imported entry point)
        len(body) == 2
        and isinstance(body[0], ast.Assign)
        and len(body[0].targets) == 1
        and isinstance(body[0].targets[0], ast.Name)
        and body[0].targets[0].id == _CANDIDATE
        and isinstance(body[0].value, ast.Name)
        and body[0].value.id == entry
    ):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Assert):
        return None
    found = _form(body[0].test, frozenset((_CANDIDATE, entry)))
    if found is None:
        return None
    form, call, others = found
    banned = {_CANDIDATE, entry}
    exprs = [*call.args, *(k.value for k in call.keywords), *others]
    if not all(_pure(e, banned) for e in exprs):
        return None
    return Spec(
        name=fn.name,
        form=form,
        args=[ast.unparse(a) for a in call.args],
        kwargs={str(k.arg): ast.unparse(k.value) for k in call.keywords},
        extra=[ast.unparse(e) for e in others],
    )


def specs(test_code: str, entry: str) -> list[Spec] | None:
    """The tests of `test_code` in definition order, or None unless every test function
    is one supported assert (then run_assertions grades it, as before)."""
    try:
        tree = ast.parse(test_code)
    except SyntaxError:
        return None
    out: list[Spec] = []
    for node in tree.body:
        if isinstance(node, (ast.AsyncFunctionDef, ast.ClassDef)) and node.name.startswith("test"):
            return None
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
            continue
        a = node.args
        if node.decorator_list or a.args or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg:
            return None
        spec = _test_spec(node, entry)
        if spec is None:
            return None
        out.append(spec)
    names = [s.name for s in out]
    if not out or len(set(names)) != len(names):
        return None
    return out


def plan_source(test_code: str, entry: str, plan: list[Spec]) -> str:
    """A program (served in the sandbox) that runs the test code with the candidate a
    stub that refuses calls, and hands back each test's inputs and expected values; its
    probe `(-1)` tells whether the names are bound as the analysis assumed."""
    table = [[s.args, s.kwargs, s.extra] for s in plan]
    return f"""\
import sys as _sys
import types as _types


class _Stub:
    def __call__(self, *args, **kwargs):
        raise RuntimeError("the inputs of a check call the candidate")


_STUB = _Stub()
_mod = _types.ModuleType("solution")
_mod.__getattr__ = lambda name: _STUB
_sys.modules["solution"] = _mod
_ns = {{"__name__": "test_solution", "__builtins__": __builtins__}}
_ns.update({{{_CANDIDATE!r}: _STUB, {entry!r}: _STUB}})
exec(compile({test_code!r}, "test_solution.py", "exec"), _ns)
_TABLE = {table!r}


def {PLAN_ENTRY}(i):
    if i < 0:
        names = [
            n
            for n, v in _ns.items()
            if n.startswith("test")
            and isinstance(v, _types.FunctionType)
            and v.__module__ == "test_solution"
        ]
        bound = _ns.get({_CANDIDATE!r}) is _STUB and _ns.get({entry!r}) is _STUB
        return [names, bound and "abs" not in _ns]
    args, kwargs, extra = _TABLE[i]
    return [
        tuple(eval(a, _ns) for a in args),
        {{k: eval(v, _ns) for k, v in kwargs.items()}},
        [eval(e, _ns) for e in extra],
    ]
"""


def holds(form: str, out: Any, extra: list[Any]) -> bool:
    """The assert of `form` on the candidate's decoded return value `out`."""
    try:
        if form == "eq":
            return bool(out == extra[0])
        if form == "req":
            return bool(extra[0] == out)
        if form == "ne":
            return bool(out != extra[0])
        if form == "is":
            return out is extra[0]
        if form == "isnot":
            return out is not extra[0]
        if form == "truth":
            return bool(out)
        if form == "not":
            return not out
        if form == "absdiff":
            return bool(abs(out - extra[0]) < extra[1])
    except Exception:  # noqa: BLE001 - the assert raised: the test fails, as it would
        return False
    raise ValueError(f"unknown check form {form!r}")
