"""Small checks and edits on Python source text, shared by the spec and the families."""

from __future__ import annotations

import ast
from typing import Any

from .model import TaskError


def check_parses(code: str, what: str) -> None:
    """Raise TaskError when `code` is not valid Python."""
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise TaskError(f"{what} does not parse: line {exc.lineno}: {exc.msg}") from None


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def syntax_problem(source: str) -> str | None:
    """'line N: message' when `source` does not compile, else None (the agent's own code)."""
    try:
        compile(source, "solution.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except ValueError as exc:  # e.g. null bytes
        return str(exc)
    return None


def default_starter(reference: str, entry_point: str) -> str:
    """Starter for implement tasks: the reference's imports and signature, no body."""
    tree = ast.parse(reference)
    lines = reference.splitlines()
    out: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(ast.get_source_segment(reference, node) or "")
        elif isinstance(node, ast.FunctionDef) and node.name == entry_point:
            header_end = node.body[0].lineno - 1
            doc = ast.get_docstring(node)
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            header = "\n".join(lines[start - 1 : header_end])
            if doc is not None and isinstance(node.body[0], ast.Expr):
                doc_node = node.body[0]
                header = "\n".join(lines[start - 1 : doc_node.end_lineno])
            if out:
                out.append("\n")
            out.append(header + "\n    raise NotImplementedError")
            return "\n".join(out).strip("\n") + "\n"
    raise TaskError(f"reference does not define entry point {entry_point!r}")


def apply_edits(code: str, edits: Any, what: str) -> str:
    """Apply textual (old, new) edits, each of which must occur exactly once."""
    for edit in edits:
        if not (isinstance(edit, list | tuple) and len(edit) == 2):
            raise TaskError(f"{what}: each edit must be a pair [old, new], got {edit!r}")
        old, new = edit
        count = code.count(old)
        if count != 1:
            raise TaskError(f"{what}: edit text {old!r} occurs {count} times (need exactly 1)")
        code = code.replace(old, new)
    return code


def test_names(code: str) -> list[str]:
    """The `test*` functions `code` defines at top level, in order (none if it does not
    parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    return [
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test")
    ]
