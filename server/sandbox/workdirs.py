"""Working-directory plumbing shared by one-shot runs, graded runs and kernels: the
files a run asks for, checked before they reach a child, and removal of whatever a run
left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping


def listdir(path: str) -> list[str]:
    """The entries of `path`; none if it is gone."""
    try:
        return os.listdir(path)
    except OSError:
        return []


def check_files(files: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, text in (files or {}).items():
        norm = os.path.normpath(name)
        if os.path.isabs(norm) or norm.startswith("..") or not norm or norm == ".":
            raise ValueError(f"file names must be relative paths inside the workdir: {name!r}")
        out[norm] = str(text)
    return out


def remove_tree(path: str) -> None:
    """Delete a run's directory whatever the run left in it; never raises.

    `shutil.rmtree` recurses, so a run that nests 1 200 directories defeats it (and the
    directory would survive as a cache for later runs in the slot); `rm -rf` walks
    iteratively.
    """
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except (OSError, RecursionError):
        subprocess.run(["rm", "-rf", "--", path], stdin=subprocess.DEVNULL, check=False)
