"""The "Python" tab of the web interface (`ENABLE_WEB_INTERFACE=true`, served at /web/).

A person plays an episode the way an agent does: pick a task (or a free sandbox),
edit `solution.py`, run code, run the visible tests, submit for grading on hidden
tests (with findings, on review tasks), and read each result laid out for people.

Each visitor plays in their own environment (`web_sessions.py`), not in OpenEnv's
shared one: the environment's copy of the solution is the truth, and the editor is
sent to it (an `edit` step) only when it differs, before a test or a submit. The page
is laid out here, drawn by `web_render.py` and styled by `web_ui.css`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, get_args

import gradio as gr
from pydantic import ValidationError

from ..models import Difficulty, Family, PythonAction, ReviewFinding
from .python_env_environment import PythonEnvironment
from .web_render import (
    View,
    grade_html,
    log_html,
    output_html,
    status_html,
    task_markdown,
    tests_html,
)
from .web_sessions import SessionLimitError, Visitor, WebSessions

ANY = "any"
RANDOM = ""
FREE_SANDBOX_CODE = 'import sys\n\nprint("hello from", sys.version.split()[0])\n'
NO_EPISODE = "no episode yet: press Reset first"


def _css() -> str:
    return (files(__package__) / "web_ui.css").read_text(encoding="utf-8")


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "[VALIDATION_ERROR] " + "; ".join(e["msg"] for e in exc.errors())
    code = getattr(exc, "code", None)
    return f"[{code}] {exc}" if code and not str(exc).startswith("[") else str(exc)


def parse_findings(text: str) -> list[ReviewFinding]:
    """Review findings typed one per line as `LINE CATEGORY` (e.g. `4 off-by-one`)."""
    findings = []
    for n, raw in enumerate(text.splitlines(), 1):
        line, _, category = raw.strip().partition(" ")
        if not line:
            continue
        if not line.isdigit() or not category.strip():
            raise ValueError(f"finding on line {n}: write `LINE CATEGORY`, e.g. `4 off-by-one`")
        findings.append(ReviewFinding(line=int(line), category=category.strip()))
    return findings


def reset_options(mode: str, family: str, difficulty: str, task_id: str) -> dict[str, Any]:
    """The picker's choice as `reset()` options."""
    if mode == "free sandbox":
        return {"mode": "free"}
    if task_id:
        return {"task_id": task_id}
    options: dict[str, Any] = {"mode": "task"}
    if family != ANY:
        options["family"] = family
    if difficulty != ANY:
        options["difficulty"] = difficulty
    return options


def _refusal(view: View, kind: str) -> str | None:
    """Why the page does not send this action at all (nothing is spent)."""
    if view.last is None:
        return NO_EPISODE
    if view.last.done:
        return "the episode is over: press Reset to start another"
    if view.free and kind in ("test", "submit"):
        return f"[NO_TASK] '{kind}' needs a task; this is a free sandbox (Reset on a task)"
    return None


# -- what a click does ------------------------------------------------------------------


class _Play:
    """The tab's event handlers: each acts on the clicking visitor's own environment and
    returns the page's outputs, in the order `_wire` lists them."""

    def __init__(
        self, sessions: WebSessions, summaries: list[dict[str, Any]], idle_timeout_s: float
    ) -> None:
        self.sessions = sessions
        self.summaries = summaries
        self.no_session = f"{NO_EPISODE} (a session ends after {idle_timeout_s:g} s idle)"

    def task_choices(self, family: str, difficulty: str) -> list[tuple[str, str]]:
        pool = [
            s
            for s in self.summaries
            if family in (ANY, s["family"]) and difficulty in (ANY, s["difficulty"])
        ]
        return [("random task (by filter)", RANDOM)] + [
            (f"{s['id']} — {s['title']} ({s['difficulty']})", s["id"]) for s in pool
        ]

    def refilter(self, family: str, difficulty: str) -> Any:
        return gr.update(choices=self.task_choices(family, difficulty), value=RANDOM)

    @staticmethod
    def render(
        visitor: Visitor | None, error: str | None = None, starter: str | None = None
    ) -> tuple[Any, ...]:
        """The page for this visitor; `starter` (a new episode) fills the editor and
        clears the findings box, shown on review tasks only."""
        view = visitor.view if visitor else View()
        obs = view.last
        review = bool(view.task and view.task.review_categories)
        return (
            task_markdown(view.task, view.free),
            gr.update() if starter is None else gr.update(value=starter),
            gr.update() if starter is None else gr.update(value="", visible=review),
            status_html(view, error),
            tests_html(view.tests),
            output_html(view.run),
            grade_html(view.grade, obs.reward_components if obs else {}),
            log_html(view.log),
            visitor,
        )

    def reset(
        self,
        mode: str,
        family: str,
        difficulty: str,
        task_id: str,
        visitor: Visitor | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        if not request.session_hash:  # every page load has one; a bare API call may not
            return self.render(None, error="reset failed: no browser session")
        try:
            if visitor is None or visitor.closed:
                visitor = self.sessions.open(request.session_hash)
        except SessionLimitError as exc:
            return self.render(None, error=f"reset failed: {_error_text(exc)}")
        with visitor.use():
            if visitor.closed:  # closed as idle between `open` and now
                return self.render(None, error=self.no_session)
            try:
                obs = visitor.env.reset(**reset_options(mode, family, difficulty, task_id))
            except Exception as exc:
                return self.render(visitor, error=f"reset failed: {_error_text(exc)}")
            visitor.view = View(task=obs.task, free=obs.task is None, last=obs)
            visitor.view.log.append(
                ("reset", obs.task.task_id if obs.task else "free sandbox", obs.message)
            )
        starter = obs.task.starter_code if obs.task else FREE_SANDBOX_CODE
        return self.render(visitor, starter=starter)

    def run(
        self, code: str | None, stdin: str | None, persistent: bool, visitor: Visitor | None
    ) -> tuple[Any, ...]:
        def steps(v: Visitor) -> None:
            action = PythonAction(
                kind="run", code=code or "", stdin=stdin or "", persistent=bool(persistent)
            )
            self._step(v, action, "run")

        return self._act(visitor, "run", steps)

    def test(self, code: str | None, visitor: Visitor | None) -> tuple[Any, ...]:
        def steps(v: Visitor) -> None:
            if self._save(v, code or ""):
                self._step(v, PythonAction(kind="test"), "test")

        return self._act(visitor, "test", steps)

    def submit(
        self, code: str | None, findings: str | None, visitor: Visitor | None
    ) -> tuple[Any, ...]:
        def steps(v: Visitor) -> None:
            action = PythonAction(kind="submit", findings=parse_findings(findings or ""))
            if self._save(v, code or ""):
                self._step(v, action, "submit")

        return self._act(visitor, "submit", steps)

    def leave(self, request: gr.Request) -> None:
        """The page is gone (closed or reloaded): end its session now."""
        if request.session_hash:
            self.sessions.close(request.session_hash)

    def _act(
        self, visitor: Visitor | None, kind: str, steps: Callable[[Visitor], None]
    ) -> tuple[Any, ...]:
        if visitor is None:
            return self.render(None, error=self.no_session)
        with visitor.use():
            if visitor.closed:
                return self.render(None, error=self.no_session)
            if problem := _refusal(visitor.view, kind):
                return self.render(visitor, error=problem)
            try:
                steps(visitor)
            except Exception as exc:
                return self.render(visitor, error=_error_text(exc))
        return self.render(visitor)

    @staticmethod
    def _step(visitor: Visitor, action: PythonAction, label: str) -> None:
        obs = visitor.env.step(action)
        visitor.view.record(obs, label, visitor.env.state.total_reward)

    def _save(self, visitor: Visitor, code: str) -> bool:
        """Send the editor as an `edit` step when it differs from the environment's copy;
        False if that step ended the episode (the step budget ran out)."""
        # The editor drops a final newline: that alone is not an edit worth a step.
        if visitor.env.state.solution.rstrip("\n") != code.rstrip("\n"):
            self._step(visitor, PythonAction(kind="edit", code=code), "edit")
        return not (visitor.view.last and visitor.view.last.done)


# -- the layout -------------------------------------------------------------------------


def _card_heading(title: str, text: str = "") -> None:
    body = f"<p>{text}</p>" if text else ""
    gr.HTML(f'<div class="oe-step"><h2>{title}</h2>{body}</div>')


@dataclass
class _Picker:
    mode: gr.Radio
    family: gr.Dropdown
    difficulty: gr.Dropdown
    task: gr.Dropdown
    reset: gr.Button


def _picker(play: _Play) -> _Picker:
    families = [ANY] + [
        f for f in get_args(Family) if any(s["family"] == f for s in play.summaries)
    ]
    with gr.Column(elem_classes="oe-card"):
        _card_heading(
            "1. Start an episode", "A task from the bank, or a free sandbox with no grading."
        )
        with gr.Row():
            mode = gr.Radio(
                ["task", "free sandbox"], value="task", label="mode", elem_id="pe-mode", scale=2
            )
            family = gr.Dropdown(families, value=ANY, label="family", elem_id="pe-family", scale=1)
            difficulty = gr.Dropdown(
                [ANY, *get_args(Difficulty)],
                value=ANY,
                label="difficulty",
                elem_id="pe-difficulty",
                scale=1,
            )
        with gr.Row(elem_classes="oe-row"):
            task = gr.Dropdown(
                play.task_choices(ANY, ANY),
                value=RANDOM,
                label="task",
                elem_id="pe-task",
                filterable=True,
                scale=4,
            )
            reset = gr.Button(
                "Reset", variant="primary", elem_id="pe-reset", scale=1, min_width=110
            )
    return _Picker(mode, family, difficulty, task, reset)


@dataclass
class _Workbench:
    statement: gr.Markdown
    editor: gr.Code
    findings: gr.Textbox
    stdin: gr.Textbox
    persistent: gr.Checkbox
    run: gr.Button
    test: gr.Button
    submit: gr.Button


def _workbench() -> _Workbench:
    with gr.Column(elem_classes="oe-card"):
        statement = gr.Markdown(task_markdown(None, False), elem_id="pe-statement")
    with gr.Column(elem_classes="oe-card"):
        _card_heading(
            "2. Edit, run, test, submit",
            "<b>Run</b> executes the editor; <b>Test</b> and <b>Submit</b> first save it as "
            "<code>solution.py</code> (an <code>edit</code> step) when it changed. Each "
            "action spends one step.",
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
        findings = gr.Textbox(
            label="findings for Submit: one per line, LINE CATEGORY (e.g. 4 off-by-one)",
            lines=3,
            max_lines=12,
            visible=False,
            elem_id="pe-findings",
        )
        with gr.Accordion("stdin and kernel", open=False):
            stdin = gr.Textbox(label="stdin for Run", lines=3, elem_id="pe-stdin", max_lines=12)
            persistent = gr.Checkbox(
                value=True, label="keep variables between runs (persistent kernel)"
            )
        with gr.Row(elem_classes="pe-buttons"):
            run = gr.Button("Run", elem_id="pe-run")
            test = gr.Button("Test", elem_id="pe-test")
            submit = gr.Button("Submit", variant="primary", elem_id="pe-submit")
    return _Workbench(statement, editor, findings, stdin, persistent, run, test, submit)


@dataclass
class _Results:
    status: gr.HTML
    tests: gr.HTML
    grade: gr.HTML
    output: gr.HTML
    log: gr.HTML


def _results() -> _Results:
    with gr.Column(elem_classes="oe-card"):
        _card_heading("Result")
        status = gr.HTML(status_html(View()), elem_id="pe-status-box")
        boxes = {}
        for name, empty in (
            ("tests", tests_html(None)),
            ("grade", grade_html(None, {})),
            ("output", output_html(None)),
        ):
            gr.HTML(f'<p class="pe-h">{"visible tests" if name == "tests" else name}</p>')
            boxes[name] = gr.HTML(empty, elem_id=f"pe-{name}-box")
    with gr.Column(elem_classes="oe-card"):
        _card_heading("Episode")
        log = gr.HTML(log_html([]), elem_id="pe-log-box")
    return _Results(status, boxes["tests"], boxes["grade"], boxes["output"], log)


def _wire(
    play: _Play, picker: _Picker, work: _Workbench, results: _Results, visitor: gr.State, slots: int
) -> None:
    outputs = [
        work.statement,
        work.editor,
        work.findings,
        results.status,
        results.tests,
        results.output,
        results.grade,
        results.log,
        visitor,
    ]
    # Visitors step their own environments at once, up to one per sandbox slot; more
    # wait in Gradio's queue. A visitor's own clicks are serialized by their lock.
    busy: dict[str, Any] = dict(
        concurrency_id="python-env", concurrency_limit=slots, trigger_mode="once"
    )
    for box in (picker.family, picker.difficulty):
        box.change(play.refilter, [picker.family, picker.difficulty], picker.task)
    pick = [picker.mode, picker.family, picker.difficulty, picker.task]
    picker.reset.click(play.reset, [*pick, visitor], outputs, **busy)
    work.run.click(play.run, [work.editor, work.stdin, work.persistent, visitor], outputs, **busy)
    work.test.click(play.test, [work.editor, visitor], outputs, **busy)
    work.submit.click(play.submit, [work.editor, work.findings, visitor], outputs, **busy)


def build_python_tab(
    web_manager: Any,
    action_fields: list[dict[str, Any]],
    metadata: Any,
    is_chat_env: bool,
    title: str,
    quick_start_md: str,
) -> gr.Blocks:
    """OpenEnv's `gradio_builder`: the tab a person plays python_env in. It leaves
    `web_manager` (OpenEnv's one shared environment) alone: every visitor gets their own."""
    probe = PythonEnvironment()
    settings = probe.runtime.settings
    sessions = WebSessions(
        PythonEnvironment, settings.max_concurrent_envs, settings.session_timeout_s
    )
    summaries = sorted(probe.list_tasks("all"), key=lambda s: s["id"])
    play = _Play(sessions, summaries, settings.session_timeout_s)
    with gr.Blocks(title=title) as demo:
        # Gradio drops a visitor's state once it is idle this long, closing the session.
        visitor = gr.State(
            None, time_to_live=settings.session_timeout_s, delete_callback=sessions.expire
        )
        gr.HTML(
            f"<style>{_css()}</style>"
            '<div class="oe-header"><span class="oe-eyebrow">python_env · sandboxed CPython'
            "</span><h1>Python</h1><p>Pick a task, edit <code>solution.py</code>, run it, run "
            "the visible tests, then submit: hidden tests grade it. Every run is an isolated "
            "CPython process, and every visitor has an episode of their own.</p></div>"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=380):
                picker = _picker(play)
                work = _workbench()
            with gr.Column(scale=2, min_width=340):
                results = _results()
        _wire(play, picker, work, results, visitor, probe.runtime.sandbox.slots)
        demo.unload(play.leave)
    return demo
