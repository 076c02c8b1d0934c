"""CodeI/O's problems as implement tasks: the manifest decides what loads, inputs are
generated in the sandbox on first use and kept in the per-machine store, and a served
task grades its reference 1.0 and its starter below the pass mark, over the wire."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from python_env import PythonAction, PythonEnv
from python_env.server import codeio
from python_env.server.codeio import CaseMaker, Problem, Setup, load_codeio, read_manifest
from python_env.server.config import Settings
from python_env.server.grading import Grader
from python_env.server.launcher import run_server
from python_env.server.sandbox import Sandbox
from python_env.server.tasks.model import GeneratedCases, HiddenCase, TaskError

pytestmark = pytest.mark.skipif(
    not codeio.installed(), reason="the tasks extra (reasoning-gym) is not installed"
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """This machine's runtime, with a store of the module's own."""
    store = tmp_path_factory.mktemp("store")
    return Setup.from_settings(Settings.from_env({"PYTHON_ENV_CACHE_DIR": str(store)}))


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return read_manifest()


@pytest.fixture(scope="module")
def problems() -> dict[str, Problem]:
    return {p.id: p for p in codeio.read_problems()}


def _kept(manifest: dict[str, Any], *, needs: bool, n: int) -> list[str]:
    """The first `n` kept ids that need a third-party package (or need none)."""
    return [i for i, (_, mods) in manifest["kept"].items() if bool(mods) == needs][:n]


def _with_cache(setup: Setup, path: Path) -> Setup:
    return dataclasses.replace(setup, cache_dir=str(path))


def test_the_bank_loads_exactly_the_kept_set_of_the_manifest(
    setup: Setup, manifest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = manifest["counts"]
    assert counts["problems"] == 3002
    assert (
        counts["kept"] == len(manifest["kept"])
        and len(manifest["dropped"]) == 3002 - counts["kept"]
    )
    assert sum(counts["dropped"].values()) == len(manifest["dropped"])
    tasks = load_codeio(setup)
    assert [t.id for t in tasks] == list(manifest["kept"])
    assert all(isinstance(t.hidden_cases, GeneratedCases) for t in tasks)
    assert not any(t.hidden_cases.ready for t in tasks)  # type: ignore[union-attr]
    task = tasks[0]
    assert task.family == "implement" and task.source == "codeio" and "codeio" in task.tags
    assert "main_solution(" in task.statement and "keyword arguments" in task.statement
    assert len(task.hidden_cases) == len(codeio.SEEDS)  # without generating them
    assert task.grading_hash() and not task.hidden_cases.ready  # type: ignore[union-attr]

    # the second load builds nothing: the tasks' fields come from the store, unchanged
    def no_building(*_: object) -> None:
        raise AssertionError("built again")

    monkeypatch.setattr(codeio, "task_from_problem", no_building)
    again = load_codeio(setup)
    assert [t.grading_hash() for t in again] == [t.grading_hash() for t in tasks]
    assert [t.info() for t in again] == [t.info() for t in tasks]


def test_a_problem_whose_content_changed_is_withheld(
    setup: Setup, manifest: dict[str, Any], problems: dict[str, Problem], tmp_path: Path
) -> None:
    first = list(problems.values())[:40]
    kept = [p for p in first if p.id in manifest["kept"]]
    changed = kept[1]
    path = _write(tmp_path / "codeio.jsonl.gz", first, changed)
    ids = [t.id for t in load_codeio(setup, path=path)]
    assert ids == [p.id for p in kept if p is not changed]


def _write(path: Path, problems: list[Problem], changed: Problem | None = None) -> Path:
    """A data file in reasoning-gym's format holding `problems` (one of them edited)."""
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for p in problems:
            row = {
                "task_description": p.description,
                "input_output_spec": p.io_spec,
                "code_sample": p.code + "\n# edited\n" if p is changed else p.code,
                "input_generator": p.generator,
            }
            fh.write(json.dumps(row) + "\n")
    return path


def test_a_runtime_without_a_needed_package_withholds_the_problem(
    setup: Setup, manifest: dict[str, Any], problems: dict[str, Problem], tmp_path: Path
) -> None:
    first = list(problems.values())[:80]
    kept = {p.id for p in first if p.id in manifest["kept"]}
    needing = {i for i in kept if manifest["kept"][i][1]}
    assert needing and needing != kept  # numpy, sympy... are in the runtime
    path = _write(tmp_path / "codeio.jsonl.gz", first)
    assert {t.id for t in load_codeio(setup, path=path)} == kept
    bare = dataclasses.replace(setup, packages=frozenset())
    assert {t.id for t in load_codeio(bare, path=path)} == kept - needing


def test_a_manifest_of_another_gate_serves_nothing(setup: Setup, manifest: dict[str, Any]) -> None:
    assert load_codeio(setup, manifest=dict(manifest, gate_version=-1)) == []


def test_generated_inputs_are_cached_and_the_second_load_uses_the_store(
    setup: Setup, manifest: dict[str, Any], problems: dict[str, Problem], tmp_path: Path
) -> None:
    p = problems[_kept(manifest, needs=False, n=1)[0]]
    first = CaseMaker(_with_cache(setup, tmp_path))
    try:
        inputs = first.inputs(p)
        assert first._sandbox is not None  # generated in the sandbox
    finally:
        first.close()
    assert len(inputs) == len(codeio.SEEDS) and all(isinstance(kw, dict) for kw in inputs)
    entry = first.store.path(codeio.CASE_CACHE, first.key(p))  # type: ignore[union-attr]
    assert entry.exists()

    second = CaseMaker(_with_cache(setup, tmp_path))
    assert second.inputs(p) == inputs
    assert second._sandbox is None  # nothing ran: read from the store

    entry.write_text('{"key": "truncated')  # a corrupt entry is regenerated
    third = CaseMaker(_with_cache(setup, tmp_path))
    try:
        assert third.inputs(p) == inputs
        assert third._sandbox is not None
    finally:
        third.close()
    assert json.loads(entry.read_text())["value"] == inputs

    other_runtime = CaseMaker(dataclasses.replace(_with_cache(setup, tmp_path), runtime="x" * 8))
    assert other_runtime.key(p) != first.key(p)  # a different runtime never reads it


def test_generated_cases_are_produced_once_and_a_failure_is_retried() -> None:
    calls: list[int] = []

    def produce() -> list[HiddenCase]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the sandbox was busy")
        return [HiddenCase(kwargs={"n": 1}), HiddenCase(kwargs={"n": 2})]

    cases = GeneratedCases(2, "k" * 64, produce)
    assert len(cases) == 2 and bool(cases) and not calls
    with pytest.raises(RuntimeError):
        list(cases)
    assert [c.kwargs["n"] for c in cases] == [1, 2] and cases[1].kwargs == {"n": 2}
    list(cases)
    assert len(calls) == 2
    wrong = GeneratedCases(3, "k" * 64, lambda: [HiddenCase()])
    with pytest.raises(TaskError):
        wrong.cases()


def _problem(code: str, generator: str, spec: str = "Input: `n` (int)\nOutput: `return` (int)"):
    return Problem(9999, "Compute something of n.", spec, code, generator)


GEN = "def generate_inputs(rng):\n    return {'n': rng.randint(0, 10**6)}\n"


@pytest.mark.parametrize(
    ("code", "generator", "reason"),
    [
        ("def main_solution(n):\n    return n * 2\n", GEN, None),
        (
            "import random\n\ndef main_solution(n):\n    return n + random.random()\n",
            GEN,
            "reference not deterministic (two runs differ)",
        ),
        (
            "def main_solution(n):\n    return n * 2\n",
            "import random\n\ndef generate_inputs(rng):\n    return {'n': random.randint(0, 10**9)}\n",
            "generator not deterministic (two runs differ)",
        ),
        (
            "def main_solution(n):\n    return n % 2\n",
            GEN,
            "too few distinct outputs (a constant answer passes",
        ),
        (
            "def main_solution(n):\n    return {n}\n",
            GEN,
            "reference output is not plain JSON data",
        ),
        (
            "import no_such_package_here\n\ndef main_solution(n):\n    return n\n",
            GEN,
            "needs a package the sandbox runtime lacks: no_such_package_here",
        ),
        (
            "def main_solution(n, m):\n    return n\n",
            GEN,
            "statement not self-sufficient: the spec does not name 'm'",
        ),
        (
            "def main_solution(n):\n    while True:\n        pass\n",
            GEN,
            "reference too slow",
        ),
    ],
    ids=["kept", "random-ref", "random-gen", "constant", "set", "package", "unnamed", "slow"],
)
def test_the_gate(
    sandbox: Sandbox, setup: Setup, code: str, generator: str, reason: str | None
) -> None:
    why, _ = codeio.gate(_problem(code, generator), sandbox, setup, {})
    if reason is None:
        assert why is None
    else:
        assert why is not None and why.startswith(reason), why


def test_the_gate_drops_a_duplicate(sandbox: Sandbox, setup: Setup) -> None:
    seen: dict[str, str] = {}
    a = _problem("def main_solution(n):\n    return n * 2\n", GEN)
    b = dataclasses.replace(a, index=10000)
    assert codeio.gate(a, sandbox, setup, seen)[0] is None
    assert codeio.gate(b, sandbox, setup, seen)[0] == "duplicate: same problem as codeio-9999"


def test_a_numpy_problem_grades_in_process(
    grader: Grader, setup: Setup, manifest: dict[str, Any], problems: dict[str, Problem]
) -> None:
    p = problems[_kept(manifest, needs=True, n=1)[0]]
    maker = CaseMaker(dataclasses.replace(setup, cache_dir=""))
    try:
        task = codeio.task_from_problem(p, maker.lazy(p))
        assert grader.grade(task, task.reference_solution).score == 1.0
        starter = grader.grade(task, task.starter_code)
        assert not starter.passed and starter.score == 0.0
    finally:
        maker.close()


def test_a_served_task_scores_its_reference_and_not_its_starter(
    setup: Setup, manifest: dict[str, Any], problems: dict[str, Problem], tmp_path: Path
) -> None:
    load_codeio(_with_cache(setup, tmp_path))  # the store the server starts from
    with run_server(PYTHON_ENV_CODEIO="1", PYTHON_ENV_CACHE_DIR=str(tmp_path)) as server:
        meta = httpx.get(f"{server.url}/metadata", timeout=120).json()  # builds the digest
        assert sum(sum(d.values()) for d in meta["task_counts"].values()) >= len(manifest["kept"])
        rows = httpx.get(f"{server.url}/tasks", timeout=60).json()
        listed = {t["id"] for t in rows}
        # each kept problem is served, as itself or (the variants policy) as its variants
        assert set(manifest["kept"]) <= listed | {t.get("base_id") for t in rows}
        task_id = next(i for i in _kept(manifest, needs=False, n=40) if i in listed)
        reference = problems[task_id].code

        body = httpx.post(f"{server.url}/reset", json={"task_id": task_id}, timeout=60).json()
        info = body["observation"]["task"]
        assert info["task_id"] == task_id and info["entry_point"] == "main_solution"
        assert "main_solution(" in info["statement"]

        with PythonEnv(base_url=server.url) as env:
            env.reset(task_id=task_id)
            starter = env.step(PythonAction(kind="submit")).observation.grade
            assert starter is not None and not starter.passed and starter.score < 1.0

            env.reset(task_id=task_id)
            env.step(PythonAction(kind="edit", code=reference))
            grade = env.step(PythonAction(kind="submit")).observation.grade
            assert grade is not None and grade.passed and grade.score == 1.0
            assert grade.cases_total == len(codeio.SEEDS)
    # the server generated the inputs once, into the store under this machine's key
    maker = CaseMaker(_with_cache(setup, tmp_path))
    assert maker.store is not None and maker.store.get(
        codeio.CASE_CACHE, maker.key(problems[task_id])
    )
