"""Server settings: read once from environment variables, here and nowhere else, then
passed down to the runtime, the task bank and the sandbox. Defaults are written once:
the sandbox's limits default to `Limits()`, everything else to the fields below."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from .sandbox import Limits


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _list(value: str, sep: str = ",") -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(sep) if p.strip())


@dataclass(frozen=True)
class Settings:
    """Everything an operator can tune; see the README's configuration table."""

    host: str = "0.0.0.0"
    port: int = 8000
    max_concurrent_envs: int = 64
    session_timeout_s: float = 600.0
    web_interface: bool = False
    token: str = ""  # if set, every client must present it (see server/guard.py)
    # the sandbox
    slots: int | None = None  # None: one per CPU
    limits: Limits = field(default_factory=Limits)
    sandbox_disable: tuple[str, ...] = ()  # isolation layers turned off on purpose
    sandbox_fault: str = ""  # test-only fault injection (see Sandbox)
    runtime_python: str = ""  # the interpreter agent code runs under; "" = see sandbox_runtime
    kernel_park_s: float = 2.0  # an idle kernel lets go of its spare fds after this (0: never)
    malloc_arenas: int = 2  # glibc malloc arenas at most (server/allocator.py); 0: its default
    # the task bank
    procedural: bool = False
    variants: str = "mixed"  # none | mixed | all: sources served as themselves or variants
    task_paths: tuple[str, ...] = ()
    humaneval: bool = False
    codeio: bool = True  # CodeI/O's problems, when the `tasks` extra is installed
    # the per-machine store (server/tasks/cache.py); "" = ~/.cache/python_env
    cache_dir: str = ""

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path.home() / ".cache" / "python_env"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        base = cls()
        lim = Limits()
        limits = Limits(
            **{
                f.name: type(getattr(lim, f.name))(raw)
                for f in fields(Limits)
                if (raw := get(_LIMIT_VARS.get(f.name, ""))) is not None
            }
        )
        slots = int(get("PYTHON_ENV_SLOTS") or 0) or None
        procedural = _flag(get("PYTHON_ENV_PROCEDURAL") or "")
        return cls(
            host=get("HOST") or base.host,
            port=int(get("PORT") or base.port),
            max_concurrent_envs=int(get("MAX_CONCURRENT_ENVS") or base.max_concurrent_envs),
            session_timeout_s=float(get("SESSION_TIMEOUT_S") or base.session_timeout_s),
            web_interface=_flag(get("ENABLE_WEB_INTERFACE") or ""),
            token=get("PYTHON_ENV_TOKEN") or base.token,
            slots=slots,
            limits=limits,
            sandbox_disable=_list(get("PYTHON_ENV_SANDBOX_DISABLE") or ""),
            sandbox_fault=get("PYTHON_ENV_SANDBOX_FAULT") or "",
            runtime_python=get("PYTHON_ENV_RUNTIME_PYTHON") or "",
            kernel_park_s=float(get("PYTHON_ENV_KERNEL_PARK_S") or base.kernel_park_s),
            malloc_arenas=int(get("PYTHON_ENV_MALLOC_ARENAS") or base.malloc_arenas),
            procedural=procedural,
            variants=(
                get("PYTHON_ENV_VARIANTS") or ("all" if procedural else base.variants)
            ).lower(),
            task_paths=_list(get("PYTHON_ENV_TASKS") or "", os.pathsep),
            humaneval=_flag(get("PYTHON_ENV_HUMANEVAL") or ""),
            codeio=_flag(get("PYTHON_ENV_CODEIO") or "1"),
            cache_dir=get("PYTHON_ENV_CACHE_DIR") or _xdg_cache(get("XDG_CACHE_HOME")),
        )


def _xdg_cache(xdg_cache_home: str | None) -> str:
    return str(Path(xdg_cache_home) / "python_env") if xdg_cache_home else ""


# The environment variable behind each sandbox limit an operator may set.
_LIMIT_VARS = {
    "wall_s": "PYTHON_ENV_TIMEOUT_S",
    "cpu_s": "PYTHON_ENV_CPU_S",
    "memory_mb": "PYTHON_ENV_MEMORY_MB",
    "max_output_bytes": "PYTHON_ENV_MAX_OUTPUT_BYTES",
    "disk_mb": "PYTHON_ENV_DISK_MB",
    "cpu_cores": "PYTHON_ENV_CPU_CORES",
}
