"""Raise the server's open-file limit at start: each WebSocket session holds a socket and
each session kernel a few descriptors (control and exit sockets, a pidfd, its budget's
event files), so thousands of sessions need far more than the common soft limit of
1,024. The soft limit goes up to the hard one; as root the hard one goes up too (to
`TARGET`, within the kernel's `fs.nr_open`)."""

from __future__ import annotations

import resource

TARGET = 1 << 20


def raise_limit() -> int:
    """Raise RLIMIT_NOFILE as far as allowed; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = TARGET if hard == resource.RLIM_INFINITY else max(hard, TARGET)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            want = min(want, int(f.read()))
    except (OSError, ValueError):
        want = hard
    for new_soft, new_hard in ((want, max(want, hard)), (hard, hard)):
        if new_soft <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, new_hard))
            break
        except (OSError, ValueError):  # not root: only the soft limit may move
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
