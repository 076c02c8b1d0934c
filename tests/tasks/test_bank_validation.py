"""The whole default bank passes the validation command (references 1.0, starters below
the threshold, mutants rejected, review defects demonstrated)."""

from __future__ import annotations

from python_env.server.sandbox import Sandbox
from python_env.server.tasks import TaskBank
from python_env.server.tasks.validate import main, validate_bank


def test_every_task_in_the_default_bank_validates(bank: TaskBank, sandbox: Sandbox) -> None:
    report = validate_bank(bank, sandbox)
    assert len(report.checks) == len(bank)
    assert report.ok, report.summary()


def test_validate_command_exit_status(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--id", "implement-rle-encode", "--id", "review-discount"]) == 0
    out = capsys.readouterr().out
    assert "2 tasks checked" in out and "0 failed" in out
