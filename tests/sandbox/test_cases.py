"""run_cases: outputs leave the child as plain data and are compared by the verifier
(here: the test) against a reference it computed separately. Forgery must not pass."""

from __future__ import annotations

import pytest
from python_env.server.sandbox import CaseOutcome, CaseSpec, Limits, Sandbox

pytestmark = pytest.mark.timeout(60)
REFERENCE = "def add(a, b):\n    return a + b\n"
CASES = [CaseSpec((i, i + 1)) for i in range(6)]


def graded(
    sb: Sandbox,
    source: str,
    cases: list[CaseSpec] = CASES,
    entry: str | None = "add",
    limits: Limits | None = None,
) -> list[bool]:
    """What a verifier does: compare plain outputs with the reference's."""
    expected = sb.run_cases(REFERENCE, cases, entry_point="add")
    got = sb.run_cases(source, cases, entry_point=entry, limits=limits)
    return [
        g.status == "ok" and e.status == "ok" and g.output == e.output
        for g, e in zip(got.outcomes, expected.outcomes, strict=True)
    ]


def test_returns_exceptions_and_fields(sb: Sandbox) -> None:
    src = (
        "import math\ndef f(x, scale=1):\n    print('log', x)\n    if x == 0:\n"
        "        raise ValueError('zero')\n    if x == 1:\n        return {'s': {3, 1}, 't': (1, 2)}\n"
        "    if x == 2:\n        return math.nan\n    return x * scale\n"
    )
    cases = [CaseSpec((0,)), CaseSpec((1,)), CaseSpec((2,)), CaseSpec((3,), {"scale": 2})]
    res = sb.run_cases(src, cases, entry_point="f")
    assert res.load_error is None and not res.timed_out and not res.memory_exceeded
    assert res.outcomes == [
        CaseOutcome("error", None, "ValueError: zero"),
        CaseOutcome("ok", {"s": {"$set": [1, 3]}, "t": [1, 2]}),
        CaseOutcome("ok", {"$float": "nan"}),
        CaseOutcome("ok", 6),
    ]
    assert res.stdout.count("log") == 4 and res.cpu_time_ms > 0 and res.wall_time_ms > 0


def test_arguments_keep_their_types(sb: Sandbox) -> None:
    src = "def f(*a, **k):\n    return [type(x).__name__ for x in a] + sorted(k)\n"
    res = sb.run_cases(src, [CaseSpec(((1, 2), {1, 2}, {1: 2}, [1]), {"z": None})], entry_point="f")
    assert res.outcomes[0].output == ["tuple", "set", "dict", "list", "z"]


def test_unserializable_and_always_equal(sb: Sandbox) -> None:
    src = (
        "class AlwaysEqual:\n    def __eq__(self, o):\n        return True\n"
        "class Int(int):\n    def __eq__(self, o):\n        return True\n"
        "def add(a, b):\n    return [AlwaysEqual(), Int(a + b), lambda: 0, a + b][a % 4]\n"
    )
    res = sb.run_cases(src, CASES[:4], entry_point="add")
    assert [o.status for o in res.outcomes] == ["unserializable"] * 3 + ["ok"]
    assert graded(sb, src)[:3] == [False, False, False]


def test_load_errors(sb: Sandbox) -> None:
    r = sb.run_cases("def add(a, b)\n    return 1\n", CASES[:2], entry_point="add")
    assert r.load_error and r.load_error.startswith("SyntaxError")
    assert all(o.status == "error" for o in r.outcomes)
    r2 = sb.run_cases("def other(): pass\n", CASES[:2], entry_point="add")
    assert r2.load_error and "add" in r2.load_error
    r3 = sb.run_cases("import sys\nsys.exit(0)\n", CASES[:2], entry_point="add")
    assert r3.load_error and r3.load_error.startswith("SystemExit")


@pytest.mark.parametrize(
    "escape",
    [
        "import sys; sys.exit(0)",
        "import os; os._exit(0)",
        "raise SystemExit(0)",
        "raise BaseException('x')",
        "raise KeyboardInterrupt",
    ],
)
def test_exit_mid_run_fails_the_rest(sb: Sandbox, escape: str) -> None:
    src = f"def add(a, b):\n    if a == 2:\n        {escape}\n    return a + b\n"
    assert graded(sb, src) == [True, True, False, False, False, False]
    res = sb.run_cases(src, CASES, entry_point="add")
    assert all(o.status in ("crash", "error") for o in res.outcomes[2:])


def _line(i: int, out: int) -> str:
    """A result line as the harness would write it (newline escaped for source code)."""
    return '{"i": ' + str(i) + ', "s": "ok", "o": ' + str(out) + "}\\n"


def test_fake_result_lines_on_stdout(sb: Sandbox) -> None:
    fake = "".join(_line(i, 2 * i + 1) for i in range(6))
    src = f"import sys\nsys.stdout.write('{fake}')\ndef add(a, b):\n    print('{fake}')\n    return 0\n"
    assert graded(sb, src) == [False] * 6


def test_forged_lines_on_every_fd(sb: Sandbox) -> None:
    # the candidate knows the right answers but returns wrong ones, and writes the
    # right answers to every fd it can find: no case may pass
    forged = "".join(_line(i, 2 * i + 1) for i in range(6))
    src = (
        "import os\nfor fd in range(3, 21):\n    try:\n"
        f"        os.write(fd, b'{forged}')\n    except OSError:\n        pass\n"
        "def add(a, b):\n    for fd in range(3, 21):\n        try:\n"
        f"            os.write(fd, b'{forged}')\n        except OSError:\n            pass\n"
        "    return -1\n"
    )
    assert graded(sb, src) == [False] * 6


def test_forged_lines_then_exit(sb: Sandbox) -> None:
    # forging results for cases, then exiting before the harness reports: only the
    # outputs the candidate itself computed can be claimed, and wrong claims fail
    forged = "".join(_line(i, 999) for i in range(6))
    src = f"import os\nos.write(3, b'{forged}')\nos._exit(0)\n"
    assert graded(sb, src) == [False] * 6


def test_timeout_marks_unreached_cases(sb: Sandbox) -> None:
    src = "def add(a, b):\n    while a == 1:\n        pass\n    return a + b\n"
    res = sb.run_cases(src, CASES[:3], entry_point="add", limits=Limits(wall_s=1.5))
    assert res.timed_out
    assert [o.status for o in res.outcomes] == ["ok", "timeout", "timeout"]


def test_memory_bomb_in_a_case(sb: Sandbox) -> None:
    src = "def add(a, b):\n    return len(bytearray(10 ** 10))\n"
    res = sb.run_cases(src, CASES[:2], entry_point="add", limits=Limits(memory_mb=256))
    assert res.memory_exceeded and res.outcomes[0].status == "error"


def test_program_cases_via_stdin(sb: Sandbox) -> None:
    src = "a, b = map(int, input().split())\nprint(a + b)\nif a < 0:\n    raise ValueError('neg')\n"
    cases = [CaseSpec(stdin="1 2\n"), CaseSpec(stdin="10 20"), CaseSpec(stdin="-1 0")]
    res = sb.run_cases(src, cases, entry_point=None)
    assert [o.status for o in res.outcomes] == ["ok", "ok", "error"]
    assert [o.output for o in res.outcomes] == ["3\n", "30\n", "-1\n"]
    assert res.outcomes[2].error == "ValueError: neg"
    bad = sb.run_cases("print(", cases, entry_point=None)
    assert bad.load_error and bad.load_error.startswith("SyntaxError")


def test_malformed_and_deeply_nested_result_lines(sb: Sandbox) -> None:
    src = (
        'import os\nos.write(3, b\'[\' * 200000 + b\'\\n\')\nos.write(3, b\'{"i": 0, "s": "ok", '
        "\"o\": ' + b'[' * 5000 + b']' * 5000 + b'}\\n')\nos.write(3, b'not json\\n')\n"
        "def add(a, b):\n    return a + b\n"
    )
    res = sb.run_cases(src, CASES[:2], entry_point="add")
    assert [o.status for o in res.outcomes] == ["ok", "ok"]
    assert [o.output for o in res.outcomes] == [1, 3]


def test_main_guard_runs_in_programs(sb: Sandbox) -> None:
    src = "def main():\n    print(input().upper())\nif __name__ == '__main__':\n    main()\n"
    res = sb.run_cases(src, [CaseSpec(stdin="abc")], entry_point=None)
    assert res.outcomes[0].output == "ABC\n"
