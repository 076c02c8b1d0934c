"""Every built-in and procedural task passes the validation command (references 1.0,
starters below the threshold, mutants rejected, review defects demonstrated)."""

from __future__ import annotations

from python_env.server.sandbox import Sandbox
from python_env.server.tasks.bank import every_builtin_task
from python_env.server.validate import main, validate_bank


def test_every_builtin_and_procedural_task_validates(sandbox: Sandbox) -> None:
    tasks = every_builtin_task()
    report = validate_bank(tasks, sandbox)
    assert len(report.checks) == len(tasks) > 180
    assert report.ok, report.summary()


def test_validate_command_exit_status(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--id", "implement-rle-encode", "--id", "review-discount"]) == 0
    out = capsys.readouterr().out
    assert "2 tasks checked" in out and "0 failed" in out
