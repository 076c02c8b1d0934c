"""A per-machine, content-addressed JSON store for things that are costly to compute and
never change for the same inputs: expected outputs of a task's hidden cases, the inputs
a dataset's generator draws for fixed seeds.

It lives outside the repository (`Settings.cache_path`: `PYTHON_ENV_CACHE_DIR`, else
`$XDG_CACHE_HOME/python_env`, else `~/.cache/python_env`). A key is a hash of
everything that determines the value (`content_key(...)`), so a changed task, seed or
runtime gets a new key and never reads a stale entry; nothing is ever invalidated.

The store is an optimisation, never a source of truth: an entry that is missing,
truncated, corrupt or unreadable reads as missing (the caller recomputes it), and a
store that cannot be written to loses the write, not the result. Writes go to a
temporary file in the same directory, then `os.replace`, so a reader sees a whole entry
or none, even with several server processes sharing the directory. The directory is
private to its user (0700, entries 0600): it holds hidden expected outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1
"""Bumped when an entry's layout changes; part of every key."""

_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_KEY = re.compile(r"[0-9a-f]{64}")


def content_key(*parts: Any) -> str:
    """The sha256 of `parts` as canonical JSON (sorted keys, no whitespace): pass every
    input the value depends on (source code, seeds, runtime version...)."""
    blob = json.dumps([FORMAT, *parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Store:
    """JSON values by (namespace, key) under one directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, namespace: str, key: str) -> Path:
        if not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"bad cache namespace {namespace!r}: [a-z0-9_.-], up to 64")
        if not _KEY.fullmatch(key):
            raise ValueError(f"bad cache key {key!r}: expected a sha256 hex digest")
        return self.root / namespace / key[:2] / f"{key}.json"

    def get(self, namespace: str, key: str) -> Any | None:
        """The stored value, or None when there is none (or it cannot be read whole)."""
        path = self.path(namespace, key)
        try:
            entry = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("cache entry %s unreadable, ignored: %s", path, exc)
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
            log.warning("cache entry %s malformed, ignored", path)
            return None
        return entry["value"]

    def put(self, namespace: str, key: str, value: Any) -> bool:
        """Store `value` atomically; False (logged) if it could not be written. The
        value reads back as JSON does (tuples as lists, NaN and infinities kept); one
        that is not JSON data is the caller's bug (TypeError)."""
        path = self.path(namespace, key)
        blob = json.dumps({"key": key, "value": value}).encode()
        try:
            for directory in (self.root, path.parent.parent, path.parent):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("cache entry %s not written: %s", path, exc)
            return False
        return True
