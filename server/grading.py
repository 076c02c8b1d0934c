"""The grader: runs a submission's checks in the sandbox and scores it by its family's rules.

What a score means is decided per family (`tasks/families/`); this module is the
machinery they share: the reference's expected outputs (computed once per task in the
sandbox, from its reset on, and kept per machine in the store; they never enter the
candidate's process and never appear in a report), graded runs, the verdict on each case
under the task's comparator, test code (compiled to calls the verifier judges when it is
one assert per test, `assert_checks`; else run in a test process of its own), and the
visible tests. Feedback names a failing case only by its number and exception type.

A case passes when its output matches the reference's under the task's comparator (or,
with `expects_errors`, when it raises the reference's exception type). A solution that
does not parse or load, or a case that raises, times out, crashes or returns something
that is not plain data, fails. A reference that cannot produce a result is a
`ReferenceFailure` (a `SandboxError`: an infrastructure fault, never a score).

`passed` is `score >= task.pass_threshold`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..models import GradeReport, ReviewFinding, TestCaseResult, TestReport
from . import assert_checks
from .assert_checks import Checks
from .sandbox import CaseOutcome, CaseSpec, CasesResult, Limits, Sandbox
from .sandbox.cases import run_calls
from .sandbox.plain import decode, encode
from .sandbox.records import AssertionOutcome, AssertionResult, SandboxError
from .tasks import Task
from .tasks.cache import Store, content_key
from .tasks.comparators import COMPARATORS, compare, register_comparator
from .tasks.families import Answer, rules_for
from .tasks.families.base import make_report
from .tasks.model import HiddenCase, TaskError
from .tasks.source import syntax_problem, test_names

log = logging.getLogger(__name__)

GRADING_VERSION = "2"
"""Bump when a change can alter any score. 2: submit grades every check, visible and
hidden; HumanEval is graded by its own asserts with its 3 s limit. (1: hidden only.)"""

TIMING_ROUNDS = 3
REFERENCE_BUDGET = {"cpu_s": 20.0, "wall_s": 40.0}
"""The reference's minimum budget: it must never be the one that times out."""

_EXC_NAME = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def exception_type(error: str | None) -> str:
    """Just the exception's type name from an error text (its message may hold inputs)."""
    if not error:
        return "an error"
    for line in reversed(error.strip().splitlines()):
        m = _EXC_NAME.match(line.strip())
        if m and (m.group(1).endswith(("Error", "Exception", "Exit", "Interrupt")) or ":" in line):
            return m.group(1).rsplit(".", 1)[-1]
    return "an error"


@dataclasses.dataclass(frozen=True)
class Expected:
    """The reference's result on one case: a value, or the exception type it raised."""

    ok: bool
    value: Any = None
    error_type: str = ""


_MISSING = object()


class ReferenceFailure(SandboxError):
    """The reference solution did not produce a result: not the candidate's fault, so an
    error and never a score (a bank bug, which validate finds, or a sandbox fault)."""


def _spec(case: HiddenCase) -> CaseSpec:
    return CaseSpec(args=tuple(case.args), kwargs=dict(case.kwargs), stdin=case.stdin)


def _entry(task: Task) -> str:
    """The entry point test code calls (tests need one: programs use examples instead)."""
    if task.entry_point is None:
        raise TaskError(f"{task.id}: test code needs an entry point")
    return task.entry_point


def all_test_code(task: Task) -> str:
    """The visible test functions, then the hidden test code: one module, run together."""
    return "\n\n".join(c for c in (task.visible_tests, task.hidden_test_code) if c)


@functools.lru_cache(maxsize=4096)
def _visible_names(code: str) -> frozenset[str]:
    """The visible tests' names (parsed once per text, not per submit)."""
    return frozenset(test_names(code))


def check_count(task: Task) -> int:
    """How many checks a submission is graded on (each counts once)."""
    code = all_test_code(task)
    tests = len(test_names(code)) or (1 if code else 0)
    return len(task.visible_examples) + len(task.hidden_cases) + tests


def _describe(outcome: CaseOutcome | None) -> str:
    if outcome is None:
        return "did not run (the run was stopped)"
    if outcome.status == "error":
        return f"raised {exception_type(outcome.error)}"
    if outcome.status == "timeout":
        return "timed out"
    if outcome.status == "crash":
        return "crashed the process"
    if outcome.status == "unserializable":
        return "returned a value that is not plain data"
    return "wrong answer"


class Grader:
    """Grades submissions through one shared sandbox (the families' `Toolkit`)."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        timing_rounds: int = TIMING_ROUNDS,
        store: Store | None = None,
        runtime_tag: str = "",
    ) -> None:
        """`store`: the per-machine cache for expected outputs and compiled checks (None:
        this process's memory only); `runtime_tag` names the interpreter the sandbox runs
        (part of every key: another Python may compute other values)."""
        self.sandbox = sandbox
        self.timing_rounds = timing_rounds
        self.store = store
        self.runtime_tag = runtime_tag
        self._memo: dict[tuple[str, str], Any] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._prepared: set[str] = set()
        self._queue: queue.SimpleQueue[Task] | None = None

    # -- the public entry points ---------------------------------------------------------

    def grade(
        self, task: Task, solution: str, findings: Sequence[ReviewFinding] | None = None
    ) -> GradeReport:
        """Score `solution` (or `findings`, on review tasks) by the task's family rules."""
        rules = rules_for(task.family)
        if task.family != "review":
            problem = syntax_problem(solution)
            if problem:
                total = check_count(task)
                return make_report(task, 0.0, 0, total, f"solution does not parse: {problem}")
        return rules.grade(self, task, Answer(solution, list(findings or [])))

    def visible_tests(self, task: Task, solution: str) -> TestReport:
        """Run the visible tests (public: messages may show values)."""
        problem = syntax_problem(solution)
        if task.visible_examples:
            return self._visible_examples(task, solution, problem)
        if not task.visible_tests.strip():
            return TestReport(error=f"SyntaxError: {problem}" if problem else None)
        if problem:
            return TestReport(error=f"SyntaxError: {problem}")
        result = self.run_assertions(task, solution, task.visible_tests)
        results = [
            TestCaseResult(name=t.name, passed=t.passed, message=(t.message or "")[:2000])
            for t in result.tests
        ]
        error = result.load_error
        if result.timed_out and not error:
            error = "the tests timed out"
        return TestReport(
            passed=sum(r.passed for r in results),
            total=len(results),
            results=results,
            error=error[:2000] if error else None,
        )

    # -- limits -------------------------------------------------------------------------

    def _base_limits(self) -> Limits:
        base = getattr(self.sandbox, "limits", None)
        return base if isinstance(base, Limits) else Limits()

    def limits_for(self, task: Task, *, cpu_s: float | None = None) -> Limits:
        """The task's limits: its own CPU budget, plus its family's changes."""
        changes: dict[str, Any] = {}
        cpu = cpu_s if cpu_s is not None else task.cpu_s
        if cpu is not None:
            changes["cpu_s"] = cpu
            changes["wall_s"] = max(cpu * 2.0 + 1.0, 2.0)
        if task.wall_s is not None and cpu_s is None:
            changes["wall_s"] = task.wall_s  # a benchmark's own limit (HumanEval: 3 s)
        changes.update(rules_for(task.family).limit_changes(task))
        base = self._base_limits()
        return dataclasses.replace(base, **changes) if changes else base

    # -- runs -----------------------------------------------------------------------------

    def run_cases(
        self,
        task: Task,
        source: str,
        cases: Sequence[HiddenCase],
        *,
        limits: Limits | None = None,
    ) -> CasesResult:
        """Run `source` on `cases` (the task's entry point, or as a program)."""
        return self.sandbox.run_cases(
            source,
            [_spec(c) for c in cases],
            entry_point=task.entry_point,
            limits=limits or self.limits_for(task),
        )

    def run_reference(self, task: Task, cases: Sequence[HiddenCase], *, limits: Limits) -> Any:
        """The reference on `cases` (timing runs); ReferenceFailure when it fails."""
        result = self.run_cases(task, task.reference_solution, cases, limits=limits)
        if result.load_error or result.timed_out:
            raise ReferenceFailure(f"{task.id}: reference failed in a timing run")
        return result

    def run_assertions(
        self, task: Task, source: str, test_code: str, *, limits: Limits | None = None
    ) -> AssertionResult:
        """Test code against `source`, the candidate in a process of its own."""
        return self.sandbox.run_assertions(
            source, test_code, entry_point=_entry(task), limits=limits or self.limits_for(task)
        )

    # -- what grading a task needs, computed once per machine ------------------------------

    def _cached(
        self,
        namespace: str,
        key: str,
        compute: Callable[[], Any],
        to_json: Callable[[Any], Any],
        from_json: Callable[[Any], Any],
    ) -> Any:
        """`compute()` once per key: from memory, else the store, else computed (and
        stored). Concurrent callers of one key wait for the one computation."""
        mk = (namespace, key)
        with self._lock:
            if mk in self._memo:
                return self._memo[mk]
            lock = self._locks.setdefault(mk, threading.Lock())
        with lock:
            if mk in self._memo:
                return self._memo[mk]
            stored = self.store.get(namespace, key) if self.store is not None else None
            value: Any = _MISSING
            if stored is not None:
                try:
                    value = from_json(stored)
                except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
                    log.warning("cache entry %s/%s unusable, recomputed: %s", namespace, key, exc)
            if value is _MISSING:
                value = compute()
                if self.store is not None:
                    self.store.put(namespace, key, to_json(value))
            self._memo[mk] = value
            return value

    def prepare(self, task: Task) -> None:
        """Start computing what grading `task` needs (expected outputs, compiled checks)
        in the background, so that its submit finds them ready: called on reset. Each
        task once per process; a store entry makes it a file read."""
        with self._lock:
            if task.id in self._prepared:
                return
            self._prepared.add(task.id)
            if self._queue is None:
                self._queue = queue.SimpleQueue()
                threading.Thread(
                    target=self._prepare_loop,
                    args=(self._queue,),
                    name="grading-prepare",
                    daemon=True,
                ).start()
            self._queue.put(task)

    def _prepare_loop(self, tasks: queue.SimpleQueue[Task]) -> None:
        while True:
            task = tasks.get()
            try:
                self.prepare_now(task)
            except Exception as exc:  # noqa: BLE001 - the submit computes it (and raises)
                log.warning("preparing %s for grading failed: %s", task.id, exc)
                with self._lock:
                    self._prepared.discard(task.id)

    def prepare_now(self, task: Task) -> None:
        """What `prepare` does, in the caller's thread (a warm-up, the validator)."""
        if task.hidden_cases:
            self.expected(task)
        code = all_test_code(task)
        if code and task.entry_point is not None:
            self.checks(task, code)

    # -- expected outputs -----------------------------------------------------------------

    def expected(self, task: Task) -> list[Expected]:
        """The reference's results on the hidden cases, computed once per task (per
        machine, with a store) in the sandbox."""
        if not task.hidden_cases:
            return []
        key = content_key("expected", GRADING_VERSION, task.fingerprint(), self.runtime_tag)
        result: list[Expected] = self._cached(
            "expected",
            key,
            lambda: self._compute_expected(task),
            lambda exps: [[e.ok, e.value, e.error_type] for e in exps],
            lambda rows: [Expected(bool(ok), value, str(err)) for ok, value, err in rows],
        )
        return result

    # -- compiled checks ------------------------------------------------------------------

    def checks(self, task: Task, code: str) -> Checks | None:
        """`code` compiled to calls the verifier judges (assert_checks), or None when it
        is not one supported assert per test (then run_assertions grades it)."""
        entry = task.entry_point
        if entry is None:
            return None
        key = content_key(
            "assert-checks",
            assert_checks.PLAN_VERSION,
            GRADING_VERSION,
            entry,
            code,
            self.runtime_tag,
        )
        result: Checks | None = self._cached(
            "assert-checks",
            key,
            lambda: self._compile_checks(task, entry, code),
            lambda c: {"none": True} if c is None else c.as_json(),
            lambda d: None if d.get("none") else Checks.from_json(d),
        )
        return result

    def _compile_checks(self, task: Task, entry: str, code: str) -> Checks | None:
        plan = assert_checks.specs(code, entry)
        if plan is None:
            return None
        source = assert_checks.plan_source(code, entry, plan)
        calls: list[tuple[Any, Any]] = [(encode((i,)), {}) for i in range(-1, len(plan))]
        limits = self._reference_limits(task)
        runs = [
            run_calls(
                self.sandbox, source, calls, entry_point=assert_checks.PLAN_ENTRY, limits=limits
            )
            for _ in range(2)  # two processes: inputs drawn at random differ, so stay live
        ]
        result = runs[0]
        if result.load_error or result.timed_out:
            return None  # the test code does not load alone: run_assertions reports it
        outs = result.outcomes
        if any(o.status != "ok" for o in outs):
            return None  # an input or expected value that is not plain data, or raises
        if [o.output for o in outs] != [o.output for o in runs[1].outcomes]:
            return None  # not the same values twice: run_assertions draws them per run
        names, bound = decode(outs[0].output)
        if names != [s.name for s in plan] or bound is not True:
            return None  # the test module binds the names otherwise than it reads
        calls_out: list[tuple[Any, Any]] = []
        extras: list[list[Any]] = []
        for o in outs[1:]:
            raw = o.output
            if not (isinstance(raw, list) and len(raw) == 3 and isinstance(raw[2], list)):
                return None
            calls_out.append((raw[0], raw[1]))
            extras.append(raw[2])
        return Checks(
            names=names,
            forms=[s.form for s in plan],
            calls=calls_out,
            encoded_extras=extras,
        )

    def run_checks(
        self, task: Task, source: str, checks: Checks, *, limits: Limits | None = None
    ) -> AssertionResult:
        """`source` judged on compiled checks: one candidate process answers the calls,
        the verifier applies each assert to the decoded value."""
        result = run_calls(
            self.sandbox,
            source,
            checks.calls,
            entry_point=_entry(task),
            limits=limits or self.limits_for(task),
        )
        tests: list[AssertionOutcome] = []
        for k, name in enumerate(checks.names):
            outcome = result.outcomes[k] if k < len(result.outcomes) else None
            passed, message = False, _describe(outcome)
            if outcome is not None and outcome.status == "ok":
                try:
                    value = decode(outcome.output)
                except Exception:  # noqa: BLE001 - a malformed reply: the call failed
                    message = "returned a value that could not be read"
                else:
                    passed = assert_checks.holds(checks.forms[k], value, checks.extras[k])
                    message = "" if passed else "AssertionError"
            tests.append(AssertionOutcome(name, passed, message))
        return AssertionResult(tests=tests, load_error=None, timed_out=result.timed_out)

    def _reference_limits(self, task: Task) -> Limits:
        limits = self.limits_for(task)
        return dataclasses.replace(
            limits,
            cpu_s=max(limits.cpu_s, REFERENCE_BUDGET["cpu_s"]),
            wall_s=max(limits.wall_s, REFERENCE_BUDGET["wall_s"]),
        )

    def _compute_expected(self, task: Task) -> list[Expected]:
        limits = self._reference_limits(task)
        result = self.run_cases(task, task.reference_solution, task.hidden_cases, limits=limits)
        if result.load_error:
            raise ReferenceFailure(f"{task.id}: reference failed to load: {result.load_error}")
        out: list[Expected] = []
        for i, outcome in enumerate(result.outcomes):
            if outcome.status == "ok":
                out.append(Expected(ok=True, value=outcome.output))
            elif outcome.status == "error" and task.expects_errors:
                out.append(Expected(ok=False, error_type=exception_type(outcome.error)))
            else:
                raise ReferenceFailure(
                    f"{task.id}: reference {outcome.status} on hidden case {i}: {outcome.error}"
                )
        if len(out) != len(task.hidden_cases):
            raise ReferenceFailure(
                f"{task.id}: reference produced {len(out)}/{len(task.hidden_cases)} results"
            )
        return out

    # -- verdicts -------------------------------------------------------------------------

    def case_passes(self, task: Task, exp: Expected, outcome: CaseOutcome | None) -> bool:
        """One case's verdict: the reference's result matched under the comparator."""
        if outcome is None:
            return False
        if not exp.ok:
            return outcome.status == "error" and exception_type(outcome.error) == exp.error_type
        return outcome.status == "ok" and compare(
            task.comparator, exp.value, outcome.output, task.tolerance
        )

    def case_verdicts(
        self, task: Task, source: str, indices: Sequence[int], *, limits: Limits | None = None
    ) -> list[bool]:
        """Pass/fail of `source` on the hidden cases at `indices`, in that order."""
        expected = self.expected(task)
        result = self.run_cases(
            task, source, [task.hidden_cases[i] for i in indices], limits=limits
        )
        outcomes = result.outcomes
        return [
            self.case_passes(task, expected[i], outcomes[k] if k < len(outcomes) else None)
            for k, i in enumerate(indices)
        ]

    def count(
        self,
        task: Task,
        expected: list[Expected],
        result: CasesResult,
        notes: list[str],
        offset: int = 0,
    ) -> int:
        """How many outcomes of `result` match `expected`; notes the first failure."""
        if result.load_error:
            notes.append(f"solution failed to load ({exception_type(result.load_error)})")
            return 0
        passed = 0
        first_failure = None
        for i, exp in enumerate(expected):
            outcome = result.outcomes[i] if i < len(result.outcomes) else None
            if self.case_passes(task, exp, outcome):
                passed += 1
            elif first_failure is None:
                first_failure = f"first failure: case {offset + i + 1} {_describe(outcome)}"
        if first_failure:
            notes.append(first_failure)
        if result.timed_out:
            notes.append("the run hit its time limit")
        if getattr(result, "memory_exceeded", False):
            notes.append("the run hit its memory limit")
        return passed

    def correctness(self, task: Task, solution: str) -> tuple[int, int, list[str]]:
        """Every check of the task, visible and hidden, each counting once; returns
        (passed, total, notes). Visible program examples and hidden cases run as cases;
        visible test functions and hidden test code run together in one assertion run
        (visible first), so checks that share state see HumanEval's order."""
        notes: list[str] = []
        passed = total = 0
        if task.visible_examples:
            p, n = self._examples(task, solution, notes)
            passed, total = passed + p, total + n
        if task.hidden_cases:
            expected = self.expected(task)
            result = self.run_cases(task, solution, task.hidden_cases)
            passed += self.count(task, expected, result, notes)
            total += len(expected)
        code = all_test_code(task)
        if code:
            p, n = self._tests(task, solution, code, notes)
            passed, total = passed + p, total + n
        return passed, total, notes

    def visible_checks(self, task: Task, solution: str, notes: list[str]) -> tuple[int, int]:
        """The visible checks alone (examples or test functions): (passed, total)."""
        if task.visible_examples:
            return self._examples(task, solution, notes)
        if task.visible_tests:
            return self._tests(task, solution, task.visible_tests, notes)
        return 0, 0

    def _examples(self, task: Task, solution: str, notes: list[str]) -> tuple[int, int]:
        report = self._visible_examples(task, solution, None)
        failed = [r.name for r in report.results if not r.passed]
        if failed:
            notes.append(f"visible {failed[0]} failed")
        return report.passed, len(task.visible_examples)

    def _tests(self, task: Task, solution: str, code: str, notes: list[str]) -> tuple[int, int]:
        checks = self.checks(task, code)
        if checks is not None:
            result = self.run_checks(task, solution, checks)
        else:
            result = self.run_assertions(task, solution, code)
        total = max(len(result.tests), 1)
        if result.load_error:
            notes.append(f"the tests failed to load ({exception_type(result.load_error)})")
            return 0, total
        passed = sum(1 for t in result.tests if t.passed)
        visible = _visible_names(task.visible_tests)
        shown = [t.name for t in result.tests if not t.passed and t.name in visible]
        hidden = sum(1 for t in result.tests if not t.passed and t.name not in visible)
        if shown:
            notes.append(f"visible {shown[0]} failed")
        if result.timed_out:
            notes.append("the tests hit their time limit")
        elif hidden:
            notes.append(f"{hidden} hidden test(s) failed")
        return passed, total

    def _visible_examples(self, task: Task, solution: str, problem: str | None) -> TestReport:
        names = [f"test_example_{i}" for i in range(1, len(task.visible_examples) + 1)]
        if problem:
            return TestReport(total=len(names), error=f"SyntaxError: {problem}")
        cases = [HiddenCase(stdin=ex.stdin) for ex in task.visible_examples]
        result = self.run_cases(task, solution, cases)
        results = []
        for i, (name, ex) in enumerate(zip(names, task.visible_examples, strict=True)):
            outcome = result.outcomes[i] if i < len(result.outcomes) else None
            ok = (
                outcome is not None
                and outcome.status == "ok"
                and compare(task.comparator, ex.expected, outcome.output, task.tolerance)
            )
            if ok:
                message = ""
            elif outcome is not None and outcome.status == "ok":
                message = f"expected {ex.expected!r}, got {outcome.output!r}"[:2000]
            else:
                message = _describe(outcome) + (
                    f": {outcome.error}"[:2000] if outcome and outcome.error else ""
                )
            results.append(TestCaseResult(name=name, passed=ok, message=message))
        return TestReport(
            passed=sum(r.passed for r in results),
            total=len(results),
            results=results,
            error=result.load_error[:2000] if result.load_error else None,
        )


__all__ = [
    "COMPARATORS",
    "GRADING_VERSION",
    "Expected",
    "Grader",
    "ReferenceFailure",
    "compare",
    "exception_type",
    "register_comparator",
    "syntax_problem",
]
