"""Check the whole task bank through the real grader:

    python -m python_env.server.validate [--family F] [--id ID ...] [--jobs N]
    python -m python_env.server.validate --refresh-procedural

For every task: the reference scores 1.0 and passes its visible tests; the starter
scores below the pass threshold (review: submitting no findings does). Built-in
fix-bug starters fail a visible test (the symptom is shown). Optimize starters are
correct on the small cases and at least `speedup_target` times slower than the
reference on the timing cases. Every review defect is demonstrated: its test fails on
the snippet and passes with only that defect's fix. Every procedural mutant is
rejected. Prints a summary and exits non-zero on any failure. The common checks are
here; each family's own come from its rules (`tasks/families/`). This module sits above
the task bank and the grader and uses only their public API.

`--refresh-procedural` re-chooses the bug mutants of the procedural tasks (grading
candidates through the sandbox, skipping ones that merely time out) and rewrites
`data/procedural.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .grading import Grader
from .sandbox import Sandbox
from .tasks.bank import TaskBank, default_bank, every_builtin_task
from .tasks.builtin import builtin_tasks
from .tasks.families import REGISTRY, review_findings, rules_for
from .tasks.model import Task
from .tasks.mutate import BUGS_PER_TASK, PROCEDURAL_FILE, bases, bug_mutants, code_hash

__all__ = ["ValidationReport", "check_task", "main", "review_findings", "validate_bank"]


@dataclass
class TaskCheck:
    task_id: str
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ValidationReport:
    checks: list[TaskCheck]
    seconds: float

    @property
    def failures(self) -> list[TaskCheck]:
        return [c for c in self.checks if c.problems]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = [
            f"{len(self.checks)} tasks checked in {self.seconds:.1f} s: "
            f"{len(self.checks) - len(self.failures)} ok, {len(self.failures)} failed"
        ]
        slowest = sorted(self.checks, key=lambda c: -c.seconds)[:5]
        lines.append("slowest: " + ", ".join(f"{c.task_id} {c.seconds:.1f}s" for c in slowest))
        for c in self.failures:
            for p in c.problems:
                lines.append(f"FAIL {c.task_id}: {p}")
        return "\n".join(lines)


def check_task(grader: Grader, task: Task) -> TaskCheck:
    """Every check that applies to `task`; problems are collected, never raised."""
    check = TaskCheck(task.id)
    start = time.perf_counter()
    try:
        _check(grader, task, check.problems)
    except Exception as exc:  # a crash in checking is itself a failure of the task
        check.problems.append(f"check crashed: {type(exc).__name__}: {exc}")
    check.seconds = time.perf_counter() - start
    return check


def _check(grader: Grader, task: Task, problems: list[str]) -> None:
    rules = rules_for(task.family)
    oracle = rules.oracle(task)
    ref = grader.grade(task, oracle.solution, oracle.findings)
    if ref.score < 1.0:
        problems.append(f"reference scores {ref.score:.3f}: {ref.feedback}")
    if task.visible_tests or task.visible_examples:
        vis = grader.visible_tests(task, task.reference_solution)
        if vis.error or vis.passed < vis.total or vis.total == 0:
            problems.append(
                f"reference fails visible tests: {vis.passed}/{vis.total} {vis.error or ''}"
            )
    answer = rules.starter(task)
    starter = grader.grade(task, answer.solution, answer.findings)
    if starter.passed:
        problems.append(f"starter passes (score {starter.score:.3f})")
    problems.extend(rules.self_check(grader, task, starter))


def validate_bank(
    tasks: Iterable[Task], sandbox: Sandbox, *, jobs: int | None = None
) -> ValidationReport:
    """Check `tasks` concurrently (threads keep every sandbox slot busy)."""
    grader = Grader(sandbox)
    tasks = list(tasks)
    start = time.perf_counter()
    workers = jobs or max(2, 2 * getattr(sandbox, "slots", 1))
    # slowest families first so the pool drains evenly
    tasks.sort(key=lambda t: REGISTRY[t.family].cost)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        checks = list(pool.map(lambda t: check_task(grader, t), tasks))
    return ValidationReport(checks, time.perf_counter() - start)


# -- procedural refresh -----------------------------------------------------------------


def refresh_procedural(
    tasks: Sequence[Task], sandbox: Sandbox, path: Path
) -> dict[str, list[list]]:
    """Choose BUGS_PER_TASK rejected (not merely timing-out) mutants per base task."""
    grader = Grader(sandbox)

    def choose(base: Task) -> tuple[str, list[list]]:
        quick = dataclasses.replace(base, cpu_s=2.0)
        chosen: list[list] = []
        for idx, code in bug_mutants(base):
            report = grader.grade(quick, code)
            if report.score < base.pass_threshold and "time" not in report.feedback:
                chosen.append([idx, code_hash(code)])
                if len(chosen) == BUGS_PER_TASK:
                    break
        return base.id, chosen

    with ThreadPoolExecutor(max_workers=2 * getattr(sandbox, "slots", 1)) as pool:
        bugs = dict(pool.map(choose, bases(tasks)))
    rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(bugs.items()))
    about = "bug mutants chosen by `validate --refresh-procedural`: [mutant index, code hash]"
    path.write_text(
        f'{{"about": {json.dumps(about)},\n "bugs": {{\n{rows}\n }}\n}}\n', encoding="utf-8"
    )
    return bugs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m python_env.server.validate")
    parser.add_argument("--family", help="only this family")
    parser.add_argument("--id", action="append", default=[], help="only these task ids")
    parser.add_argument("--jobs", type=int, default=None, help="checking threads")
    parser.add_argument("--refresh-procedural", action="store_true")
    args = parser.parse_args(argv)

    with Sandbox() as sandbox:
        if args.refresh_procedural:
            path = Path(__file__).parent / "tasks" / "data" / PROCEDURAL_FILE
            bugs = refresh_procedural(builtin_tasks(), sandbox, path)
            print(
                f"wrote {path}: {sum(len(v) for v in bugs.values())} bug mutants for {len(bugs)} tasks"
            )
            return 0
        # Every built-in and procedural task (a server offers a variant or its source,
        # never both), plus the extras the environment asks for.
        bank = TaskBank(every_builtin_task())
        settings = Settings.from_env()
        served = default_bank(settings.procedural, settings.task_paths, settings.humaneval)
        bank.extend(t for t in served if t.id not in bank)
        tasks = [
            t
            for t in bank
            if (not args.family or t.family == args.family) and (not args.id or t.id in args.id)
        ]
        counts = bank.counts()
        print(
            f"bank: {len(bank)} tasks; "
            + ", ".join(f"{fam} {sum(c.values())}" for fam, c in counts.items())
        )
        report = validate_bank(tasks, sandbox, jobs=args.jobs)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
