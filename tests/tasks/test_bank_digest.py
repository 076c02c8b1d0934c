"""The bank hash `/metadata` and report.json carry: the same for the same bank, different
when anything that decides a grade changes."""

from __future__ import annotations

import dataclasses

from python_env.server.tasks import HiddenCase, TaskBank
from python_env.server.tasks.builtin import builtin_tasks


def test_the_digest_is_stable_and_sees_every_grading_change() -> None:
    tasks = builtin_tasks()
    digest = TaskBank(tasks).digest()
    assert digest == TaskBank(list(reversed(tasks))).digest() == TaskBank(builtin_tasks()).digest()
    first = tasks[0]
    changes = [
        {"hidden_cases": (*first.hidden_cases, HiddenCase(args=(0,)))},
        {"reference_solution": first.reference_solution + "\n# changed\n"},
        {"visible_tests": first.visible_tests + "\n"},
        {"comparator": "loose"},
        {"pass_threshold": 0.5},
        {"wall_s": 3.0},
    ]
    for change in changes:
        changed = [dataclasses.replace(first, **change), *tasks[1:]]
        assert TaskBank(changed).digest() != digest, change
    # public wording that grades nothing differently leaves it alone
    retitled = [dataclasses.replace(first, title="Another title"), *tasks[1:]]
    assert TaskBank(retitled).digest() == digest
