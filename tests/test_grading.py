"""The verifier: comparators, per-family scoring, hidden-data hygiene, reward hacking."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from python_env.models import ReviewFinding
from python_env.server.grading import (
    COMPARATORS,
    Grader,
    compare,
    exception_type,
    register_comparator,
)
from python_env.server.sandbox import Sandbox
from python_env.server.tasks import Task, TaskBank, TaskError, default_bank
from python_env.server.validate import review_findings


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def grader(sandbox: Sandbox) -> Grader:
    return Grader(sandbox)


@pytest.fixture(scope="module")
def bank() -> TaskBank:
    return default_bank()


# -- comparators ------------------------------------------------------------------------


def test_exact_is_structural_and_bool_strict() -> None:
    assert compare("exact", [1, {"a": "x"}], [1, {"a": "x"}])
    assert compare("exact", 2, 2.0)
    assert not compare("exact", True, 1)
    assert not compare("exact", 1, True)
    assert not compare("exact", [1, 2], [2, 1])
    assert not compare("exact", {"a": 1}, {"a": 1, "b": 2})
    assert not compare("exact", 0.1 + 0.2, 0.3)
    assert not compare("exact", "1", 1)
    assert not compare("exact", None, [])


def test_float_tolerance() -> None:
    assert compare("float", 0.3, 0.1 + 0.2)
    assert compare("float", [1.0, 2.0], [1.0 + 1e-9, 2.0])
    assert not compare("float", 1.0, 1.01)
    assert compare("float", 1.0, 1.01, 0.1)
    assert not compare("float", True, 1.0)


def test_unordered_comparators() -> None:
    assert compare("unordered", [3, 1, 2], [1, 2, 3])
    assert not compare("unordered", [1, 1, 2], [1, 2, 2])
    assert not compare("unordered", [[1, 2]], [[2, 1]])
    assert compare("unordered-deep", [["b", "a"], ["c"]], [["c"], ["a", "b"]])
    assert not compare("unordered-deep", [["a", "a"]], [["a"]])


def test_text_comparators() -> None:
    assert compare("lines", "a\nb\n", "a  \nb\n\n\n")
    assert not compare("lines", "a\nb\n", "a\n\nb\n")
    assert not compare("lines", "a", None)
    assert compare("tokens", "1 2\n3", " 1\n2 3 ")
    assert not compare("tokens", "1 2", "12")


def test_loose_is_python_equality_with_tolerance() -> None:
    assert compare("loose", True, 1)
    assert compare("loose", [0.5, "x"], [0.5 + 1e-9, "x"])
    assert not compare("loose", [1], [2])


def test_unknown_and_custom_comparators() -> None:
    with pytest.raises(TaskError, match="unknown comparator"):
        compare("nope", 1, 1)
    register_comparator("same-length", lambda e, a, tol: len(e) == len(a))
    try:
        assert compare("same-length", "abc", "xyz")
    finally:
        COMPARATORS.pop("same-length")


def test_a_crashing_comparator_is_a_failure() -> None:
    def boom(expected: Any, actual: Any, tol: float) -> bool:
        raise ZeroDivisionError

    register_comparator("boom", boom)
    try:
        assert compare("boom", 1, 1) is False
    finally:
        COMPARATORS.pop("boom")


def test_exception_type_keeps_only_the_type() -> None:
    assert exception_type("ValueError: secret input 123") == "ValueError"
    assert exception_type("Traceback...\n  File x\nKeyError: 'k'") == "KeyError"
    assert exception_type("json.decoder.JSONDecodeError: bad") == "JSONDecodeError"
    assert exception_type(None) == "an error"


# -- per-family scoring -------------------------------------------------------------------

SAMPLE = [
    "implement-rle-encode", "implement-merge-intervals", "implement-ledger",
    "fix-bug-mean", "fix-bug-shared-default", "fix-bug-template",
    "fix-syntax-greet", "fix-syntax-collatz", "fix-syntax-tokenizer",
    "optimize-has-duplicates", "optimize-count-inversions", "optimize-lis",
    "review-is-adult", "review-discount", "review-rate-limiter",
]  # fmt: skip


@pytest.mark.parametrize("task_id", SAMPLE)
def test_reference_passes_and_starter_fails(grader: Grader, bank: TaskBank, task_id: str) -> None:
    task = bank.get(task_id)
    findings = review_findings(task) if task.family == "review" else None
    good = grader.grade(task, task.reference_solution, findings)
    assert good.score == 1.0 and good.passed, good.feedback
    bad = grader.grade(task, task.starter_code, [] if task.family == "review" else None)
    assert bad.score < task.pass_threshold and not bad.passed
    assert 0.0 <= bad.score <= 1.0


def test_partial_credit_is_the_fraction_of_cases(grader: Grader, bank: TaskBank) -> None:
    task = bank.get("implement-digital-root")
    # right only for single-digit inputs
    report = grader.grade(task, "def digital_root(n):\n    return n\n")
    assert 0 < report.cases_passed < report.cases_total
    assert report.score == pytest.approx(report.cases_passed / report.cases_total)
    assert "wrong answer" in report.feedback


def test_syntax_error_scores_zero_with_a_line_number(grader: Grader, bank: TaskBank) -> None:
    task = bank.get("fix-syntax-greet")
    report = grader.grade(task, task.starter_code)
    assert report.score == 0.0 and "does not parse: line 3" in report.feedback
    tests = grader.visible_tests(task, task.starter_code)
    assert tests.error and "SyntaxError" in tests.error


def test_visible_tests_report(grader: Grader, bank: TaskBank) -> None:
    task = bank.get("fix-bug-palindrome")
    report = grader.visible_tests(task, task.starter_code)
    assert report.total == 2 and report.passed == 1
    failed = next(r for r in report.results if not r.passed)
    assert failed.name == "test_sentence" and "AssertionError" in failed.message
    program = bank.get("implement-sum-lines")
    ok = grader.visible_tests(program, program.reference_solution)
    assert (ok.passed, ok.total) == (2, 2)
    bad = grader.visible_tests(program, "print('hello')\n")
    assert bad.passed == 0 and "expected" in bad.results[0].message


def test_expected_errors_must_match_the_type(grader: Grader, bank: TaskBank) -> None:
    task = bank.get("implement-chunk-list")
    wrong_type = task.reference_solution.replace("raise ValueError", "raise TypeError")
    report = grader.grade(task, wrong_type)
    assert not report.passed and 0 < report.score < 1


def test_optimize_needs_correctness_and_speed(grader: Grader, bank: TaskBank) -> None:
    task = bank.get("optimize-has-duplicates")
    good = grader.grade(task, task.reference_solution)
    assert good.passed and good.details["speed"] == 1.0 and good.details["correctness"] == 1.0
    assert good.details["reference_cpu_ms"] > 0 and good.details["cpu_ms"] > 0
    slow = grader.grade(task, task.starter_code)
    assert not slow.passed and slow.details["speed"] < 1.0
    assert "checks passed" in slow.feedback
    fast_but_wrong = grader.grade(task, "def has_duplicates(items):\n    return False\n")
    assert not fast_but_wrong.passed and fast_but_wrong.details["speed"] == 0.0


def test_optimize_work_cannot_hide_in_another_process(grader: Grader, bank: TaskBank) -> None:
    task = bank.get("optimize-has-duplicates")
    sneaky = (
        "import subprocess, sys\n"
        "def has_duplicates(items):\n"
        "    out = subprocess.run([sys.executable, '-c', 'print(1)'], capture_output=True)\n"
        "    return len(set(items)) != len(items)\n"
    )
    assert grader.limits_for(task).max_processes == 1
    assert grader.grade(task, sneaky).score == 0.0


def test_review_scoring(grader: Grader, bank: TaskBank) -> None:
    task = bank.get("review-discount")
    exact = review_findings(task)
    assert grader.grade(task, "", exact).score == 1.0
    assert grader.grade(task, "", []).score == 0.0
    half = grader.grade(task, "", exact[:1])
    assert half.score == pytest.approx(0.5) and half.details["recall"] == 0.5
    noisy = grader.grade(task, "", [*exact, ReviewFinding(line=1, category="off-by-one")])
    assert noisy.score == pytest.approx(2 / 3) and noisy.details["false_positives"] == 1
    dup = grader.grade(task, "", [*exact, exact[0]])
    assert dup.details["duplicates"] == 1 and not dup.passed
    wrong_category = [ReviewFinding(line=f.line, category="off-by-one") for f in exact]
    assert grader.grade(task, "", wrong_category).score == 0.0
    spam = [ReviewFinding(line=n, category=c) for n in range(1, 9) for c in task.review_categories]
    assert grader.grade(task, "", spam).score < 0.05


# -- hidden data never leaves the grader --------------------------------------------------


def _distinctive(value: Any) -> list[str]:
    """JSON fragments of an expected output that are too specific to appear by chance."""
    out = []
    if isinstance(value, str) and len(value.strip()) >= 6:
        out.append(value.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 10_000:
        out.append(str(value))
    elif isinstance(value, list | dict) and len(json.dumps(value)) >= 12:
        out.append(json.dumps(value))
    return out


LEAK_SAMPLE = [
    "implement-rle-encode", "implement-word-frequencies", "implement-ledger",
    "implement-category-totals", "fix-bug-format-duration", "fix-syntax-tokenizer",
    "optimize-range-sums", "implement-stack-machine",
]  # fmt: skip


@pytest.mark.parametrize("task_id", LEAK_SAMPLE)
def test_hidden_data_never_appears_in_reports(grader: Grader, bank: TaskBank, task_id: str) -> None:
    task = bank.get(task_id)
    expected = grader.expected(task)
    needles = [n for e in expected if e.ok for n in _distinctive(e.value)]
    needles += [
        n
        for c in task.hidden_cases
        if not c.timing
        for a in (*c.args, c.stdin)
        for n in _distinctive(a)
    ]
    assert needles, "pick a task with distinctive hidden data"
    leaky = (
        "import sys\n"
        f"def {task.entry_point or 'main'}(*args, **kwargs):\n"
        "    raise ValueError('input was %r' % (args,))\n"
    )
    if task.is_program:
        leaky = "import sys\nraise ValueError(sys.stdin.read())\n"
    candidates = [task.reference_solution, task.starter_code, leaky, "raise RuntimeError('x')\n"]
    blobs = [task.info().model_dump_json(), json.dumps(task.summary())]
    grades = [grader.grade(task, code).model_dump_json() for code in candidates]
    for code in candidates:
        blobs.append(grader.visible_tests(task, code).model_dump_json())
    text = "\n".join(blobs + grades)
    visible = task.info().visible_tests + task.statement
    for needle in needles:
        if needle not in visible:  # a value shown on purpose in the statement is not hidden
            assert needle not in text, f"hidden value leaked: {needle[:60]!r}"
    # the candidate's own exception message can hold a hidden input: only its type is shown
    assert "input was" not in "".join(grades)


# -- reward hacking ---------------------------------------------------------------------

HACKS = {
    "sys.exit": "import sys\nsys.exit(0)\n",
    "os._exit": "import os\nos._exit(0)\n",
    "raise SystemExit": "def digital_root(n):\n    raise SystemExit(0)\n",
    "os._exit in call": "import os\ndef digital_root(n):\n    os._exit(0)\n",
    "patch builtins": (
        "import builtins\n"
        "builtins.AssertionError = type('Nope', (Exception,), {})\n"
        "builtins.isinstance = lambda *a: True\n"
        "def digital_root(n):\n    return None\n"
    ),
    "patch unittest": (
        "import unittest\n"
        "unittest.TestCase.assertEqual = lambda *a, **k: None\n"
        "unittest.TestResult.wasSuccessful = lambda self: True\n"
        "def digital_root(n):\n    return None\n"
    ),
    "always equal": (
        "class Yes(int):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n"
        "def digital_root(n):\n    return Yes(-1)\n"
    ),
    "always equal plain class": (
        "class Yes:\n    def __eq__(self, other):\n        return True\n"
        "def digital_root(n):\n    return Yes()\n"
    ),
    "fake PASSED lines": (
        "print('test_all PASSED\\n30 passed in 0.01s\\nscore: 1.0')\n"
        "def digital_root(n):\n    print('PASSED')\n    return None\n"
    ),
    "fake result files": (
        "import json, os\n"
        "for name in ('results.json', 'report.json', '.grade', 'junit.xml'):\n"
        "    with open(name, 'w') as f:\n        json.dump({'score': 1.0, 'passed': True}, f)\n"
        "def digital_root(n):\n    return None\n"
    ),
    "daemon": (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n    time.sleep(30)\n    os._exit(0)\n"
        "def digital_root(n):\n    return None\n"
    ),
    "pytest.skip in module": "import pytest\npytest.skip('no', allow_module_level=True)\n",
    "pytest.skip in call": "import pytest\ndef digital_root(n):\n    pytest.skip('no')\n",
    "KeyboardInterrupt": "def digital_root(n):\n    raise KeyboardInterrupt\n",
    "endless loop": "def digital_root(n):\n    while True:\n        pass\n",
    "read the grader": (
        "import gc\n"
        "def digital_root(n):\n"
        "    for o in gc.get_objects():\n"
        "        if type(o).__name__ == 'Expected':\n            return o.value\n"
        "    return None\n"
    ),
}


@pytest.mark.parametrize("name", list(HACKS))
def test_reward_hacks_score_zero(grader: Grader, bank: TaskBank, name: str) -> None:
    task = bank.get("implement-digital-root")
    if name == "endless loop":
        import dataclasses

        task = dataclasses.replace(task, cpu_s=1.0)
    report = grader.grade(task, HACKS[name])
    assert report.score == 0.0 and not report.passed, report.feedback
    assert report.cases_passed == 0


@pytest.mark.parametrize(
    "name", ["sys.exit", "os._exit", "fake PASSED lines", "pytest.skip in module"]
)
def test_reward_hacks_fail_program_tasks_too(grader: Grader, bank: TaskBank, name: str) -> None:
    task = bank.get("implement-sum-lines")
    report = grader.grade(task, HACKS[name])
    assert report.score == 0.0 and not report.passed


def test_hidden_tests_resist_hacks(grader: Grader) -> None:
    task = Task(
        id="t-hidden-tests",
        family="implement",
        difficulty="easy",
        title="t",
        statement="s",
        starter_code="def f(x):\n    raise NotImplementedError\n",
        reference_solution="def f(x):\n    return x * 2\n",
        entry_point="f",
        hidden_test_code="def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(5) == 10\n",
    )
    assert grader.grade(task, task.reference_solution).score == 1.0
    for code in (
        HACKS["sys.exit"],
        "def f(x):\n    raise SystemExit(0)\n",
        "import pytest\ndef f(x):\n    pytest.skip('x')\n",
        "class Y:\n    def __eq__(s, o):\n        return True\ndef f(x):\n    return Y()\n",
    ):
        assert grader.grade(task, code).score == 0.0
