"""What kernels (kernel.py) and graded runs (cases.py) need of the Sandbox that hosts
them: slots, uids, working directories, budgets and spawning. A Protocol, so those
modules depend on this small contract and the engine (which composes them) on them:
no import cycle."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from .budget import TreeBudget
from .records import Limits, RunResult
from .spawn import Child, ZygoteHandle
from .treebudget import RunGuard


class Host(Protocol):
    def layer(self, name: str) -> bool: ...

    # slots: one run at a time each, its budget, its uids and working directories
    def slot(self) -> AbstractContextManager[int]: ...

    def budgeted(self, slot: int, limits: Limits) -> AbstractContextManager[RunGuard | None]: ...

    def uid_for(self, slot: int, role: int) -> int | None: ...

    def workdir(self, slot: int, role: int, uid: int | None) -> AbstractContextManager[str]: ...

    def spawn(
        self,
        slot: int,
        kind: str,
        payload: dict[str, Any],
        *,
        workdir: str,
        uid: int | None,
        limits: Limits,
        stdin: str = "",
        requests: bool = False,
        dumpable: bool = True,
        on_line: Callable[[Child, dict[str, Any] | None], None] | None = None,
    ) -> Child: ...

    def run_with_info(
        self,
        code: str,
        *,
        stdin: str = "",
        files: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> tuple[RunResult, dict[str, Any]]: ...

    # kernels: outside the slots, a uid, a directory and a budget of their own
    def kernel_zygote(self) -> ZygoteHandle: ...

    def kernel_uid(self) -> int | None: ...

    def kernel_budget(self, limits: Limits, workdir: str | None = None) -> TreeBudget | None: ...

    def make_workdir(self, uid: int | None) -> str: ...
