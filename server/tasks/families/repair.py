"""fix-bug and fix-syntax: repair a starter that is wrong or does not parse.

Scored like implement (the fraction of checks passed). A fix-syntax starter must not
parse; a built-in fix-bug starter must fail a visible test, so the symptom is shown.
"""

from __future__ import annotations

from ....models import GradeReport
from ..model import Task, TaskError
from ..source import parses, syntax_problem
from .base import FamilyRules, Toolkit


class FixBug(FamilyRules):
    families = ("fix-bug",)

    def self_check(self, kit: Toolkit, task: Task, starter: GradeReport) -> list[str]:
        if task.source != "builtin":
            return []
        vis = kit.visible_tests(task, task.starter_code)
        return (
            ["no visible test shows the bug"] if vis.passed == vis.total and not vis.error else []
        )


class FixSyntax(FamilyRules):
    families = ("fix-syntax",)

    def check_starter(self, starter: str) -> None:
        if parses(starter):
            raise TaskError("fix-syntax starter_code must not parse")

    def self_check(self, kit: Toolkit, task: Task, starter: GradeReport) -> list[str]:
        return ["fix-syntax starter parses"] if syntax_problem(task.starter_code) is None else []


FIX_BUG = FixBug()
FIX_SYNTAX = FixSyntax()
