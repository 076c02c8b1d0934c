"""CodeI/O's problems as implement tasks, from the optional `reasoning-gym` package.

Source: `reasoning_gym/data/codeio.jsonl.gz` of `reasoning-gym==0.1.25` (Apache-2.0;
the CodeI/O problems of Li et al., 2025, as reasoning-gym ships them): 3,002 problems,
each a task description, an input/output specification, a reference `main_solution`
and an input generator `generate_inputs(rng)`. Install with
`pip install 'openenv-python-env[tasks]'`; nothing is downloaded and none of the data is
copied into this repository (`codeio-hq.jsonl.gz`, despite its name one JSON array of
2,750 problems with model prompts and outputs, is not used).

Each kept problem `codeio-NNNN` (its line in the file) is an implement task: the
statement is the description plus the I/O spec; the hidden cases are the inputs
`generate_inputs(Random(seed))` draws for the fixed `SEEDS`, passed to `main_solution`
as keyword arguments; the expected outputs are the reference's, computed by the grader
as for every task. The generator is dataset code, so it is untrusted: it runs only in
the sandbox (with the reference's module, as reasoning-gym runs it), lazily on a task's
first graded submission (or `--warm`), and its inputs are kept in the per-machine store
(`cache.py`) under a hash of the generator, the seeds and the sandbox runtime.

The quality gate (`gate`, run by `--rebuild-manifest` over every problem, in the
sandbox) keeps a problem only if serving it is sound:
- it parses, defines `main_solution` with named parameters, and is not a duplicate
  of an earlier problem (a duplicate would put one answer on two tasks, and across
  splits);
- the statement is self-sufficient: the I/O spec names every argument and describes
  the output (the starter only shows the signature);
- everything it imports is in the sandbox runtime (`runtime/requirements.txt`, see
  `server/sandbox_runtime.py`): otherwise no submission could pass, so it is dropped
  with the missing package as the reason;
- the generator loads, draws a dict of exactly `main_solution`'s parameters for every
  seed, as plain JSON data (what crosses the sandbox boundary), the same in two runs
  (else expected outputs would change between machines), within `GENERATOR_CPU_S`
  (it runs on a task's first submission), with at least `MIN_DISTINCT_INPUTS`
  distinct inputs;
- the reference returns plain JSON data on every input, the same in two runs, within
  `REFERENCE_CPU_S` for all cases together (a quarter of the default limit, so a
  correct but slower submission still fits) and the memory limit; inputs and outputs
  stay under `MAX_DATA_BYTES` (the grader keeps them in memory);
- no output covers more than half the cases, so a constant answer scores at most 0.5.
The result is the committed manifest `data/codeio.json` (ids, content hashes, the
packages a kept problem needs, the reason for each dropped one; none of the data), so
a server start only reads it: a problem whose content hash differs from the manifest's
is withheld, and so is one needing a package the serving runtime lacks.
"""

from __future__ import annotations

import argparse
import ast
import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import gzip
import hashlib
import json
import logging
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib import util
from pathlib import Path
from typing import Any

from .sandbox import CaseSpec, CasesResult, Limits, Sandbox, SandboxError
from .tasks.cache import Store, content_key
from .tasks.model import GeneratedCases, HiddenCase, Task, TaskError
from .tasks.source import default_starter, parses
from .tasks.spec import build_task

log = logging.getLogger(__name__)

PACKAGE = "reasoning_gym"
DISTRIBUTION = "reasoning-gym==0.1.25"
DATA_FILE = "codeio.jsonl.gz"
MANIFEST = Path(__file__).parent / "tasks" / "data" / "codeio.json"
NOT_INSTALLED = (
    "CodeI/O needs the optional `reasoning-gym` package: "
    "pip install 'openenv-python-env[tasks]' (or: pip install reasoning-gym==0.1.25)"
)

GATE_VERSION = 1
"""Bump when the gate or the case recipe changes: the manifest must then be rebuilt."""
SEEDS: tuple[int, ...] = tuple(range(10))
"""The generator's seeds: one hidden case each."""
MIN_DISTINCT_INPUTS = 5
REFERENCE_CPU_S = 2.5
GENERATOR_CPU_S = 5.0
WALL_S = 120.0
"""Wall-clock limit of the gate's and the generator's runs: budgets are in CPU time, so
a loaded machine slows the gate down but never changes its verdicts."""
MAX_DATA_BYTES = 256 * 1024
"""Inputs, and outputs, of one task as JSON: the grader keeps them in memory."""
TOLERANCE = 1e-6
CASE_CACHE = "codeio-inputs"

# import name -> distribution name, where they differ (the runtime lists distributions)
_DISTRIBUTIONS = {
    "yaml": "pyyaml",
    "dateutil": "python-dateutil",
    "Bio": "biopython",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "cv2": "opencv-python",
}


class CodeioUnavailable(TaskError):
    """The reasoning-gym extra is not installed."""


class CaseGenerationError(SandboxError):
    """The generator did not produce a task's hidden inputs: an infrastructure fault
    (the gate checked it), so an error and never a score."""


# -- the data -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Problem:
    index: int
    description: str
    io_spec: str
    code: str
    generator: str

    @property
    def id(self) -> str:
        return f"codeio-{self.index:04d}"

    @property
    def content_hash(self) -> str:
        """What the manifest records: a changed problem is withheld until re-gated."""
        blob = json.dumps([self.description, self.io_spec, self.code, self.generator])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_path() -> Path:
    """Where the installed `reasoning-gym` keeps codeio.jsonl.gz (found, not imported:
    importing reasoning_gym would load all its generators)."""
    spec = util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CodeioUnavailable(NOT_INSTALLED)
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / DATA_FILE
    if not path.exists():
        raise CodeioUnavailable(f"{NOT_INSTALLED} ({path} is missing)")
    return path


def installed() -> bool:
    try:
        data_path()
    except CodeioUnavailable:
        return False
    return True


def read_problems(path: str | Path | None = None) -> list[Problem]:
    with gzip.open(Path(path) if path is not None else data_path(), "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [
        Problem(
            i,
            row["task_description"].strip(),
            row["input_output_spec"].strip(),
            row["code_sample"],
            row["input_generator"],
        )
        for i, row in enumerate(rows)
    ]


# -- one problem as a task ------------------------------------------------------------------


@contextlib.contextmanager
def quiet_parsing() -> Iterator[None]:
    """Parsing dataset code warns of its invalid escapes (`"\\."`): not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def parameters(code: str) -> tuple[list[str], list[str]] | None:
    """(all, required) parameter names of the top-level `main_solution`; None when there
    is none or it takes *args / positional-only parameters."""
    fn = next(
        (
            n
            for n in ast.parse(code).body
            if isinstance(n, ast.FunctionDef) and n.name == "main_solution"
        ),
        None,
    )
    if fn is None or fn.args.vararg or fn.args.posonlyargs:
        return None
    args = fn.args.args + fn.args.kwonlyargs
    names = [a.arg for a in args]
    n_defaults = len(fn.args.defaults)
    positional = [a.arg for a in fn.args.args]
    required = positional[: len(positional) - n_defaults] + [
        a.arg for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True) if d is None
    ]
    return names, required


def _title(p: Problem) -> str:
    words = p.description.split()
    short = ""
    for w in words:
        if len(short) + len(w) + 1 > 60:
            short += "..."
            break
        short = f"{short} {w}".strip()
    return f"CodeI/O {p.index}: {short}"


def statement(p: Problem, names: Sequence[str]) -> str:
    call = f"main_solution({', '.join(names)})"
    return (
        f"Implement `{call}` in solution.py (CodeI/O problem {p.index}).\n\n"
        f"{p.description}\n\n{p.io_spec}\n\n"
        "`main_solution` is called with the inputs above as keyword arguments. Return the "
        "output described, as plain Python data (int, float, str, bool, None, lists and "
        "dicts; convert NumPy values with `.tolist()`, `int(...)` or `float(...)`). Floats "
        "are compared within 1e-6.\n"
    )


def _difficulty(code: str) -> str:
    n = len([line for line in code.splitlines() if line.strip() and not line.strip()[0] == "#"])
    return "easy" if n <= 15 else "medium" if n <= 35 else "hard"


def generator_source(p: Problem) -> str:
    """The generator with the reference's module around it (as reasoning-gym runs it:
    generators use its imports and helpers) and an entry point taking a seed."""
    return (
        "from random import Random\n\n"
        f"{p.code}\n\n{p.generator}\n\n\n"
        "def _python_env_inputs(seed):\n"
        "    return generate_inputs(Random(seed))\n"
    )


def starter(code: str) -> str:
    """The reference's imports and `main_solution`'s signature (and docstring), no body.
    Rebuilt from the syntax tree when the reference's own layout (two-space indents,
    say) does not cut cleanly."""
    text = default_starter(code, "main_solution")
    if parses(text):
        return text
    tree = ast.parse(code)
    keep: list[ast.stmt] = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "main_solution":
            doc = ast.get_docstring(node, clean=False)
            body: list[ast.stmt] = [ast.Expr(ast.Constant(doc))] if doc is not None else []
            body.append(ast.Raise(ast.Name("NotImplementedError", ast.Load())))
            keep.append(
                ast.FunctionDef(node.name, node.args, body, [], node.returns, type_comment=None)
            )
    return ast.unparse(ast.fix_missing_locations(ast.Module(keep, []))) + "\n"


def task_from_problem(p: Problem, cases: Sequence[HiddenCase] | GeneratedCases) -> Task:
    found = parameters(p.code)
    if found is None:
        raise TaskError(f"{p.id}: no main_solution with named parameters")
    spec: dict[str, Any] = {
        "starter_code": starter(p.code),
        "id": p.id,
        "family": "implement",
        "difficulty": _difficulty(p.code),
        "title": _title(p),
        "statement": statement(p, found[0]),
        "reference_solution": p.code,
        "entry_point": "main_solution",
        "hidden_cases": cases,
        "comparator": "float",
        "tolerance": TOLERANCE,
        "tags": ["codeio"],
    }
    return build_task(spec, source="codeio")


# -- the sandbox runtime and the generated inputs ------------------------------------------


@dataclasses.dataclass(frozen=True)
class Setup:
    """What CodeI/O tasks need from the server's settings (hashable: the bank is cached
    per distinct setup). `runtime` identifies the sandbox runtime in cache keys."""

    python: str
    runtime: str
    packages: frozenset[str]
    version: str = ""
    limits: Limits = Limits()
    disable: tuple[str, ...] = ()
    cache_dir: str = ""

    @classmethod
    def from_settings(cls, settings: Any) -> Setup:
        python, ident, packages, version = _runtime(settings.runtime_python)
        return cls(
            python=python,
            runtime=ident,
            packages=packages,
            version=version,
            limits=settings.limits,
            disable=tuple(settings.sandbox_disable),
            cache_dir=str(settings.cache_path),
        )

    def load(self) -> list[Task]:
        """The kept problems as tasks (the bank calls this: it imports nothing above it)."""
        return load_codeio(self)

    def provides(self, module: str) -> bool:
        dist = _DISTRIBUTIONS.get(module, module)
        return re.sub(r"[-_.]+", "-", dist).lower() in self.packages


@functools.cache
def _runtime(setting: str) -> tuple[str, str, frozenset[str], str]:
    """The sandbox runtime's interpreter, identity (version and packages) and packages,
    asked once per process."""
    from .sandbox_runtime import inspect

    rt = inspect(setting)
    return rt.python, content_key(rt.version, rt.packages), frozenset(rt.packages), rt.version


def setup_for(settings: Any) -> Setup | None:
    """The server's CodeI/O setup: None when disabled (PYTHON_ENV_CODEIO=0) or when the
    extra is not installed (logged)."""
    if not settings.codeio:
        return None
    if not installed():
        log.info("codeio: %s", NOT_INSTALLED)
        return None
    return Setup.from_settings(settings)


def third_party_imports(*sources: str) -> list[str]:
    """Top-level modules imported anywhere in `sources` that are not in the stdlib."""
    names: set[str] = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return sorted(n for n in names if n not in sys.stdlib_module_names)


def is_json_data(value: Any) -> bool:
    """Plain JSON as the sandbox returns it: none of `to_plain`'s `$` markers (sets,
    bytes, non-string keys, NaN/infinity), which a JSON statement cannot describe."""
    if isinstance(value, dict):
        return all(not k.startswith("$") and is_json_data(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_json_data(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


class CaseMaker:
    """Draws hidden inputs with a problem's generator in a sandbox of its own (one slot,
    started on first use: generating is rare, and dataset code never shares grading's
    slots), through the per-machine store."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.store = Store(setup.cache_dir) if setup.cache_dir else None
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()

    def key(self, p: Problem) -> str:
        return content_key(CASE_CACHE, GATE_VERSION, generator_source(p), SEEDS, self.setup.runtime)

    def sandbox(self) -> Sandbox:
        with self._lock:
            if self._sandbox is None:
                self._sandbox = Sandbox(
                    slots=1,
                    limits=self.setup.limits,
                    disable=self.setup.disable,
                    python=self.setup.python,
                )
            return self._sandbox

    def close(self) -> None:
        with self._lock:
            sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            sandbox.close()

    def inputs(self, p: Problem) -> list[dict[str, Any]]:
        """The generator's inputs for SEEDS (from the store when it has them)."""
        key = self.key(p)
        if self.store is not None:
            cached = self.store.get(CASE_CACHE, key)
            if (
                isinstance(cached, list)
                and len(cached) == len(SEEDS)
                and all(isinstance(c, dict) for c in cached)
            ):
                return cached
        problem, inputs = check_inputs(run_generator(self.sandbox(), p, self.setup.limits))
        if problem:
            raise CaseGenerationError(f"{p.id}: {problem}")
        if self.store is not None:
            self.store.put(CASE_CACHE, key, inputs)
        return inputs

    def cases(self, p: Problem) -> list[HiddenCase]:
        return [HiddenCase(kwargs=kw) for kw in self.inputs(p)]

    def lazy(self, p: Problem) -> GeneratedCases:
        return GeneratedCases(len(SEEDS), self.key(p), lambda: self.cases(p))


def run_generator(sandbox: Sandbox, p: Problem, limits: Limits) -> CasesResult:
    limits = dataclasses.replace(
        limits,
        cpu_s=1.2 * GENERATOR_CPU_S,
        wall_s=max(limits.wall_s, WALL_S),
    )
    return sandbox.run_cases(
        generator_source(p),
        [CaseSpec(args=(seed,)) for seed in SEEDS],
        entry_point="_python_env_inputs",
        limits=limits,
    )


_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def _exc(error: str | None) -> str:
    """The exception's type name from an error text (as the grader reports it)."""
    for line in reversed((error or "").strip().splitlines()):
        m = _EXC_LINE.match(line.strip())
        if m:
            return m.group(1).rsplit(".", 1)[-1]
    return "an error"


def check_inputs(result: CasesResult) -> tuple[str | None, list[dict[str, Any]]]:
    """(why the generator's run is unusable or None, its inputs)."""
    if result.load_error:
        return f"generator fails to load ({_exc(result.load_error)})", []
    if result.memory_exceeded:
        return "generator exceeds the memory limit", []
    if result.timed_out:
        return "generator exceeds its time limit", []
    inputs = []
    for outcome in result.outcomes:
        if outcome.status == "unserializable":
            return "generated inputs are not plain data", []
        if outcome.status != "ok":
            return f"generator raises ({_exc(outcome.error)})", []
        if not isinstance(outcome.output, dict) or not is_json_data(outcome.output):
            return "generated inputs are not plain JSON data", []
        inputs.append(outcome.output)
    if len(inputs) != len(SEEDS):
        return "generator did not return every input", []
    if len(json.dumps(inputs)) > MAX_DATA_BYTES:
        return f"generated inputs too large (over {MAX_DATA_BYTES // 1024} KB)", []
    return None, inputs


# -- loading ------------------------------------------------------------------------------


def read_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return {}


def load_codeio(
    setup: Setup, *, manifest: Mapping[str, Any] | None = None, path: str | Path | None = None
) -> list[Task]:
    """The kept problems as tasks (none generated yet). Raises CodeioUnavailable when
    the extra is not installed; withholds (and logs) problems whose content changed
    since the manifest, or that need a package this runtime lacks."""
    manifest = read_manifest() if manifest is None else manifest
    if manifest.get("gate_version") != GATE_VERSION or manifest.get("seeds") != list(SEEDS):
        log.warning("codeio: the manifest is missing or for another gate: no CodeI/O tasks")
        return []
    kept: dict[str, list[Any]] = manifest.get("kept", {})
    maker = CaseMaker(setup)
    served: list[Problem] = []
    changed: list[str] = []
    lacking: collections.Counter[str] = collections.Counter()
    for p in read_problems(path):
        entry = kept.get(p.id)
        if entry is None:
            continue
        content_hash, needs = entry
        if content_hash != p.content_hash:
            changed.append(p.id)
            continue
        missing = [m for m in needs if not setup.provides(m)]
        if missing:
            lacking.update(missing)
            continue
        served.append(p)
    tasks = [_task(p, fields, maker.lazy(p)) for p, fields in _built(served, maker.store)]
    if changed:
        log.warning(
            "codeio: %d problems changed since the manifest, withheld (rebuild it): %s",
            len(changed),
            ", ".join(changed[:5]),
        )
    if lacking:
        log.warning("codeio: withheld, the sandbox runtime lacks %s", dict(lacking))
    return tasks


_BUILDER_FILES = (
    "codeio.py",
    "tasks/spec.py",
    "tasks/model.py",
    "tasks/source.py",
    "tasks/families/base.py",
)
_FAST_FIELDS = tuple(
    f.name for f in dataclasses.fields(Task) if f.name not in ("reference_solution", "hidden_cases")
)


def _built(problems: list[Problem], store: Store | None) -> list[tuple[Problem, dict[str, Any]]]:
    """Each problem with its task's fields as `build_task` makes them (statement,
    starter...). Building parses every reference several times, seconds for thousands,
    so the fields are kept in the store under a hash of the problems and of the code
    that builds them: a server start after the first only reads one entry."""
    here = Path(__file__).parent
    builder = [(here / name).read_text() for name in _BUILDER_FILES]
    key = content_key("codeio-tasks", builder, [[p.id, p.content_hash] for p in problems])
    cached = store.get("codeio-tasks", key) if store is not None else None
    if isinstance(cached, list) and len(cached) == len(problems):
        return list(zip(problems, cached, strict=True))
    fields = []
    with quiet_parsing():
        for p in problems:
            task = task_from_problem(p, GeneratedCases(len(SEEDS), "", list))
            fields.append({name: getattr(task, name) for name in _FAST_FIELDS})
    if store is not None:
        store.put("codeio-tasks", key, fields)
    return list(zip(problems, fields, strict=True))


def _task(p: Problem, fields: dict[str, Any], cases: GeneratedCases) -> Task:
    """A task from its built fields (JSON turned tuples into lists: turn them back)."""
    restored: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()
    }
    if restored.get("visible_examples") or restored.get("defects"):
        raise TaskError(f"{p.id}: CodeI/O tasks have no examples or defects")
    return Task(reference_solution=p.code, hidden_cases=cases, **restored)


# -- the gate -----------------------------------------------------------------------------


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _static(p: Problem, seen: dict[str, str], setup: Setup) -> tuple[str | None, list[str]]:
    try:
        ast.parse(p.code)
        ast.parse(p.generator)
    except SyntaxError as exc:
        return f"does not parse: {exc.msg}", []
    needs = third_party_imports(p.code, p.generator)
    twin = seen.setdefault(_canon([p.description, p.code]), p.id)
    if twin != p.id:
        return f"duplicate: same problem as {twin}", needs
    found = parameters(p.code)
    if found is None:
        return "no main_solution with named parameters", needs
    words = set(re.findall(r"\w+", p.io_spec))
    unnamed = [n for n in found[0] if n not in words]
    if unnamed:
        return f"statement not self-sufficient: the spec does not name {unnamed[0]!r}", needs
    if not re.search(r"\boutput\b|\breturn", p.io_spec, re.IGNORECASE):
        return "statement not self-sufficient: the spec does not describe the output", needs
    missing = [m for m in needs if not setup.provides(m)]
    if missing:
        return f"needs a package the sandbox runtime lacks: {missing[0]}", needs
    return None, needs


_NO_MODULE = re.compile(r"No module named '([\w.]+)'")


def _missing_module(*errors: str | None) -> str | None:
    for error in errors:
        m = _NO_MODULE.search(error or "")
        if m:
            return m.group(1).split(".")[0]
    return None


def gate(
    p: Problem, sandbox: Sandbox, setup: Setup, seen: dict[str, str]
) -> tuple[str | None, list[str]]:
    """Why `p` is dropped (None: kept), and the third-party modules it needs."""
    why, needs = _static(p, seen, setup)
    if why:
        return why, needs
    found = parameters(p.code)
    assert found is not None
    names, required = found

    first = run_generator(sandbox, p, setup.limits)
    why, inputs = check_inputs(first)
    slow = f"generator too slow (over {GENERATOR_CPU_S:g} s CPU for all seeds)"
    if first.timed_out and not first.memory_exceeded:
        return slow, needs
    if why:
        module = _missing_module(first.load_error, *(o.error for o in first.outcomes))
        if module:
            return f"needs a package the sandbox runtime lacks: {module}", needs
        return why, needs
    if first.cpu_time_ms > GENERATOR_CPU_S * 1000:
        return slow, needs
    for kw in inputs:
        if not set(required) <= set(kw) <= set(names):
            return "generated inputs do not match main_solution's parameters", needs
    _, again = check_inputs(run_generator(sandbox, p, setup.limits))
    if _canon(again) != _canon(inputs):
        return "generator not deterministic (two runs differ)", needs
    if len({_canon(kw) for kw in inputs}) < MIN_DISTINCT_INPUTS:
        return f"too few distinct inputs (under {MIN_DISTINCT_INPUTS} of {len(SEEDS)})", needs

    cases = [CaseSpec(kwargs=kw) for kw in inputs]
    limits = dataclasses.replace(
        setup.limits,
        cpu_s=1.2 * REFERENCE_CPU_S,  # stop soon after the budget: it is dropped anyway
        wall_s=max(setup.limits.wall_s, WALL_S),
    )
    outputs = []
    for run in range(2):
        result = sandbox.run_cases(p.code, cases, entry_point="main_solution", limits=limits)
        if result.load_error:
            module = _missing_module(result.load_error)
            if module:
                return f"needs a package the sandbox runtime lacks: {module}", needs
            return f"reference fails to load ({_exc(result.load_error)})", needs
        if result.memory_exceeded:
            return "reference exceeds the memory limit", needs
        if result.timed_out or result.cpu_time_ms > REFERENCE_CPU_S * 1000:
            return f"reference too slow (over {REFERENCE_CPU_S:g} s CPU for all cases)", needs
        got = []
        for outcome in result.outcomes:
            if outcome.status == "unserializable":
                return "reference output is not plain data", needs
            if outcome.status != "ok":
                module = _missing_module(outcome.error)
                if module:
                    return f"needs a package the sandbox runtime lacks: {module}", needs
                return f"reference raises on generated inputs ({_exc(outcome.error)})", needs
            if not is_json_data(outcome.output):
                return "reference output is not plain JSON data", needs
            got.append(outcome.output)
        if len(got) != len(cases):
            return "reference did not answer every input", needs
        outputs.append(_canon(got))
        if len(outputs[-1]) > MAX_DATA_BYTES:
            return f"reference outputs too large (over {MAX_DATA_BYTES // 1024} KB)", needs
        if run == 1 and outputs[0] != outputs[1]:
            return "reference not deterministic (two runs differ)", needs
    common = collections.Counter(_canon(o) for o in json.loads(outputs[0])).most_common(1)[0][1]
    if common * 2 > len(cases):
        return f"too few distinct outputs (a constant answer passes {common}/{len(cases)})", needs
    try:
        task_from_problem(p, [HiddenCase(kwargs=kw) for kw in inputs])
    except TaskError as exc:
        return f"does not build as a task: {exc}", needs
    return None, needs


def category(reason: str) -> str:
    """A reason without its details (the manifest counts per category)."""
    return reason.split(":")[0].split(" (")[0]


def rebuild_manifest(
    setup: Setup,
    *,
    jobs: int = 2,
    limit: int | None = None,
    out: Path = MANIFEST,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the gate over every problem (in parallel, `jobs` sandbox slots); write `out`."""
    problems = read_problems()
    if limit is not None:
        problems = problems[:limit]
    seen: dict[str, str] = {}
    started = time.monotonic()
    with (
        quiet_parsing(),
        Sandbox(slots=jobs, limits=setup.limits, disable=setup.disable, python=setup.python) as sb,
    ):
        static = {p.id: _static(p, seen, setup) for p in problems}  # in order: duplicates
        results: dict[str, tuple[str | None, list[str]]] = {}

        def one(p: Problem) -> tuple[str, tuple[str | None, list[str]]]:
            if static[p.id][0]:
                return p.id, static[p.id]
            try:
                return p.id, gate(p, sb, setup, {})
            except SandboxError as exc:  # an infrastructure fault: say so, do not guess
                raise SandboxError(f"{p.id}: the sandbox failed during the gate: {exc}") from exc

        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            for n, (pid, res) in enumerate(pool.map(one, problems), 1):
                results[pid] = res
                if progress:
                    progress(n, len(problems))
    manifest = manifest_from(problems, results, setup, time.monotonic() - started)
    write_manifest(manifest, out)
    return manifest


def manifest_from(
    problems: Iterable[Problem],
    results: Mapping[str, tuple[str | None, list[str]]],
    setup: Setup,
    seconds: float,
) -> dict[str, Any]:
    kept: dict[str, list[Any]] = {}
    dropped: dict[str, list[str]] = {}
    for p in problems:
        why, needs = results[p.id]
        if why is None:
            kept[p.id] = [p.content_hash, needs]
        else:
            dropped[p.id] = [p.content_hash, why]
    counts = collections.Counter(category(why) for _, why in dropped.values())
    return {
        "about": (
            "CodeI/O problems kept by the quality gate of server/codeio.py "
            "(`python -m python_env.server.codeio --rebuild-manifest`): "
            "kept: [content hash, third-party modules]; dropped: [content hash, reason]"
        ),
        "source": f"{DISTRIBUTION} reasoning_gym/data/{DATA_FILE}",
        "gate_version": GATE_VERSION,
        "seeds": list(SEEDS),
        "runtime": {"python": setup.version, "packages": sorted(setup.packages)},
        "rebuild_seconds": round(seconds),
        "counts": {
            "problems": len(kept) + len(dropped),
            "kept": len(kept),
            "dropped": dict(counts.most_common()),
        },
        "kept": kept,
        "dropped": dropped,
    }


def write_manifest(manifest: Mapping[str, Any], out: Path) -> None:
    """One entry per line, so a rebuild's diff shows what changed."""
    lines = ["{"]
    items = list(manifest.items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if key in ("kept", "dropped"):
            body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            lines.append(f" {json.dumps(key)}: {{\n{body}\n }}{comma}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
    lines.append("}")
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)


def warm(setup: Setup, *, limit: int | None = None) -> tuple[int, int]:
    """Generate (into the store) the inputs of every kept task: (generated, failed)."""
    tasks = load_codeio(setup)[:limit]
    failed = 0
    for task in tasks:
        assert isinstance(task.hidden_cases, GeneratedCases)
        try:
            task.hidden_cases.cases()
        except SandboxError as exc:
            failed += 1
            log.warning("%s", exc)
    return len(tasks) - failed, failed


def main(argv: Sequence[str] | None = None) -> int:
    from .config import Settings

    parser = argparse.ArgumentParser(prog="python -m python_env.server.codeio")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--rebuild-manifest", action="store_true", help="run the gate")
    action.add_argument("--warm", action="store_true", help="generate every kept task's inputs")
    parser.add_argument("--jobs", type=int, default=2, help="sandbox slots for the gate")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems")
    parser.add_argument("--out", type=Path, default=MANIFEST, help="where the manifest goes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    setup = Setup.from_settings(Settings.from_env())
    started = time.monotonic()
    if args.rebuild_manifest:

        def progress(n: int, total: int) -> None:
            if n % 100 == 0 or n == total:
                print(f"{n}/{total} gated, {time.monotonic() - started:.0f} s", flush=True)

        m = rebuild_manifest(
            setup, jobs=args.jobs, limit=args.limit, out=args.out, progress=progress
        )
        print(json.dumps(m["counts"], indent=1))
    else:
        done, failed = warm(setup, limit=args.limit)
        print(f"{done} tasks' inputs in the store, {failed} failed")
    print(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
