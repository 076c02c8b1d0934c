"""A slot's spare child (forked and isolated before its run, see engine._refill) is a
fresh process like any other: what a run leaves never reaches it, and every kind of
input still arrives (stdin, files, code too large for the message that starts it)."""

from __future__ import annotations

from python_env.server.sandbox import Limits, Sandbox

PLANT = """
import os
planted = 0
for i in range(4000):  # the workdirs' names are a counter: every likely one
    for area in ("..", "../../s0r0", "../../s1r0"):
        d = f"{area}/w{i}"
        try:
            if os.path.samefile(d, "."):  # its own workdir: that one is its to write
                continue
            with open(f"{d}/planted.py", "w") as f:
                f.write("print('planted')")
            planted += 1
        except OSError:
            pass
print("planted", planted)
"""


def test_a_run_cannot_plant_a_file_for_the_spare_of_its_slot(sb: Sandbox) -> None:
    for _ in range(2):  # each slot's spare exists, and is taken and refilled
        r = sb.run("print(1)")
        assert r.stdout == "1\n", r
    r = sb.run(PLANT)
    assert r.stdout == "planted 0\n", r
    for _ in range(4):  # the spares of both slots, twice
        r = sb.run("import planted")
        assert r.exception_type == "ModuleNotFoundError", r


def test_a_graded_run_cannot_plant_one_either(sb: Sandbox) -> None:
    sb.run("print(1)")
    source = PLANT.replace('print("planted", planted)', "") + "\ndef f():\n    return planted\n"
    res = sb.run_cases(source, [], entry_point="f")
    assert res.load_error is None, res
    for _ in range(4):
        r = sb.run("import planted")
        assert r.exception_type == "ModuleNotFoundError", r


def test_stdin_files_and_large_code_reach_a_spare(sb: Sandbox) -> None:
    for _ in range(3):
        r = sb.run(
            "import sys\nprint(sys.stdin.read(), open('data/x.txt').read())",
            stdin="from stdin",
            files={"data/x.txt": "from a file"},
        )
        assert r.stdout == "from stdin from a file\n", r
    big = "x = " + repr("a" * 100_000) + "\nprint(len(x))\n"  # past the inline limit
    for _ in range(3):
        r = sb.run(big)
        assert r.stdout == "100000\n", r


def test_runs_with_other_limits_take_the_ordinary_way(sb: Sandbox) -> None:
    other = Limits(**{**sb.limits.as_dict(), "max_output_bytes": 100})
    for _ in range(3):
        r = sb.run("print('y' * 200)", limits=other)
        assert r.stdout_truncated and len(r.stdout) == 100, r
        r = sb.run("print('y' * 200)")
        assert not r.stdout_truncated and r.stdout == "y" * 200 + "\n", r
