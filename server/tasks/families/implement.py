"""implement: write a function (or a stdin/stdout program) from a specification.

Score: the fraction of checks passed (see `FamilyRules.grade`). A function task may
omit its starter: it is the reference's imports and signature with no body.
"""

from __future__ import annotations

from ..source import default_starter
from .base import FamilyRules


class Implement(FamilyRules):
    families = ("implement",)

    def default_starter(self, reference: str, entry_point: str | None) -> str | None:
        return default_starter(reference, entry_point) if entry_point is not None else None


RULES = Implement()
