"""Sandboxed CPython execution for untrusted candidate code (stdlib only, no OpenEnv).

Zygote. The server is multi-threaded and must not fork, so each slot has a warm
zygote process (spawn.py starts `zygote.py`): stdlib and the harness pre-imported, the
compiler warmed, the GC frozen. A run sends a header plus fds (payload memfd, stdin,
stdout/stderr/result pipes) over a SOCK_SEQPACKET socket; the zygote forks, the child
isolates itself and runs the harness, and the parent reads the pipes directly (capped)
and learns exit status + rusage from the zygote. A dead zygote is restarted on the
next request. Kernels (kernel.py) are long-lived children fed cells over a socket.

Isolation layers, in the order applied (isolation.py; each detected, not assumed):
  zygote, once: net_namespace (empty netns: no TCP/UDP at all, even 127.0.0.1),
      mount_namespace (tmpfs over /root, /home, /work, /tmp, the repo...; the Python
      install and the workdir area bound back; /etc/shadow masked; /proc hidepid)
  per child:  pid_namespace (child is PID 1: daemons die with it, the server is
      invisible), setsid (own process group), scrubbed_env (minimal PATH/HOME/LANG,
      fixed PYTHONHASHSEED), private_workdir (fresh 0700 dir, removed afterwards),
      rlimits (CPU, AS, FSIZE, NOFILE, NPROC, CORE=0), no_new_privs, landlock (read only
      the Python install, write only the workdir; no TCP; no signals/abstract sockets
      outside), uid_drop (a per-slot uid: NPROC works, no signalling the server, no
      reading root-only files), seccomp (no non-AF_UNIX sockets, ptrace, mount,
      unshare/setns, bpf, keyctl, io_uring, ...)
  parent:     wall_timeout (SIGKILL of the child; with pid_namespace its whole tree),
      output caps (stop keeping bytes at the cap, kill when it keeps flooding).

Verdict protocol (cases.py): candidate outputs leave the child only as JSON plain data
(`to_plain`, exact types; never pickle) on a dedicated result fd; expected outputs
never enter the child; missing/malformed/conflicting answers count as failures.
`run_assertions` runs the tests in a second child that reaches the candidate only
through call proxies relayed by the parent, so the candidate cannot touch the asserts.

Degradation: in an unprivileged container the namespaces and uid_drop are usually
refused; seccomp and landlock often still work; rlimits, setsid, timeouts, output
caps and the verdict protocol always do. `Sandbox(...).isolation` reports what is
active and why the rest is not; `Sandbox(disable=...)` turns layers off on purpose
(the server's PYTHON_ENV_SANDBOX_DISABLE setting).
"""

from .engine import Sandbox
from .kernel import Kernel
from .plain import to_plain
from .records import (
    AssertionOutcome,
    AssertionResult,
    CaseOutcome,
    CaseSpec,
    CasesResult,
    IsolationReport,
    Limits,
    RunResult,
    SandboxError,
)

__all__ = [
    "Sandbox",
    "Limits",
    "RunResult",
    "Kernel",
    "CaseSpec",
    "CaseOutcome",
    "CasesResult",
    "AssertionOutcome",
    "AssertionResult",
    "IsolationReport",
    "SandboxError",
    "to_plain",
]
