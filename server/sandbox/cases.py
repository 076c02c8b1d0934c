"""Graded runs whose verdict the candidate cannot forge.

run_cases: one child loads the candidate as module `solution` and calls the entry point
per case, streaming {"i", "s", "o"} lines on the result fd; the verifier compares the
outputs with expected ones it never revealed. A missing, duplicated or malformed line
is a failure; after an exit/crash/timeout the unreached cases fail too.

run_calls: one child serves calls to the candidate (`serve`), every request sent up
front (or as replies free the pipe), each reply the exact `encode`d return value; the
verifier evaluates the checks on those values (grading's compiled asserts). One child
instead of run_assertions' two, and no relay per call.

run_assertions: two children. The candidate child only serves calls (plain args in,
plain result out); the test child runs the test code with the entry point replaced by
a proxy that relays calls through this process. The candidate never shares a process
with the test code, so it cannot patch its asserts, builtins or reporting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import caps
from .plain import Unserializable, encode
from .records import (
    AssertionOutcome,
    AssertionResult,
    CaseOutcome,
    CaseSpec,
    CasesResult,
    Limits,
    hit_cpu_limit,
)
from .spawn import Child, ZygoteLost, pump

if TYPE_CHECKING:
    from .host import Host
    from .treebudget import RunGuard

_STATUSES = ("ok", "error", "unserializable")


def _encode_case(case: CaseSpec) -> list[Any]:
    try:
        return [encode(tuple(case.args)), encode(dict(case.kwargs))]
    except Unserializable as e:
        raise ValueError(f"case arguments must be plain data: {e}") from None


def run_cases(
    sb: Host, source: str, cases: Sequence[CaseSpec], *, entry_point: str | None, limits: Limits
) -> CasesResult:
    if entry_point is None:
        return _run_programs(sb, source, cases, limits)
    payload = {
        "source": source,
        "entry_point": entry_point,
        "cases": [_encode_case(c) for c in cases],
    }
    try:
        result, lost = _cases_once(sb, payload, len(cases), limits)
    except ZygoteLost:
        lost = True
    if lost:  # the zygote died under the run (not the candidate's doing): once more
        result, _ = _cases_once(sb, payload, len(cases), limits)
    return result


def _cases_once(
    sb: Host, payload: dict[str, Any], n: int, limits: Limits
) -> tuple[CasesResult, bool]:
    got: dict[int, CaseOutcome] = {}
    bad: set[int] = set()
    state: dict[str, Any] = {"load_error": None}

    def on_line(_c: Child, obj: dict[str, Any] | None) -> None:
        if obj is None:
            return
        if "load_error" in obj:
            state["load_error"] = str(obj["load_error"])[: caps.TEXT]
            return
        i, s = obj.get("i"), obj.get("s")
        if type(i) is not int or not 0 <= i < n or s not in _STATUSES:
            return
        out = CaseOutcome(
            s,
            obj.get("o") if s == "ok" else None,
            None if s == "ok" else str(obj.get("e", ""))[: caps.TEXT],
        )
        if i in got and got[i] != out:
            bad.add(i)  # two different claims for one case: nobody gets the benefit
        got[i] = out

    with sb.slot() as slot, sb.budgeted(slot, limits) as guard:
        uid = sb.uid_for(slot, 0)
        with sb.workdir(slot, 0, uid) as wd:
            child = sb.spawn(
                slot, "cases", payload, workdir=wd, uid=uid, limits=limits, on_line=on_line
            )
            try:
                timed_out = pump([child], child.t0 + limits.wall_s, guard=guard)
            finally:
                child.close()
    return _finish(child, guard, limits, timed_out, n, got, bad, state["load_error"], noun="case")


def _finish(
    child: Child,
    guard: RunGuard | None,
    limits: Limits,
    timed_out: bool,
    n: int,
    got: dict[int, CaseOutcome],
    bad: set[int],
    load_error: str | None,
    *,
    noun: str,
    refused: int | None = None,
) -> tuple[CasesResult, bool]:
    """Each of the `n` cases' outcome once the child is done: the load error, a conflict,
    its answer, "too large" (from index `refused` on: never sent) or why it went
    unanswered; then the run's result."""
    code, sig = child.status()
    timed_out = timed_out or hit_cpu_limit(sig, child.cpu_ms, limits)
    timed_out = timed_out or (guard is not None and guard.cpu_hit)
    outcomes: list[CaseOutcome] = []
    for i in range(n):
        if load_error is not None:
            outcomes.append(CaseOutcome("error", None, load_error))
        elif i in bad:
            outcomes.append(CaseOutcome("error", None, f"conflicting results for this {noun}"))
        elif i in got:
            outcomes.append(got[i])
        elif refused is not None and i >= refused:
            outcomes.append(CaseOutcome("error", None, "arguments too large to pass"))
        else:
            outcomes.append(_unanswered(child, code, sig, timed_out))
    return _result(
        child, outcomes, load_error, timed_out, guard is not None and guard.memory_exceeded
    )


def _unanswered(child: Child, code: int | None, sig: int | None, timed_out: bool) -> CaseOutcome:
    """A case the child never answered: its time ran out, or the child died."""
    if timed_out:
        return CaseOutcome("timeout", None, "time limit exceeded")
    why = f"process died (signal {sig})" if sig else f"process exited (code {code})"
    if child.killed_for:
        why = f"process killed ({child.killed_for})"
    return CaseOutcome("crash", None, why)


def _result(
    child: Child,
    outcomes: list[CaseOutcome],
    load_error: str | None,
    timed_out: bool,
    tree_memory: bool,
) -> tuple[CasesResult, bool]:
    """The run's result, and whether its zygote was lost under it."""
    mem = (
        tree_memory
        or any((o.error or "").startswith("MemoryError") for o in outcomes)
        or (load_error or "").startswith("MemoryError")
    )
    return CasesResult(
        outcomes=outcomes,
        load_error=load_error,
        timed_out=timed_out,
        memory_exceeded=mem,
        cpu_time_ms=child.cpu_ms,
        wall_time_ms=child.wall_ms,
        stdout=child.out.text(),
        stderr=child.err.text(),
    ), child.lost


def _run_programs(sb: Host, source: str, cases: Sequence[CaseSpec], limits: Limits) -> CasesResult:
    outcomes: list[CaseOutcome] = []
    cpu = wall = 0.0
    timed_out = mem = False
    load_error: str | None = None
    stderr = ""
    for case in cases:
        if load_error is not None:
            outcomes.append(CaseOutcome("error", None, load_error))
            continue
        r, info = sb.run_with_info(source, stdin=case.stdin or "", limits=limits)
        cpu += r.cpu_time_ms
        wall += r.wall_time_ms
        mem = mem or r.memory_exceeded
        stderr = (stderr + r.stderr)[: limits.max_output_bytes]
        if info.get("phase") == "compile":
            load_error = f"{r.exception_type}: {r.exception_message}"
            outcomes.append(CaseOutcome("error", None, load_error))
        elif r.timed_out:
            timed_out = True
            outcomes.append(CaseOutcome("timeout", r.stdout, "time limit exceeded"))
        elif r.signal is not None:
            outcomes.append(CaseOutcome("crash", r.stdout, f"killed by signal {r.signal}"))
        elif r.exception_type is not None:
            outcomes.append(
                CaseOutcome("error", r.stdout, f"{r.exception_type}: {r.exception_message}")
            )
        elif r.exit_code != 0:
            outcomes.append(CaseOutcome("error", r.stdout, f"exit code {r.exit_code}"))
        else:
            outcomes.append(CaseOutcome("ok", r.stdout, None))
    return CasesResult(
        outcomes=outcomes,
        load_error=load_error,
        timed_out=timed_out,
        memory_exceeded=mem,
        cpu_time_ms=cpu,
        wall_time_ms=wall,
        stdout="",
        stderr=stderr,
    )


def run_calls(
    sb: Host,
    source: str,
    calls: Sequence[tuple[Any, Any]],
    *,
    entry_point: str,
    limits: Limits,
) -> CasesResult:
    """The candidate's entry point on each (encoded args, encoded kwargs) of `calls`, in
    order, in one process; an outcome's `output` is the reply's exact encoded value."""
    lines = [{"id": k, "fn": entry_point, "a": a, "k": kw} for k, (a, kw) in enumerate(calls)]
    try:
        result, lost = _calls_once(sb, source, entry_point, lines, limits)
    except ZygoteLost:
        lost = True
    if lost:  # the zygote died under the run (not the candidate's doing): once more
        result, _ = _calls_once(sb, source, entry_point, lines, limits)
    return result


_WINDOW = caps.REQUEST_PIPE // 2
"""Request bytes in flight at most: the rest are sent as replies come back."""


def _calls_once(
    sb: Host, source: str, entry_point: str, lines: list[dict[str, Any]], limits: Limits
) -> tuple[CasesResult, bool]:
    n = len(lines)
    got: dict[int, CaseOutcome] = {}
    bad: set[int] = set()
    state: dict[str, Any] = {"load_error": None, "next": 0, "inflight": 0, "refused": n}
    sizes = [len(json.dumps(line).encode()) + 1 for line in lines]  # as Child.send writes

    def feed(child: Child) -> None:
        """Send requests while they fit the window; close the channel after the last."""
        while state["next"] < n:
            size = sizes[state["next"]]
            if state["inflight"] and state["inflight"] + size > _WINDOW:
                return
            if not child.send(lines[state["next"]]):
                state["refused"] = state["next"]  # too large for the pipe: these fail
                break
            state["inflight"] += size
            state["next"] += 1
        child.close_requests()  # EOF after the last: the child exits once it answered

    def on_line(c: Child, obj: dict[str, Any] | None) -> None:
        if obj is None:
            return
        if "load_error" in obj:
            state["load_error"] = str(obj["load_error"])[: caps.TEXT]
            return
        k = obj.get("id")
        if type(k) is not int or not 0 <= k < state["next"]:
            return  # a call not yet made (or forged): nobody gets the benefit
        if "ok" in obj:
            out = CaseOutcome("ok", obj["ok"], None)
        else:
            err = f"{obj.get('exc', 'RuntimeError')}: {obj.get('msg', '')}"
            out = CaseOutcome("error", None, err[: caps.TEXT])
        if k in got:
            if got[k] != out:
                bad.add(k)  # two different claims for one call
            return
        got[k] = out
        state["inflight"] -= sizes[k]
        if state["next"] < n and state["refused"] == n:
            feed(c)

    with sb.slot() as slot, sb.budgeted(slot, limits) as guard:
        uid = sb.uid_for(slot, 0)
        with sb.workdir(slot, 0, uid) as wd:
            child = sb.spawn(
                slot,
                "serve",
                {"source": source, "entry_point": entry_point},
                workdir=wd,
                uid=uid,
                limits=limits,
                requests=True,
                on_line=on_line,
            )
            try:
                feed(child)
                timed_out = pump([child], child.t0 + limits.wall_s, guard=guard)
            finally:
                child.close()
    return _finish(
        child,
        guard,
        limits,
        timed_out,
        n,
        got,
        bad,
        state["load_error"],
        noun="call",
        refused=state["refused"],
    )


class _Relay:
    """Routes the test child's calls to the candidate child and the answers back."""

    def __init__(self) -> None:
        self.tests: list[str] = []
        self.results: dict[str, AssertionOutcome] = {}
        self.load_error: str | None = None
        self.candidate_error: str | None = None
        self.pending: int | None = None
        self.cand: Child | None = None
        self.test: Child | None = None

    def candidate_dead(self, why: str) -> None:
        self.candidate_error = why
        if self.pending is not None:
            self._answer({"id": self.pending, "exc": "RuntimeError", "msg": why})

    def _answer(self, obj: dict[str, Any]) -> None:
        self.pending = None
        assert self.test is not None
        if not self.test.send(obj):
            self.test.kill("reply too large")

    def on_test_line(self, _c: Child, obj: dict[str, Any] | None) -> None:
        if obj is None:
            return
        if "tests" in obj and isinstance(obj["tests"], list):
            self.tests = [str(t) for t in obj["tests"]][: caps.TEST_NAMES]
        elif "load_error" in obj:
            self.load_error = str(obj["load_error"])[: caps.TEXT]
        elif "t" in obj:
            name = str(obj["t"])
            self.results[name] = AssertionOutcome(
                name, obj.get("p") is True, str(obj.get("m", ""))[: caps.TEXT]
            )
        elif isinstance(obj.get("call"), dict):
            call = obj["call"]
            self.pending = call.get("id")
            if self.candidate_error is not None:
                self.candidate_dead(self.candidate_error)
            elif self.cand is None or not self.cand.send(call):
                self._answer(
                    {
                        "id": self.pending,
                        "exc": "ValueError",
                        "msg": "arguments too large to pass to the candidate",
                    }
                )

    def on_candidate_line(self, _c: Child, obj: dict[str, Any] | None) -> None:
        if obj is None or self.pending is None or obj.get("id") != self.pending:
            return  # unsolicited lines (e.g. forged by the candidate) are dropped
        self._answer({k: obj[k] for k in ("id", "ok", "exc", "msg") if k in obj})


def run_assertions(
    sb: Host, source: str, test_code: str, *, entry_point: str, limits: Limits
) -> AssertionResult:
    relay = _Relay()
    with sb.slot() as slot, sb.budgeted(slot, limits) as guard:
        cu, tu = sb.uid_for(slot, 0), sb.uid_for(slot, 1)
        with sb.workdir(slot, 0, cu) as cwd, sb.workdir(slot, 1, tu) as twd:
            cand = sb.spawn(
                slot,
                "serve",
                {"source": source, "entry_point": entry_point},
                workdir=cwd,
                uid=cu,
                limits=limits,
                requests=True,
                on_line=relay.on_candidate_line,
            )
            relay.cand = cand
            try:
                test = sb.spawn(
                    slot,
                    "tests",
                    {"test_code": test_code, "entry_point": entry_point},
                    workdir=twd,
                    uid=tu,
                    limits=limits,
                    requests=True,
                    on_line=relay.on_test_line,
                    dumpable=False,
                )
            except BaseException:
                cand.kill()
                cand.close()
                raise
            relay.test = test
            deadline = cand.t0 + limits.wall_s
            timed_out = False
            try:
                while test.exit is None:
                    timed_out = (
                        pump(
                            [cand, test],
                            deadline,
                            stop=lambda: cand.exit is not None or test.exit is not None,
                            guard=guard,
                        )
                        or timed_out
                    )
                    if timed_out:
                        break
                    if cand.exit is not None and relay.candidate_error is None:
                        code, sig = cand.status()
                        relay.candidate_dead(
                            f"the candidate process died (signal {sig})"
                            if sig
                            else f"the candidate process exited (code {code})"
                        )
                        timed_out = pump([test], deadline, guard=guard) or timed_out
            finally:
                cand.close_requests()
                cand.kill()
                test.kill()
                pump([cand, test], time.monotonic() + caps.KILL_GRACE_S)
                cand.close()
                test.close()
    timed_out = timed_out or (guard is not None and guard.cpu_hit)
    tests: list[AssertionOutcome] = []
    for name in relay.tests:
        if name in relay.results:
            tests.append(relay.results[name])
        else:
            why = "timed out" if timed_out else "the test process ended before this test ran"
            tests.append(AssertionOutcome(name, False, why))
    return AssertionResult(tests=tests, load_error=relay.load_error, timed_out=timed_out)
