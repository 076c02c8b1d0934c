"""Turn a plain dict (from TOML, JSONL or a loader) into a checked `Task`.

One validator for every source, so a JSONL task and a built-in task obey the same rules
and fail with the same clear messages ("missing field 'title'", "reference does not
parse: line 3: invalid syntax", ...). Callers add where the dict came from.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any, cast

from .model import (
    DEFAULT_MAX_STEPS,
    DIFFICULTIES,
    FAMILIES,
    REVIEW_CATEGORIES,
    SOURCES,
    Defect,
    HiddenCase,
    ProgramExample,
    Task,
    TaskError,
)

KNOWN_FIELDS = frozenset(
    {
        "id", "family", "difficulty", "title", "statement", "starter_code",
        "reference_solution", "entry_point", "visible_tests", "visible_examples",
        "hidden_cases", "hidden_test_code", "comparator", "tolerance", "expects_errors",
        "max_steps", "pass_threshold", "speedup_target", "speed_slack", "defects",
        "review_categories", "cpu_s", "tags", "base_id",
    }
)  # fmt: skip
REQUIRED_FIELDS = ("id", "family", "difficulty", "title", "statement", "reference_solution")


def check_parses(code: str, what: str) -> None:
    """Raise TaskError when `code` is not valid Python."""
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise TaskError(f"{what} does not parse: line {exc.lineno}: {exc.msg}") from None


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def default_starter(reference: str, entry_point: str) -> str:
    """Starter for implement tasks: the reference's imports and signature, no body."""
    tree = ast.parse(reference)
    lines = reference.splitlines()
    out: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(ast.get_source_segment(reference, node) or "")
        elif isinstance(node, ast.FunctionDef) and node.name == entry_point:
            header_end = node.body[0].lineno - 1
            doc = ast.get_docstring(node)
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            header = "\n".join(lines[start - 1 : header_end])
            if doc is not None and isinstance(node.body[0], ast.Expr):
                doc_node = node.body[0]
                header = "\n".join(lines[start - 1 : doc_node.end_lineno])
            if out:
                out.append("\n")
            out.append(header + "\n    raise NotImplementedError")
            return "\n".join(out).strip("\n") + "\n"
    raise TaskError(f"reference does not define entry point {entry_point!r}")


def apply_edits(code: str, edits: Any, what: str) -> str:
    """Apply textual (old, new) edits, each of which must occur exactly once."""
    for edit in edits:
        if not (isinstance(edit, list | tuple) and len(edit) == 2):
            raise TaskError(f"{what}: each edit must be a pair [old, new], got {edit!r}")
        old, new = edit
        count = code.count(old)
        if count != 1:
            raise TaskError(f"{what}: edit text {old!r} occurs {count} times (need exactly 1)")
        code = code.replace(old, new)
    return code


def _str(d: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = d.get(key, default)
    if value is None:
        raise TaskError(f"missing field {key!r}")
    if not isinstance(value, str):
        raise TaskError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _num(d: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = d.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TaskError(f"field {key!r} must be a number, got {value!r}")
    return float(value)


def parse_case(raw: Any, program: bool, index: int) -> HiddenCase:
    """A hidden case from its plain form.

    Program tasks: a stdin string or {"stdin": ...}. Function tasks: a list/tuple of
    positional arguments or {"args": [...], "kwargs": {...}}. Either may carry
    "timing": true (optimize tasks).
    """
    where = f"hidden case {index}"
    if isinstance(raw, HiddenCase):
        return raw
    if program:
        if isinstance(raw, str):
            return HiddenCase(stdin=raw)
        if isinstance(raw, dict) and isinstance(raw.get("stdin"), str):
            return HiddenCase(stdin=raw["stdin"], timing=bool(raw.get("timing", False)))
        raise TaskError(f"{where}: a program case is a stdin string or {{'stdin': ...}}")
    if isinstance(raw, list | tuple):
        return HiddenCase(args=tuple(raw))
    if isinstance(raw, dict) and "args" in raw:
        args, kwargs = raw["args"], raw.get("kwargs", {})
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise TaskError(f"{where}: 'args' must be a list and 'kwargs' an object")
        extra = set(raw) - {"args", "kwargs", "timing"}
        if extra:
            raise TaskError(f"{where}: unknown keys {sorted(extra)}")
        return HiddenCase(args=tuple(args), kwargs=dict(kwargs), timing=bool(raw.get("timing")))
    raise TaskError(f"{where}: a case is a list of arguments or {{'args': [...], 'kwargs': {{}}}}")


def _defect(raw: Any, index: int, categories: tuple[str, ...], snippet: str) -> Defect:
    """A defect; `line` defaults to the line where the fix's old text starts."""
    where = f"defect {index}"
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: must be an object")
    fix = raw.get("fix")
    if not (
        isinstance(fix, list | tuple) and len(fix) == 2 and all(isinstance(s, str) for s in fix)
    ):
        raise TaskError(f"{where}: 'fix' must be a pair [old, new] of strings")
    if snippet.count(fix[0]) != 1:
        raise TaskError(f"{where}: fix text {fix[0]!r} must occur exactly once in the snippet")
    line = raw.get("line", snippet[: snippet.index(fix[0])].count("\n") + 1)
    if not isinstance(line, int) or isinstance(line, bool) or line < 1:
        raise TaskError(f"{where}: 'line' must be a positive integer")
    category = raw.get("category")
    if category not in categories:
        raise TaskError(f"{where}: category {category!r} is not one of {list(categories)}")
    test = raw.get("test")
    if not isinstance(test, str) or "def test_" not in test:
        raise TaskError(f"{where}: 'test' must be test code defining test_* functions")
    check_parses(test, f"{where} test")
    lines = tuple(int(n) for n in raw.get("lines", ()))
    return Defect(line=line, category=category, fix=(fix[0], fix[1]), test=test, lines=lines)


def derive_review_reference(spec: Mapping[str, Any]) -> str:
    """A review task's reference: the snippet with every defect's fix applied."""
    snippet = spec.get("starter_code")
    if not isinstance(snippet, str) or not snippet:
        raise TaskError("missing field 'starter_code' (the snippet under review)")
    fixes = [d.get("fix") for d in spec.get("defects") or () if isinstance(d, dict)]
    return apply_edits(snippet, fixes, "defect fixes")


def build_task(spec: Mapping[str, Any], *, source: str = "builtin") -> Task:
    """Validate `spec` and build a Task; raise TaskError saying what is wrong."""
    if not isinstance(spec, Mapping):
        raise TaskError("a task must be an object")
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise TaskError(f"unknown fields {sorted(unknown)}")
    if spec.get("family") == "review" and not spec.get("reference_solution"):
        spec = dict(spec)
        spec["reference_solution"] = derive_review_reference(spec)
    for key in REQUIRED_FIELDS:
        if spec.get(key) in (None, ""):
            raise TaskError(f"missing field {key!r}")
    task_id = _str(spec, "id")
    family = _str(spec, "family")
    if family not in FAMILIES:
        raise TaskError(f"bad family {family!r}: expected one of {list(FAMILIES)}")
    difficulty = _str(spec, "difficulty")
    if difficulty not in DIFFICULTIES:
        raise TaskError(f"bad difficulty {difficulty!r}: expected one of {list(DIFFICULTIES)}")
    if source not in SOURCES:
        raise TaskError(f"bad source {source!r}")
    reference = _str(spec, "reference_solution")
    check_parses(reference, "reference_solution")

    entry_point = spec.get("entry_point")
    if entry_point is not None:
        if not isinstance(entry_point, str) or not entry_point.isidentifier():
            raise TaskError(f"entry_point must be an identifier or null, got {entry_point!r}")
        names = {
            n.name
            for n in ast.parse(reference).body
            if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        }
        if entry_point not in names:
            raise TaskError(f"reference_solution does not define entry point {entry_point!r}")
    program = entry_point is None

    starter = spec.get("starter_code")
    if starter is None:
        if family != "implement" or program:
            raise TaskError("missing field 'starter_code'")
        starter = default_starter(reference, cast(str, entry_point))
    if not isinstance(starter, str):
        raise TaskError("field 'starter_code' must be a string")
    if family == "fix-syntax":
        if parses(starter):
            raise TaskError("fix-syntax starter_code must not parse")
    else:
        check_parses(starter, "starter_code")

    visible_tests = _str(spec, "visible_tests", "")
    if visible_tests:
        check_parses(visible_tests, "visible_tests")
    examples = []
    for i, ex in enumerate(spec.get("visible_examples") or ()):
        if not (
            isinstance(ex, list | tuple) and len(ex) == 2 and all(isinstance(s, str) for s in ex)
        ):
            raise TaskError(f"visible example {i}: must be a pair [stdin, expected_stdout]")
        examples.append(ProgramExample(stdin=ex[0], expected=ex[1]))
    if examples and not program:
        raise TaskError("visible_examples are for program tasks (entry_point null)")
    if program and visible_tests:
        raise TaskError("a program task shows visible_examples, not visible_tests code")

    raw_cases = spec.get("hidden_cases") or []
    if not isinstance(raw_cases, list | tuple):
        raise TaskError("hidden_cases must be a list")
    cases = tuple(parse_case(c, program, i) for i, c in enumerate(raw_cases))
    hidden_test_code = _str(spec, "hidden_test_code", "")
    if hidden_test_code:
        check_parses(hidden_test_code, "hidden_test_code")
        if program:
            raise TaskError("hidden_test_code needs an entry_point (its tests call it)")

    categories = tuple(spec.get("review_categories") or ())
    defects: tuple[Defect, ...] = ()
    if family == "review":
        categories = categories or REVIEW_CATEGORIES
        raw_defects = spec.get("defects") or []
        defects = tuple(_defect(d, i, categories, starter) for i, d in enumerate(raw_defects))
        if not defects:
            raise TaskError("a review task needs at least one defect")
        n_lines = len(starter.splitlines())
        for d in defects:
            if d.line > n_lines:
                raise TaskError(f"defect line {d.line} is past the snippet's {n_lines} lines")
        if program:
            raise TaskError("a review task needs an entry_point (its defect tests call it)")
    elif not cases and not hidden_test_code:
        raise TaskError("no hidden_cases (or hidden_test_code): nothing to grade")

    speedup_target = _num(spec, "speedup_target", None)
    if family == "optimize":
        if not any(c.timing for c in cases):
            raise TaskError("an optimize task needs hidden cases marked timing")
        speedup_target = speedup_target or 5.0

    max_steps = spec.get("max_steps", DEFAULT_MAX_STEPS[difficulty])
    if not isinstance(max_steps, int) or max_steps < 1:
        raise TaskError("max_steps must be a positive integer")
    threshold = _num(spec, "pass_threshold", 1.0)
    if threshold is None or not 0.0 < threshold <= 1.0:
        raise TaskError("pass_threshold must be in (0, 1]")
    comparator = _str(spec, "comparator", "lines" if program else "exact")

    return Task(
        id=task_id,
        family=cast(Any, family),
        difficulty=cast(Any, difficulty),
        title=_str(spec, "title"),
        statement=_str(spec, "statement"),
        starter_code=starter,
        reference_solution=reference,
        entry_point=entry_point,
        visible_tests=visible_tests,
        visible_examples=tuple(examples),
        hidden_cases=cases,
        hidden_test_code=hidden_test_code,
        comparator=comparator,
        tolerance=_num(spec, "tolerance", 1e-6) or 1e-6,
        expects_errors=bool(spec.get("expects_errors", False)),
        max_steps=max_steps,
        pass_threshold=threshold,
        speedup_target=speedup_target,
        speed_slack=_num(spec, "speed_slack", 2.5) or 2.5,
        defects=defects,
        review_categories=categories,
        source=cast(Any, source),
        cpu_s=_num(spec, "cpu_s", None),
        tags=tuple(spec.get("tags") or ()),
        base_id=spec.get("base_id"),
    )
