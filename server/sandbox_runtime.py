"""The sandbox runtime: which Python runs agent code, and what that code can import.

Agent code runs under its own interpreter, not necessarily the server's: by default the
declared runtime, a virtual environment at the repository root (`.venv-runtime`) that
`runtime/install.sh` fills with exactly the packages pinned in `runtime/requirements.txt`.
PYTHON_ENV_RUNTIME_PYTHON names any other interpreter (the user's own venv). Without
either, agent code falls back to the server's interpreter, as in version 1, so a server
installed from a wheel still works; `/metadata` then says so and lists what that
interpreter carries (the server's own dependencies included).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from .sandbox.isolation import BASE_ENV

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECLARED_VENV = os.path.join(REPO_ROOT, ".venv-runtime")
SETTING = "PYTHON_ENV_RUNTIME_PYTHON"
MIN_VERSION = (3, 11)  # the sandbox starts its zygote with `-P`

# Run with the zygote's flags, environment and cwd, so it sees the same sys.path.
_PROBE = """
import importlib.metadata as m, json, platform, sys
print(json.dumps({
    "version": platform.python_version(),
    "version_info": list(sys.version_info[:2]),
    "executable": sys.executable,
    "packages": {d.metadata["Name"]: d.version for d in m.distributions()},
}))
"""

log = logging.getLogger(__name__)


class RuntimeConfigError(ValueError):
    """The configured interpreter cannot run agent code."""


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares it (`Python_Dateutil` -> `python-dateutil`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class SandboxRuntime:
    python: str  # the interpreter the zygotes are started with
    source: str  # why this one (setting, declared venv or fallback)
    version: str = ""
    packages: dict[str, str] = field(default_factory=dict)  # canonical name -> version

    def as_dict(self) -> dict[str, Any]:
        return {
            "python": self.python,
            "source": self.source,
            "version": self.version,
            "packages": dict(self.packages),
        }


def choose(setting: str) -> SandboxRuntime:
    """The interpreter for agent code: the setting, else the declared venv, else ours."""
    if setting:
        # a venv's python must keep its own path (resolving the symlink leaves the venv)
        found = setting if os.sep in setting else shutil.which(setting) or setting
        return SandboxRuntime(os.path.abspath(found), SETTING)
    declared = os.path.join(DECLARED_VENV, "bin", "python")
    if os.path.exists(declared):
        return SandboxRuntime(declared, "declared runtime (.venv-runtime)")
    return SandboxRuntime(
        sys.executable, "server interpreter (no .venv-runtime: run `bash runtime/install.sh`)"
    )


def inspect(setting: str) -> SandboxRuntime:
    """Choose the interpreter and ask it once for its version and installed packages.
    Raises RuntimeConfigError when it cannot run the sandbox."""
    rt = choose(setting)
    label = f"{SETTING}={rt.python}" if rt.source == SETTING else rt.python
    if not (os.path.isfile(rt.python) and os.access(rt.python, os.X_OK)):
        raise RuntimeConfigError(f"{label}: no executable file there")
    try:
        proc = subprocess.run(
            [rt.python, "-s", "-P", "-c", _PROBE],
            capture_output=True,
            text=True,
            cwd="/",
            env=dict(BASE_ENV, HOME="/"),
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeConfigError(f"{label}: cannot be run: {e}") from None
    try:
        info = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        why = proc.stderr.strip()[-300:] or f"exit {proc.returncode}, no answer"
        raise RuntimeConfigError(f"{label}: not a CPython >= 3.11 ({why})")
    if tuple(info["version_info"]) < MIN_VERSION:
        raise RuntimeConfigError(f"{label}: Python {info['version']}, the sandbox needs >= 3.11")
    if rt.source.startswith("server interpreter"):
        log.warning("python_env: agent code runs under the %s", rt.source)
    packages = {canonical(k): v for k, v in info["packages"].items()}
    return SandboxRuntime(rt.python, rt.source, info["version"], dict(sorted(packages.items())))
