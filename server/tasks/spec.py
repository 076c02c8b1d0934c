"""Turn a plain dict (from TOML, JSONL or a loader) into a checked `Task`.

One validator for every source, so a JSONL task and a built-in task obey the same rules
and fail with the same clear messages ("missing field 'title'", "reference does not
parse: line 3: invalid syntax", ...). Callers add where the dict came from.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ...models import DIFFICULTIES, FAMILIES
from . import comparators
from .families import rules_for
from .model import (
    DEFAULT_MAX_STEPS,
    SOURCES,
    GeneratedCases,
    HiddenCase,
    ProgramExample,
    Task,
    TaskError,
)
from .source import apply_edits, check_parses, default_starter, parses, test_names

KNOWN_FIELDS = frozenset(
    {
        "id", "family", "difficulty", "title", "statement", "starter_code",
        "reference_solution", "entry_point", "visible_tests", "visible_examples",
        "hidden_cases", "hidden_test_code", "comparator", "tolerance", "expects_errors",
        "max_steps", "pass_threshold", "speedup_target", "speed_slack", "defects",
        "review_categories", "cpu_s", "wall_s", "tags", "base_id",
    }
)  # fmt: skip
REQUIRED_FIELDS = ("id", "family", "difficulty", "title", "statement", "reference_solution")


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


def build_task(spec: Mapping[str, Any], *, source: str = "builtin") -> Task:
    """Validate `spec` and build a Task; raise TaskError saying what is wrong.

    The checks common to every task are here; what is specific to a family is in its
    rules (`families/`): derived fields, the starter's rules and the family's fields.
    """
    if not isinstance(spec, Mapping):
        raise TaskError("a task must be an object")
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise TaskError(f"unknown fields {sorted(unknown)}")
    family = spec.get("family")
    if isinstance(family, str) and family in FAMILIES:
        spec = rules_for(family).prepare(spec)
    for key in REQUIRED_FIELDS:
        if spec.get(key) in (None, ""):
            raise TaskError(f"missing field {key!r}")
    task_id = _str(spec, "id")
    family = _str(spec, "family")
    if family not in FAMILIES:
        raise TaskError(f"bad family {family!r}: expected one of {list(FAMILIES)}")
    rules = rules_for(family)
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
        starter = rules.default_starter(reference, entry_point)
        if starter is None:
            raise TaskError("missing field 'starter_code'")
    if not isinstance(starter, str):
        raise TaskError("field 'starter_code' must be a string")
    rules.check_starter(starter)

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
    cases: Sequence[HiddenCase]
    if isinstance(raw_cases, GeneratedCases):  # made on first use (a loader's generator)
        cases = raw_cases
    elif isinstance(raw_cases, list | tuple):
        cases = tuple(parse_case(c, program, i) for i, c in enumerate(raw_cases))
    else:
        raise TaskError("hidden_cases must be a list")
    hidden_test_code = _str(spec, "hidden_test_code", "")
    if hidden_test_code:
        check_parses(hidden_test_code, "hidden_test_code")
        if program:
            raise TaskError("hidden_test_code needs an entry_point (its tests call it)")
        shared = set(test_names(visible_tests)) & set(test_names(hidden_test_code))
        if shared:  # submit runs both as one module: a shared name would hide a test
            raise TaskError(f"visible_tests and hidden_test_code both define {sorted(shared)}")

    fields: dict[str, Any] = {
        "starter_code": starter,
        "entry_point": entry_point,
        "hidden_cases": cases,
        "hidden_test_code": hidden_test_code,
        "review_categories": tuple(spec.get("review_categories") or ()),
        "defects": (),
        "speedup_target": _num(spec, "speedup_target", None),
    }
    rules.check(fields, spec)

    max_steps = spec.get("max_steps", DEFAULT_MAX_STEPS[difficulty])
    if not isinstance(max_steps, int) or max_steps < 1:
        raise TaskError("max_steps must be a positive integer")
    threshold = _num(spec, "pass_threshold", 1.0)
    if threshold is None or not 0.0 < threshold <= 1.0:
        raise TaskError("pass_threshold must be in (0, 1]")
    comparator = _str(spec, "comparator", "lines" if program else "exact")
    comparators.require(comparator)

    return Task(
        id=task_id,
        family=cast(Any, family),
        difficulty=cast(Any, difficulty),
        title=_str(spec, "title"),
        statement=_str(spec, "statement"),
        reference_solution=reference,
        visible_tests=visible_tests,
        visible_examples=tuple(examples),
        comparator=comparator,
        tolerance=_num(spec, "tolerance", 1e-6) or 1e-6,
        expects_errors=bool(spec.get("expects_errors", False)),
        max_steps=max_steps,
        pass_threshold=threshold,
        speed_slack=_num(spec, "speed_slack", 2.5) or 2.5,
        source=cast(Any, source),
        cpu_s=_num(spec, "cpu_s", None),
        wall_s=_num(spec, "wall_s", None),
        tags=tuple(spec.get("tags") or ()),
        base_id=spec.get("base_id"),
        **fields,
    )


__all__ = [
    "KNOWN_FIELDS",
    "REQUIRED_FIELDS",
    "apply_edits",
    "build_task",
    "check_parses",
    "default_starter",
    "parse_case",
    "parses",
]
