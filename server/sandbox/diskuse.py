"""What a run's files take on disk, for hosts where its workdir cannot be a size-limited
tmpfs (no mount namespace: Docker's default runtime, a Space as uid 1000). There
RLIMIT_FSIZE bounds one file only; the tree budget's watcher (`proctree`) polls this
and kills a tree whose files go over its disk budget.

A file counts what the filesystem allocated for it (`st_blocks`, so a sparse file
counts only what it really holds, and a hard link once), plus `ENTRY_BYTES` per entry
(inode and directory entry: a million empty files fill a disk's inode table). The walk
stops as soon as the total passes the budget, so a tree of many files costs a poll at
most budget / ENTRY_BYTES entries.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

ENTRY_BYTES = 1024


def usage(paths: Iterable[str], stop_at: int | None = None) -> int:
    """Bytes used under `paths` (missing paths count 0); returns early, with a total over
    `stop_at`, once it passes it. Never follows symlinks."""
    total = 0
    seen: set[tuple[int, int]] = set()
    todo = [p for p in paths if os.path.isdir(p)]
    while todo:
        try:
            entries = os.scandir(todo.pop())
        except OSError:  # removed meanwhile, or unreadable
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += ENTRY_BYTES
                if (st.st_dev, st.st_ino) not in seen:
                    if st.st_nlink > 1:
                        seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
                if stat.S_ISDIR(st.st_mode):
                    todo.append(entry.path)
                if stop_at is not None and total > stop_at:
                    return total
    return total
