"""Text in, text out: how a language model sees python_env and how its replies become actions.

Shared by the `openai` evaluation policy and the TRL adapter, so a model is trained and
evaluated on the same protocol:

- `SYSTEM_PROMPT` explains the four actions and the reply format.
- `render_task` / `render_observation` turn typed observations into plain text.
- `parse_reply` turns a model reply into a `PythonAction`, or raises `ReplyError` with a
  message the model can act on (a malformed reply is a wasted step, never a crash).

Reply format: one fenced ```json block holding an action object, e.g.
`{"action": "edit", "code": "..."}`. The code of `run` / `edit` may instead follow in a
```python block after the JSON. A reply that is only a ```python block is an `edit`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from ..models import PythonAction, PythonObservation, ReviewFinding, TaskInfo
from ..server.tasks.families import rules_for

KINDS = ("run", "edit", "test", "submit")

SYSTEM_PROMPT = """\
You are a careful Python programmer working in a sandboxed environment on one task.
The task has a solution file, solution.py, which starts as the starter code. Each reply
you send is exactly one action, and every action costs one step of a limited budget.

Actions (reply with ONE fenced ```json block):
- run: execute Python code in a persistent interpreter; solution.py is importable.
  {"action": "run", "code": "from solution import f\\nprint(f(3))", "stdin": ""}
- edit: replace the whole of solution.py with new code.
  {"action": "edit", "code": "def f(x):\\n    return x + 1\\n"}
- test: run the visible tests against solution.py.
  {"action": "test"}
- submit: grade solution.py on every test, the visible ones and hidden ones. This ends
  the task.
  {"action": "submit"}
  On review tasks, submit the defects you found instead of editing code:
  {"action": "submit", "findings": [{"line": 3, "category": "off-by-one"}]}

Instead of escaping code inside JSON you may put it in a ```python block right after the
JSON block, e.g. a ```json block with {"action": "edit"} followed by a ```python block with
the complete new solution.py. A reply that is only a ```python block is an edit.
Hidden tests differ from the visible ones: write a correct, general solution, check it
with test, then submit before the budget runs out.
"""

HINT = (
    "Your last reply could not be used ({error}); it cost one step. Reply with exactly one "
    '```json block holding an action, for example ```json\n{{"action": "test"}}\n```'
)

MAX_FIELD_CHARS = 4000
"""Longest stdout / stderr / code excerpt shown to a model in one observation."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```", re.S)
_TASK_ID_LINE = re.compile(r"^Task id: (\S+)$", re.M)


class ReplyError(ValueError):
    """A model reply that is not a usable action; the message says why."""


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`text` cut to `limit` characters, keeping the head and the tail."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters omitted] ...\n{text[-half:]}"


def render_task(task: TaskInfo, steps: int | None = None) -> str:
    """The first user message of an episode: everything public about the task."""
    budget = steps if steps is not None else task.max_steps
    parts = [
        f"Task id: {task.task_id}",
        f"Title: {task.title}",
        f"Family: {task.family}   Difficulty: {task.difficulty}   Step budget: {budget}",
        "",
        task.statement.strip(),
        "",
    ]
    if task.entry_point:
        parts.append(f"The grader calls the function `{task.entry_point}` from solution.py.")
    else:
        parts.append("solution.py is run as a program: read stdin, write stdout.")
    rules = rules_for(task.family)
    note = rules.prompt(task)
    if note:
        parts.append(note)
    if rules.numbered_listing:
        parts += ["", "solution.py (with line numbers):", _numbered(task.starter_code)]
    else:
        parts += ["", "solution.py:", "```python", task.starter_code.rstrip(), "```"]
    if task.visible_tests.strip():
        parts += ["", "Visible tests:", "```python", clip(task.visible_tests).rstrip(), "```"]
    return "\n".join(parts) + "\n"


def task_id_from_prompt(text: str) -> str | None:
    """The task id `render_task` wrote into a prompt, or None."""
    match = _TASK_ID_LINE.search(text)
    return match.group(1) if match else None


def render_observation(obs: PythonObservation, turns_left: int | None = None) -> str:
    """One observation as text, for the next user message."""
    lines = [f"[{obs.kind}] {obs.message}"]
    run = obs.run
    if run is not None:
        if run.stdout:
            lines += ["stdout:", clip(run.stdout).rstrip()]
        if run.stderr:
            lines += ["stderr:", clip(run.stderr).rstrip()]
        if not run.stdout and not run.stderr:
            lines.append("(no output)")
    tests = obs.tests
    if tests is not None:
        if tests.error:
            lines.append(f"could not load solution.py: {clip(tests.error, 1500)}")
        for result in tests.results[:20]:
            mark = "PASS" if result.passed else "FAIL"
            detail = (
                f": {clip(result.message, 500)}" if result.message and not result.passed else ""
            )
            lines.append(f"  {mark} {result.name}{detail}")
        if len(tests.results) > 20:
            lines.append(f"  ... {len(tests.results) - 20} more")
    grade = obs.grade
    if grade is not None:
        lines.append(
            f"grade: score {grade.score:.3f}, passed={grade.passed}, "
            f"checks {grade.cases_passed}/{grade.cases_total}"
        )
        if grade.feedback:
            lines.append(f"feedback: {clip(grade.feedback, 1500)}")
    if obs.reward is not None:
        lines.append(f"reward: {obs.reward:+.3f}")
    left = turns_left if turns_left is not None else obs.steps_remaining
    if not obs.done and left is not None:
        lines.append(f"steps left: {left}" + (" (submit now!)" if left <= 1 else ""))
    return "\n".join(lines) + "\n"


def parse_reply(text: str) -> PythonAction:
    """The action a model reply asks for; `ReplyError` when there is none."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text or "")]
    json_bodies = [b for lang, b in blocks if lang == "json" or (not lang and _looks_json(b))]
    code_bodies = [
        b
        for lang, b in blocks
        if lang in ("python", "py", "python3") or (not lang and not _looks_json(b))
    ]
    obj: Any = None
    if json_bodies:
        obj = _load_json(json_bodies[0])
    elif _looks_json(text or ""):
        obj = _load_json(text)
    elif code_bodies:
        return PythonAction(kind="edit", code=code_bodies[0])
    else:
        raise ReplyError("no ```json action block found")

    if not isinstance(obj, dict):
        raise ReplyError('the JSON must be an object such as {"action": "test"}')
    kind = obj.get("action", obj.get("kind"))
    if kind not in KINDS:
        raise ReplyError(f"'action' must be one of {', '.join(KINDS)}, got {kind!r}")
    code = obj.get("code")
    if code is not None and not isinstance(code, str):
        raise ReplyError("'code' must be a string")
    if kind in ("run", "edit") and not code:
        if not code_bodies:
            raise ReplyError(f"'{kind}' needs code: a 'code' string or a ```python block")
        code = code_bodies[0]
    stdin = obj.get("stdin", "")
    if not isinstance(stdin, str):
        raise ReplyError("'stdin' must be a string")
    findings = obj.get("findings") or []
    if kind == "submit" and findings:
        findings = _findings(findings)
    try:
        return PythonAction(
            kind=kind,
            code=(code or "") if kind in ("run", "edit") else "",
            stdin=stdin if kind == "run" else "",
            findings=findings if kind == "submit" else [],
        )
    except ValidationError as exc:
        raise ReplyError(_first_error(exc)) from None


def _findings(raw: Any) -> list[ReviewFinding]:
    if not isinstance(raw, list):
        raise ReplyError('\'findings\' must be a list of {"line": int, "category": str}')
    out: list[ReviewFinding] = []
    for item in raw:
        try:
            out.append(ReviewFinding.model_validate(item))
        except ValidationError as exc:
            raise ReplyError(f"bad finding {item!r}: {_first_error(exc)}") from None
    return out


def _looks_json(text: str) -> bool:
    return text.lstrip().startswith("{")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplyError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid"))


def _numbered(code: str) -> str:
    lines = code.splitlines() or [""]
    width = len(str(len(lines)))
    return "\n".join(f"{i:>{width}} | {line}" for i, line in enumerate(lines, 1))
