"""The web UI's per-visitor sessions, without a browser: real environments in-process
(the sandbox starts here), one per session hash, bounded, and closed for good."""

from __future__ import annotations

import pytest
from python_env.models import PythonAction
from python_env.server.python_env_environment import PythonEnvironment
from python_env.server.web_sessions import SessionLimitError, WebSessions
from python_env.server.web_ui import parse_findings, reset_options


def _with_kernel(sessions: WebSessions, session_hash: str):
    visitor = sessions.open(session_hash)
    visitor.env.reset(mode="free")
    visitor.env.step(PythonAction(kind="run", code=f"who = {session_hash!r}"))
    assert visitor.env.state.kernel_alive
    return visitor


def test_each_session_has_its_own_environment() -> None:
    sessions = WebSessions(PythonEnvironment, capacity=4, idle_timeout_s=600)
    a, b = _with_kernel(sessions, "a"), _with_kernel(sessions, "b")
    try:
        assert sessions.open("a") is a and a.env is not b.env and len(sessions) == 2
        seen = b.env.step(PythonAction(kind="run", code="print(who)")).run
        assert seen is not None and seen.stdout == "b\n"
    finally:
        sessions.close("a")
        sessions.close("b")


def test_closing_frees_the_kernel_once() -> None:
    sessions = WebSessions(PythonEnvironment, capacity=4, idle_timeout_s=600)
    visitor = _with_kernel(sessions, "a")
    sessions.close("a")
    assert visitor.closed and not visitor.env.state.kernel_alive and len(sessions) == 0
    sessions.close("a")  # the unload event and the idle timeout may both come
    sessions.expire(visitor)
    sessions.expire(None)  # a page that never pressed Reset
    assert len(sessions) == 0


def test_expiry_of_an_old_visitor_spares_the_new_one() -> None:
    sessions = WebSessions(PythonEnvironment, capacity=4, idle_timeout_s=600)
    old = sessions.open("a")
    sessions.close("a")
    new = _with_kernel(sessions, "a")
    sessions.expire(old)
    assert not new.closed and new.env.state.kernel_alive
    sessions.close("a")


def test_sessions_are_bounded() -> None:
    sessions = WebSessions(PythonEnvironment, capacity=1, idle_timeout_s=600)
    sessions.open("a")
    with pytest.raises(SessionLimitError, match="all 1 web sessions") as refused:
        sessions.open("b")
    assert refused.value.code == "CAPACITY_REACHED" and len(sessions) == 1
    sessions.close("a")
    sessions.open("b")
    sessions.close("b")


def test_a_full_house_first_closes_idle_sessions() -> None:
    """Should Gradio never report a visitor gone, the idle timeout still frees the seat."""
    sessions = WebSessions(PythonEnvironment, capacity=1, idle_timeout_s=0)
    gone = _with_kernel(sessions, "a")
    new = sessions.open("b")
    assert gone.closed and not gone.env.state.kernel_alive and not new.closed
    assert len(sessions) == 1
    sessions.close("b")


def test_findings_are_read_one_per_line() -> None:
    findings = parse_findings("4 off-by-one\n\n  12 wrong-operator \n")
    assert [(f.line, f.category) for f in findings] == [(4, "off-by-one"), (12, "wrong-operator")]
    for bad in ("off-by-one", "4", "four off-by-one"):
        with pytest.raises(ValueError, match="LINE CATEGORY"):
            parse_findings(bad)


def test_the_picker_becomes_reset_options() -> None:
    assert reset_options("free sandbox", "review", "hard", "x") == {"mode": "free"}
    assert reset_options("task", "any", "any", "implement-x") == {"task_id": "implement-x"}
    assert reset_options("task", "review", "any", "") == {"mode": "task", "family": "review"}
    assert reset_options("task", "any", "easy", "") == {"mode": "task", "difficulty": "easy"}
