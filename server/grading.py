"""The verifier: runs a submission on hidden cases in the sandbox and scores it.

Rules (the rubric that turns results into a score in [0, 1]):

- implement / fix-bug / fix-syntax: the fraction of hidden cases whose output matches the
  reference's output under the task's comparator. A solution that does not parse or
  load, or a case that raises, times out, crashes or returns something that is not
  plain data, counts as failed. Expected outputs come from running the reference in the
  sandbox (cached per task); they never enter the candidate's process and never appear
  in a report: feedback names a failing case only by its number and exception type.
- optimize: score = correctness * (0.5 + 0.5 * speed). The timing cases run in 3
  interleaved rounds (reference, candidate) with `max_processes=1`; CPU time is measured
  by the parent (rusage), medians are compared. The speed part is 1 when
  `candidate <= reference * speed_slack + 30 ms` and otherwise decays as
  allowed/candidate. A candidate clearly too slow is stopped at 4x the allowed time
  (min 0.5 s); one wrong on the small cases is not timed. Passing therefore needs every
  case right AND the speed rule met. Validation checks each starter is at least
  `speedup_target` times slower than the reference, so the slack always rejects it.
- review: findings are matched to the known defects (same category, same line).
  score = recall * precision, where duplicates and findings matching no defect count
  against precision; no findings score 0.

`passed` is `score >= task.pass_threshold`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..models import GradeReport, ReviewFinding, TestCaseResult, TestReport
from .sandbox import CaseOutcome, CaseSpec, CasesResult, Limits, Sandbox
from .tasks import Task
from .tasks.model import TaskError

# -- comparators ------------------------------------------------------------------------

Comparator = Callable[[Any, Any, float], bool]


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _structural(expected: Any, actual: Any, leaf: Callable[[Any, Any], bool]) -> bool:
    """Lists item by item and dicts key by key, down to `leaf` for everything else."""
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _structural(e, a, leaf) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            _structural(v, actual[k], leaf) for k, v in expected.items()
        )
    return leaf(expected, actual)


def _equal(expected: Any, actual: Any, tol: float | None) -> bool:
    """Structural equality on plain data; bools are not numbers; floats within `tol`."""

    def leaf(e: Any, a: Any) -> bool:
        if isinstance(e, bool) or isinstance(a, bool):
            return type(e) is type(a) and e == a
        if _is_num(e) and _is_num(a):
            if tol is not None and (isinstance(e, float) or isinstance(a, float)):
                if math.isnan(e) or math.isnan(a):
                    return math.isnan(e) and math.isnan(a)
                return math.isclose(e, a, rel_tol=tol, abs_tol=tol)
            return bool(e == a)
        return type(e) is type(a) and bool(e == a)

    return _structural(expected, actual, leaf)


def _canonical(value: Any, deep: bool) -> Any:
    """A sortable canonical form: lists sorted (all levels when deep)."""
    if isinstance(value, list):
        items = [_canonical(v, deep) if deep else v for v in value]
        return sorted(items, key=repr)
    if isinstance(value, dict) and deep:
        return {k: _canonical(v, deep) for k, v in value.items()}
    return value


def exact(expected: Any, actual: Any, tol: float) -> bool:
    return _equal(expected, actual, None)


def floats(expected: Any, actual: Any, tol: float) -> bool:
    return _equal(expected, actual, tol)


def unordered(expected: Any, actual: Any, tol: float) -> bool:
    """Top-level order does not matter (a list compared as a multiset)."""
    if not (isinstance(expected, list) and isinstance(actual, list)):
        return _equal(expected, actual, None)
    return _equal(_canonical(expected, False), _canonical(actual, False), None)


def unordered_deep(expected: Any, actual: Any, tol: float) -> bool:
    """Order does not matter at any list level (groups of groups, say)."""
    return _equal(_canonical(expected, True), _canonical(actual, True), None)


def _text_lines(text: Any) -> list[str] | None:
    if not isinstance(text, str):
        return None
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def lines(expected: Any, actual: Any, tol: float) -> bool:
    """Program output: same lines, ignoring trailing spaces and trailing blank lines."""
    e, a = _text_lines(expected), _text_lines(actual)
    return e is not None and e == a


def tokens(expected: Any, actual: Any, tol: float) -> bool:
    """Program output: same whitespace-separated tokens."""
    return (
        isinstance(expected, str) and isinstance(actual, str) and expected.split() == actual.split()
    )


def loose(expected: Any, actual: Any, tol: float) -> bool:
    """Python `==` semantics (True == 1), floats within tolerance: HumanEval's asserts."""

    def leaf(e: Any, a: Any) -> bool:
        if _is_num(e) or isinstance(e, bool):
            if (_is_num(a) or isinstance(a, bool)) and not isinstance(e, bool):
                return math.isclose(e, a, rel_tol=tol, abs_tol=tol)
            return bool(e == a)
        return type(e) is type(a) and bool(e == a)

    return _structural(expected, actual, leaf)


COMPARATORS: dict[str, Comparator] = {
    "exact": exact,
    "float": floats,
    "unordered": unordered,
    "unordered-deep": unordered_deep,
    "lines": lines,
    "tokens": tokens,
    "loose": loose,
}


def register_comparator(name: str, fn: Comparator) -> None:
    """Add a named custom comparator that tasks can refer to."""
    COMPARATORS[name] = fn


def compare(comparator: str, expected: Any, actual: Any, tol: float = 1e-6) -> bool:
    try:
        fn = COMPARATORS[comparator]
    except KeyError:
        raise TaskError(f"unknown comparator {comparator!r}") from None
    try:
        return fn(expected, actual, tol)
    except Exception:  # a comparator must never crash the grader
        return False


# -- helpers ----------------------------------------------------------------------------

TIMING_ROUNDS = 3
TIMING_FLOOR_MS = 30.0
TOO_SLOW_FACTOR = 4.0

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


def syntax_problem(source: str) -> str | None:
    """'line N: message' when `source` does not compile, else None (the agent's own code)."""
    try:
        compile(source, "solution.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except ValueError as exc:  # e.g. null bytes
        return str(exc)
    return None


@dataclasses.dataclass(frozen=True)
class Expected:
    """The reference's result on one case: a value, or the exception type it raised."""

    ok: bool
    value: Any = None
    error_type: str = ""


class ReferenceFailure(RuntimeError):
    """The reference solution did not produce a result (a bank bug, found by validate)."""


def _specs(task: Task, timing: bool | None = None) -> list[CaseSpec]:
    out = []
    for c in task.hidden_cases:
        if timing is None or c.timing == timing:
            out.append(CaseSpec(args=tuple(c.args), kwargs=dict(c.kwargs), stdin=c.stdin))
    return out


def _entry(task: Task) -> str:
    """The entry point test code calls (tests need one: programs use examples instead)."""
    if task.entry_point is None:
        raise TaskError(f"{task.id}: test code needs an entry point")
    return task.entry_point


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


# -- the grader -------------------------------------------------------------------------


class Grader:
    """Grades submissions against a task's hidden cases through one shared sandbox."""

    def __init__(self, sandbox: Sandbox, *, timing_rounds: int = TIMING_ROUNDS) -> None:
        self.sandbox = sandbox
        self.timing_rounds = timing_rounds
        self._expected: dict[str, list[Expected]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    # -- limits ---------------------------------------------------------------------

    def _base_limits(self) -> Limits:
        base = getattr(self.sandbox, "limits", None)
        return base if isinstance(base, Limits) else Limits()

    def limits_for(self, task: Task, *, cpu_s: float | None = None) -> Limits:
        """The task's limits: its own CPU budget; one process only for optimize tasks."""
        base = self._base_limits()
        changes: dict[str, Any] = {}
        cpu = cpu_s if cpu_s is not None else task.cpu_s
        if cpu is not None:
            changes["cpu_s"] = cpu
            changes["wall_s"] = max(cpu * 2.0 + 1.0, 2.0)
        if task.family == "optimize":
            changes["max_processes"] = 1
        return dataclasses.replace(base, **changes) if changes else base

    # -- expected outputs -------------------------------------------------------------

    def expected(self, task: Task) -> list[Expected]:
        """The reference's results on the hidden cases, computed once per task and cached."""
        key = task.fingerprint()
        with self._lock:
            if key in self._expected:
                return self._expected[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._expected:
                self._expected[key] = self._compute_expected(task)
            return self._expected[key]

    def _compute_expected(self, task: Task) -> list[Expected]:
        specs = _specs(task)
        if not specs:
            return []
        limits = self.limits_for(task)
        # the reference gets a generous budget: it must never be the one that times out
        limits = dataclasses.replace(
            limits, cpu_s=max(limits.cpu_s, 20.0), wall_s=max(limits.wall_s, 40.0)
        )
        result = self.sandbox.run_cases(
            task.reference_solution, specs, entry_point=task.entry_point, limits=limits
        )
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
        if len(out) != len(specs):
            raise ReferenceFailure(f"{task.id}: reference produced {len(out)}/{len(specs)} results")
        return out

    def _case_passes(self, task: Task, exp: Expected, outcome: CaseOutcome | None) -> bool:
        if outcome is None:
            return False
        if not exp.ok:
            return outcome.status == "error" and exception_type(outcome.error) == exp.error_type
        return outcome.status == "ok" and compare(
            task.comparator, exp.value, outcome.output, task.tolerance
        )

    # -- visible tests ------------------------------------------------------------------

    def visible_tests(self, task: Task, solution: str) -> TestReport:
        """Run the visible tests (public: messages may show values)."""
        problem = syntax_problem(solution)
        if task.visible_examples:
            return self._visible_examples(task, solution, problem)
        if not task.visible_tests.strip():
            return TestReport(error=f"SyntaxError: {problem}" if problem else None)
        if problem:
            return TestReport(error=f"SyntaxError: {problem}")
        result = self.sandbox.run_assertions(
            solution, task.visible_tests, entry_point=_entry(task), limits=self.limits_for(task)
        )
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

    def _visible_examples(self, task: Task, solution: str, problem: str | None) -> TestReport:
        names = [f"test_example_{i}" for i in range(1, len(task.visible_examples) + 1)]
        if problem:
            return TestReport(total=len(names), error=f"SyntaxError: {problem}")
        specs = [CaseSpec(stdin=ex.stdin) for ex in task.visible_examples]
        result = self.sandbox.run_cases(
            solution, specs, entry_point=None, limits=self.limits_for(task)
        )
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

    # -- grading ------------------------------------------------------------------------

    def grade(
        self, task: Task, solution: str, findings: Sequence[ReviewFinding] | None = None
    ) -> GradeReport:
        """Score `solution` (or `findings`, on review tasks) on the hidden cases."""
        if task.family == "review":
            return self._grade_review(task, list(findings or []))
        n_cases = len(task.hidden_cases) + (1 if task.hidden_test_code else 0)
        problem = syntax_problem(solution)
        if problem:
            return self._report(task, 0.0, 0, n_cases, f"solution does not parse: {problem}")
        if task.family == "optimize":
            return self._grade_optimize(task, solution)
        passed, total, notes = self._correctness(task, solution)
        score = passed / total if total else 0.0
        return self._report(task, score, passed, total, self._summary(passed, total, notes))

    def _correctness(self, task: Task, solution: str) -> tuple[int, int, list[str]]:
        """Run all hidden cases (and hidden tests); return (passed, total, notes)."""
        notes: list[str] = []
        passed = total = 0
        if task.hidden_cases:
            expected = self.expected(task)
            result = self.sandbox.run_cases(
                solution, _specs(task), entry_point=task.entry_point, limits=self.limits_for(task)
            )
            p, n = self._count(task, expected, result, notes)
            passed, total = passed + p, total + n
        if task.hidden_test_code:
            p, n = self._hidden_tests(task, solution, notes)
            passed, total = passed + p, total + n
        return passed, total, notes

    def _count(
        self,
        task: Task,
        expected: list[Expected],
        result: CasesResult,
        notes: list[str],
        offset: int = 0,
    ) -> tuple[int, int]:
        if result.load_error:
            notes.append(f"solution failed to load ({exception_type(result.load_error)})")
            return 0, len(expected)
        passed = 0
        first_failure = None
        for i, exp in enumerate(expected):
            outcome = result.outcomes[i] if i < len(result.outcomes) else None
            if self._case_passes(task, exp, outcome):
                passed += 1
            elif first_failure is None:
                first_failure = f"first failure: case {offset + i + 1} {_describe(outcome)}"
        if first_failure:
            notes.append(first_failure)
        if result.timed_out:
            notes.append("the run hit its time limit")
        if getattr(result, "memory_exceeded", False):
            notes.append("the run hit its memory limit")
        return passed, len(expected)

    def _hidden_tests(self, task: Task, solution: str, notes: list[str]) -> tuple[int, int]:
        result = self.sandbox.run_assertions(
            solution,
            task.hidden_test_code,
            entry_point=_entry(task),
            limits=self.limits_for(task),
        )
        total = max(len(result.tests), 1)
        if result.load_error:
            notes.append(f"solution failed to load ({exception_type(result.load_error)})")
            return 0, total
        passed = sum(1 for t in result.tests if t.passed)
        if result.timed_out:
            notes.append("the hidden tests hit their time limit")
        elif passed < len(result.tests):
            notes.append(f"{len(result.tests) - passed} hidden test(s) failed")
        return passed, total

    @staticmethod
    def _summary(passed: int, total: int, notes: list[str]) -> str:
        head = f"{passed}/{total} hidden cases passed"
        return "; ".join([head, *notes])

    @staticmethod
    def _report(
        task: Task,
        score: float,
        passed: int,
        total: int,
        feedback: str,
        details: dict[str, float] | None = None,
    ) -> GradeReport:
        score = min(1.0, max(0.0, score))
        return GradeReport(
            score=score,
            passed=score >= task.pass_threshold,
            cases_passed=passed,
            cases_total=total,
            details=details or {},
            feedback=feedback[:1000],
        )

    # -- optimize ----------------------------------------------------------------------

    def _grade_optimize(self, task: Task, solution: str) -> GradeReport:
        expected = self.expected(task)
        small = [i for i, c in enumerate(task.hidden_cases) if not c.timing]
        large = [i for i, c in enumerate(task.hidden_cases) if c.timing]
        notes: list[str] = []
        passed = 0
        if small:
            result = self.sandbox.run_cases(
                solution,
                [_specs(task)[i] for i in small],
                entry_point=task.entry_point,
                limits=self.limits_for(task),
            )
            passed += self._count(task, [expected[i] for i in small], result, notes)[0]
        if passed < len(small):
            # wrong on small inputs: the large ones are not run (they would count as
            # failed anyway) and nothing is timed
            notes.append("large inputs not run")
            timing = {"speed": 0.0, "cpu_ms": 0.0, "ref_ms": 0.0, "allowed_ms": 0.0}
        else:
            timing = self._time(task, solution, [expected[i] for i in large], notes)
            passed += int(timing["large_passed"])
        total = len(task.hidden_cases)
        correctness = passed / total if total else 0.0
        speed = timing["speed"] if passed == total else 0.0
        score = correctness * (0.5 + 0.5 * speed)
        details = {
            "correctness": round(correctness, 4),
            "speed": round(speed, 4),
            "cpu_ms": round(timing["cpu_ms"], 2),
            "reference_cpu_ms": round(timing["ref_ms"], 2),
            "allowed_cpu_ms": round(timing["allowed_ms"], 2),
            "speedup": round(timing["ref_ms"] / timing["cpu_ms"], 3) if timing["cpu_ms"] else 0.0,
        }
        head = self._summary(passed, total, notes)
        if passed == total:
            verdict = "fast enough" if speed >= 1.0 else "too slow"
            head += f"; speed: {verdict} ({timing['cpu_ms']:.0f} ms CPU, allowed {timing['allowed_ms']:.0f} ms)"
        return self._report(task, score, passed, total, head, details)

    def _time(
        self, task: Task, solution: str, expected: list[Expected], notes: list[str]
    ) -> dict[str, float]:
        """Interleaved rounds of reference and candidate on the timing cases."""
        specs = _specs(task, timing=True)
        ref_limits = dataclasses.replace(self.limits_for(task), cpu_s=20.0, wall_s=40.0)
        ref_times: list[float] = []
        cand_times: list[float] = []
        large_passed = 0
        allowed_ms = 0.0
        for round_no in range(self.timing_rounds):
            ref = self.sandbox.run_cases(
                task.reference_solution, specs, entry_point=task.entry_point, limits=ref_limits
            )
            if ref.load_error or ref.timed_out:
                raise ReferenceFailure(f"{task.id}: reference failed in a timing run")
            ref_times.append(ref.cpu_time_ms)
            allowed_ms = statistics.median(ref_times) * task.speed_slack + TIMING_FLOOR_MS
            cap_s = max(0.5, allowed_ms * TOO_SLOW_FACTOR / 1000.0)
            cand = self.sandbox.run_cases(
                solution,
                specs,
                entry_point=task.entry_point,
                limits=self.limits_for(task, cpu_s=cap_s),
            )
            round_notes: list[str] = []
            ok, _ = self._count(
                task, expected, cand, round_notes, offset=len(task.hidden_cases) - len(specs)
            )
            if round_no == 0:
                large_passed = ok
                notes.extend(n for n in round_notes if "time limit" not in n)
            if ok < len(expected) or cand.timed_out:
                cand_times = [max(cand.cpu_time_ms, cap_s * 1000.0)]
                if round_no == 0 and ok < len(expected) and cand.timed_out:
                    notes.append("large inputs: stopped at the time limit")
                break
            cand_times.append(cand.cpu_time_ms)
            if cand.cpu_time_ms > allowed_ms * TOO_SLOW_FACTOR:
                break
        ref_ms = statistics.median(ref_times)
        allowed_ms = ref_ms * task.speed_slack + TIMING_FLOOR_MS
        cand_ms = statistics.median(cand_times) if cand_times else math.inf
        speed = 1.0 if cand_ms <= allowed_ms else allowed_ms / cand_ms
        return {
            "speed": speed if math.isfinite(cand_ms) else 0.0,
            "cpu_ms": cand_ms if math.isfinite(cand_ms) else 0.0,
            "ref_ms": ref_ms,
            "allowed_ms": allowed_ms,
            "large_passed": float(large_passed),
        }

    # -- review ------------------------------------------------------------------------

    def _grade_review(self, task: Task, findings: list[ReviewFinding]) -> GradeReport:
        matched: set[int] = set()
        false_pos = dup = 0
        for f in findings:
            hit = next(
                (i for i, d in enumerate(task.defects) if d.accepts(f.line, f.category)), None
            )
            if hit is None:
                false_pos += 1
            elif hit in matched:
                dup += 1
            else:
                matched.add(hit)
        n = len(task.defects)
        tp = len(matched)
        recall = tp / n if n else 0.0
        precision = tp / len(findings) if findings else 0.0
        score = recall * precision
        feedback = (
            f"{tp}/{n} known defects found; {false_pos} finding(s) matched no defect; "
            f"{dup} duplicate(s)"
            if findings
            else "no findings submitted"
        )
        details = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "false_positives": float(false_pos),
            "duplicates": float(dup),
        }
        return self._report(task, score, tp, n, feedback, details)


__all__ = [
    "COMPARATORS",
    "Expected",
    "Grader",
    "ReferenceFailure",
    "compare",
    "exception_type",
    "register_comparator",
]
