"""Cap glibc's malloc arenas at start (`PYTHON_ENV_MALLOC_ARENAS`, default 2).

OpenEnv runs each WebSocket session's steps on a thread of its own, and glibc gives
threads arenas of their own (up to 8 per core). Each arena keeps the memory freed in it
for reuse, so with sessions coming and going the server's free-but-kept memory grows
toward a high-water mark per arena: in a soak on this 2-core machine the server's heap in
use stayed flat (37.5 MB) while its free memory grew from 10 to 32 MB in 11 minutes.
Two arenas keep that to a few MB (benchmarks/README.md, the soak). Python allocates under
the GIL, so fewer arenas cost no contention worth measuring. Elsewhere (musl, macOS)
this does nothing.
"""

from __future__ import annotations

import ctypes

M_ARENA_MAX = -8  # glibc's malloc.h


def cap_arenas(n: int) -> bool:
    """At most `n` malloc arenas from now on (0: leave glibc's default). True if applied.
    Call it before the server starts its threads: glibc fixes the limit once it has made
    more than eight arenas."""
    if n <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):  # no mallopt there (not glibc or musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, n))
