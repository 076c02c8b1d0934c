"""python_env's real server with a synthetic lazy source added to its bank, for
`bench_bank.py`: served by `run_server(module="bank_server")` with this folder on
PYTHONPATH.

The source is what a manifest-backed source of thousands of tasks looks like to the
bank: a small index (id, family, difficulty, title, base_id and a content hash per
task) read at start, and each task's full specification in a JSONL file, read and
checked (`build_task`: every code field parsed) only when the task is first used.
`bench_bank.py` writes both files to `SOURCE_DIR` before it starts the server.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from python_env.server import app as server_app
from python_env.server import runtime
from python_env.server.tasks.bank import TaskBank, TaskEntry
from python_env.server.tasks.model import Task
from python_env.server.tasks.spec import build_task

SOURCE_DIR = Path(tempfile.gettempdir()) / "python_env_bench_bank"
INDEX = SOURCE_DIR / "index.json"
SPECS = SOURCE_DIR / "tasks.jsonl"


def _loader(offset: int) -> Callable[[], Task]:
    def load() -> Task:
        with SPECS.open("rb") as fh:
            fh.seek(offset)
            return build_task(json.loads(fh.readline()), source="jsonl")

    return load


def synthetic_entries() -> list[TaskEntry]:
    rows: list[dict[str, Any]] = json.loads(INDEX.read_text(encoding="utf-8"))
    return [
        TaskEntry(
            id=r["id"],
            family=r["family"],
            difficulty=r["difficulty"],
            title=r["title"],
            source="jsonl",
            base_id=r["base_id"],
            load=_loader(r["offset"]),
            grading_hash=r["hash"],
        )
        for r in rows
    ]


_served_bank = runtime.served_bank


def served_bank(settings: Any = None) -> TaskBank:
    bank = _served_bank(settings)
    grown = TaskBank(bank.entries())
    grown.extend(synthetic_entries())
    grown.split_sizes()  # as default_bank does: list and count before serving
    return grown


runtime.served_bank = served_bank


if __name__ == "__main__":
    server_app.main()
