"""The sandbox runtime: agent code runs under the declared interpreter (.venv-runtime),
which has exactly the pinned packages and none of the server's; `/metadata` lists it; a
user's own interpreter is honoured; one that cannot run the sandbox is refused."""

from __future__ import annotations

import json
import os
import re
import sys
import venv
from pathlib import Path

import fastapi
import pytest
from python_env import PythonAction, PythonEnv
from python_env.server import sandbox_runtime
from python_env.server.config import Settings
from python_env.server.launcher import run_server
from python_env.server.runtime import build_sandbox
from python_env.server.sandbox import Limits, Sandbox

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "runtime" / "requirements.txt"
DECLARED = Path(sandbox_runtime.DECLARED_VENV) / "bin" / "python"
# What the server imports: none of it may be importable by agent code.
SERVER_PACKAGES = ("fastapi", "openenv", "uvicorn", "pydantic", "gradio", "httpx", "python_env")

USE_EACH = """
import json, os
import hypothesis, networkx, numpy as np, pandas as pd, pytest, scipy, scipy.linalg
import sortedcontainers, sympy
from importlib.metadata import version
x = sympy.Symbol("x")
checks = {
    "numpy": round(float(np.linalg.det(np.eye(3) * 2)), 9),
    "pandas": int(pd.DataFrame({"a": [1, 2, 3]})["a"].sum()),
    "scipy": float(scipy.linalg.inv([[2.0, 0.0], [0.0, 4.0]])[1][1]),
    "sympy": str(sympy.integrate(x**2, x)),
    "networkx": networkx.shortest_path_length(networkx.path_graph(5), 0, 4),
    "sortedcontainers": list(sortedcontainers.SortedList([3, 1, 2])),
}
with open("test_prop.py", "w") as f:
    f.write(
        "from hypothesis import given, strategies as st\\n"
        "@given(st.lists(st.integers()))\\n"
        "def test_sorted_is_idempotent(xs):\\n"
        "    assert sorted(sorted(xs)) == sorted(xs)\\n"
    )
checks["pytest"] = int(pytest.main(["-q", "-p", "no:cacheprovider", "test_prop.py"]))
names = ("numpy", "pandas", "scipy", "sympy", "networkx", "sortedcontainers", "pytest",
         "hypothesis")
print("RESULT " + json.dumps({"checks": checks, "versions": {n: version(n) for n in names}}))
"""
EXPECTED_CHECKS = {
    "numpy": 8.0,
    "pandas": 6,
    "scipy": 0.25,
    "sympy": "x**3/3",
    "networkx": 4,
    "sortedcontainers": [1, 2, 3],
    "pytest": 0,
}
TRY_IMPORTS = f"""
import importlib
for name in {SERVER_PACKAGES!r}:
    try:
        importlib.import_module(name)
        print(name, "imported")
    except ImportError as e:
        print(name, type(e).__name__)
"""


def pins() -> dict[str, str]:
    out = {}
    for line in REQUIREMENTS.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, _, ver = spec.partition("==")
            out[sandbox_runtime.canonical(name)] = ver
    return out


@pytest.fixture(scope="module")
def declared() -> str:
    assert DECLARED.exists(), "no .venv-runtime: run `bash runtime/install.sh` (test.sh does)"
    return str(DECLARED)


def run(url: str, code: str, persistent: bool) -> str:
    with PythonEnv(base_url=url).sync() as env:
        env.reset()
        out = env.step(PythonAction(code=code, persistent=persistent)).observation.run
        assert out is not None
        assert out.exit_code == 0, out.stderr
        return out.stdout


def test_pins_are_exact_and_cover_the_promised_packages():
    p = pins()
    assert p and all(v and "*" not in v for v in p.values())
    promised = {"numpy", "pandas", "scipy", "sympy", "pytest", "hypothesis"}
    declared = {
        sandbox_runtime.canonical(line.strip())
        for line in (ROOT / "runtime" / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert promised <= declared <= set(p)  # requirements.txt pins every declared name


def test_the_image_builds_the_runtime_and_points_the_server_at_it():
    """The Docker tier runs the image; this checks the wiring without Docker: the venv
    runtime/install.sh builds is the one PYTHON_ENV_RUNTIME_PYTHON names, and a host's
    own .venv-runtime never enters the build context."""
    text = (ROOT / "server" / "Dockerfile").read_text()
    install = re.search(r"RUN bash runtime/install.sh (\S+)", text)
    setting = re.search(r"ENV PYTHON_ENV_RUNTIME_PYTHON=(\S+)", text)
    assert install and setting and setting.group(1) == f"{install.group(1)}/bin/python"
    assert text.index("runtime/install.sh") < text.index("COPY . /app/env")  # own layer
    assert ".venv-runtime" in (ROOT / ".dockerignore").read_text().split()


def test_metadata_lists_the_declared_runtime_and_exactly_its_pins(server, declared):
    import httpx

    rt = httpx.get(f"{server.url}/metadata").json()["runtime"]
    assert rt["python"] == declared
    assert rt["source"].startswith("declared runtime")
    assert rt["version"].startswith("3.")
    # exactly the pins: no server dependency and no test-only extra landed there
    assert rt["packages"] == pins()


@pytest.mark.parametrize("persistent", [False, True], ids=["one-shot", "kernel"])
def test_each_declared_package_imports_and_works_in_a_run(server, persistent):
    out = run(server.url, USE_EACH, persistent)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    assert result["checks"] == EXPECTED_CHECKS
    assert result["versions"] == {n: pins()[n] for n in result["versions"]}


@pytest.mark.parametrize("persistent", [False, True], ids=["one-shot", "kernel"])
def test_server_packages_cannot_be_imported_nor_read(server, persistent):
    out = run(server.url, TRY_IMPORTS, persistent)
    assert out.splitlines() == [f"{name} ModuleNotFoundError" for name in SERVER_PACKAGES]
    # not even by path: the server's site-packages is outside what a run can read
    probe = f"try:\n    open({fastapi.__file__!r}).read()\nexcept OSError as e:\n    print(type(e).__name__)"
    assert run(server.url, probe, persistent).strip() in ("PermissionError", "FileNotFoundError")


def test_every_isolation_layer_comes_up_under_the_runtime_interpreter(declared):
    """The zygote computes its mounts and Landlock allow-list from its own interpreter:
    with Landlock alone guarding the files (no mount namespace), the runtime's packages
    are readable and the server's are not."""
    with Sandbox(slots=1) as ours, Sandbox(slots=1, python=declared) as theirs:
        assert theirs.isolation == ours.isolation
    with Sandbox(slots=1, python=declared, disable=["mount_namespace"]) as sb:
        if not sb.layer("landlock"):
            pytest.skip(f"Landlock unavailable here: {sb.isolation.unavailable['landlock']}")
        code = (
            "import numpy, sys\n"
            f"try:\n    open({fastapi.__file__!r}).read()\n"
            "except PermissionError:\n    print(sys.executable, 'denied')\n"
        )
        r = sb.run(code)
        assert r.stdout == f"{declared} denied\n", r.stderr


def test_blas_starts_no_threads_so_the_process_limit_never_breaks_an_import(declared):
    """numpy and scipy start a BLAS thread per host CPU at import unless told otherwise;
    on a host with more CPUs than the process limit the import then fails. One process
    allowed (below this host's CPU count) stands in for such a host."""
    with Sandbox(slots=1, python=declared, limits=Limits(max_processes=1)) as sb:
        code = "import numpy as np, scipy.linalg\na = np.ones((300, 300))\nprint((a @ a)[0, 0])"
        r = sb.run(code)
        assert (r.stdout, r.exit_code) == ("300.0\n", 0), r.stderr[-1000:]


def test_the_zygote_pre_imports_the_stdlib_only(declared, tmp_path):
    """Chosen by benchmarks/bench_warm_imports.py (numpy would cost every run +21 % CPU);
    a run imports the runtime's packages on demand, and a bare interpreter works too."""
    venv.create(tmp_path / "bare", with_pip=False, symlinks=True)
    code = "import sys\nprint('numpy' in sys.modules, 'sympy' in sys.modules)"
    with Sandbox(slots=1, python=declared) as sb:
        assert sb.run(code).stdout == "False False\n"
    with Sandbox(slots=1, python=str(tmp_path / "bare" / "bin" / "python")) as sb:
        assert sb.run(code).stdout == "False False\n"


def test_a_users_own_interpreter_is_honoured(tmp_path):
    """PYTHON_ENV_RUNTIME_PYTHON: here an empty venv of the user's, so numpy is gone."""
    venv.create(tmp_path / "mine", with_pip=False, symlinks=True)
    python = str(tmp_path / "mine" / "bin" / "python")
    code = "import sys\ntry:\n    import numpy\nexcept ImportError:\n    print(sys.executable)"
    with run_server(PYTHON_ENV_RUNTIME_PYTHON=python) as srv:
        import httpx

        rt = httpx.get(f"{srv.url}/metadata").json()["runtime"]
        assert rt["python"] == python and rt["source"] == "PYTHON_ENV_RUNTIME_PYTHON"
        assert rt["packages"] == {}
        assert run(srv.url, code, persistent=False) == f"{python}\n"


def test_the_default_is_the_declared_venv_else_the_server_interpreter(declared, monkeypatch):
    assert sandbox_runtime.choose("").python == declared
    monkeypatch.setattr(sandbox_runtime, "DECLARED_VENV", "/nonexistent")
    fallback = sandbox_runtime.choose("")
    assert fallback.python == sys.executable and fallback.source.startswith("server interpreter")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("/nonexistent/python", "no executable file there"),
        ("/bin/true", "not a CPython >= 3.11"),
        (os.devnull, "no executable file there"),
    ],
)
def test_an_interpreter_that_cannot_run_the_sandbox_is_refused(setting, message):
    with pytest.raises(sandbox_runtime.RuntimeConfigError, match=message) as err:
        sandbox_runtime.inspect(setting)
    assert f"PYTHON_ENV_RUNTIME_PYTHON={setting}" in str(err.value)


def test_the_setting_reaches_the_sandbox_and_a_bad_one_is_refused():
    """The server's start (get_runtime) inspects `Settings.runtime_python` and builds its
    sandbox from the same settings: a bad value stops it with the reason instead of
    falling back silently."""
    settings = Settings.from_env({"PYTHON_ENV_RUNTIME_PYTHON": "/nonexistent/python"})
    assert settings.runtime_python == "/nonexistent/python"
    with pytest.raises(sandbox_runtime.RuntimeConfigError, match="no executable file"):
        sandbox_runtime.inspect(settings.runtime_python)
    with build_sandbox(Settings.from_env({"PYTHON_ENV_RUNTIME_PYTHON": sys.executable})) as sb:
        assert sb.run("import sys; print(sys.executable)").stdout == f"{sys.executable}\n"
