"""What the web UI shows, as HTML and Markdown: pure functions of a visitor's `View`.

No Gradio here: the builder (`web_ui.py`) puts these strings into its components, and
the look is in `web_ui.css`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ..models import GradeReport, PythonObservation, RunOutput, TaskInfo, TestReport


@dataclass
class View:
    """What one visitor's page shows of their episode: the latest part of each kind."""

    task: TaskInfo | None = None
    free: bool = False
    log: list[tuple[str, str, str]] = field(default_factory=list)
    last: PythonObservation | None = None
    tests: TestReport | None = None
    run: RunOutput | None = None
    grade: GradeReport | None = None
    total_reward: float = 0.0

    def record(self, obs: PythonObservation, label: str, total_reward: float) -> None:
        """Show a step's observation; each carries only its own part, so keep the rest."""
        self.last = obs
        self.total_reward = total_reward
        self.tests = obs.tests or self.tests
        self.run = obs.run or self.run
        self.grade = obs.grade or self.grade
        self.log.append((f"step {obs.step_count}", label, obs.message))


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:+.{digits}f}" if value < 0 else f"{value:.{digits}f}"


def task_markdown(task: TaskInfo | None, free: bool) -> str:
    if task is None:
        if free:
            return (
                "### Free sandbox\n\nNo task and no grading: **Run** executes the editor "
                "in an isolated CPython process. Variables survive between runs while "
                "*keep variables* is on."
            )
        return "### No episode yet\n\nPick a task (or *free sandbox*) and press **Reset**."
    lines = [
        f"### {task.title}",
        f"`{task.task_id}` · {task.family} · {task.difficulty} · {task.max_steps} steps",
        "",
        task.statement.strip(),
    ]
    if task.entry_point:
        lines += ["", f"The grader calls `{task.entry_point}` from `solution.py`."]
    else:
        lines += ["", "The grader runs `solution.py` as a program (stdin → stdout)."]
    if task.review_categories:
        lines += ["", "Finding categories: " + ", ".join(f"`{c}`" for c in task.review_categories)]
    if task.visible_tests.strip():
        lines += ["", "<details><summary>Visible tests</summary>", "", "```python"]
        lines += [task.visible_tests.rstrip(), "```", "", "</details>"]
    return "\n".join(lines)


def _tone(obs: PythonObservation) -> str:
    bad = bool(
        (obs.run and (obs.run.timed_out or obs.run.memory_exceeded or obs.run.exception_type))
        or (obs.tests and (obs.tests.error or obs.tests.passed < obs.tests.total))
        or (obs.grade and not obs.grade.passed)
    )
    good = bool(
        (obs.tests and obs.tests.total and obs.tests.passed == obs.tests.total)
        or (obs.grade and obs.grade.passed)
    )
    return "pe-bad" if bad else "pe-good" if good else ""


def status_html(view: View, error: str | None = None) -> str:
    obs = view.last
    if error:
        tone, kind, message = "pe-bad", "error", error
    elif obs is None:
        tone, kind, message = "", "ready", "Choose a task and press Reset."
    else:
        tone, kind, message = _tone(obs), obs.kind, obs.message
        if obs.done:
            message += " — episode over; Reset to play again"
    steps = "–"
    if obs is not None:
        steps = "∞" if obs.steps_remaining is None else str(obs.steps_remaining)
    stats = (
        ("score", _num(view.grade.score if view.grade else None)),
        ("reward", _num(None if obs is None else obs.reward)),
        ("total", _num(view.total_reward) if view.log else "–"),
        ("steps left", steps),
    )
    cells = "".join(f"<div><span>{k}</span><b>{_esc(v)}</b></div>" for k, v in stats)
    return (
        f'<div class="pe-status {tone}" id="pe-status"><span class="pe-kind">'
        f'{_esc(kind)}</span><span class="pe-msg">{_esc(message)}</span></div>'
        f'<div class="pe-stats" id="pe-stats">{cells}</div>'
    )


def tests_html(report: TestReport | None) -> str:
    if report is None:
        return '<p class="pe-muted">Press <b>Test</b> to run the visible tests.</p>'
    parts = [f'<p class="pe-muted">{report.passed} of {report.total} visible tests passed</p>']
    if report.error:
        parts.append(f'<pre class="pe-pre pe-err">{_esc(report.error)}</pre>')
    if report.results:
        rows = "".join(
            '<tr><td><code>{}</code></td><td class="{}">{}</td><td>{}</td></tr>'.format(
                _esc(r.name),
                "pe-pass" if r.passed else "pe-fail",
                "✓ passed" if r.passed else "✗ failed",
                _esc(r.message),
            )
            for r in report.results
        )
        parts.append(
            '<table class="pe-table" id="pe-tests"><thead><tr><th>test</th><th>result</th>'
            f"<th>message</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(parts)


def _run_flags(run: RunOutput) -> str:
    flags = [
        f"exit code {run.exit_code}" if run.exit_code is not None else f"signal {run.signal}",
        f"{run.wall_time_ms:.0f} ms wall",
        f"{run.cpu_time_ms:.0f} ms cpu",
    ]
    flags += [
        label
        for label, on in (
            ("timed out", run.timed_out),
            ("memory limit exceeded", run.memory_exceeded),
            ("fresh kernel", run.kernel_restarted),
        )
        if on
    ]
    if run.exception_type:
        flags.append(f"raised {run.exception_type}")
    return " · ".join(flags)


def output_html(run: RunOutput | None) -> str:
    if run is None:
        return '<p class="pe-muted">Press <b>Run</b> to execute the editor.</p>'
    parts = []
    for name, text, cut in (
        ("stdout", run.stdout, run.stdout_truncated),
        ("stderr", run.stderr, run.stderr_truncated),
    ):
        if text or name == "stdout":
            note = " (truncated)" if cut else ""
            css = "pe-pre pe-err" if name == "stderr" else "pe-pre"
            parts.append(
                f'<p class="pe-sub">{name}{note}</p>'
                f'<pre class="{css}" id="pe-{name}">{_esc(text) or "<i>(empty)</i>"}</pre>'
            )
    parts.append(f'<p class="pe-flags">{_esc(_run_flags(run))}</p>')
    return "".join(parts)


def _rows(values: dict[str, float], fmt: Any) -> str:
    return "".join(
        f"<tr><td>{_esc(k)}</td><td><code>{fmt(v)}</code></td></tr>" for k, v in values.items()
    )


def grade_html(grade: GradeReport | None, components: dict[str, float]) -> str:
    parts = []
    if grade is None:
        parts.append('<p class="pe-muted">Press <b>Submit</b> to grade on hidden tests.</p>')
    else:
        badge = (
            '<span class="pe-badge pe-good">passed</span>'
            if grade.passed
            else '<span class="pe-badge pe-bad">not passed</span>'
        )
        parts.append(
            f'<div class="pe-score" id="pe-score"><b>{grade.score:.3f}</b>{badge}'
            f'<span class="pe-muted">{grade.cases_passed}/{grade.cases_total} hidden cases'
            "</span></div>"
        )
        if grade.feedback:
            parts.append(f'<p class="pe-muted">{_esc(grade.feedback)}</p>')
        if grade.details:
            rows = _rows(grade.details, lambda v: f"{v:.4g}")
            parts.append(f'<table class="pe-table"><tbody>{rows}</tbody></table>')
    if components:
        rows = _rows(components, lambda v: _num(v, 4))
        parts.append(
            '<p class="pe-sub">reward breakdown</p><table class="pe-table" '
            f'id="pe-reward"><tbody>{rows}</tbody></table>'
        )
    return "".join(parts)


def log_html(log: list[tuple[str, str, str]]) -> str:
    if not log:
        return '<p class="pe-muted">Nothing yet.</p>'
    items = "".join(
        f"<li><span>{_esc(n)}</span><div>{_esc(kind)}<small>{_esc(text)}</small></div></li>"
        for n, kind, text in log
    )
    return f'<ol class="pe-log" id="pe-log">{items}</ol>'
