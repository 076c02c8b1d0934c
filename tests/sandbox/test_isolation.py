"""The isolation report, and the degraded path (layers switched off on purpose): the
engine must still enforce timeouts, limits and output caps with only rlimits + setsid."""

from __future__ import annotations

import os
import signal
import uuid

import pytest
from python_env.server.sandbox import IsolationReport, Limits, Sandbox
from python_env.server.sandbox.engine import BUDGET_LAYERS, LAYERS
from python_env.server.sandbox.isolation import ALWAYS, OPTIONAL

pytestmark = pytest.mark.timeout(90)
SHORT = Limits(wall_s=1.5, cpu_s=5, memory_mb=256, max_output_bytes=2048)


def test_report_accounts_for_every_layer(sb: Sandbox) -> None:
    rep = sb.isolation
    assert isinstance(rep, IsolationReport)
    assert set(ALWAYS) <= set(rep.active)
    assert set(rep.active) | set(rep.unavailable) == set(LAYERS)
    assert not set(rep.active) & set(rep.unavailable)
    d = rep.as_dict()
    assert d["active"] == list(rep.active) and d["unavailable"] == dict(rep.unavailable)


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and uid drop need root")
def test_everything_is_active_as_root(sb: Sandbox) -> None:
    rep = sb.isolation
    refused = set(rep.unavailable) - {"proc_watch"}  # the fallback: not needed with cgroups
    if refused:
        pytest.skip(f"this host refuses some layers: {dict(rep.unavailable)}")
    assert set(rep.active) == set(LAYERS) - {"proc_watch"}


def test_runs_as_unprivileged_uid_without_network(sb: Sandbox) -> None:
    active = set(sb.isolation.active)
    r = sb.run(
        "import os, socket\nprint(os.getuid(), os.getpid())\ntry:\n"
        "    socket.socket(socket.AF_INET).close()\n    print('inet ok')\n"
        "except OSError as e:\n    print('inet', e.errno)\n"
    )
    uid, pid = r.stdout.split()[:2]
    if "uid_drop" in active:
        assert int(uid) != 0
    if "pid_namespace" in active:
        assert pid == "1"
    if "seccomp" in active or "landlock" in active or "net_namespace" in active:
        assert "inet ok" not in r.stdout


def test_degraded_mode_still_enforces_limits() -> None:
    with Sandbox(slots=1, limits=SHORT, disable=OPTIONAL + BUDGET_LAYERS) as s:
        rep = s.isolation
        assert set(rep.active) == set(ALWAYS)
        assert all("disabled" in why for why in rep.unavailable.values())
        assert set(rep.unavailable) == set(OPTIONAL + BUDGET_LAYERS)
        assert s.run("print(sum(range(10)))").stdout == "45\n"
        r = s.run("while True: pass")
        assert r.timed_out and r.signal == signal.SIGKILL
        r = s.run("x = bytearray(2 * 1024 ** 3)")
        assert r.memory_exceeded
        r = s.run(
            "import sys\nfor _ in range(10 ** 6): sys.stdout.write('x' * 1000)",
            limits=Limits(wall_s=30, max_output_bytes=2048),
        )
        assert r.stdout_truncated and not r.timed_out and len(r.stdout) == 2048
        r = s.run("import resource\nprint(resource.getrlimit(resource.RLIMIT_FSIZE)[0])")
        assert r.stdout == f"{SHORT.file_size_mb << 20}\n"
        marker = f"sbx-straggler-{uuid.uuid4().hex}"
        r = s.run(
            "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
            f"'import time; time.sleep(30)  # {marker}'])\nprint('spawned')"
        )
        assert r.stdout == "spawned\n"
        assert not _alive_with(marker)  # the process group was killed with the run
        assert s.run("print('ok')").stdout == "ok\n"
        k = s.kernel(SHORT)
        assert k.run("x = 2").exit_code == 0 and k.run("x").stdout == "2\n"
        assert k.run("while True: pass").timed_out and k.run("1").kernel_restarted
        k.close()
        res = s.run_assertions(
            "def f(x):\n    return x\n", "def check(c):\n    assert c(1) == 1\n", entry_point="f"
        )
        assert [t.passed for t in res.tests] == [True]


def _alive_with(marker: str) -> bool:
    import time

    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        hits = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        hits.append(pid)
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(") ")[1].startswith("Z"):
                        hits.remove(pid)
            except (OSError, ValueError):
                pass
        if not hits:
            return False
        time.sleep(0.05)
    return True


def test_disable_via_environment() -> None:
    from python_env.server.config import Settings
    from python_env.server.runtime import build_sandbox

    settings = Settings.from_env({"PYTHON_ENV_SANDBOX_DISABLE": "seccomp, landlock"})
    with build_sandbox(settings) as s:
        rep = s.isolation
        assert "seccomp" in rep.unavailable and "landlock" in rep.unavailable
        assert s.run("print(1)").stdout == "1\n"
    with pytest.raises(ValueError):
        Sandbox(slots=1, disable=["no_such_layer"])


def test_landlock_allow_list_never_reaches_a_private_root_through_a_symlink(tmp_path):
    from python_env.server.sandbox import isolation

    site = tmp_path / "venv" / "lib" / "site-packages"
    (site / "python_env" / "tasks" / "data").mkdir(parents=True)
    (site / "numpy").mkdir()
    (tmp_path / "venv" / "bin").mkdir()
    (tmp_path / "venv" / "lib64").symlink_to("lib")  # what uv/venv create
    (tmp_path / "venv" / "loop").symlink_to(".")
    private = str(site / "python_env")

    allowed = isolation._allow_except(str(tmp_path / "venv"), [private], set())

    assert str(site / "numpy") in allowed and str(tmp_path / "venv" / "bin") in allowed
    for path in allowed:  # Landlock binds a rule to what the path resolves to
        real = os.path.realpath(path)
        assert real != private and not private.startswith(real + "/"), path
