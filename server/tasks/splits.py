"""Train / validation / test splits, and which side of a source a server serves.

The split of a task is a pure function of its *root*: the source task it derives from
(`base_id`, followed to the end of the chain), or itself when it derives from nothing.
So every variant sits on its source's side, and no answer is shared across splits
(a fix-bug variant's reference is its source's reference). A hash of the root decides,
never the order tasks are loaded in: adding tasks (a new source, more variants) never
moves a task that is already there, and two machines always agree.

Proportions 80 / 10 / 10: with the ~3,000 sources of the full bank the validation and
test splits each hold ~300 sources, so a pass rate measured on one has a standard error
of at most ~2.9 points (sqrt(0.25 / 300)), while training keeps 80 % of the problems.
The hash is over the root only, not the family: each family is split in about the same
proportions by the law of large numbers (the small built-in families much less evenly:
`/metadata` reports the real counts).

A variant's starter code is its source's reference one mutation away, so one server
never serves a source together with its variants. The `variants` policy says which of
the two each source is served as: `none` (sources only), `all` (every source that has
variants is withheld for them), or `mixed` (the default): each source with variants is
served as its variants or as itself by a second hash of its root, half each, so the
default bank gets both the repair variants and most sources without a leak. Built-in
sources are served as themselves under `mixed`: they are the hand-written core whose
ids the README and examples name, and their 84 variants change nothing at scale.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""The trainer-facing splits, in order."""

SHARES: dict[str, int] = {"train": 80, "validation": 10, "test": 10}
"""Percent of the roots in each split."""

VARIANT_POLICIES: tuple[str, ...] = ("mixed", "none", "all")
VARIANT_SHARE = 50
"""Percent of the sources with variants that `mixed` serves as their variants."""

RULE = (
    "split = sha256 of the task's root (its base_id chain's source, else its own id): "
    "80% train, 10% validation, 10% test; a variant is always on its source's side"
)

_ALIASES = (
    # EvalPlus's HumanEval+ problem N is HumanEval's problem N: one root, one side.
    (re.compile(r"^evalplus-humaneval-(\d+)$"), r"humaneval-\1"),
)


def _percent(salt: str, key: str) -> float:
    digest = hashlib.sha256(f"python_env/{salt}/v1\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def root_of(task_id: str, base_ids: Mapping[str, str | None]) -> str:
    """The source `task_id` derives from, following `base_ids` (id -> base_id) to a task
    without one or to a source the bank does not hold (a cycle ends the walk), with the
    aliases of one problem folded together."""
    seen = {task_id}
    root = task_id
    while (parent := base_ids.get(root)) and parent not in seen:
        seen.add(parent)
        root = parent
    for pattern, repl in _ALIASES:
        root = pattern.sub(repl, root)
    return root


def split_of(root: str) -> str:
    """`train`, `validation` or `test` for a root (see the module docstring)."""
    p = _percent("split", root)
    edge = 0.0
    for name in SPLITS:
        edge += SHARES[name]
        if p < edge:
            return name
    return SPLITS[-1]


AS_THEMSELVES = frozenset({"builtin", "humaneval"})
"""Collections `mixed` always serves as themselves: the built-in tasks (the README and
tests name them) and HumanEval, a benchmark whose score must cover all of it."""


def serves_variants(root: str, policy: str, builtin: bool) -> bool:
    """Whether a source with variants is served as its variants (and withheld);
    `builtin`: its collection is one of AS_THEMSELVES."""
    if policy == "all":
        return True
    if policy == "none" or builtin:
        return False
    return _percent("serve", root) < VARIANT_SHARE
