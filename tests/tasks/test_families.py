"""Families as plug-ins: one rules object per family name, each owning its spec checks,
limits, oracle and prompt text."""

from __future__ import annotations

import pytest
from python_env.models import FAMILIES
from python_env.server.tasks import TaskBank, TaskError
from python_env.server.tasks.families import REGISTRY, rules_for
from python_env.server.tasks.spec import build_task

BASE = {
    "id": "fam-add",
    "family": "implement",
    "difficulty": "easy",
    "title": "Add",
    "statement": "Return a + b.",
    "entry_point": "add",
    "reference_solution": "def add(a, b):\n    return a + b\n",
    "hidden_cases": [[1, 2]],
}


def test_every_family_of_the_contract_has_rules() -> None:
    assert set(REGISTRY) == set(FAMILIES)
    for family in FAMILIES:
        assert family in rules_for(family).families


def test_family_spec_checks_run_at_load() -> None:
    with pytest.raises(TaskError, match="fix-syntax starter_code must not parse"):
        build_task({**BASE, "family": "fix-syntax", "starter_code": "def add(a, b):\n    pass\n"})
    with pytest.raises(TaskError, match="needs hidden cases marked timing"):
        build_task({**BASE, "family": "optimize", "starter_code": BASE["reference_solution"]})
    with pytest.raises(TaskError, match="missing field 'starter_code'"):
        build_task({**BASE, "family": "fix-bug"})
    task = build_task(BASE)  # implement derives its starter from the reference
    assert "raise NotImplementedError" in task.starter_code


def test_oracles_and_limits_come_from_the_family(bank: TaskBank) -> None:
    review = bank.filter(family="review")[0]
    answer = rules_for("review").oracle(review)
    assert answer.findings and len(answer.findings) == len(review.defects)
    assert rules_for("review").starter(review).findings == []
    optimize = bank.filter(family="optimize")[0]
    assert rules_for("optimize").limit_changes(optimize) == {"max_processes": 1}
    assert rules_for("implement").limit_changes(optimize) == {}


def test_prompt_text_is_the_family_s(bank: TaskBank) -> None:
    review = bank.filter(family="review")[0].info()
    assert "do not fix the code" in rules_for("review").prompt(review)
    assert rules_for("implement").prompt(bank.filter(family="implement")[0].info()) == ""
