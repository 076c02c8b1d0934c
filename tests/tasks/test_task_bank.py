"""The bank: contents, lookup, seeded selection, public views, procedural variants."""

from __future__ import annotations

import json

import pytest
from python_env.models import TaskInfo
from python_env.server.tasks import REVIEW_CATEGORIES, TaskBank, TaskError, UnknownTaskError
from python_env.server.tasks.builtin import builtin_tasks, load_file
from python_env.server.tasks.mutate import bug_mutants, derived_tasks, syntax_mutant
from python_env.server.tasks.spec import parses

FAMILIES = ("implement", "fix-bug", "fix-syntax", "optimize", "review")


def test_at_least_100_original_tasks_in_every_family_and_difficulty() -> None:
    tasks = builtin_tasks()
    assert len(tasks) >= 100
    bank = TaskBank(tasks)
    for family, by_difficulty in bank.counts().items():
        for difficulty, n in by_difficulty.items():
            assert n >= 1, (family, difficulty)


def test_builtin_tasks_are_well_formed() -> None:
    for t in builtin_tasks():
        assert t.source == "builtin"
        assert t.statement.strip() and t.title.strip()
        if t.family == "review":
            assert t.defects and set(t.review_categories) == set(REVIEW_CATEGORIES)
        else:
            assert t.hidden_cases, t.id
            assert t.visible_tests or t.visible_examples, t.id
        if t.family == "optimize":
            assert t.timing_cases and t.speedup_target
        if t.family == "fix-syntax":
            assert not parses(t.starter_code)


def test_get_unknown_id_is_a_keyerror_with_a_clear_message(bank: TaskBank) -> None:
    with pytest.raises(KeyError):
        bank.get("no-such-task")
    with pytest.raises(UnknownTaskError, match="unknown task id 'no-such-task'"):
        bank.get("no-such-task")


def test_seeded_select_is_reproducible(bank: TaskBank) -> None:
    for family in FAMILIES:
        a = [bank.select(family=family, seed=s).id for s in range(10)]
        b = [bank.select(family=family, seed=s).id for s in range(10)]
        assert a == b
        assert all(bank.get(i).family == family for i in a)
    picks = {bank.select(difficulty="hard", seed=s).id for s in range(30)}
    assert len(picks) > 1


def test_select_filters_and_errors(bank: TaskBank) -> None:
    t = bank.select(task_id="implement-rle-encode")
    assert t.id == "implement-rle-encode"
    with pytest.raises(ValueError):
        bank.select(family="nope")
    with pytest.raises(ValueError):
        bank.select(difficulty="impossible")
    with pytest.raises(ValueError):
        bank.select(task_id="implement-rle-encode", family="review")
    assert bank.select(family="review", difficulty="easy").family == "review"


def test_summaries_counts_len_iteration(bank: TaskBank) -> None:
    summaries = bank.summaries()
    assert len(summaries) == len(bank) == len(list(bank))
    assert set(summaries[0]) == {
        "id",
        "family",
        "difficulty",
        "title",
        "source",
        "split",
        "base_id",
    }
    counts = bank.counts()
    assert sum(sum(c.values()) for c in counts.values()) == len(bank)
    assert {s["source"] for s in summaries} == {"builtin"}  # variants only on request


def test_info_is_public_only(bank: TaskBank) -> None:
    for t in bank:
        info = t.info()
        assert isinstance(info, TaskInfo)
        text = info.model_dump_json()
        if t.family != "review":
            assert t.reference_solution not in text
        assert t.max_steps == info.max_steps
        assert "reference_solution" not in repr(t) and "hidden_cases" not in repr(t)


def test_program_tasks_render_runnable_visible_tests(bank: TaskBank) -> None:
    t = bank.get("implement-sum-lines")
    code = t.info().visible_tests
    assert "def run_program(stdin: str) -> str:" in code
    assert "def test_example_1():" in code
    assert parses(code)


def test_procedural_variants_are_deterministic_and_named(bank: TaskBank) -> None:
    builtin = builtin_tasks()
    first = [(t.id, t.starter_code) for t in derived_tasks(builtin)]
    second = [(t.id, t.starter_code) for t in derived_tasks(builtin)]
    assert first == second
    assert any(i.startswith("proc-fix-bug-") for i, _ in first)
    assert any(i.startswith("proc-fix-syntax-") for i, _ in first)
    sources = {t.id: t for t in builtin}
    for t in derived_tasks(builtin):
        if t.source == "procedural":
            assert t.base_id and t.id.startswith(f"proc-{t.family}-{t.base_id}-")
            base = sources[t.base_id]
            if t.family == "review":  # graded on findings: the source's checks are not kept
                assert t.defects and not t.hidden_cases
                continue
            assert t.hidden_cases == base.hidden_cases
            assert t.reference_solution == base.reference_solution
            if t.family == "fix-syntax":
                assert not parses(t.starter_code)
            else:
                assert parses(t.starter_code) and t.starter_code != base.reference_solution


def test_mutants_are_seeded() -> None:
    base = next(t for t in builtin_tasks() if t.id == "implement-rle-encode")
    assert list(bug_mutants(base)) == list(bug_mutants(base))
    assert syntax_mutant(base, 1, 2) == syntax_mutant(base, 1, 2)


def test_toml_errors_name_file_and_task() -> None:
    bad = """
[[task]]
id = "x"
family = "implement"
difficulty = "easy"
title = "t"
statement = "s"
entry_point = "f"
reference_solution = "def f(:\\n"
cases = "[(1,)]"
"""
    with pytest.raises(TaskError, match=r"bad\.toml: x: reference_solution does not parse"):
        load_file(bad, "bad.toml")


def test_summaries_are_json_and_hold_no_hidden_data(bank: TaskBank) -> None:
    text = json.dumps(bank.summaries())
    assert "reference" not in text and "def " not in text


def test_a_variant_and_its_source_are_never_served_together() -> None:
    """A fix-syntax variant's starter is its source's hidden reference minus a colon
    (found in review): the built-in bank alone has no variants; by default each CodeI/O
    source is served as itself or as its variants; with PYTHON_ENV_PROCEDURAL=1 every
    variant's source is withheld."""

    from python_env.server.config import Settings
    from python_env.server.runtime import served_bank

    plain = served_bank(Settings.from_env({"PYTHON_ENV_CODEIO": "0"}))
    assert len(plain) >= 100 and not any(t.source == "procedural" for t in plain)
    # the default policy (mixed) serves half the CodeI/O sources as their variants
    default = served_bank(Settings.from_env({}))
    derived = [t for t in default if t.source == "procedural"]
    assert len(derived) >= 1000
    assert not {t.base_id for t in derived} & {t.id for t in default}
    mixed = served_bank(Settings.from_env({"PYTHON_ENV_PROCEDURAL": "1"}))
    variants = [t for t in mixed if t.source == "procedural"]
    assert len(variants) >= 80
    assert not {t.base_id for t in variants} & {t.id for t in mixed}
    assert any(t.family == "implement" for t in mixed)  # programs have no variants
