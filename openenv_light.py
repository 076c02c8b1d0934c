"""Import OpenEnv's client half without its server half: a client-only process (a
trainer's rollout worker) should not pay for FastAPI, FastMCP and Gradio.

Why: `openenv/core/__init__.py` imports `openenv.core.env_server` on any import, and
that package's `__init__` imports OpenEnv's whole server (the FastAPI app, MCP, and the
Gradio web UI). python_env's client needs only `openenv.core.env_client` and the models
in `openenv.core.env_server.types`, which import neither.

How: unless they are imported already, the two packages are registered here with their
`__init__` not yet run. Their submodules import as usual; the first access to a name the
package itself defines (`from openenv.core import EnvClient`,
`openenv.core.env_server.create_app`, a star import) runs the real `__init__` in place,
so every other user of OpenEnv in the process, the server included, sees the complete
package. tests/test_light_client.py guards it.

Upstream change that would make this unnecessary: `openenv.core` resolving its
`env_server` names lazily (its `__getattr__` already does so for the client names), and
`openenv.core.env_server` importing `http_server`, `mcp_environment` and
`web_interface` on first use instead of in its `__init__`.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_DEFERRED = ("openenv.core", "openenv.core.env_server")


def defer_openenv_server() -> None:
    """Register OpenEnv's two heavy package `__init__`s to run on first use (idempotent)."""
    for name in _DEFERRED:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return  # not the OpenEnv layout this knows: import it the ordinary way
        module = importlib.util.module_from_spec(spec)
        module.__getattr__ = _complete_on_use(module, spec)  # type: ignore[method-assign]
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)


def _complete_on_use(module: ModuleType, spec: ModuleSpec) -> Any:
    done = False

    def __getattr__(name: str) -> Any:
        nonlocal done
        if done or (name.startswith("__") and name != "__all__"):
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        done = True
        assert spec.loader is not None
        spec.loader.exec_module(module)  # the real __init__, in this module's namespace
        return getattr(module, name)

    return __getattr__
