"""Derived tasks: seeded fix-bug, fix-syntax and review variants of implement tasks.

Any implement task with an entry point, a reference and hidden checks (hidden cases or
hidden test code) is a *source*: the built-in tasks, HumanEval's problems, CodeI/O's.

- **fix-bug**: the reference with one AST mutation (operator swaps, off-by-one in
  comparisons and constants, and/or swaps, swapped call arguments, a dropped
  statement) that the hidden checks reject.
- **fix-syntax**: the reference with textual breaks (a dropped colon, an unbalanced
  paren, a bad indent, `=` for `==`, an unterminated string); `ast.parse` decides.
- **review**: the reference with two (or one) single-line mutations; each is a defect
  whose test (one hidden case compared with the reference, or one hidden test
  function) fails on the snippet and passes with only that defect fixed. Not made from
  sources whose cases are generated on first use (CodeI/O): the test shows its input,
  so building the bank would have to run every generator. Those sources get a third
  fix-syntax variant in its place (`syntax_wanted`).

Whether the hidden checks reject a mutant, and which check demonstrates a defect, is
found by running code, which the bank must never do in the server process. So the
choice is made offline (`python -m python_env.server.validate --refresh-derived`,
`server/choose_variants.py`) and written to `data/derived-<source>.json`: per source
its content hash (`source_hash`), and per variant its mutation sites, the hash of the
code it yields and (review) the ids of the demonstrating checks, plus counts of why
other candidates were dropped; none of the data. A server start re-applies exactly
those mutations without running anything; a source whose hash changed, or a variant
whose code no longer hashes the same, is withheld (logged) until the manifest is
refreshed, never silently replaced by a different task.

Every variant keeps `base_id` = its source's id: its public starter is the source's
hidden reference a mutation away, so a server never serves a variant with its source
(`bank.serve_apart`), and a split keeps them on one side.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import itertools
import json
import logging
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Literal

from .model import REVIEW_CATEGORIES, Defect, Task
from .spec import parses

log = logging.getLogger(__name__)

BUGS_PER_TASK = 2
SYNTAX_PER_TASK = 2
REVIEWS_PER_TASK = 1
MANIFEST = "derived-{}.json"
"""One manifest per source collection (`Task.source` of the sources)."""
MANIFEST_SOURCES: tuple[str, ...] = ("builtin", "humaneval", "codeio")
MAX_DEMO_CHARS = 2000
"""A case shown as a review defect's test is written into it: keep tests readable."""

_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.Div: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip
_BOUNDS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
IN_PLACE = frozenset({"op", "cmp", "const", "bool", "swap-args"})
"""Mutations that change one node in place (the tree keeps its shape, so several
compose and each stays on its own line): the ones review snippets are made of."""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def source_hash(task: Task) -> str:
    """Hash of everything of a source its variants depend on: the reference, the entry
    point and every check (a change withholds the variants until they are re-chosen)."""
    parts = [
        task.reference_solution,
        task.entry_point or "",
        task.hidden_test_code,
        task.visible_tests,
        _cases_key(task),
        task.comparator,
        task.tolerance,
        task.expects_errors,
        task.pass_threshold,
        task.cpu_s,
        task.wall_s,
    ]
    return hashlib.sha256(json.dumps(parts, default=repr).encode()).hexdigest()[:16]


def generated_cases(task: Task) -> bool:
    """True when the task's hidden cases are made on first use (CodeI/O's generators
    run in the sandbox): known by a key, never produced while building the bank."""
    return not isinstance(task.hidden_cases, tuple | list)


def _cases_key(task: Task) -> Any:
    if generated_cases(task):
        return f"generated:{getattr(task.hidden_cases, 'key', '')}"
    return [c.key() for c in task.hidden_cases]


# -- bug mutants (AST) ------------------------------------------------------------------


def _sites(tree: ast.Module) -> list[tuple[str, int]]:
    """Every (kind, node-index) a mutation can apply to, in a stable order."""
    out: list[tuple[str, int]] = []
    for i, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _SWAPS:
            out.append(("op", i))
        elif isinstance(node, ast.BoolOp) and type(node.op) in _SWAPS:
            out.append(("op", i))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPS:
            out.append(("cmp", i))
        elif isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value <= 100:
            out.append(("const", i))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            out.append(("bool", i))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            out.append(("not", i))
        elif (
            isinstance(node, ast.Call)
            and len(node.args) == 2
            and not node.keywords
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            out.append(("swap-args", i))
        elif hasattr(node, "body") and isinstance(getattr(node, "body", None), list):
            body = node.body
            if len(body) > 1:
                for j, stmt in enumerate(body):
                    if not isinstance(stmt, ast.Return) and not _is_docstring(stmt, j):
                        out.append((f"drop:{j}", i))
    return out


@functools.lru_cache(maxsize=256)
def _sites_of(code: str) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
    """The mutation sites of `code` and each one's review category (cached: the
    variants of one source all start from its sites)."""
    tree = ast.parse(code)
    sites = _sites(tree)
    nodes = list(ast.walk(tree))
    categories = tuple(_category(nodes[i], k) if k in IN_PLACE else "" for k, i in sites)
    return tuple(sites), categories


def _is_docstring(stmt: ast.stmt, index: int) -> bool:
    return (
        index == 0
        and isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _mutate_in_place(node: Any, kind: str) -> None:
    if kind == "op":
        node.op = _SWAPS[type(node.op)]()
    elif kind == "cmp":
        node.ops = [_SWAPS[type(node.ops[0])](), *node.ops[1:]]
    elif kind == "const":
        node.value = node.value + 1 if node.value in (0, 1) else node.value - 1
    elif kind == "bool":
        node.value = not node.value
    elif kind == "swap-args":
        node.args = [node.args[1], node.args[0]]


def _apply(code: str, kind: str, index: int) -> ast.Module | None:
    """One mutation, on a fresh tree of `code` (parsing is far cheaper than deepcopy)."""
    tree = ast.parse(code)
    node: Any = next(itertools.islice(ast.walk(tree), index, None))
    if kind == "not":
        return _replace_node(tree, node, node.operand)
    if kind.startswith("drop:"):
        j = int(kind.split(":")[1])
        node.body[j] = ast.Pass()
        return tree
    _mutate_in_place(node, kind)
    return tree


def _apply_many(code: str, sites: Sequence[tuple[str, int]]) -> ast.Module:
    """Several in-place mutations at once (node indexes of the unmutated tree)."""
    tree = ast.parse(code)
    nodes = list(ast.walk(tree))
    for kind, index in sites:
        _mutate_in_place(nodes[index], kind)
    return tree


def _replace_node(tree: ast.Module, old: ast.AST, new: ast.AST) -> ast.Module:
    class Swap(ast.NodeTransformer):
        def visit(self, node: ast.AST) -> Any:
            if node is old:
                return new
            return self.generic_visit(node)

    return Swap().visit(tree)


def _unparse(tree: ast.Module) -> str | None:
    try:
        return ast.unparse(tree) + "\n"  # unparse needs no locations
    except Exception:  # an unparseable mutation (rare): skip it
        return None


def bug_mutants(task: Task, only: set[int] | None = None) -> Iterator[tuple[int, str]]:
    """(index, code) of the AST bug mutants of the reference, in a seeded order.

    Mutants equal to the reference (or to an earlier mutant) after unparsing are
    skipped. `only` restricts the work to the given indexes (rebuilding recorded ones).
    """
    sites, _ = _sites_of(task.reference_solution)
    order = list(range(len(sites)))
    random.Random(f"bug:{task.id}").shuffle(order)
    seen: set[str] = set()
    if only is not None:  # rebuilding recorded mutants: their code hashes are checked
        order = [i for i in order if i in only]
    else:
        seen.add(ast.unparse(ast.parse(task.reference_solution)) + "\n")
    for idx in order:
        kind, node_index = sites[idx]
        mutated = _apply(task.reference_solution, kind, node_index)
        code = _unparse(mutated) if mutated is not None else None
        if code is None or code in seen or not parses(code):
            continue
        seen.add(code)
        yield idx, code


def mutant_kind(task: Task, index: int) -> str:
    """The kind of mutation site `index` of the task's reference ("op", "drop:2", ...)."""
    return _sites_of(task.reference_solution)[0][index][0]


# -- syntax mutants (textual) -----------------------------------------------------------

_BLOCK = re.compile(r"^(\s*)(def|if|elif|else|for|while|try|except|with|class)\b.*:\s*$")


def _syntax_breaks(code: str) -> list[tuple[str, int]]:
    lines = code.splitlines()
    out: list[tuple[str, int]] = []
    for i, line in enumerate(lines):
        if _BLOCK.match(line):
            out.append(("colon", i))
        if line.rstrip().endswith(")") and line.count("(") == line.count(")"):
            out.append(("paren", i))
        if re.search(r"\bif .*==", line):
            out.append(("assign", i))
        if line.startswith("    ") and line.strip() and i > 0 and not _BLOCK.match(lines[i - 1]):
            out.append(("indent", i))
        if re.search(r"\"[^\"]*\"|'[^']*'", line) and '"""' not in line:
            out.append(("quote", i))
    return out


def _break(code: str, kind: str, i: int) -> str:
    lines = code.splitlines()
    line = lines[i]
    if kind == "colon":
        lines[i] = line.rstrip()[:-1]
    elif kind == "paren":
        lines[i] = line.rstrip()[:-1]
    elif kind == "assign":
        lines[i] = line.replace("==", "=", 1)
    elif kind == "indent":
        lines[i] = "   " + line
    elif kind == "quote":
        m = re.search(r"\"[^\"]*\"|'[^']*'", line)
        assert m is not None
        lines[i] = line[: m.end() - 1] + line[m.end() :]
    return "\n".join(lines) + "\n"


def syntax_mutant(task: Task, n: int, breaks: int) -> str | None:
    """The reference with `breaks` textual syntax errors on different lines, or None."""
    rng = random.Random(f"syntax:{task.id}:{n}")
    code = task.reference_solution
    sites = _syntax_breaks(code)
    rng.shuffle(sites)
    used: set[int] = set()
    for kind, i in sites:
        if len(used) == breaks:
            break
        if i in used or i - 1 in used or i + 1 in used:
            continue
        code = _break(code, kind, i)
        used.add(i)
    return code if used and not parses(code) else None


SYNTAX_BREAKS = {"easy": 1, "medium": 2, "hard": 3}


def syntax_wanted(task: Task) -> int:
    """How many fix-syntax variants a source gets: `SYNTAX_PER_TASK`, plus one in the
    review's place for a source no review is made from (generated cases: CodeI/O), so
    every source yields the same number of variants."""
    return SYNTAX_PER_TASK + (REVIEWS_PER_TASK if generated_cases(task) else 0)


def syntax_mutants(task: Task, limit: int = 20) -> Iterator[tuple[int, str]]:
    """(seed, code) of the distinct syntax mutants of the reference, seeds 1, 2, ..."""
    seen: set[str] = set()
    for k in range(1, limit + 1):
        broken = syntax_mutant(task, k, SYNTAX_BREAKS[task.difficulty])
        if broken is not None and broken not in seen:
            seen.add(broken)
            yield k, broken


# -- review snippets ----------------------------------------------------------------------


@dataclass(frozen=True)
class Flaw:
    """One defect of a review snippet before its test is known."""

    line: int
    category: str
    fix: tuple[str, str]


def _category(node: Any, kind: str) -> str:
    if kind == "op":
        return "wrong-condition" if isinstance(node, ast.BoolOp) else "wrong-operator"
    if kind == "cmp":
        return "off-by-one" if isinstance(node.ops[0], _BOUNDS) else "wrong-condition"
    if kind == "const":
        return "off-by-one"
    if kind == "swap-args":
        return "wrong-variable"
    return "wrong-condition"  # bool


def review_snippet(task: Task, picks: Sequence[int]) -> tuple[str, list[Flaw]] | None:
    """The reference with the in-place mutations at site indexes `picks`, and one flaw
    per mutation (its line, category and the one-line fix); None when the mutations do
    not each change exactly one line of their own, named by a unique text."""
    sites, categories = _sites_of(task.reference_solution)
    if len(set(picks)) != len(picks) or any(
        p >= len(sites) or sites[p][0] not in IN_PLACE for p in picks
    ):
        return None
    reference = task.reference_solution
    snippet = _unparse(_apply_many(reference, [sites[p] for p in picks]))
    if snippet is None or not parses(snippet):
        return None
    lines = snippet.splitlines(keepends=True)
    flaws: list[Flaw] = []
    for p in picks:
        others = [sites[q] for q in picks if q != p]
        fixed = _unparse(_apply_many(reference, others))
        if fixed is None:
            return None
        fixed_lines = fixed.splitlines(keepends=True)
        if len(fixed_lines) != len(lines):
            return None
        changed = [i for i, (a, b) in enumerate(zip(lines, fixed_lines, strict=True)) if a != b]
        if len(changed) != 1:
            return None
        i = changed[0]
        if snippet.count(lines[i]) != 1:
            return None
        flaws.append(Flaw(i + 1, categories[p], (lines[i], fixed_lines[i])))
    if len({f.line for f in flaws}) != len(flaws):
        return None
    return snippet, sorted(flaws, key=lambda f: f.line)


def case_literal(task: Task, index: int) -> str | None:
    """Source text of hidden case `index`'s (args, kwargs), when it round-trips as a
    Python literal and is short enough to show in a test; else None."""
    case = task.hidden_cases[index]
    text = repr((tuple(case.args), dict(case.kwargs)))
    if len(text) > MAX_DEMO_CHARS:
        return None
    try:
        same = ast.literal_eval(text) == (tuple(case.args), dict(case.kwargs))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text if same else None


def demo_test(task: Task, demo: int | str, name: str) -> str | None:
    """Test code defining `name`: hidden case `demo` (an index) compared with the
    reference, or hidden test function `demo` (a name) with the module around it."""
    entry = task.entry_point
    if entry is None:
        return None
    if isinstance(demo, int):
        if not 0 <= demo < len(task.hidden_cases):
            return None
        literal = case_literal(task, demo)
        if literal is None:
            return None
        return (
            f"from solution import {entry}\n\n"
            f"_REFERENCE = {task.reference_solution!r}\n"
            "_reference: dict = {}\n"
            '_reference["__name__"] = "reference"\n'
            '_reference_code = compile(_REFERENCE, "reference.py", "exec")\n'
            "exec(_reference_code, _reference)\n\n\n"
            f"def {name}():\n"
            f"    args, kwargs = {literal}\n"
            f"    assert {entry}(*args, **kwargs) == _reference[{entry!r}](*args, **kwargs)\n"
        )
    tree = ast.parse(task.hidden_test_code)
    kept: list[ast.stmt] = []
    found = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            if node.name == demo:
                node.name = name
                kept.append(node)
                found = True
            continue
        kept.append(node)
    if not found:
        return None
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) + "\n"


def review_defects(
    task: Task, flaws: Sequence[Flaw], demos: Sequence[int | str]
) -> tuple[Defect, ...] | None:
    out: list[Defect] = []
    for k, (flaw, demo) in enumerate(zip(flaws, demos, strict=True), 1):
        test = demo_test(task, demo, f"test_defect_{k}")
        if test is None:
            return None
        out.append(Defect(line=flaw.line, category=flaw.category, fix=flaw.fix, test=test))
    return tuple(out)


# -- the variants -------------------------------------------------------------------------

Kind = Literal["fix-bug", "fix-syntax", "review"]

_NOTES = {
    "fix-bug": (
        "Fix the bug",
        "The code in solution.py was meant to do this but has a bug: find it and fix it. "
        "The visible tests may or may not reveal it.",
    ),
    "fix-syntax": (
        "Fix the syntax",
        "solution.py implements this correctly but does not parse: fix the syntax errors "
        "without changing what the code does.",
    ),
    "review": (
        "Review",
        "solution.py was meant to do this, but some lines are wrong (each defect is one "
        "wrong expression on one line). Do not fix the code: report each defect as a "
        "finding, with its line number and one of the review categories.",
    ),
}


def variant(base: Task, family: Kind, n: int, code: str) -> Task:
    """A repair task made from `base`: same checks and reference, a broken starter."""
    title, note = _NOTES[family]
    return replace(
        base,
        id=f"proc-{family}-{base.id}-{n}",
        family=family,
        title=f"{title}: {base.title}",
        statement=f"{base.statement.strip()}\n\n{note}",
        starter_code=code,
        source="procedural",
        base_id=base.id,
    )


def review_variant(base: Task, n: int, snippet: str, defects: tuple[Defect, ...]) -> Task:
    """A review task made from `base`: the snippet, its demonstrated defects; graded on
    findings alone (the checks of the source are not kept)."""
    task = variant(base, "review", n, snippet)
    return replace(
        task,
        reference_solution=_fix_lines(snippet, defects),
        hidden_cases=(),
        hidden_test_code="",
        comparator="exact",
        expects_errors=False,
        speedup_target=None,
        defects=defects,
        review_categories=REVIEW_CATEGORIES,
    )


def _fix_lines(snippet: str, defects: Sequence[Defect]) -> str:
    """The snippet with every defect's line fixed (by line: one fix may repeat the text
    another fix replaces, so applying them as text edits in turn could be ambiguous)."""
    lines = snippet.splitlines(keepends=True)
    for d in defects:
        old, new = d.fix
        if lines[d.line - 1] != old:
            raise ValueError(f"defect at line {d.line} does not match its fix")
        lines[d.line - 1] = new
    return "".join(lines)


def review_hash(snippet: str, defects: Sequence[Defect]) -> str:
    return code_hash(snippet + "".join(f"\0{d.line}\0{d.category}\0{d.test}" for d in defects))


# -- sources and manifests ----------------------------------------------------------------


def is_source(task: Task) -> bool:
    """An implement function task with a reference and hidden checks."""
    return (
        task.family == "implement"
        and task.entry_point is not None
        and bool(task.reference_solution)
        and bool(task.hidden_cases or task.hidden_test_code)
    )


def bases(tasks: Sequence[Task]) -> list[Task]:
    """The tasks of `tasks` variants are made from (see `is_source`)."""
    return [t for t in tasks if is_source(t)]


def load_manifest(collection: str) -> dict[str, dict[str, Any]]:
    """The recorded variants of one source collection: {source id: record}."""
    path = resources.files(__package__).joinpath("data", MANIFEST.format(collection))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return dict(data.get("sources", {}))


def write_manifest(path: Any, records: dict[str, dict[str, Any]], about: str) -> None:
    """One source per line, sorted: small diffs when a few sources change."""
    rows = ",\n".join(
        f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(records.items())
    )
    path.write_text(
        f'{{"about": {json.dumps(about)},\n "sources": {{\n{rows}\n }}\n}}\n', encoding="utf-8"
    )


@dataclass(frozen=True)
class Recipe:
    """One recorded variant before it is built: what a bank can index (id, family,
    difficulty, title, base_id) without re-applying its mutation (`build()` does)."""

    base: Task
    family: Kind
    n: int
    params: tuple[Any, ...]
    """(mutant site,) for fix-bug, (seed,) for fix-syntax, (sites, demos) for review."""
    hash: str

    @property
    def id(self) -> str:
        return f"proc-{self.family}-{self.base.id}-{self.n}"

    @property
    def base_id(self) -> str:
        return self.base.id

    @property
    def difficulty(self) -> str:
        return self.base.difficulty

    @property
    def title(self) -> str:
        return f"{_NOTES[self.family][0]}: {self.base.title}"

    def build(self) -> Task | None:
        """The task, or None (logged) when the recorded mutation no longer yields the
        recorded code: withheld, never replaced by a different task."""
        base = self.base
        task: Task | None = None
        if self.family == "fix-bug":
            (site,) = self.params
            code = next((c for _, c in bug_mutants(base, only={int(site)})), None)
            if code is not None and code_hash(code) == self.hash:
                task = variant(base, "fix-bug", self.n, code)
        elif self.family == "fix-syntax":
            (seed,) = self.params
            broken = syntax_mutant(base, int(seed), SYNTAX_BREAKS[base.difficulty])
            if broken is not None and code_hash(broken) == self.hash:
                task = variant(base, "fix-syntax", self.n, broken)
        else:
            picks, demos = self.params
            made = build_review(base, self.n, picks, demos)
            if made is not None and review_hash(made.snippet, made.defects) == self.hash:
                task = made
        if task is None:
            log.warning("derived task %s withheld: its recorded code changed", self.id)
        return task


def recipes_of(base: Task, record: dict[str, Any]) -> list[Recipe]:
    """One source's recorded variants (none when the source changed since)."""
    if record.get("hash") != source_hash(base):
        log.warning("derived variants of %s withheld: the source changed", base.id)
        return []
    out = [
        Recipe(base, "fix-bug", n, (idx,), h)
        for n, (idx, h) in enumerate(record.get("fix-bug", []), 1)
    ]
    out += [
        Recipe(base, "fix-syntax", n, (seed,), h)
        for n, (seed, h) in enumerate(record.get("fix-syntax", []), 1)
    ]
    if not generated_cases(base):
        out += [
            Recipe(base, "review", n, (list(picks), list(demos)), h)
            for n, (picks, demos, h) in enumerate(record.get("review", []), 1)
        ]
    return out


def variants_of(base: Task, record: dict[str, Any]) -> list[Task]:
    """Re-apply one source's recorded mutations; what no longer matches is withheld."""
    built = (r.build() for r in recipes_of(base, record))
    return [t for t in built if t is not None]


def build_review(
    base: Task, n: int, picks: Sequence[int], demos: Sequence[int | str]
) -> Task | None:
    made = review_snippet(base, list(picks))
    if made is None:
        return None
    snippet, flaws = made
    if len(flaws) != len(demos):
        return None
    defects = review_defects(base, flaws, list(demos))
    return review_variant(base, n, snippet, defects) if defects is not None else None


def derived_recipes(sources: Iterable[Task]) -> list[Recipe]:
    """The recorded variants of `sources` (in their order; fix-bug, fix-syntax, review
    per source), not yet built: a bank can index them and build each on first use.
    Sources no manifest names, or whose content changed since, yield none."""
    manifests: dict[str, dict[str, dict[str, Any]]] = {}
    out: list[Recipe] = []
    for base in sources:
        if not is_source(base):
            continue
        if base.source not in manifests:
            manifests[base.source] = load_manifest(base.source)
        record = manifests[base.source].get(base.id)
        if record is not None:
            out.extend(recipes_of(base, record))
    return out


def derived_tasks(sources: Iterable[Task]) -> list[Task]:
    """Every recorded variant of `sources`, built (re-applying the mutations, running
    nothing); a variant whose recorded code no longer matches is withheld."""
    built = (r.build() for r in derived_recipes(sources))
    return [t for t in built if t is not None]
