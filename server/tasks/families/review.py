"""review: report the defects of a snippet as findings (line + category).

Findings are matched to the known defects (same category, same line); score = recall *
precision, where duplicates and findings matching no defect count against precision;
no findings score 0. A defect is known only when its test demonstrates it: the test
fails on the snippet and passes with only that defect's fix (a self-check).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Mapping
from typing import Any

from ....models import GradeReport, ReviewFinding, TaskInfo
from ..model import REVIEW_CATEGORIES, Defect, Task, TaskError
from ..source import apply_edits, check_parses, test_names
from .base import Answer, FamilyRules, Toolkit, make_report

PROMPT = (
    "This is a review task: do not fix the code; submit findings (line numbers of "
    "solution.py and one category each). Categories: "
)


class Review(FamilyRules):
    families = ("review",)
    numbered_listing = True
    cost = 1

    def prompt(self, task: TaskInfo) -> str:
        return PROMPT + ", ".join(task.review_categories)

    # -- spec -----------------------------------------------------------------------------

    def prepare(self, spec: Mapping[str, Any]) -> Mapping[str, Any]:
        """The reference, when not given, is the snippet with every defect's fix applied."""
        if spec.get("reference_solution"):
            return spec
        snippet = spec.get("starter_code")
        if not isinstance(snippet, str) or not snippet:
            raise TaskError("missing field 'starter_code' (the snippet under review)")
        fixes = [d.get("fix") for d in spec.get("defects") or () if isinstance(d, dict)]
        return {**spec, "reference_solution": apply_edits(snippet, fixes, "defect fixes")}

    def check(self, fields: dict[str, Any], spec: Mapping[str, Any]) -> None:
        starter = fields["starter_code"]
        categories = fields["review_categories"] or REVIEW_CATEGORIES
        raw = spec.get("defects") or []
        defects = tuple(_defect(d, i, categories, starter) for i, d in enumerate(raw))
        if not defects:
            raise TaskError("a review task needs at least one defect")
        n_lines = len(starter.splitlines())
        for d in defects:
            if d.line > n_lines:
                raise TaskError(f"defect line {d.line} is past the snippet's {n_lines} lines")
        if fields["entry_point"] is None:
            raise TaskError("a review task needs an entry_point (its defect tests call it)")
        fields["review_categories"] = categories
        fields["defects"] = defects

    # -- grading --------------------------------------------------------------------------

    def grade(self, kit: Toolkit, task: Task, answer: Answer) -> GradeReport:
        findings = list(answer.findings or [])
        matched: set[int] = set()
        false_pos = dup = 0
        for f in findings:
            hit = next(
                (i for i, d in enumerate(task.defects) if d.accepts(f.line, f.category)), None
            )
            if hit is None:
                false_pos += 1
            elif hit in matched:
                dup += 1
            else:
                matched.add(hit)
        n = len(task.defects)
        tp = len(matched)
        recall = tp / n if n else 0.0
        precision = tp / len(findings) if findings else 0.0
        score = recall * precision
        feedback = (
            f"{tp}/{n} known defects found; {false_pos} finding(s) matched no defect; "
            f"{dup} duplicate(s)"
            if findings
            else "no findings submitted"
        )
        details = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "false_positives": float(false_pos),
            "duplicates": float(dup),
        }
        return make_report(task, score, tp, n, feedback, details)

    # -- oracle and self-checks -----------------------------------------------------------

    def oracle(self, task: Task) -> Answer:
        return Answer(task.reference_solution, review_findings(task))

    def starter(self, task: Task) -> Answer:
        return Answer(task.starter_code, [])

    def self_check(self, kit: Toolkit, task: Task, starter: GradeReport) -> list[str]:
        """Every defect's test fails on the snippet and passes with only its fix, and on
        the reference. When the defects' tests can share one module (no name defined two
        ways), the snippet and the reference run them all at once: 2 + n runs, not 3n."""
        problems: list[str] = []
        tests = [d.test for d in task.defects]
        joint = _joined(tests)
        on_snippet_all = on_ref_all = None
        if joint is not None:
            on_snippet_all = kit.run_assertions(task, task.snippet, joint)
            on_ref_all = kit.run_assertions(task, task.reference_solution, joint)
            if any(r.load_error or r.timed_out for r in (on_snippet_all, on_ref_all)):
                on_snippet_all = on_ref_all = None  # say which defect's test: one by one
        for i, d in enumerate(task.defects):
            names = set(test_names(d.test))
            if on_snippet_all is not None and on_ref_all is not None:
                on_snippet = _only(on_snippet_all, names)
                on_ref = _only(on_ref_all, names)
            else:
                on_snippet = kit.run_assertions(task, task.snippet, d.test)
                on_ref = kit.run_assertions(task, task.reference_solution, d.test)
            fixed = apply_edits(task.snippet, [d.fix], f"defect {i} fix")
            on_fixed = kit.run_assertions(task, fixed, d.test)
            where = f"defect {i} (line {d.line}, {d.category})"
            if not on_snippet.tests or (
                not on_snippet.load_error and all(t.passed for t in on_snippet.tests)
            ):
                problems.append(f"{where}: its test passes on the snippet")
            for label, res in (
                ("the snippet with only its fix", on_fixed),
                ("the reference", on_ref),
            ):
                if res.load_error or not res.tests or not all(t.passed for t in res.tests):
                    msgs = "; ".join(t.message for t in res.tests if not t.passed)[:300]
                    problems.append(f"{where}: its test fails on {label}: {res.load_error or msgs}")
        return problems


def _joined(tests: list[str]) -> str | None:
    """The tests as one module, when no top-level name is defined differently by two of
    them (None otherwise, or for a single test: nothing to share)."""
    if len(tests) < 2:
        return None
    defined: dict[str, str] = {}
    for code in tests:
        for node in ast.parse(code).body:
            targets: list[str] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                targets = [node.name]
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                nodes = node.targets if isinstance(node, ast.Assign) else [node.target]
                targets = [n.id for t in nodes for n in ast.walk(t) if isinstance(n, ast.Name)]
            elif isinstance(node, ast.Import | ast.ImportFrom):
                targets = [a.asname or a.name for a in node.names]
            text = ast.dump(node)
            for name in targets:
                if defined.setdefault(name, text) != text:
                    return None
    return "\n\n".join(tests)


def _only(result: Any, names: set[str]) -> Any:
    """The part of a joint run that is one defect's tests."""
    return dataclasses.replace(result, tests=[t for t in result.tests if t.name in names])


def review_findings(task: Task) -> list[ReviewFinding]:
    """The findings that describe a review task's defects exactly (its oracle answer)."""
    return [ReviewFinding(line=d.line, category=d.category) for d in task.defects]


def _defect(raw: Any, index: int, categories: tuple[str, ...], snippet: str) -> Defect:
    """A defect; `line` defaults to the line where the fix's old text starts."""
    where = f"defect {index}"
    if not isinstance(raw, dict):
        raise TaskError(f"{where}: must be an object")
    fix = raw.get("fix")
    if not (
        isinstance(fix, list | tuple) and len(fix) == 2 and all(isinstance(s, str) for s in fix)
    ):
        raise TaskError(f"{where}: 'fix' must be a pair [old, new] of strings")
    if snippet.count(fix[0]) != 1:
        raise TaskError(f"{where}: fix text {fix[0]!r} must occur exactly once in the snippet")
    line = raw.get("line", snippet[: snippet.index(fix[0])].count("\n") + 1)
    if not isinstance(line, int) or isinstance(line, bool) or line < 1:
        raise TaskError(f"{where}: 'line' must be a positive integer")
    category = raw.get("category")
    if category not in categories:
        raise TaskError(f"{where}: category {category!r} is not one of {list(categories)}")
    test = raw.get("test")
    if not isinstance(test, str) or "def test_" not in test:
        raise TaskError(f"{where}: 'test' must be test code defining test_* functions")
    check_parses(test, f"{where} test")
    lines = tuple(int(n) for n in raw.get("lines", ()))
    return Defect(line=line, category=category, fix=(fix[0], fix[1]), test=test, lines=lines)


RULES = Review()
