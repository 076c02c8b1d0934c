"""Splits, the variants serving policy and lazy entries, on the bank itself."""

from __future__ import annotations

from dataclasses import replace

import pytest
from python_env.server.tasks import Task, TaskBank, TaskError, default_bank
from python_env.server.tasks.bank import TaskEntry, UnknownSplitError, serve_apart
from python_env.server.tasks.builtin import builtin_tasks
from python_env.server.tasks.splits import SHARES, SPLITS, root_of, split_of


def test_split_of_is_a_pure_function_in_the_stated_proportions() -> None:
    roots = [f"root-{i}" for i in range(20_000)]
    first = [split_of(r) for r in roots]
    assert first == [split_of(r) for r in roots]
    for name in SPLITS:
        share = 100 * first.count(name) / len(roots)
        assert abs(share - SHARES[name]) < 1.5, (name, share)


def test_root_of_follows_base_ids_stops_on_cycles_and_folds_aliases() -> None:
    base_ids = {"a": None, "b": "a", "c": "b", "x": "y", "y": "x", "v": "gone"}
    assert root_of("c", base_ids) == root_of("b", base_ids) == "a"
    assert root_of("x", base_ids) in ("x", "y")
    assert root_of("v", base_ids) == "gone"  # a withheld source is still the root
    assert root_of("evalplus-humaneval-7", {}) == "humaneval-7"


TEMPLATE = next(t for t in builtin_tasks() if t.family == "implement" and t.entry_point)


def _task(task_id: str, source: str = "jsonl", base_id: str | None = None) -> Task:
    template = TEMPLATE
    family = "fix-bug" if base_id else "implement"
    return replace(template, id=task_id, family=family, source=source, base_id=base_id)  # type: ignore[arg-type]


def _variants_of(sources: list[Task], n: int = 3) -> list[Task]:
    return [_task(f"v{k}-{s.id}", "procedural", s.id) for s in sources for k in range(n)]


def test_serve_apart_never_serves_a_source_with_its_variants() -> None:
    sources = [_task(f"s{i}") for i in range(400)] + [_task(f"b{i}", "builtin") for i in range(20)]
    variants = _variants_of(sources)
    for policy in ("none", "mixed", "all"):
        served, withheld = serve_apart(sources, variants, policy)
        ids = {t.id for t in served}
        assert len(ids) == len(served)
        assert not {t.base_id for t in served if t.base_id} & ids, policy
        assert withheld == len(sources) - len(ids & {s.id for s in sources})
        if policy == "none":
            assert ids == {s.id for s in sources}
        if policy == "all":
            assert ids == {v.id for v in variants} and withheld == len(sources)
        if policy == "mixed":
            as_variants = {t.base_id for t in served if t.base_id}
            assert not as_variants & {f"b{i}" for i in range(20)}  # built-in: as itself
            assert 150 < len(as_variants) < 250  # half of the 400 others, by hash
            # each source is wholly one way: all of its variants, or itself
            for s in sources:
                mine = [t for t in served if t.base_id == s.id]
                assert (s.id in ids) != (len(mine) == 3), s.id
    with pytest.raises(ValueError, match="variants policy"):
        serve_apart(sources, variants, "some")


def test_a_variant_is_on_its_sources_split_even_when_the_source_is_withheld() -> None:
    sources = [_task(f"s{i}") for i in range(200)]
    bank = TaskBank(serve_apart(sources, _variants_of(sources), "all")[0])
    for t in bank.entries():
        assert t.base_id is not None
        assert bank.split_of(t.id) == split_of(t.base_id)
    plain = TaskBank(sources)
    assert {plain.split_of(s.id) for s in sources} == set(SPLITS)


class Loads:
    """Loaders that count how often they build."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.template = _task("template")

    def entry(self, task_id: str, family: str = "implement", built_as: str | None = None):
        def load() -> Task:
            self.calls.append(task_id)
            return replace(self.template, id=built_as or task_id)

        return TaskEntry(task_id, family, self.template.difficulty, f"T {task_id}", "jsonl",  # type: ignore[arg-type]
                         None, load, grading_hash=f"h-{task_id}")  # fmt: skip


def test_lazy_entries_are_listed_counted_and_hashed_without_building() -> None:
    loads = Loads()
    bank = TaskBank(loads.entry(f"lazy-{i}") for i in range(50))
    assert len(bank) == 50 and bank.size("all") == 50
    assert sum(bank.split_sizes()[s] for s in SPLITS) == 50
    assert [s["id"] for s in bank.query(family="implement")][:2] == ["lazy-0", "lazy-1"]
    assert bank.counts()["implement"][loads.template.difficulty] == 50
    bank.digest()
    assert loads.calls == []
    chosen = bank.select(seed=4, split=bank.split_of("lazy-3"))
    assert loads.calls == [chosen.id]  # only the drawn task is built
    assert bank.get(chosen.id) is chosen and loads.calls == [chosen.id]  # once
    with pytest.raises(UnknownSplitError):
        bank.listing("nope")


def test_a_loader_that_disagrees_with_its_entry_is_an_error() -> None:
    loads = Loads()
    bank = TaskBank([loads.entry("a", built_as="b"), loads.entry("c", family="review")])
    with pytest.raises(TaskError, match="built as 'b'"):
        bank.get("a")
    with pytest.raises(TaskError, match="indexed as review"):
        bank.get("c")
    with pytest.raises(TaskError, match="duplicate"):
        bank.extend([loads.entry("a")])


def test_default_bank_policies() -> None:
    mixed, none = default_bank(), default_bank(variants="none")
    assert [t.id for t in mixed.entries()] == [t.id for t in none.entries()]  # built-in: as is
    assert mixed.withheld == 0
    procedural = default_bank(procedural=True)
    assert procedural.withheld == 28 and default_bank(variants="all") is not procedural
    assert [t.id for t in default_bank(variants="all").entries()] == [
        t.id for t in procedural.entries()
    ]
    # the splits of the built-in bank hold every family somewhere, and all of it
    sizes = mixed.split_sizes()
    assert sum(sizes[s] for s in SPLITS) == sizes["all"] == len(mixed)


def test_the_variants_setting() -> None:
    from python_env.server.config import Settings

    assert Settings.from_env({}).variants == "mixed"
    assert Settings.from_env({"PYTHON_ENV_PROCEDURAL": "1"}).variants == "all"
    assert Settings.from_env({"PYTHON_ENV_VARIANTS": "None"}).variants == "none"
    both = {"PYTHON_ENV_PROCEDURAL": "1", "PYTHON_ENV_VARIANTS": "mixed"}
    assert Settings.from_env(both).variants == "mixed"
