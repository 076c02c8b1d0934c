"""Export a split of the served bank for trainers (TRL, verl, SkyRL), as JSONL or a
`datasets.Dataset`:

    python -m python_env.server.export --split train --out train.jsonl

One row per task, in the server's order for that split (row i is `reset(split=...,
index=i)`): `task_id`; `prompt`, the conversation a model starts from (the evaluation
runner's and the TRL adapter's system prompt and task text, `eval/prompts.py`); and what
trainers filter on: `family`, `difficulty`, `source`, `split`, `base_id` (the source a
variant derives from, else null), `title`, `max_steps`. No hidden data: everything in
a row is what `reset` shows. The bank is the one a server with the same settings
(environment variables) serves, so the ids resolve against that server.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from ..models import DIFFICULTIES, FAMILIES
from .tasks.bank import TaskBank, UnknownSplitError

COLUMNS = (
    "task_id",
    "prompt",
    "family",
    "difficulty",
    "source",
    "split",
    "base_id",
    "title",
    "max_steps",
)


def served() -> TaskBank:
    """The bank a server started with this process's settings serves."""
    from .runtime import served_bank

    return served_bank()


def rows(
    bank: TaskBank | None = None,
    split: str = "train",
    *,
    family: str | None = None,
    difficulty: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The rows of `split` (any name `/python_env/splits` lists), optionally filtered."""
    from ..eval.prompts import SYSTEM_PROMPT, render_task

    bank = bank if bank is not None else served()
    for summary in bank.query(split=split, family=family, difficulty=difficulty):
        info = bank.get(summary["id"]).info()
        yield {
            "task_id": info.task_id,
            "prompt": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": render_task(info)},
            ],
            "family": info.family,
            "difficulty": info.difficulty,
            "source": summary["source"],
            "split": summary["split"],
            "base_id": summary["base_id"],
            "title": info.title,
            "max_steps": info.max_steps,
        }


def write_jsonl(out: IO[str], records: Iterator[dict[str, Any]]) -> int:
    """Write one JSON object per line; return how many."""
    n = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        n += 1
    return n


def to_dataset(
    bank: TaskBank | None = None,
    split: str = "train",
    *,
    family: str | None = None,
    difficulty: str | None = None,
) -> Any:
    """The rows as a `datasets.Dataset` (needs the `datasets` package: it is not one of
    python_env's dependencies; `pip install datasets`)."""
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "to_dataset needs the `datasets` package (pip install datasets)"
        ) from None
    records = list(rows(bank, split, family=family, difficulty=difficulty))
    features = datasets.Features(
        {
            "task_id": datasets.Value("string"),
            "prompt": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "family": datasets.Value("string"),
            "difficulty": datasets.Value("string"),
            "source": datasets.Value("string"),
            "split": datasets.Value("string"),
            "base_id": datasets.Value("string"),
            "title": datasets.Value("string"),
            "max_steps": datasets.Value("int64"),
        }
    )
    return datasets.Dataset.from_list(records, features=features)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m python_env.server.export",
        description="Write a split of the served task bank as JSONL, one task per line.",
    )
    parser.add_argument(
        "--split", default="train", help="train, validation, test, all, or a family"
    )
    parser.add_argument("--family", choices=FAMILIES, help="only this family")
    parser.add_argument("--difficulty", choices=DIFFICULTIES, help="only this difficulty")
    parser.add_argument("--out", default="-", help="output file (default: stdout)")
    args = parser.parse_args(argv)
    bank = served()
    try:
        bank.query(split=args.split)
    except UnknownSplitError as exc:
        parser.error(str(exc))
    records = rows(bank, args.split, family=args.family, difficulty=args.difficulty)
    if args.out == "-":
        n = write_jsonl(sys.stdout, records)
    else:
        path = Path(args.out)
        tmp = path.with_name(path.name + ".part")
        with tmp.open("w", encoding="utf-8") as fh:
            n = write_jsonl(fh, records)
        tmp.replace(path)  # never a half-written file under the final name
    print(f"wrote {n} tasks of split {args.split!r} to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
