"""The "Python" tab of the web interface (`ENABLE_WEB_INTERFACE=true`, served at /web/).

A person plays an episode the way an agent does: pick a task (or a free sandbox),
edit `solution.py`, run code, run the visible tests, submit for grading on hidden
tests, and read each result laid out for people (output, a test table, the score and
the reward breakdown, the steps left).

The tab drives OpenEnv's `WebInterfaceManager`, which holds ONE environment shared by
every browser on the server: the server's copy of the solution is the truth, and the
editor is sent to it (an `edit` step) only when it differs, before a test or a submit.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..models import GradeReport, PythonObservation, RunOutput, TaskInfo, TestReport

ANY = "any"
RANDOM = ""
FREE_SANDBOX_CODE = 'import sys\n\nprint("hello from", sys.version.split()[0])\n'
FAMILIES = ("implement", "fix-bug", "fix-syntax", "optimize", "review")
DIFFICULTIES = ("easy", "medium", "hard")

_CSS = """
<style>
.pe-status { display: flex; gap: 10px; align-items: baseline; padding: 12px 14px;
  border: 1px solid var(--border-color-primary); border-radius: 10px;
  background: var(--background-fill-secondary); font-size: 14px; }
.pe-status.pe-bad { border-color: #f4c7c3; background: #fef3f2; }
.pe-status.pe-good { border-color: #a8dab5; background: #f0f7f2; }
.dark .pe-status.pe-bad { border-color: #5c2b29; background: #2a1414; }
.dark .pe-status.pe-good { border-color: #1f4d2c; background: #0d2416; }
.pe-kind { flex: none; font-family: var(--font-mono); font-size: 11px; font-weight: 600;
  letter-spacing: .06em; text-transform: uppercase; color: var(--body-text-color-subdued); }
.pe-msg { word-break: break-word; }
.pe-stats { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); margin-top: 10px;
  border: 1px solid var(--border-color-primary); border-radius: 10px; overflow: hidden; }
.pe-stats div { padding: 8px 12px; border-right: 1px solid var(--border-color-primary); }
.pe-stats div:last-child { border-right: none; }
.pe-stats span { display: block; font-size: 12px; color: var(--body-text-color-subdued);
  font-family: var(--font-mono); white-space: nowrap; }
.pe-stats b { font-family: var(--font-mono); font-size: 18px; font-weight: 600; }
.pe-h { margin: 6px 0 0 !important; font-size: 12px !important; font-weight: 600 !important;
  color: var(--body-text-color-subdued) !important; text-transform: uppercase;
  letter-spacing: .06em; }
.pe-sub { margin: 10px 0 4px !important; font-size: 12px !important; font-weight: 600 !important;
  color: var(--body-text-color-subdued) !important; font-family: var(--font-mono); }
table.pe-table { width: 100%; border-collapse: collapse !important; border: none !important;
  font-size: 13px; margin: 4px 0 0 !important; }
table.pe-table tr { border: none !important;
  border-bottom: 1px solid var(--border-color-primary) !important; background: none !important; }
table.pe-table tr:last-child { border-bottom: none !important; }
table.pe-table th, table.pe-table td { border: none !important; padding: 6px 8px !important;
  text-align: left; vertical-align: top; overflow-wrap: anywhere; background: none !important; }
table.pe-table th { font-weight: 600; color: var(--body-text-color-subdued) !important;
  font-size: 12px; }
table.pe-table td:last-child { min-width: 110px; }
table.pe-table td code { font-family: var(--font-mono); font-size: 12px; background: none;
  padding: 0; }
table.pe-table td.pe-pass { color: #1a7f37 !important; font-weight: 600; white-space: nowrap; }
table.pe-table td.pe-fail { color: #b42318 !important; font-weight: 600; white-space: nowrap; }
.pe-pre { margin: 0 !important; padding: 10px 12px !important; max-height: 260px; overflow: auto;
  font-family: var(--font-mono); font-size: 13px; white-space: pre-wrap; word-break: break-word;
  background: var(--background-fill-secondary) !important;
  border: 1px solid var(--border-color-primary); border-radius: 8px; }
.pe-pre.pe-err { color: #b42318; }
.pe-flags { margin: 6px 0 0 !important; font-size: 12px; color: var(--body-text-color-subdued);
  font-family: var(--font-mono); }
.pe-score { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
.pe-score b { font-size: 32px; font-weight: 700; letter-spacing: -.02em;
  font-family: var(--font-mono); }
.pe-badge { display: inline-block; padding: 2px 8px; border-radius: 999px; font-size: 12px;
  font-weight: 600; font-family: var(--font-mono); border: 1px solid var(--border-color-primary); }
.pe-badge.pe-good { color: #1a7f37; border-color: #a8dab5; background: #f0f7f2; }
.pe-badge.pe-bad { color: #b42318; border-color: #f4c7c3; background: #fef3f2; }
.pe-muted { color: var(--body-text-color-subdued); font-size: 14px; margin: 4px 0 0 !important; }
ol.pe-log { list-style: none !important; margin: 0 !important; padding: 0 !important;
  font-size: 13px; }
ol.pe-log li { display: flex; gap: 10px; padding: 6px 0; margin: 0 !important;
  border-top: 1px solid var(--border-color-primary); }
ol.pe-log li:first-child { border-top: none; }
ol.pe-log li > span { flex: none; width: 56px; font-family: var(--font-mono);
  color: var(--body-text-color-subdued); }
ol.pe-log small { display: block; color: var(--body-text-color-subdued); word-break: break-word; }
.pe-buttons button { min-width: 96px; }
.pe-editor .cm-editor { max-height: 560px; }
</style>
"""


@dataclass
class _View:
    """What one browser page knows about the episode it is showing."""

    task: TaskInfo | None = None
    free: bool = False
    log: list[tuple[str, str, str]] = field(default_factory=list)
    last: PythonObservation | None = None
    tests: TestReport | None = None
    run: RunOutput | None = None
    grade: GradeReport | None = None
    score: float | None = None
    total_reward: float = 0.0


# -- rendering (pure functions of observations) ------------------------------------


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


def status_html(view: _View, error: str | None = None) -> str:
    obs = view.last
    if error:
        tone, kind, message = "pe-bad", "error", error
    elif obs is None:
        tone, kind, message = "", "ready", "Choose a task and press Reset."
    else:
        bad = bool(
            (obs.run and (obs.run.timed_out or obs.run.memory_exceeded or obs.run.exception_type))
            or (obs.tests and (obs.tests.error or obs.tests.passed < obs.tests.total))
            or (obs.grade and not obs.grade.passed)
        )
        good = bool(
            (obs.tests and obs.tests.total and obs.tests.passed == obs.tests.total)
            or (obs.grade and obs.grade.passed)
        )
        tone = "pe-bad" if bad else "pe-good" if good else ""
        kind, message = obs.kind, obs.message
        if obs.done:
            message += " — episode over; Reset to play again"
    reward = None if obs is None else obs.reward
    steps = "–"
    if obs is not None:
        steps = "∞" if obs.steps_remaining is None else str(obs.steps_remaining)
    stats = (
        ("score", _num(view.score)),
        ("reward", _num(reward)),
        ("total", _num(view.total_reward) if view.log else "–"),
        ("steps left", steps),
    )
    cells = "".join(f"<div><span>{k}</span><b>{_esc(v)}</b></div>" for k, v in stats)
    return (
        f'{_CSS}<div class="pe-status {tone}" id="pe-status"><span class="pe-kind">'
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
    parts.append(f'<p class="pe-flags">{_esc(" · ".join(flags))}</p>')
    return "".join(parts)


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
            rows = "".join(
                f"<tr><td>{_esc(k)}</td><td><code>{v:.4g}</code></td></tr>"
                for k, v in grade.details.items()
            )
            parts.append(f'<table class="pe-table"><tbody>{rows}</tbody></table>')
    if components:
        rows = "".join(
            f"<tr><td>{_esc(k)}</td><td><code>{_num(v, 4)}</code></td></tr>"
            for k, v in components.items()
        )
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


def _observation(data: dict[str, Any]) -> PythonObservation:
    fields = dict(data.get("observation") or {})
    fields["reward"], fields["done"] = data.get("reward"), bool(data.get("done"))
    fields.pop("metadata", None)
    return PythonObservation.model_validate(fields)


def _error_text(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    code = getattr(exc, "code", None)
    return f"[{code}] {message}" if code and not str(message).startswith("[") else str(message)


# -- the tab -------------------------------------------------------------------------


def _task_summaries(web_manager: Any) -> list[dict[str, Any]]:
    env = getattr(web_manager, "env", None)
    try:
        return list(env.list_tasks("all"))  # type: ignore[union-attr]
    except Exception:
        from .runtime import served_bank

        return served_bank().summaries()


def build_python_tab(
    web_manager: Any,
    action_fields: list[dict[str, Any]],
    metadata: Any,
    is_chat_env: bool,
    title: str,
    quick_start_md: str,
) -> gr.Blocks:
    """OpenEnv `gradio_builder`: the tab a person plays python_env in."""
    summaries = sorted(_task_summaries(web_manager), key=lambda s: s["id"])

    def task_choices(family: str, difficulty: str) -> list[tuple[str, str]]:
        pool = [
            s
            for s in summaries
            if family in (ANY, s["family"]) and difficulty in (ANY, s["difficulty"])
        ]
        return [("random task (by filter)", RANDOM)] + [
            (f"{s['id']} — {s['title']} ({s['difficulty']})", s["id"]) for s in pool
        ]

    families = [ANY] + [f for f in FAMILIES if any(s["family"] == f for s in summaries)]
    difficulties = [ANY, *DIFFICULTIES]

    def render(view: _View, error: str | None = None, editor: Any = None) -> tuple[Any, ...]:
        obs = view.last
        return (
            task_markdown(view.task, view.free),
            gr.update() if editor is None else gr.update(value=editor),
            status_html(view, error),
            tests_html(view.tests),
            output_html(view.run),
            grade_html(view.grade, obs.reward_components if obs else {}),
            log_html(view.log),
            view,
        )

    def record(view: _View, obs: PythonObservation, label: str) -> None:
        view.last = obs
        view.total_reward += obs.reward or 0.0
        # Each observation carries only its own part: keep the latest of each on show.
        view.tests = obs.tests or view.tests
        view.run = obs.run or view.run
        if obs.grade is not None:
            view.grade, view.score = obs.grade, obs.grade.score
        view.log.append((f"step {obs.step_count}", label, obs.message))

    async def on_reset(mode: str, family: str, difficulty: str, task_id: str, view: _View):
        view = view if isinstance(view, _View) else _View()
        if mode == "free sandbox":
            kwargs: dict[str, Any] = {"mode": "free"}
        elif task_id:
            kwargs = {"task_id": task_id}
        else:
            kwargs = {"mode": "task"}
            if family != ANY:
                kwargs["family"] = family
            if difficulty != ANY:
                kwargs["difficulty"] = difficulty
        try:
            obs = _observation(await web_manager.reset_environment(kwargs))
        except Exception as exc:
            return render(view, error=f"reset failed: {_error_text(exc)}")
        view = _View(task=obs.task, free=obs.task is None, last=obs)
        view.log.append(("reset", obs.task.task_id if obs.task else "free sandbox", obs.message))
        starter = obs.task.starter_code if obs.task else FREE_SANDBOX_CODE
        return render(view, editor=starter)

    async def step(view: _View, action: dict[str, Any], label: str) -> _View:
        obs = _observation(await web_manager.step_environment(action))
        record(view, obs, label)
        return view

    def server_solution() -> str | None:
        try:
            return str(web_manager.get_state().get("solution", ""))
        except Exception:
            return None

    async def sync_editor(view: _View, code: str) -> None:
        """Send the editor to the server (an `edit` step) when it differs from its copy."""
        saved = server_solution()
        # The editor drops a final newline: that alone is not an edit worth a step.
        if saved is None or saved.rstrip("\n") != code.rstrip("\n"):
            await step(view, {"kind": "edit", "code": code}, "edit")

    def no_episode(view: _View, kind: str = "run") -> str | None:
        if view.last is None:
            return "no episode yet: press Reset first"
        if view.last.done:
            return "the episode is over: press Reset to start another"
        if view.free and kind in ("test", "submit"):
            return f"[NO_TASK] '{kind}' needs a task; this is a free sandbox (Reset on a task)"
        return None

    async def on_run(code: str | None, stdin: str | None, persistent: bool, view: _View):
        code = code or ""
        if problem := no_episode(view):
            return render(view, error=problem)
        try:
            action = {
                "kind": "run",
                "code": code,
                "stdin": stdin or "",
                "persistent": bool(persistent),
            }
            view = await step(view, action, "run")
        except Exception as exc:
            return render(view, error=_error_text(exc))
        return render(view)

    async def on_test(code: str | None, view: _View):
        code = code or ""
        if problem := no_episode(view, "test"):
            return render(view, error=problem)
        try:
            await sync_editor(view, code)
            if not (view.last and view.last.done):
                view = await step(view, {"kind": "test"}, "test")
        except Exception as exc:
            return render(view, error=_error_text(exc))
        return render(view)

    async def on_submit(code: str | None, view: _View):
        code = code or ""
        if problem := no_episode(view, "submit"):
            return render(view, error=problem)
        try:
            await sync_editor(view, code)
            if not (view.last and view.last.done):
                view = await step(view, {"kind": "submit"}, "submit")
        except Exception as exc:
            return render(view, error=_error_text(exc))
        return render(view)

    with gr.Blocks(title=title) as demo:
        view_state = gr.State(_View())
        gr.HTML(
            '<div class="oe-header"><span class="oe-eyebrow">python_env · sandboxed CPython'
            "</span><h1>Python</h1><p>Pick a task, edit <code>solution.py</code>, run it, run "
            "the visible tests, then submit: hidden tests grade it. Every run is an isolated "
            "CPython process.</p></div>"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=380):
                with gr.Column(elem_classes="oe-card"):
                    gr.HTML(
                        '<div class="oe-step"><h2>1. Start an episode</h2><p>A task from the '
                        "bank, or a free sandbox with no grading.</p></div>"
                    )
                    with gr.Row():
                        mode = gr.Radio(
                            ["task", "free sandbox"],
                            value="task",
                            label="mode",
                            elem_id="pe-mode",
                            scale=2,
                        )
                        family = gr.Dropdown(
                            families, value=ANY, label="family", elem_id="pe-family", scale=1
                        )
                        difficulty = gr.Dropdown(
                            difficulties,
                            value=ANY,
                            label="difficulty",
                            elem_id="pe-difficulty",
                            scale=1,
                        )
                    with gr.Row(elem_classes="oe-row"):
                        task = gr.Dropdown(
                            task_choices(ANY, ANY),
                            value=RANDOM,
                            label="task",
                            elem_id="pe-task",
                            filterable=True,
                            scale=4,
                        )
                        reset_btn = gr.Button(
                            "Reset", variant="primary", elem_id="pe-reset", scale=1, min_width=110
                        )
                with gr.Column(elem_classes="oe-card"):
                    statement = gr.Markdown(task_markdown(None, False), elem_id="pe-statement")
                with gr.Column(elem_classes="oe-card"):
                    gr.HTML(
                        '<div class="oe-step"><h2>2. Edit, run, test, submit</h2><p>'
                        "<b>Run</b> executes the editor; <b>Test</b> and <b>Submit</b> first "
                        "save it as <code>solution.py</code> (an <code>edit</code> step) when "
                        "it changed. Each action spends one step.</p></div>"
                    )
                    editor = gr.Code(
                        value="",
                        language="python",
                        label="solution.py",
                        interactive=True,
                        lines=12,
                        max_lines=40,
                        elem_id="pe-editor",
                        elem_classes="pe-editor",
                    )
                    with gr.Accordion("stdin and kernel", open=False):
                        stdin = gr.Textbox(
                            label="stdin for Run", lines=3, elem_id="pe-stdin", max_lines=12
                        )
                        persistent = gr.Checkbox(
                            value=True,
                            label="keep variables between runs (persistent kernel)",
                        )
                    with gr.Row(elem_classes="pe-buttons"):
                        run_btn = gr.Button("Run", elem_id="pe-run")
                        test_btn = gr.Button("Test", elem_id="pe-test")
                        submit_btn = gr.Button("Submit", variant="primary", elem_id="pe-submit")
            with gr.Column(scale=2, min_width=340):
                with gr.Column(elem_classes="oe-card"):
                    gr.HTML('<div class="oe-step"><h2>Result</h2></div>')
                    status = gr.HTML(status_html(_View()), elem_id="pe-status-box")
                    gr.HTML('<p class="pe-h">visible tests</p>')
                    tests = gr.HTML(tests_html(None), elem_id="pe-tests-box")
                    gr.HTML('<p class="pe-h">grade</p>')
                    grade = gr.HTML(grade_html(None, {}), elem_id="pe-grade-box")
                    gr.HTML('<p class="pe-h">output</p>')
                    output = gr.HTML(output_html(None), elem_id="pe-output-box")
                with gr.Column(elem_classes="oe-card"):
                    gr.HTML('<div class="oe-step"><h2>Episode</h2></div>')
                    log = gr.HTML(log_html([]), elem_id="pe-log-box")

        outputs = [statement, editor, status, tests, output, grade, log, view_state]
        busy: dict[str, Any] = dict(
            concurrency_id="python-env", concurrency_limit=1, trigger_mode="once"
        )

        def refilter(family_value: str, difficulty_value: str) -> Any:
            return gr.update(choices=task_choices(family_value, difficulty_value), value=RANDOM)

        family.change(refilter, [family, difficulty], task)
        difficulty.change(refilter, [family, difficulty], task)
        reset_btn.click(on_reset, [mode, family, difficulty, task, view_state], outputs, **busy)
        run_btn.click(on_run, [editor, stdin, persistent, view_state], outputs, **busy)
        test_btn.click(on_test, [editor, view_state], outputs, **busy)
        submit_btn.click(on_submit, [editor, view_state], outputs, **busy)
    return demo
