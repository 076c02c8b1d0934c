"""Offline choice of the derived variants (`tasks/mutate.py`), through the sandbox.

Per source: bug mutants are tried in their seeded order (at most `MAX_TRIES`), each run
once on the hidden checks with a short CPU limit. A mutant every check accepts is
*equivalent* (the checks cannot tell it from the reference: not a bug anyone could be
asked to find), one that times out is dropped (a grader would spend its whole limit on
it); the others are rejected, and the first `BUGS_PER_TASK` become fix-bug variants.
A review snippet combines two rejected single-line mutants A and B; defect A is
demonstrated by a check that fails on the snippet and passes with only A fixed (with B
alone), likewise B; the built task must then pass the review family's own self-check
(each test fails on the snippet, passes with only its fix and on the reference). When no
pair works, a one-defect snippet is used. Syntax mutants need no run (their starter does
not parse, so every check rejects it); `mutate.syntax_wanted` says how many a source gets.

Before any of this, the reference is run again on its own hidden checks
(`REFERENCE_RERUNS` times): a source whose reference fails one is given no variants.

The result is one manifest per source collection (`mutate.write_manifest`); the
counts of dropped candidates are its reasons. `python -m python_env.server.validate
--refresh-derived [--collection NAME]` runs this.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .grading import Grader, ReferenceFailure
from .sandbox import Sandbox
from .tasks.families import rules_for
from .tasks.model import Task
from .tasks.mutate import (
    BUGS_PER_TASK,
    IN_PLACE,
    MANIFEST,
    REVIEWS_PER_TASK,
    bases,
    bug_mutants,
    build_review,
    case_literal,
    code_hash,
    generated_cases,
    mutant_kind,
    review_hash,
    review_snippet,
    source_hash,
    syntax_mutants,
    syntax_wanted,
    write_manifest,
)

MAX_TRIES = 12
REFERENCE_RERUNS = 2
"""Runs of the reference on its own hidden checks before any variant is chosen: one
whose output depends on the run (a set of objects iterated in address order) fails some
of them, and would fail its variants' graders (and their validation) as well."""
MAX_PAIRS = 6
QUICK_CPU_S = 1.0
DATA = Path(__file__).parent / "tasks" / "data"

Verdicts = dict[int | str, bool]


def collections() -> dict[str, Callable[[], list[Task]]]:
    """The source collections this checkout can load, by `Task.source` name."""
    from .tasks.builtin import builtin_tasks

    out: dict[str, Callable[[], list[Task]]] = {"builtin": builtin_tasks}
    try:
        from .tasks.humaneval import data_path, load_humaneval

        data_path()
        out["humaneval"] = load_humaneval
    except Exception:  # the extra is not installed
        pass
    try:  # CodeI/O (server/codeio.py), when this checkout has it and it is set up
        import importlib

        from .config import Settings

        codeio = importlib.import_module(f"{__package__}.codeio")
        setup = codeio.setup_for(Settings.from_env())
        if setup is not None and codeio.installed():
            out["codeio"] = lambda: list(codeio.load_codeio(setup))
    except ImportError:  # not on this branch
        pass
    return out


def verdicts(grader: Grader, task: Task, code: str) -> Verdicts | None:
    """Pass/fail of `code` on each hidden check (case index, or test name); None when
    the run hit its time limit."""
    out: Verdicts = {}
    quick = grader.limits_for(task, cpu_s=min(task.cpu_s or QUICK_CPU_S, QUICK_CPU_S))
    if task.hidden_cases:
        expected = grader.expected(task)
        result = grader.run_cases(task, code, task.hidden_cases, limits=quick)
        if result.timed_out:
            return None
        for i, exp in enumerate(expected):
            outcome = result.outcomes[i] if i < len(result.outcomes) else None
            out[i] = not result.load_error and grader.case_passes(task, exp, outcome)
    if task.hidden_test_code:
        res = grader.run_assertions(task, code, task.hidden_test_code, limits=quick)
        if res.timed_out:
            return None
        from .tasks.source import test_names

        passed = {t.name: t.passed for t in res.tests}
        for name in test_names(task.hidden_test_code):
            out[name] = not res.load_error and passed.get(name, False)
    return out


def _demo(task: Task, failing_here: Verdicts, passing_without: Verdicts) -> int | str | None:
    """A check that fails on the snippet and passes with this defect alone fixed."""
    keys = [k for k, ok in failing_here.items() if not ok and passing_without.get(k)]
    for k in keys:
        if isinstance(k, str) or case_literal(task, k) is not None:
            return k
    return None


def choose(grader: Grader, base: Task) -> dict[str, Any]:
    """The record of one source: its hash, its chosen variants, why others were dropped."""
    record: dict[str, Any] = {"hash": source_hash(base)}
    dropped: Counter[str] = Counter()
    bugs: list[list[Any]] = []
    reviews: list[list[Any]] = []
    pool: list[tuple[int, Verdicts]] = []
    try:
        grader.expected(base)
    except ReferenceFailure as exc:
        return {**record, "why": f"reference failed ({type(exc).__name__})"}
    for _ in range(REFERENCE_RERUNS):  # the oracle every variant is graded against
        again = verdicts(grader, base, base.reference_solution)
        if again is not None and not all(again.values()):
            return {**record, "why": "reference fails its own hidden checks when run again"}
    tries = 0
    pairs = 0
    want_reviews = 0 if generated_cases(base) else REVIEWS_PER_TASK
    for idx, code in bug_mutants(base):
        if tries >= MAX_TRIES or (len(bugs) >= BUGS_PER_TASK and len(reviews) >= want_reviews):
            break
        tries += 1
        v = verdicts(grader, base, code)
        if v is None:
            dropped["timeout"] += 1
            continue
        if all(v.values()):
            dropped["equivalent"] += 1
            continue
        if base.pass_threshold < 1.0 and grader.grade(base, code).score >= base.pass_threshold:
            dropped["passes-threshold"] += 1
            continue
        if len(bugs) < BUGS_PER_TASK:
            bugs.append([idx, code_hash(code)])
        if mutant_kind(base, idx) not in IN_PLACE or not want_reviews:
            continue
        for other, vo in pool:
            if len(reviews) >= want_reviews or pairs >= MAX_PAIRS:
                break
            pairs += 1
            made = _pair(grader, base, len(reviews) + 1, (other, vo), (idx, v))
            if made is not None:
                reviews.append(made)
            else:
                dropped["review-pair"] += 1
        pool.append((idx, v))
    if len(reviews) < want_reviews:
        for idx, v in pool:
            demo = _demo(base, v, dict.fromkeys(v, True))  # the reference passes all
            if demo is None:
                continue
            made = _review(grader, base, len(reviews) + 1, [idx], [demo])
            if made is not None:
                reviews.append(made)
                break
    syntax = [[k, code_hash(code)] for k, code in syntax_mutants(base)][: syntax_wanted(base)]
    record.update({"fix-bug": bugs, "fix-syntax": syntax, "review": reviews})
    if dropped:
        record["dropped"] = dict(sorted(dropped.items()))
    if not bugs:
        record["why"] = f"no mutant the hidden checks reject among {tries} tried"
    return record


def _pair(
    grader: Grader, base: Task, n: int, a: tuple[int, Verdicts], b: tuple[int, Verdicts]
) -> list[Any] | None:
    made = review_snippet(base, [a[0], b[0]])
    if made is None:
        return None
    snippet, flaws = made
    both = verdicts(grader, base, snippet)
    if both is None:
        return None
    # flaws are sorted by line: match each to its mutation by the fixed line's text
    order = sorted([a, b], key=lambda m: _line_of(base, m[0], [a[0], b[0]]))
    demo_a = _demo(base, both, order[1][1])  # fixing the first leaves only the second
    demo_b = _demo(base, both, order[0][1])
    if demo_a is None or demo_b is None or len(flaws) != 2:
        return None
    return _review(grader, base, n, [order[0][0], order[1][0]], [demo_a, demo_b])


def _line_of(base: Task, pick: int, picks: list[int]) -> int:
    """The snippet line a mutation lands on (the flaws of review_snippet are by line)."""
    made = review_snippet(base, [pick])
    return made[1][0].line if made else 0


def _review(
    grader: Grader, base: Task, n: int, picks: list[int], demos: list[int | str]
) -> list[Any] | None:
    task = build_review(base, n, picks, demos)
    if task is None:
        return None
    problems = rules_for("review").self_check(grader, task, None)  # type: ignore[arg-type]
    if problems:
        return None
    return [picks, demos, review_hash(task.snippet, task.defects)]


def refresh(
    name: str, tasks: Sequence[Task], sandbox: Sandbox, *, jobs: int | None = None
) -> dict[str, dict[str, Any]]:
    """Choose the variants of every source of one collection; rewrite its manifest."""
    grader = Grader(sandbox)
    sources = bases(tasks)
    workers = jobs or 2 * getattr(sandbox, "slots", 1)

    def one(base: Task) -> tuple[str, dict[str, Any]]:
        try:
            return base.id, choose(grader, base)
        except Exception as exc:  # an infrastructure fault on one source: recorded, not fatal
            # the type only: a message may quote the source's code
            return base.id, {
                "hash": source_hash(base),
                "why": f"choice failed: {type(exc).__name__}",
            }

    with ThreadPoolExecutor(max_workers=workers) as pool:
        records = dict(pool.map(one, sources))
    about = (
        f"derived variants of the {name} sources, chosen by `python -m "
        "python_env.server.validate --refresh-derived`: per source its content hash and "
        "fix-bug [mutant site, code hash], fix-syntax [seed, code hash], review "
        "[[sites], [demonstrating case index or test name], hash]; dropped: why other "
        "candidates were not kept"
    )
    write_manifest(DATA / MANIFEST.format(name), records, about)
    return records
