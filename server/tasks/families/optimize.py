"""optimize: make correct but slow code fast, keeping it correct.

score = correctness * (0.5 + 0.5 * speed), where correctness is the fraction of all
checks passed (visible tests, small and timing cases, each counting once) and speed
counts only when every check passes. The timing cases run in `timing_rounds`
interleaved rounds (reference, candidate) with one process only (no work hidden in a
child); CPU time is the parent's rusage, medians are compared. Speed is 1 when
`candidate <= reference * speed_slack + 30 ms` and otherwise decays as allowed/candidate.
A candidate clearly too slow is stopped at 4x the allowed time (min 0.5 s); one wrong on
the small cases is not timed. Validation checks each starter is at least
`speedup_target` times slower than the reference, so the slack always rejects it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping
from typing import Any

from ....models import GradeReport
from ..model import Task, TaskError
from .base import Answer, FamilyRules, Toolkit, make_report, summary

TIMING_FLOOR_MS = 30.0
TOO_SLOW_FACTOR = 4.0
DEFAULT_SPEEDUP_TARGET = 5.0
REFERENCE_LIMITS = {"cpu_s": 20.0, "wall_s": 40.0}


class Optimize(FamilyRules):
    families = ("optimize",)
    cost = 0

    def check(self, fields: dict[str, Any], spec: Mapping[str, Any]) -> None:
        super().check(fields, spec)
        if not any(c.timing for c in fields["hidden_cases"]):
            raise TaskError("an optimize task needs hidden cases marked timing")
        fields["speedup_target"] = fields["speedup_target"] or DEFAULT_SPEEDUP_TARGET

    def limit_changes(self, task: Task) -> dict[str, Any]:
        return {"max_processes": 1}

    def grade(self, kit: Toolkit, task: Task, answer: Answer) -> GradeReport:
        solution = answer.solution
        expected = kit.expected(task)
        small = [i for i, c in enumerate(task.hidden_cases) if not c.timing]
        large = [i for i, c in enumerate(task.hidden_cases) if c.timing]
        notes: list[str] = []
        passed, shown = kit.visible_checks(task, solution, notes)
        if small:
            result = kit.run_cases(task, solution, [task.hidden_cases[i] for i in small])
            passed += kit.count(task, [expected[i] for i in small], result, notes)
        if passed < shown + len(small):
            # wrong on small inputs: the large ones are not run (they would count as
            # failed anyway) and nothing is timed
            notes.append("large inputs not run")
            timing = {"speed": 0.0, "cpu_ms": 0.0, "ref_ms": 0.0, "allowed_ms": 0.0}
        else:
            timing = self._time(kit, task, solution, [expected[i] for i in large], notes)
            passed += int(timing["large_passed"])
        total = shown + len(task.hidden_cases)
        correctness = passed / total if total else 0.0
        speed = timing["speed"] if passed == total else 0.0
        score = correctness * (0.5 + 0.5 * speed)
        details = {
            "correctness": round(correctness, 4),
            "speed": round(speed, 4),
            "cpu_ms": round(timing["cpu_ms"], 2),
            "reference_cpu_ms": round(timing["ref_ms"], 2),
            "allowed_cpu_ms": round(timing["allowed_ms"], 2),
            "speedup": round(timing["ref_ms"] / timing["cpu_ms"], 3) if timing["cpu_ms"] else 0.0,
        }
        head = summary(passed, total, notes)
        if passed == total:
            verdict = "fast enough" if speed >= 1.0 else "too slow"
            head += f"; speed: {verdict} ({timing['cpu_ms']:.0f} ms CPU, allowed {timing['allowed_ms']:.0f} ms)"
        return make_report(task, score, passed, total, head, details)

    def _time(
        self, kit: Toolkit, task: Task, solution: str, expected: list[Any], notes: list[str]
    ) -> dict[str, float]:
        """Interleaved rounds of reference and candidate on the timing cases."""
        cases = task.timing_cases
        ref_limits = dataclasses.replace(kit.limits_for(task), **REFERENCE_LIMITS)
        ref_times: list[float] = []
        cand_times: list[float] = []
        large_passed = 0
        allowed_ms = 0.0
        for round_no in range(kit.timing_rounds):
            ref = kit.run_reference(task, cases, limits=ref_limits)
            ref_times.append(ref.cpu_time_ms)
            allowed_ms = statistics.median(ref_times) * task.speed_slack + TIMING_FLOOR_MS
            cap_s = max(0.5, allowed_ms * TOO_SLOW_FACTOR / 1000.0)
            cand = kit.run_cases(task, solution, cases, limits=kit.limits_for(task, cpu_s=cap_s))
            round_notes: list[str] = []
            ok = kit.count(
                task, expected, cand, round_notes, offset=len(task.hidden_cases) - len(cases)
            )
            if round_no == 0:
                large_passed = ok
                notes.extend(n for n in round_notes if "time limit" not in n)
            if ok < len(expected) or cand.timed_out:
                cand_times = [max(cand.cpu_time_ms, cap_s * 1000.0)]
                if round_no == 0 and ok < len(expected) and cand.timed_out:
                    notes.append("large inputs: stopped at the time limit")
                break
            cand_times.append(cand.cpu_time_ms)
            if cand.cpu_time_ms > allowed_ms * TOO_SLOW_FACTOR:
                break
        ref_ms = statistics.median(ref_times)
        allowed_ms = ref_ms * task.speed_slack + TIMING_FLOOR_MS
        cand_ms = statistics.median(cand_times) if cand_times else math.inf
        speed = 1.0 if cand_ms <= allowed_ms else allowed_ms / cand_ms
        return {
            "speed": speed if math.isfinite(cand_ms) else 0.0,
            "cpu_ms": cand_ms if math.isfinite(cand_ms) else 0.0,
            "ref_ms": ref_ms,
            "allowed_ms": allowed_ms,
            "large_passed": float(large_passed),
        }

    def self_check(self, kit: Toolkit, task: Task, starter: GradeReport) -> list[str]:
        """The starter is right on the small cases and `speedup_target` times slower."""
        problems: list[str] = []
        if starter.details.get("correctness", 0.0) < 1.0:
            small = [i for i, c in enumerate(task.hidden_cases) if not c.timing]
            verdicts = kit.case_verdicts(task, task.starter_code, small)
            bad = [i for i, ok in zip(small, verdicts, strict=True) if not ok]
            if bad:
                problems.append(f"optimize starter is wrong on small cases {bad[:5]}")
        ref_ms = starter.details.get("reference_cpu_ms", 0.0)
        target = task.speedup_target or 1.0
        cap_s = max(0.2, ref_ms * target / 1000.0)
        slow = kit.run_cases(
            task, task.starter_code, task.timing_cases, limits=kit.limits_for(task, cpu_s=cap_s)
        )
        if not slow.timed_out and slow.cpu_time_ms < ref_ms * target:
            problems.append(
                f"starter is only {slow.cpu_time_ms / max(ref_ms, 1e-3):.1f}x slower than the "
                f"reference (speedup_target {target})"
            )
        return problems


RULES = Optimize()
