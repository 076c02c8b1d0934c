"""What a task is: the public part an agent sees and the hidden part only the grader reads.

A `Task` is an immutable record. Its hidden parts (cases, reference solution, defects)
are excluded from `repr` so they do not leak into logs, and `info()` builds the public
`models.TaskInfo` from the public fields only. Expected outputs are not stored here at
all: the grader computes them from the reference solution in the sandbox and caches them.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, overload

from ...models import Difficulty, Family, TaskInfo

Source = Literal["builtin", "procedural", "jsonl", "humaneval", "evalplus", "codeio"]

SOURCES: tuple[str, ...] = get_args(Source)

REVIEW_CATEGORIES: tuple[str, ...] = (
    "off-by-one",
    "wrong-operator",
    "wrong-condition",
    "missing-edge-case",
    "shared-state",
    "wrong-return",
    "error-handling",
    "wrong-variable",
)
"""The categories a review finding may use on built-in review tasks. Each is one a test
can demonstrate through a call: `shared-state` covers mutable defaults and module-level
data that leaks between calls; `missing-edge-case` an input class the code forgets
(empty, zero, negative...); `error-handling` wrong or missing exceptions."""

DEFAULT_MAX_STEPS: dict[str, int] = {"easy": 12, "medium": 16, "hard": 20}

PROGRAM_HELPER = '''import subprocess
import sys


def run_program(stdin: str) -> str:
    """Run solution.py as a program with `stdin`; return what it printed."""
    done = subprocess.run(
        [sys.executable, "solution.py"], input=stdin, capture_output=True, text=True, timeout=10
    )
    return done.stdout
'''
"""Prepended to the visible tests of stdin/stdout tasks so the agent can run them itself."""


class TaskError(ValueError):
    """A task definition is inconsistent (raised while building or validating the bank)."""


@dataclass(frozen=True)
class HiddenCase:
    """One hidden input: call arguments for function tasks, stdin for program tasks.

    `timing` marks the large inputs of optimize tasks that the verifier times.
    """

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    stdin: str = ""
    timing: bool = False

    def key(self) -> str:
        """A stable text form, used to fingerprint a task's cases for the expected cache."""
        return json.dumps(
            [_jsonable(self.args), _jsonable(self.kwargs), self.stdin, self.timing],
            sort_keys=True,
            default=repr,
        )


class GeneratedCases(Sequence[HiddenCase]):
    """Hidden cases made on first use: `produce()` runs once (e.g. a dataset's input
    generator, in the sandbox, through the per-machine store), so loading thousands of
    such tasks costs nothing until one is graded. `size` (`len()`) and `key` are known up front:
    `len()` and the task's fingerprint never produce the cases; `key` must be a hash of
    everything the cases depend on (the generator, its seeds, the runtime). A failing
    `produce()` raises (an infrastructure error) and is retried on the next use."""

    def __init__(self, count: int, key: str, produce: Callable[[], Sequence[HiddenCase]]):
        self.size = count
        self.key = key
        self._produce = produce
        self._cases: tuple[HiddenCase, ...] | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._cases is not None

    def cases(self) -> tuple[HiddenCase, ...]:
        if self._cases is None:
            with self._lock:
                if self._cases is None:
                    made = tuple(self._produce())
                    if len(made) != self.size:
                        raise TaskError(f"expected {self.size} generated cases, got {len(made)}")
                    self._cases = made
        return self._cases

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> HiddenCase: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[HiddenCase]: ...

    def __getitem__(self, index: int | slice) -> HiddenCase | Sequence[HiddenCase]:
        return self.cases()[index]

    def __iter__(self) -> Iterator[HiddenCase]:
        return iter(self.cases())

    def __repr__(self) -> str:
        return f"GeneratedCases(size={self.size}, key={self.key[:12]}, ready={self.ready})"


@dataclass(frozen=True)
class ProgramExample:
    """A visible stdin/expected-stdout pair of a program task (public, shown as a test)."""

    stdin: str
    expected: str


@dataclass(frozen=True)
class Defect:
    """A known defect of a review snippet, demonstrated by a deterministic test.

    `fix` is a textual edit (old, new) that must occur exactly once in the snippet; `test`
    is test code (`test_*` functions calling the entry point) that fails on the snippet and
    passes on the snippet with only this fix applied. `lines` lists other line numbers
    accepted for the finding (a defect spanning two lines, say).
    """

    line: int
    category: str
    fix: tuple[str, str]
    test: str
    lines: tuple[int, ...] = ()

    def accepts(self, line: int, category: str) -> bool:
        return category == self.category and (line == self.line or line in self.lines)


@dataclass(frozen=True)
class Task:
    """One problem of the bank. See the module docstring for what is public."""

    id: str
    family: Family
    difficulty: Difficulty
    title: str
    statement: str
    starter_code: str
    reference_solution: str = field(repr=False)
    entry_point: str | None
    visible_tests: str = ""
    visible_examples: tuple[ProgramExample, ...] = ()
    hidden_cases: Sequence[HiddenCase] = field(default=(), repr=False)  # or GeneratedCases
    hidden_test_code: str = field(default="", repr=False)
    comparator: str = "exact"
    tolerance: float = 1e-6
    expects_errors: bool = False
    max_steps: int = 16
    pass_threshold: float = 1.0
    speedup_target: float | None = None
    speed_slack: float = 2.5
    defects: tuple[Defect, ...] = field(default=(), repr=False)
    review_categories: tuple[str, ...] = ()
    source: Source = "builtin"
    cpu_s: float | None = None
    wall_s: float | None = None
    tags: tuple[str, ...] = ()
    base_id: str | None = None

    # -- derived views -------------------------------------------------------------

    @property
    def is_program(self) -> bool:
        """True for stdin/stdout programs (no entry point)."""
        return self.entry_point is None

    @property
    def snippet(self) -> str:
        """The code under review (review tasks show it as the starter file)."""
        return self.starter_code

    @property
    def timing_cases(self) -> tuple[HiddenCase, ...]:
        return tuple(c for c in self.hidden_cases if c.timing)

    def visible_test_code(self) -> str:
        """The visible tests as the agent reads them (program examples rendered as code)."""
        if not self.visible_examples:
            return self.visible_tests
        lines = [PROGRAM_HELPER]
        for i, ex in enumerate(self.visible_examples, 1):
            lines.append(f"\ndef test_example_{i}():")
            lines.append(
                f"    assert run_program({ex.stdin!r}).rstrip() == {ex.expected.rstrip()!r}"
            )
        return "\n".join(lines) + "\n"

    def fingerprint(self) -> str:
        """Hash of everything that determines the expected outputs (cache key)."""
        h = hashlib.sha256()
        for part in (
            self.id,
            self.reference_solution,
            self.entry_point or "",
            self.hidden_test_code,
        ):
            h.update(part.encode())
            h.update(b"\0")
        if isinstance(self.hidden_cases, GeneratedCases):  # known without producing them
            h.update(f"generated:{self.hidden_cases.key}".encode())
        else:
            for case in self.hidden_cases:
                h.update(case.key().encode())
                h.update(b"\0")
        return h.hexdigest()

    def grading_hash(self) -> str:
        """Hash of everything that decides a grade (the checks, the reference, the rules
        and limits): two tasks with the same hash grade every submission the same."""
        h = hashlib.sha256(self.fingerprint().encode())
        rules = [
            self.family,
            self.visible_tests,
            [[ex.stdin, ex.expected] for ex in self.visible_examples],
            self.comparator,
            self.tolerance,
            self.expects_errors,
            self.pass_threshold,
            self.speedup_target,
            self.speed_slack,
            [[d.line, d.category, list(d.fix), d.test, list(d.lines)] for d in self.defects],
            self.cpu_s,
            self.wall_s,
        ]
        h.update(json.dumps(rules, sort_keys=True, default=repr).encode())
        return h.hexdigest()

    def info(self) -> TaskInfo:
        """The public view: never hidden cases, expected outputs, defects or the reference."""
        return TaskInfo(
            task_id=self.id,
            family=self.family,
            difficulty=self.difficulty,
            title=self.title,
            statement=self.statement,
            starter_code=self.starter_code,
            entry_point=self.entry_point,
            visible_tests=self.visible_test_code(),
            max_steps=self.max_steps,
            review_categories=list(self.review_categories),
        )

    def summary(self) -> dict[str, str]:
        return {
            "id": self.id,
            "family": self.family,
            "difficulty": self.difficulty,
            "title": self.title,
            "source": self.source,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
