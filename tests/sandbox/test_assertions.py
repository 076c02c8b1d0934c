"""run_assertions: tests run in their own child; the candidate is reachable only
through call proxies, so patching the test machinery from the candidate is useless."""

from __future__ import annotations

import pytest
from python_env.server.sandbox import Limits, Sandbox

pytestmark = pytest.mark.timeout(60)
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
TESTS = (
    "import pytest\n\ndef test_small():\n    assert add(1, 2) == 3\n\n"
    "def test_tuple():\n    assert add((1,), (2,)) == (1, 2)\n\n"
    "def test_raises():\n    with pytest.raises(TypeError):\n        add(1, 'x')\n"
)
CHECK = (
    "METADATA = {}\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n"
    "    assert candidate(-1, 1) == 0\n"
)


def verdict(sb: Sandbox, src: str, tests: str = TESTS, **kw: object) -> dict[str, bool]:
    res = sb.run_assertions(src, tests, entry_point="add", **kw)  # type: ignore[arg-type]
    return {t.name: t.passed for t in res.tests}


def test_test_functions(sb: Sandbox) -> None:
    res = sb.run_assertions(GOOD, TESTS, entry_point="add")
    assert [(t.name, t.passed) for t in res.tests] == [
        ("test_small", True),
        ("test_tuple", True),
        ("test_raises", True),
    ]
    assert res.load_error is None and not res.timed_out
    bad = sb.run_assertions(WRONG, TESTS, entry_point="add")
    assert [t.passed for t in bad.tests] == [False, False, True]
    assert bad.tests[0].message == "AssertionError: assert add(1, 2) == 3"


def test_check_candidate(sb: Sandbox) -> None:
    assert verdict(sb, GOOD, CHECK) == {"check": True}
    assert verdict(sb, WRONG, CHECK) == {"check": False}


PATCHES = [
    "import builtins\nclass A(Exception): pass\nbuiltins.AssertionError = A\n",
    "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n",
    "import sys, types\nsys.modules['pytest'] = types.ModuleType('pytest')\n",
    "import builtins\nbuiltins.__import__ = None\n",
    'import os\nos.write(3, b\'{"t": "test_small", "p": true, "m": ""}\\n\')\n',
    'import sys\nprint(\'{"t": "check", "p": true}\')\n',
]


@pytest.mark.parametrize("patch", PATCHES)
def test_candidate_patching_test_machinery_does_not_help(sb: Sandbox, patch: str) -> None:
    v = verdict(sb, patch + WRONG)
    assert set(v) == {"test_small", "test_tuple", "test_raises"}
    assert not v["test_small"] and not v["test_tuple"]
    assert verdict(sb, patch + WRONG, CHECK) == {"check": False}


def test_candidate_skip_or_exit_inside(sb: Sandbox) -> None:
    skip = "def add(a, b):\n    import pytest\n    pytest.skip('nope')\n"
    assert verdict(sb, skip, CHECK) == {"check": False}
    ex = "def add(a, b):\n    import sys\n    sys.exit(0)\n"
    res = sb.run_assertions(ex, TESTS, entry_point="add")
    assert [t.passed for t in res.tests] == [False, False, False]
    assert "candidate" in res.tests[1].message
    oex = "import os\ndef add(a, b):\n    os._exit(0)\n"
    assert not any(verdict(sb, oex).values())


def test_test_code_skip_counts_as_failure(sb: Sandbox) -> None:
    tests = (
        "import pytest\ndef test_a():\n    pytest.skip('later')\ndef test_b(tmp_path):\n    pass\n"
    )
    res = sb.run_assertions(GOOD, tests, entry_point="add")
    assert [t.passed for t in res.tests] == [False, False]
    assert "skip" in res.tests[0].message and "fixture" in res.tests[1].message


def test_always_equal_return_cannot_cross(sb: Sandbox) -> None:
    src = (
        "class E:\n    def __eq__(self, o):\n        return True\ndef add(a, b):\n    return E()\n"
    )
    res = sb.run_assertions(src, CHECK, entry_point="add")
    assert not res.tests[0].passed and "E" in res.tests[0].message


def test_non_plain_argument_fails_that_test(sb: Sandbox) -> None:
    tests = "def test_lambda():\n    assert add(lambda: 1, 2) == 3\ndef test_ok():\n    assert add(1, 2) == 3\n"
    res = sb.run_assertions(GOOD, tests, entry_point="add")
    assert [t.passed for t in res.tests] == [False, True]
    assert "non-plain" in res.tests[0].message


def test_load_errors_and_timeouts(sb: Sandbox) -> None:
    assert verdict(sb, "def add(a, b)\n    pass\n", CHECK) == {"check": False}
    res = sb.run_assertions(GOOD, "def test_x(:\n", entry_point="add")
    assert res.load_error and "SyntaxError" in res.load_error and res.tests == []
    loop = "def add(a, b):\n    while True:\n        pass\n"
    res = sb.run_assertions(loop, CHECK, entry_point="add", limits=Limits(wall_s=1.5))
    assert res.timed_out and [t.passed for t in res.tests] == [False]


def test_helpers_importable_from_solution(sb: Sandbox) -> None:
    src = GOOD + "def helper(x):\n    return x * 2\n"
    tests = "from solution import helper\ndef test_h():\n    assert helper(4) == 8\n"
    assert verdict(sb, src, tests) == {"test_h": True}


def test_candidate_that_never_reads_requests_cannot_hang_the_relay(sb: Sandbox) -> None:
    src = (
        'import os\nfor i in range(1, 200):\n    os.write(3, (\'{"id": %d, "ok": 5}\\n\' % i).encode())\n'
        "import time\ntime.sleep(60)\ndef add(a, b):\n    return a + b\n"
    )
    tests = "def test_big():\n    for _ in range(50):\n        add(list(range(100000)), [])\n"
    res = sb.run_assertions(src, tests + CHECK, entry_point="add", limits=Limits(wall_s=3))
    assert not any(t.passed for t in res.tests)
