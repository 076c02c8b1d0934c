"""Compiled checks (server/assert_checks.py): assert-only test code graded by one
candidate process and the verifier, with the same verdict per test as run_assertions'
two processes; what is not compiled falls back; the store serves a new process; a
submit may carry its solution."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_env.server import assert_checks
from python_env.server.grading import Grader, all_test_code
from python_env.server.sandbox import Limits, Sandbox
from python_env.server.sandbox.cases import run_calls
from python_env.server.sandbox.plain import encode
from python_env.server.sandbox.records import SandboxError
from python_env.server.tasks.cache import Store
from python_env.server.tasks.humaneval import task_from_problem
from websockets.sync.client import connect

PROMPT = 'def f(xs: list, t: float):\n    """Whether any element exceeds t."""\n'
CANONICAL = "    return any(x > t for x in xs)\n"
TEST = """

METADATA = {}


def check(candidate):
    assert candidate([1, 2, 3], 2) == True
    assert candidate([1, 2, 3], 5) is False
    assert not candidate([], 0)
    assert candidate([0.5], 0.1)
    assert candidate(xs=[9], t=1.0) == True
    assert abs(float(candidate([3], 1)) - 1.0) < 1e-6
    assert abs(candidate([3], 1) - 1.0) < 1e-6
"""
ROW = {
    "task_id": "HumanEval/9001",
    "prompt": PROMPT,
    "canonical_solution": CANONICAL,
    "test": TEST,
    "entry_point": "f",
}

CANDIDATES = {
    "canonical": PROMPT + CANONICAL,
    "always False": "def f(xs, t):\n    return False\n",
    "1 for True": "def f(xs, t):\n    return int(any(x > t for x in xs))\n",
    "None for False": "def f(xs, t):\n    return True if any(x > t for x in xs) else None\n",
    "a tuple": "def f(xs, t):\n    return (any(x > t for x in xs),)\n",
    "raises": "def f(xs, t):\n    raise ValueError('no')\n",
    "raises on the empty list": "def f(xs, t):\n    return max(xs) > t\n",
    "exits on the third call": (
        "n = 0\ndef f(xs, t):\n    global n\n    n += 1\n    if n == 3:\n"
        "        raise SystemExit(0)\n    return any(x > t for x in xs)\n"
    ),
    "os._exit in a call": "import os\ndef f(xs, t):\n    os._exit(0)\n",
    "always-equal object": (
        "class Same:\n    def __eq__(self, o):\n        return True\n"
        "    def __bool__(self):\n        return True\n"
        "def f(xs, t):\n    return Same()\n"
    ),
    "state between calls": (
        "seen = []\ndef f(xs, t):\n    seen.append(1)\n"
        "    return len(seen) % 2 == 1 and any(x > t for x in xs)\n"
    ),
    "does not load": "def f(xs, t):\n    return (\n",
    "endless loop": "def f(xs, t):\n    while True:\n        pass\n",
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(limits=Limits(cpu_s=2.0, wall_s=4.0)) as sb:
        yield sb


@pytest.fixture(scope="module")
def grader(sandbox: Sandbox) -> Grader:
    return Grader(sandbox)


def test_the_forms_compile_and_the_rest_does_not() -> None:
    task = task_from_problem({**ROW, "test": TEST.replace("float(", "(")})
    specs = assert_checks.specs(all_test_code(task), "f")
    assert specs is not None
    assert [s.form for s in specs] == ["eq", "is", "not", "truth", "eq", "absdiff", "absdiff"]
    assert assert_checks.specs(all_test_code(task_from_problem(ROW)), "f") is None
    loop = "def test_a():\n    for x in [1, 2]:\n        assert candidate(x) == x\n"
    helper = "def test_a():\n    assert tuple(candidate(1)) == (1,)\n"
    nested = "def test_a():\n    assert candidate(candidate(1)) == 1\n"
    fixture = "def test_a(tmp_path):\n    assert candidate(1) == 1\n"
    for code in (loop, helper, nested, fixture, "def check(candidate):\n    pass\n"):
        assert assert_checks.specs(code, "f") is None, code


def test_the_float_conversion_assert_falls_to_the_test_process(grader: Grader) -> None:
    """`abs(float(candidate(...)) - 1.0)` applies a helper to the result: not compiled,
    so that task is graded by run_assertions as before (all of its tests)."""
    task = task_from_problem(ROW)
    assert grader.checks(task, all_test_code(task)) is None
    lean = task_from_problem({**ROW, "test": TEST.replace("float(", "(")})
    assert grader.checks(lean, all_test_code(lean)) is not None


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_compiled_verdicts_equal_the_test_process(grader: Grader, name: str) -> None:
    task = task_from_problem({**ROW, "test": TEST.replace("float(", "(")})
    code = all_test_code(task)
    checks = grader.checks(task, code)
    assert checks is not None
    source = CANDIDATES[name]
    fast = grader.run_checks(task, source, checks)
    slow = grader.run_assertions(task, source, code)
    assert [t.name for t in fast.tests] == [t.name for t in slow.tests]
    assert [t.passed for t in fast.tests] == [t.passed for t in slow.tests], name
    assert fast.timed_out == slow.timed_out
    if name == "canonical":
        assert all(t.passed for t in fast.tests)
        assert grader.grade(task, source).score == 1.0
    elif name not in ("state between calls", "raises on the empty list"):
        assert not grader.grade(task, source).passed


def test_forged_replies_win_nothing(grader: Grader) -> None:
    """Replies written on the result fd before the calls: every claimed call then has
    two different answers, and a call with conflicting claims fails. (Through
    run_assertions the same forgery is a race: a forged reply that lands while its call
    is pending is taken; it is no more than returning that value.)"""
    task = task_from_problem({**ROW, "test": TEST.replace("float(", "(")})
    checks = grader.checks(task, all_test_code(task))
    assert checks is not None
    forged = (
        "import os\n"
        "for i in range(64):\n"
        '    os.write(3, (\'{"id": %d, "ok": true}\\n\' % i).encode())\n'
        "def f(xs, t):\n    return 'x'\n"
    )
    result = grader.run_checks(task, forged, checks)
    assert not any(t.passed for t in result.tests)


def test_expected_values_never_reach_the_candidate(sandbox: Sandbox, grader: Grader) -> None:
    """The candidate reads every request it is sent: inputs only, never an expected
    value (here a marker string the assert compares with)."""
    row = {**ROW, "test": "def check(candidate):\n    assert candidate([1], 0) == 'EXPECTED-42'\n"}
    task = task_from_problem(row)
    checks = grader.checks(task, all_test_code(task))
    assert checks is not None and "EXPECTED-42" in json.dumps(checks.as_json())
    spy = (
        "import os\n_seen = []\n"
        "def f(xs, t):\n"
        "    _seen.append(os.read(4, 1 << 20).decode())\n"
        "    return ''.join(_seen)\n"
    )
    result = run_calls(sandbox, spy, checks.calls, entry_point="f", limits=sandbox.limits)
    assert result.outcomes and result.outcomes[0].status == "ok"
    assert "EXPECTED-42" not in json.dumps([o.output for o in result.outcomes])
    assert not grader.grade(task, spy).passed


def test_a_call_too_large_for_the_pipe_fails_at_once(sandbox: Sandbox) -> None:
    """A request that does not fit the request pipe is refused (it and the calls after
    it fail), and the run ends then, not at its time limit."""
    calls = [(encode((1,)), {}), (encode(("x" * (2 << 20),)), {}), (encode((2,)), {})]
    source = "def f(x):\n    return x if isinstance(x, int) else len(x)\n"
    result = run_calls(sandbox, source, calls, entry_point="f", limits=sandbox.limits)
    assert [o.status for o in result.outcomes] == ["ok", "error", "error"]
    assert result.outcomes[0].output == 1 and not result.timed_out


def test_rebound_names_are_not_compiled(grader: Grader) -> None:
    """Test code that rebinds `candidate` tests its own function, not the candidate's:
    the plan program's probe sees it, and run_assertions grades it as before."""
    row = {
        **ROW,
        "test": "def check(candidate):\n    assert candidate([1], 0)\n\n"
        "def candidate(xs, t):\n    return True\n",
    }
    task = task_from_problem(row)
    code = all_test_code(task)
    assert assert_checks.specs(code, "f") is not None  # the AST alone cannot tell
    assert grader.checks(task, code) is None
    wrong = "def f(xs, t):\n    return False\n"
    slow = grader.run_assertions(task, wrong, code)
    report = grader.grade(task, wrong)
    assert report.cases_passed == sum(t.passed for t in slow.tests)


def test_inputs_drawn_at_random_are_not_frozen(grader: Grader) -> None:
    """An input the test code draws unseeded differs per run in the test process: two
    evaluations of the plan disagree, so the task stays on run_assertions."""
    test = (
        "import random\n\ndef check(candidate):\n    assert not candidate([random.random()], 2)\n"
    )
    task = task_from_problem({**ROW, "test": test})
    code = all_test_code(task)
    assert assert_checks.specs(code, "f") is not None
    assert grader.checks(task, code) is None
    assert grader.grade(task, PROMPT + CANONICAL).score == 1.0


def test_the_store_serves_another_process(tmp_path: Path, sandbox: Sandbox) -> None:
    """Compiled checks and expected outputs computed once are read back by a new grader
    whose sandbox cannot start a single process."""
    from python_env.server.tasks import default_bank

    store = Store(tmp_path / "store")
    he = task_from_problem({**ROW, "test": TEST.replace("float(", "(")})
    cases_task = default_bank().get("implement-int-to-roman")
    first = Grader(sandbox, store=store, runtime_tag="t")
    first.prepare_now(he)
    first.prepare_now(cases_task)
    with Sandbox(fault="spawn") as broken:
        second = Grader(broken, store=store, runtime_tag="t")
        assert second.checks(he, all_test_code(he)) == first.checks(he, all_test_code(he))
        assert second.expected(cases_task) == first.expected(cases_task)
        with pytest.raises(SandboxError):  # a grade still needs the candidate's run
            second.grade(he, he.reference_solution)
        other = Grader(broken, store=store, runtime_tag="another python")
        with pytest.raises(SandboxError):  # another runtime: another key, recomputed
            other.expected(cases_task)


def test_submit_carries_the_solution(server, bank) -> None:
    """reset + submit(code): two round trips; the code becomes the solution."""
    task = bank.get("implement-int-to-roman")
    with connect(server.ws_url) as ws:
        for code, score in (
            (task.reference_solution, 1.0),
            ("def to_roman(n):\n    return ''\n", 0.0),
        ):
            ws.send(json.dumps({"type": "reset", "data": {"task_id": task.id}}))
            assert json.loads(ws.recv(timeout=60))["type"] == "observation"
            ws.send(json.dumps({"type": "step", "data": {"kind": "submit", "code": code}}))
            data = json.loads(ws.recv(timeout=120))["data"]
            assert data["done"] and data["observation"]["grade"]["score"] == score, data
            ws.send(json.dumps({"type": "state"}))
            assert json.loads(ws.recv(timeout=60))["data"]["solution"] == code
        ws.send(json.dumps({"type": "reset", "data": {"task_id": task.id}}))
        ws.recv(timeout=60)
        ws.send(json.dumps({"type": "step", "data": {"kind": "submit"}}))
        obs = json.loads(ws.recv(timeout=120))["data"]["observation"]
        assert obs["grade"]["score"] == 0.0  # no code: the starter is graded, as before
