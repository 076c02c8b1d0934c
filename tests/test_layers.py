"""The import graph has no cycles and no upward arrows (read from the source with `ast`).

Layers, bottom up: `models` (the vocabulary) and the sandbox; the task bank with its
family rules and comparators; the grader; the validator; the environment and transport.
Every import counts, including ones inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "python_env"
SKIP = {"tests", "benchmarks", "examples", ".venv", "build", "dist"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in SKIP or any(
            p.startswith(".") or p.endswith(".egg-info") for p in rel.parts
        ):
            continue
        parts = [PACKAGE, *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
                targets = targets or [mod]
            for target in targets:
                if target == PACKAGE or target.startswith(PACKAGE + "."):
                    while target not in modules and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target != name:
                        graph[name].add(target)
                else:
                    graph[name].add(target.split(".")[0])  # a third-party top-level name
    return graph


GRAPH = _graph()


def _in(module: str, *rooms: str) -> bool:
    return any(module == r or module.startswith(r + ".") for r in rooms)


def _ours(graph: dict[str, set[str]], module: str) -> set[str]:
    return {t for t in graph[module] if _in(t, PACKAGE)}


def test_the_graph_covers_the_package() -> None:
    assert "python_env.server.grading" in GRAPH
    assert "python_env.server.tasks.families.review" in GRAPH
    assert "python_env.server.tasks.spec" in GRAPH["python_env.server.tasks.families"] or (
        "python_env.server.tasks.families" in GRAPH["python_env.server.tasks.spec"]
    )


def test_the_task_bank_knows_nothing_above_it() -> None:
    """Tasks import only the vocabulary and themselves: not the grader, the sandbox or
    the server (their grading rules run code through the grader's Toolkit protocol)."""
    for module in GRAPH:
        if _in(module, "python_env.server.tasks"):
            upward = {
                t
                for t in _ours(GRAPH, module)
                if not _in(t, "python_env.server.tasks", "python_env.models")
            }
            assert not upward, f"{module} imports {sorted(upward)}"
            assert "openenv" not in GRAPH[module], module


def test_grading_knows_nothing_of_openenv_or_the_server() -> None:
    for module in ("python_env.server.grading", "python_env.server.validate"):
        assert "openenv" not in GRAPH[module], module
        above = {
            t
            for t in _ours(GRAPH, module)
            if not _in(
                t,
                "python_env.models",
                "python_env.server.config",
                "python_env.server.tasks",
                "python_env.server.sandbox",
                "python_env.server.grading",
                "python_env.server.assert_checks",  # the grader's compiled asserts
                "python_env.server.choose_variants",  # the validator's offline choice
                "python_env.server.sandbox_runtime",  # which interpreter agent code runs under
            )
        }
        assert not above, f"{module} imports {sorted(above)}"


def test_the_vocabulary_imports_nothing_of_ours() -> None:
    assert not _ours(GRAPH, "python_env.models")


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over our modules: none larger than one.
    (The sandbox's own internals are the sandbox's to untangle and are left out here.)"""
    nodes = [m for m in GRAPH if not _in(m, "python_env.server.sandbox")]
    edges = {m: [t for t in _ours(GRAPH, m) if t in nodes] for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in nodes:
        if v not in index:
            visit(v)
    assert not cycles, cycles
