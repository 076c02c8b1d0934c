"""Server settings, read once from environment variables (the one place for them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .sandbox import Limits


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default).strip() or default


@dataclass(frozen=True)
class Settings:
    """Everything an operator can tune; see the README's configuration table."""

    host: str = "0.0.0.0"
    port: int = 8000
    max_concurrent_envs: int = 64
    session_timeout_s: float = 600.0
    slots: int | None = None
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls) -> Settings:
        slots = _env("PYTHON_ENV_SLOTS", "0")
        return cls(
            host=_env("HOST", "0.0.0.0"),
            port=int(_env("PORT", "8000")),
            max_concurrent_envs=int(_env("MAX_CONCURRENT_ENVS", "64")),
            session_timeout_s=float(_env("SESSION_TIMEOUT_S", "600")),
            slots=int(slots) or None,
            limits=Limits(
                wall_s=float(_env("PYTHON_ENV_TIMEOUT_S", "10")),
                cpu_s=float(_env("PYTHON_ENV_CPU_S", "10")),
                memory_mb=int(_env("PYTHON_ENV_MEMORY_MB", "1024")),
                max_output_bytes=int(_env("PYTHON_ENV_MAX_OUTPUT_BYTES", "65536")),
            ),
        )
