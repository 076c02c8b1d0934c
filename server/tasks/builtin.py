"""The original task bank, written for this project, stored as TOML in `data/`.

TOML because code reads well in it: multi-line literal strings ('''...''') need no
escaping. Each file holds `[[task]]` tables with the fields of `spec.build_task`, plus
three authoring conveniences resolved here:

- `starter_edits = [[old, new], ...]`: the starter is the reference with these textual
  edits (each must match exactly once). Used by fix-bug and fix-syntax tasks so the bug
  is written once, as a diff, next to the correct code.
- `cases`: a Python expression (text) giving a list of argument tuples (function tasks)
  or stdin strings (program tasks), or a TOML list of one such expression per case.
  Tuples and None survive; `10**30` and `range` work.
- `generator` / `timing_generator`: Python code defining `cases(rng)` that returns more
  cases, run here with `random.Random(seed)` (`seed` field, default 0) so the bank is
  the same on every machine. Timing cases are the large inputs optimize tasks are timed on.

The generators are this project's own trusted code; JSONL tasks cannot carry code that
runs in the server (their cases are plain JSON).
"""

from __future__ import annotations

import random
import tomllib
from importlib import resources
from typing import Any

from .model import HiddenCase, Task, TaskError
from .spec import apply_edits, build_task

AUTHORING_FIELDS = ("starter_edits", "cases", "generator", "timing_generator", "seed")


def _run_generator(code: str, seed: int, where: str) -> list[Any]:
    namespace: dict[str, Any] = {}
    exec(compile(code, f"<{where}>", "exec"), namespace)  # noqa: S102 - our own data
    make = namespace.get("cases")
    if not callable(make):
        raise TaskError(f"{where} must define cases(rng)")
    result = make(random.Random(seed))
    if not isinstance(result, list):
        raise TaskError(f"{where}: cases(rng) must return a list")
    return result


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn an authored TOML table into the plain spec `build_task` takes."""
    spec = {k: v for k, v in raw.items() if k not in AUTHORING_FIELDS}
    reference = raw.get("reference_solution", "")
    if "starter_edits" in raw:
        spec["starter_code"] = apply_edits(reference, raw["starter_edits"], "starter_edits")
    program = raw.get("entry_point") is None
    cases: list[Any] = []
    if "cases" in raw:
        # one expression for the whole list, or a TOML list of one expression per case
        texts = raw["cases"] if isinstance(raw["cases"], list) else [raw["cases"]]
        for text in texts:
            try:
                value = eval(compile(text, "<cases>", "eval"), {})  # noqa: S307 - our data
            except Exception as exc:
                raise TaskError(f"cases is not a valid Python expression: {exc!r}") from None
            if isinstance(raw["cases"], list):
                cases.append(value)
            else:
                cases.extend(value)
    seed = int(raw.get("seed", 0))
    if "generator" in raw:
        cases.extend(_run_generator(raw["generator"], seed, "generator"))
    if "timing_generator" in raw:
        for c in _run_generator(raw["timing_generator"], seed + 1, "timing_generator"):
            if program:
                cases.append(HiddenCase(stdin=c, timing=True))
            else:
                cases.append(HiddenCase(args=tuple(c), timing=True))
    if cases:
        spec["hidden_cases"] = cases
    return spec


def load_file(text: str, name: str) -> list[Task]:
    """Parse one TOML file of tasks; errors name the file and the task."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskError(f"{name}: {exc}") from None
    tasks = []
    for i, raw in enumerate(doc.get("task", [])):
        label = raw.get("id", f"task #{i + 1}")
        try:
            tasks.append(build_task(resolve(raw), source="builtin"))
        except TaskError as exc:
            raise TaskError(f"{name}: {label}: {exc}") from None
    return tasks


def builtin_tasks() -> list[Task]:
    """Every task in `data/*.toml`, in file order."""
    tasks: list[Task] = []
    data = resources.files(__package__).joinpath("data")
    for entry in sorted(data.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".toml"):
            tasks.extend(load_file(entry.read_text(encoding="utf-8"), entry.name))
    return tasks
