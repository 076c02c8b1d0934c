"""The one settings object: read from the environment once, defaults written once."""

from __future__ import annotations

import pytest
from python_env.server.config import Settings
from python_env.server.runtime import build_sandbox
from python_env.server.sandbox import CaseSpec, Limits, SandboxError


def test_no_variables_give_the_declared_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings().limits == Limits()


def test_every_variable_reaches_its_field() -> None:
    s = Settings.from_env(
        {
            "PORT": "9001",
            "MAX_CONCURRENT_ENVS": "7",
            "SESSION_TIMEOUT_S": "12.5",
            "ENABLE_WEB_INTERFACE": "true",
            "PYTHON_ENV_SLOTS": "3",
            "PYTHON_ENV_TIMEOUT_S": "4",
            "PYTHON_ENV_CPU_S": "2.5",
            "PYTHON_ENV_MEMORY_MB": "300",
            "PYTHON_ENV_MAX_OUTPUT_BYTES": "1000",
            "PYTHON_ENV_DISK_MB": "64",
            "PYTHON_ENV_CPU_CORES": "0.5",
            "PYTHON_ENV_SANDBOX_DISABLE": "seccomp, landlock",
            "PYTHON_ENV_PROCEDURAL": "1",
            "PYTHON_ENV_TASKS": "/a.jsonl:/b.jsonl",
            "PYTHON_ENV_HUMANEVAL": "yes",
        }
    )
    assert (s.port, s.max_concurrent_envs, s.session_timeout_s, s.slots) == (9001, 7, 12.5, 3)
    assert s.web_interface and s.procedural and s.humaneval
    assert s.limits == Limits(
        wall_s=4.0, cpu_s=2.5, memory_mb=300, max_output_bytes=1000, disk_mb=64, cpu_cores=0.5
    )
    assert s.sandbox_disable == ("seccomp", "landlock")
    assert s.task_paths == ("/a.jsonl", "/b.jsonl")


@pytest.mark.parametrize("fault", ["spawn", "fork", "budget"])
def test_each_injected_fault_is_an_infrastructure_error(fault: str) -> None:
    with build_sandbox(Settings.from_env({"PYTHON_ENV_SANDBOX_FAULT": fault})) as sb:
        if fault == "budget" and sb.budgets is None:
            pytest.skip("no tree budget mechanism here")
        with pytest.raises(SandboxError):
            sb.run("print(1)")
        with pytest.raises(SandboxError):
            sb.kernel().run("print(1)")
        with pytest.raises(SandboxError):
            sb.run_cases("def f(x):\n    return x\n", [CaseSpec(args=(1,))], entry_point="f")


def test_unknown_faults_are_refused() -> None:
    with pytest.raises(ValueError):
        build_sandbox(Settings.from_env({"PYTHON_ENV_SANDBOX_FAULT": "nonsense"}))
