"""Task families as plug-ins: one module per family, in a registry keyed by family.

    implement.py  implement           review.py    review
    repair.py     fix-bug, fix-syntax optimize.py  optimize

Each module's rules object (a `base.FamilyRules`) holds the family's spec checks,
limits, grading, oracle and self-checks, and prompt text. A new family is one module
here, its line in `REGISTRY`, its data, and its name in `models.Family`.
"""

from __future__ import annotations

from ....models import FAMILIES
from .base import Answer, FamilyRules, Toolkit
from .implement import RULES as IMPLEMENT
from .optimize import RULES as OPTIMIZE
from .repair import FIX_BUG, FIX_SYNTAX
from .review import RULES as REVIEW
from .review import review_findings

REGISTRY: dict[str, FamilyRules] = {
    rules_family: rules
    for rules in (IMPLEMENT, FIX_BUG, FIX_SYNTAX, OPTIMIZE, REVIEW)
    for rules_family in rules.families
}
if set(REGISTRY) != set(FAMILIES):  # the contract and the plug-ins must agree
    raise RuntimeError(f"families without rules: {set(FAMILIES) ^ set(REGISTRY)}")


def rules_for(family: str) -> FamilyRules:
    """The rules of `family` (KeyError for a name `models.Family` does not have)."""
    return REGISTRY[family]


__all__ = ["REGISTRY", "Answer", "FamilyRules", "Toolkit", "review_findings", "rules_for"]
