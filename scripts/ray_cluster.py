"""Run a command next to a local two-node Ray cluster that stays on loopback, then end
exactly the processes it started.

The cluster (a head and one node joined with `ray start --address`) and the command run
in a private network namespace (`unshare --net`): loopback is its only interface, so
Ray advertises 127.0.0.1 and every byte stays on this machine. Not a PID namespace: a
python_env server there would see the machine's other servers' pids as dead and sweep
their sandbox cgroups and roots. Nor `ray stop`, which ends every Ray process of the
machine by name: this process is a child subreaper instead, so the Ray daemons that
`ray start` detaches stay its descendants, and those are what it ends afterwards.

Usage (as root, from .venv-ray): python scripts/ray_cluster.py COMMAND [ARGS...]
The command gets PYTHON_ENV_RAY_ADDRESS (the head, 127.0.0.1:26379).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time

from python_env.server.launcher import descendants

PR_SET_CHILD_SUBREAPER = 36
ADDRESS = "127.0.0.1:26379"
CLUSTER = """
set -euo pipefail
ip link set lo up
ray start --head --port=26379 --num-cpus=1 --resources='{"head": 1}' \
  --include-dashboard=false --temp-dir="$RAY_TIER_TMP" >"$RAY_TIER_TMP/head.log" 2>&1 \
  || { cat "$RAY_TIER_TMP/head.log" >&2; exit 1; }
ray start --address=127.0.0.1:26379 --num-cpus=1 --resources='{"worker": 1}' \
  >"$RAY_TIER_TMP/worker.log" 2>&1 || { cat "$RAY_TIER_TMP/worker.log" >&2; exit 1; }
"$@"
"""


def _end_descendants(timeout_s: float = 30.0) -> None:
    """SIGTERM every descendant, SIGKILL what is left after `timeout_s`; reap them."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in descendants(os.getpid()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            if not descendants(os.getpid()):
                return
            time.sleep(0.2)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    with tempfile.TemporaryDirectory(prefix="ray-tier.") as tmp:
        env = {
            **os.environ,
            "RAY_TIER_TMP": tmp,
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHON_ENV_RAY_ADDRESS": ADDRESS,
        }
        try:
            cmd = ["unshare", "--net", "bash", "-c", CLUSTER, "ray-cluster", *argv]
            return subprocess.run(cmd, env=env).returncode
        finally:
            _end_descendants()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
