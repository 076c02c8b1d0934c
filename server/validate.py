"""Check the task bank through the real grader:

    python -m python_env.server.validate [--family F] [--id ID ...] [--jobs N]
    python -m python_env.server.validate --full [--record]
    python -m python_env.server.validate --changed [--record]
    python -m python_env.server.validate --refresh-derived [--collection NAME ...]

For every task: the reference scores 1.0 and passes its visible tests; the starter
scores below the pass threshold (review: submitting no findings does). Built-in
fix-bug starters fail a visible test (the symptom is shown). Optimize starters are
correct on the small cases and at least `speedup_target` times slower than the
reference on the timing cases. Every review defect is demonstrated: its test fails on
the snippet and passes with only that defect's fix. Every derived fix-bug mutant is
rejected. The common checks are here; each family's own come from its rules
(`tasks/families/`). This module sits above the task bank and the grader and uses only
their public API.

Which tasks: with no selection, what CI checks: a seeded sample of each family of the
full bank, plus every task of a source whose content changed since the recorded full
run (`data/validation.json`: a digest per source and its variants). `--full`: every
source of every collection this checkout can load (built-in, HumanEval, CodeI/O) and
all their derived variants; `--record` writes the result there. Tasks that grade the
same way with the same reference (a source and its repair variants) share one check of
the reference and one computation of the expected outputs. A task that fails is checked
once more at the end (a loaded machine can make a run time out); the report counts
those.

`--changed`: every task of every changed source, however many (no sample). `--record`
with a selection (`--changed`, `--id`, `--family`) folds the run into the record: a group
all of whose tasks were checked gets its digest when all passed and loses it when one
failed; the others keep theirs (so re-checking a few tasks, or the sources a refresh
changed, needs no full run).

`--refresh-derived` re-chooses the derived variants (`choose_variants.py`) and
rewrites `data/derived-<collection>.json`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Settings
from .grading import Expected, Grader
from .sandbox import Sandbox
from .sandbox_runtime import choose
from .tasks.bank import TaskBank, default_bank
from .tasks.families import REGISTRY, review_findings, rules_for
from .tasks.model import Task
from .tasks.mutate import derived_tasks, source_hash

__all__ = [
    "ValidationReport",
    "changed_groups",
    "check_task",
    "ci_selection",
    "fold_record",
    "full_bank",
    "main",
    "review_findings",
    "sample",
    "validate_bank",
]

RECORD = Path(__file__).parent / "tasks" / "data" / "validation.json"
SAMPLE_PER_FAMILY = 3
SAMPLE_SEED = 15
MAX_CHANGED = 100
"""More changed source groups than this: CI says the record is stale (and fails)
instead of validating them one by one for hours."""
_SHARED_GRADE = ("implement", "fix-bug", "fix-syntax")
"""Families graded by the default rules (the fraction of checks passed): two of their
tasks with the same reference and checks grade every solution the same."""


@dataclass
class TaskCheck:
    task_id: str
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    retried: bool = False
    """Failed once, checked again (the verdict is the second check's)."""


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
            f" ({sum(c.retried for c in self.checks)} checked twice)"
        ]
        slowest = sorted(self.checks, key=lambda c: -c.seconds)[:5]
        lines.append("slowest: " + ", ".join(f"{c.task_id} {c.seconds:.1f}s" for c in slowest))
        for c in self.failures:
            for p in c.problems:
                lines.append(f"FAIL {c.task_id}: {p}")
        return "\n".join(lines)


class SharedGrader(Grader):
    """A grader whose expected outputs are shared by tasks with the same reference and
    cases (a source and its variants): computed once, not once per task id."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self._by_content: dict[str, Task] = {}
        self._content_lock = threading.Lock()

    def expected(self, task: Task) -> list[Expected]:
        key = _content_key(task)
        with self._content_lock:
            canonical = self._by_content.setdefault(key, task)
        return super().expected(canonical)


def _content_key(task: Task) -> str:
    """Everything the expected outputs depend on (the reference, the entry point and the
    cases, generated ones by their key): `source_hash` covers them all."""
    return source_hash(task)


def _reference_key(task: Task) -> str | None:
    """Tasks with the same key get the same grade for the reference (None: no sharing)."""
    if task.family not in _SHARED_GRADE:
        return None
    examples = json.dumps([[e.stdin, e.expected] for e in task.visible_examples])
    return hashlib.sha256(f"{source_hash(task)}\0{examples}".encode()).hexdigest()


def check_task(grader: Grader, task: Task, *, reference: bool = True) -> TaskCheck:
    """Every check that applies to `task`; problems are collected, never raised.
    `reference=False` skips the reference's checks (done on a task that shares them)."""
    check = TaskCheck(task.id)
    start = time.perf_counter()
    try:
        _check(grader, task, check.problems, reference)
    except Exception as exc:  # a crash in checking is itself a failure of the task
        check.problems.append(f"check crashed: {type(exc).__name__}: {exc}")
    check.seconds = time.perf_counter() - start
    return check


def _check(grader: Grader, task: Task, problems: list[str], reference: bool = True) -> None:
    rules = rules_for(task.family)
    if reference:
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
    tasks: Iterable[Task],
    sandbox: Sandbox,
    *,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ValidationReport:
    """Check `tasks` concurrently (threads keep every sandbox slot busy). The reference
    of tasks that share a `_reference_key` is checked on the first of them only; the
    others inherit its verdict (same reference, same checks, same rules)."""
    grader = SharedGrader(sandbox)
    tasks = list(tasks)
    start = time.perf_counter()
    workers = jobs or max(2, 2 * getattr(sandbox, "slots", 1))
    # slowest families first so the pool drains evenly
    tasks.sort(key=lambda t: REGISTRY[t.family].cost)
    by_id = {t.id: t for t in tasks}
    first: dict[str, str] = {}
    leads: list[Task] = []
    rest: list[Task] = []
    for t in tasks:
        key = _reference_key(t)
        if key is None or key not in first:
            if key is not None:
                first[key] = t.id
            leads.append(t)
        else:
            rest.append(t)
    done = [0]
    done_lock = threading.Lock()

    def run(task: Task, reference: bool) -> TaskCheck:
        check = check_task(grader, task, reference=reference)
        if progress is not None:
            with done_lock:
                done[0] += 1
                progress(done[0], len(tasks))
        return check

    with ThreadPoolExecutor(max_workers=workers) as pool:
        checks = {c.task_id: c for c in pool.map(lambda t: run(t, True), leads)}
        for c in pool.map(lambda t: run(t, False), rest):
            lead = checks[first[_reference_key(by_id[c.task_id]) or ""]]
            if any(p.startswith("reference") for p in lead.problems):
                c.problems.append(f"reference: see {lead.task_id}")
            checks[c.task_id] = c
        # a check can fail because a loaded machine made a run time out: each failed
        # task is checked once more, all of its checks, after the others are done
        again = [by_id[i] for i, c in checks.items() if c.problems]
        for c in pool.map(lambda t: check_task(grader, t), again):
            c.retried = True
            checks[c.task_id] = c
    ordered = [checks[t.id] for t in tasks]
    return ValidationReport(ordered, time.perf_counter() - start)


# -- which tasks ----------------------------------------------------------------------------


def full_bank(collections: Sequence[str] | None = None) -> list[Task]:
    """Every source of every collection this checkout loads, and all their variants
    (never one server's bank: a server withholds the sources of the variants it serves)."""
    from .choose_variants import collections as loaders

    sources: list[Task] = []
    for name, load in loaders().items():
        if collections is None or name in collections:
            sources.extend(load())
    return sources + derived_tasks(sources)


def group_of(task: Task) -> str:
    """A task's group: its source's id (a source and its variants change together)."""
    return task.base_id or task.id


def group_digests(tasks: Iterable[Task]) -> dict[str, str]:
    """Per group, a hash of every task's id and grading hash."""
    parts: dict[str, list[str]] = {}
    for t in tasks:
        parts.setdefault(group_of(t), []).append(f"{t.id}\0{t.grading_hash()}")
    return {
        g: hashlib.sha256("\n".join(sorted(p)).encode()).hexdigest()[:16]
        for g, p in sorted(parts.items())
    }


def load_record(path: Path = RECORD) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return {}


def changed_groups(tasks: Sequence[Task], record: dict[str, Any]) -> set[str]:
    """Groups whose digest differs from (or is missing in) the recorded full run."""
    known = record.get("groups", {})
    return {g for g, d in group_digests(tasks).items() if known.get(g) != d}


def sample(
    tasks: Sequence[Task], per_family: int = SAMPLE_PER_FAMILY, seed: int = SAMPLE_SEED
) -> list[Task]:
    """A deterministic sample: `per_family` tasks drawn by `seed` from the sorted ids of
    each family and origin (a source's collection, or derived from one)."""
    by_id = {t.id: t for t in tasks}
    strata: dict[tuple[str, str], list[Task]] = {}
    for t in tasks:
        base = by_id.get(t.base_id or "")
        origin = f"derived:{base.source}" if base is not None else t.source
        strata.setdefault((t.family, origin), []).append(t)
    out: list[Task] = []
    for key in sorted(strata):
        pool = sorted(strata[key], key=lambda t: t.id)
        rng = random.Random(f"{seed}:{key[0]}:{key[1]}")
        out.extend(rng.sample(pool, min(per_family, len(pool))))
    return out


def ci_selection(tasks: Sequence[Task], record: dict[str, Any]) -> list[Task]:
    """What CI validates: the seeded sample plus every task of a changed group."""
    changed = changed_groups(tasks, record)
    picked = {t.id for t in sample(tasks)} | {t.id for t in tasks if group_of(t) in changed}
    return [t for t in tasks if t.id in picked]


def stale_record(tasks: Sequence[Task], record: dict[str, Any]) -> str | None:
    """Why CI should not check the changed sources one by one: so many changed (a new
    collection, a change to every task) that the full run must be recorded again."""
    changed = changed_groups(tasks, record)
    if len(changed) <= MAX_CHANGED:
        return None
    return (
        f"{len(changed)} source groups changed since the recorded full run (more than "
        f"{MAX_CHANGED}): run `python -m python_env.server.validate --full --record`"
    )


def write_record(
    tasks: Sequence[Task], report: ValidationReport, slots: int, path: Path = RECORD
) -> None:
    """The full run's result, and the digest of each group that passed (a failed group
    is left out, so CI checks it again)."""
    failed = {c.task_id for c in report.failures}
    bad = {group_of(t) for t in tasks if t.id in failed}
    digests = {g: d for g, d in group_digests(tasks).items() if g not in bad}
    result = {
        "tasks": len(report.checks),
        "passed": len(report.checks) - len(failed),
        "failed": sorted(failed),
        "seconds": round(report.seconds, 1),
        "checked_twice": sorted(c.task_id for c in report.checks if c.retried),
        "slots": slots,
        "date": datetime.date.today().isoformat(),
        "families": _family_counts(tasks),
    }
    _write_record(path, result, digests)


def fold_record(
    tasks: Sequence[Task],
    report: ValidationReport,
    slots: int,
    record: dict[str, Any],
    path: Path = RECORD,
) -> int:
    """Fold a partial run into the recorded one; returns how many groups it settled.

    A group all of whose tasks were checked gets its digest (all passed) or loses it
    (one failed); a group checked in part, or not at all (or not loaded by this
    checkout), keeps what it had. The result's `tasks` / `passed` / `failed` then
    describe the record as it stands (the tasks whose group digest is current), and
    `folded` this run."""
    checked = {c.task_id for c in report.checks}
    failed_now = {c.task_id for c in report.failures}
    members: dict[str, set[str]] = {}
    for t in tasks:
        members.setdefault(group_of(t), set()).add(t.id)
    digests = group_digests(tasks)
    groups = dict(record.get("groups", {}))
    settled = [g for g, ids in members.items() if ids <= checked]
    for g in settled:
        if members[g] & failed_now:
            groups.pop(g, None)
        else:
            groups[g] = digests[g]
    vouched = [t for t in tasks if groups.get(group_of(t)) == digests[group_of(t)]]
    earlier = set(record.get("result", {}).get("failed", []))
    failed = sorted((earlier - checked) | failed_now)
    result = dict(record.get("result", {}))
    result.update(
        tasks=len(vouched) + len(failed),
        passed=len(vouched),
        failed=failed,
        families=_family_counts(vouched),
        folded={
            "date": datetime.date.today().isoformat(),
            "tasks": len(checked),
            "passed": len(checked) - len(failed_now),
            "groups": len(settled),
            "seconds": round(report.seconds, 1),
            "slots": slots,
            "checked_twice": sorted(c.task_id for c in report.checks if c.retried),
        },
    )
    _write_record(path, result, dict(sorted(groups.items())))
    return len(settled)


def _write_record(path: Path, result: dict[str, Any], digests: dict[str, str]) -> None:
    rows = ",\n".join(f"  {json.dumps(g)}: {json.dumps(d)}" for g, d in digests.items())
    about = (
        "the last full validation (`python -m python_env.server.validate --full --record`, "
        "with later partial runs folded in by `--record` on a selection): its result and, "
        "per source group that passed, the digest of its tasks"
    )
    path.write_text(
        f'{{"about": {json.dumps(about)},\n "result": {json.dumps(result, sort_keys=True)},\n'
        f' "groups": {{\n{rows}\n }}\n}}\n',
        encoding="utf-8",
    )


def _family_counts(tasks: Iterable[Task]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.family] = counts.get(t.family, 0) + 1
    return dict(sorted(counts.items()))


def _progress() -> Callable[[int, int], None]:
    """A line on stderr every 10 % (long runs say how far they are)."""
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        if total >= 50 and done % max(1, total // 10) == 0:
            print(f"  {done}/{total} checked, {time.perf_counter() - start:.0f} s", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m python_env.server.validate")
    parser.add_argument("--family", help="only this family")
    parser.add_argument("--id", action="append", default=[], help="only these task ids")
    parser.add_argument("--jobs", type=int, default=None, help="checking threads")
    parser.add_argument("--full", action="store_true", help="every task of every collection")
    parser.add_argument(
        "--changed", action="store_true", help="every task of every source changed since the record"
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the result (--full), or fold it into the record (a selection)",
    )
    parser.add_argument("--refresh-derived", action="store_true")
    parser.add_argument(
        "--collection", action="append", default=None, help="only these source collections"
    )
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    # the interpreter agent code runs under (the sandbox runtime: CodeI/O's references
    # need its packages), with the server's limits
    python = choose(settings.runtime_python).python
    with Sandbox(
        limits=settings.limits, disable=settings.sandbox_disable, python=python
    ) as sandbox:
        if args.refresh_derived:
            from .choose_variants import collections, refresh

            for name, load in collections().items():
                if args.collection and name not in args.collection:
                    continue
                start = time.perf_counter()
                records = refresh(name, load(), sandbox, jobs=args.jobs)
                made = {
                    k: sum(len(r.get(k, [])) for r in records.values())
                    for k in ("fix-bug", "fix-syntax", "review")
                }
                print(
                    f"{name}: {len(records)} sources, {made} in {time.perf_counter() - start:.0f} s"
                )
            return 0
        tasks = full_bank(args.collection)
        # plus what this server is configured to serve (JSONL files, ...)
        bank = TaskBank(tasks)
        served = default_bank(settings.procedural, settings.task_paths, settings.humaneval)
        bank.extend(t for t in served if t.id not in bank)
        tasks = list(bank)
        record = load_record()
        if args.changed:
            changed = changed_groups(tasks, record)
            chosen = [t for t in tasks if group_of(t) in changed]
            what = f"every task of the {len(changed)} changed sources"
        elif args.full or args.family or args.id:
            chosen = [
                t
                for t in tasks
                if (not args.family or t.family == args.family) and (not args.id or t.id in args.id)
            ]
            what = "full bank" if args.full else "selection"
        else:
            stale = stale_record(tasks, record)
            if stale is not None:
                print(f"FAIL {stale}")
                return 1
            chosen = ci_selection(tasks, record)
            what = f"CI: sample of {SAMPLE_PER_FAMILY} per family and source + changed sources"
        print(
            f"bank: {len(tasks)} tasks ({', '.join(f'{k} {v}' for k, v in _family_counts(tasks).items())}); "
            f"{what}: {len(chosen)}"
        )
        report = validate_bank(chosen, sandbox, jobs=args.jobs, progress=_progress())
        if args.record and args.full:
            write_record(tasks, report, sandbox.slots)
            print(f"recorded in {RECORD}")
        elif args.record and (args.changed or args.family or args.id):
            settled = fold_record(tasks, report, sandbox.slots, record)
            print(f"{settled} source groups folded into {RECORD}")
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
