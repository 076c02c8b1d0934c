"""The validation command: what CI runs (a seeded sample of every family and origin,
plus every task of a source changed since the recorded full run) passes, and a
selection by id reports what it checked."""

from __future__ import annotations

from python_env.server.validate import load_record, main


def test_ci_validation_passes(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main([]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "CI: sample of" in out and " 0 failed" in out


def test_the_full_run_is_recorded() -> None:
    result = load_record()["result"]
    assert result["tasks"] == result["passed"] > 1000 and not result["failed"]


def test_validate_command_exit_status(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--id", "implement-rle-encode", "--id", "review-discount"]) == 0
    out = capsys.readouterr().out
    assert "2 tasks checked" in out and "0 failed" in out
