"""The zygote: a warm, single-threaded interpreter that forks one child per run.

Started once per slot by the server as a separate process (the server itself is
multi-threaded and must never fork). It sets up the zygote-wide isolation layers,
pre-imports the harness and common stdlib modules, warms the compiler, freezes the
GC, then serves spawn requests on a SOCK_SEQPACKET control socket:

  request  (header JSON + fds [reply socket, payload memfd, stdin, stdout, stderr,
            results(, requests)]) -> fork -> child isolates itself and runs the harness
  spare    (kind "spare": fds [reply socket, stdin, stdout, stderr, results, code
            socket]) -> fork -> child isolates itself, then waits for its code on the
            code socket (harness.await_code): the fork and the setup leave the run's path
  reply    {"pid": n} at once; {"exit": wait_status, "utime": s, "stime": s} when it ends

The parent reads stdio/results directly from the pipes it created, so the zygote does
no I/O per byte. Children get PDEATHSIG=SIGKILL, so a dead zygote leaves no orphans;
EOF on the control socket (server gone) kills every child and exits.
"""

from __future__ import annotations

import _signal
import fcntl
import gc
import json
import os
import select
import signal
import socket
import sys
from typing import Any

from . import harness, isolation, landlock
from . import syscalls as sc

WARM_IMPORTS = (
    "math",
    "re",
    "collections",
    "itertools",
    "functools",
    "heapq",
    "bisect",
    "string",
    "random",
    "typing",
    "dataclasses",
    "fractions",
    "decimal",
    "statistics",
    "operator",
    "copy",
    "datetime",
    "enum",
    "abc",
    "textwrap",
    "array",
    "struct",
    "unittest",
    "contextlib",
    "io",
    "json",
    "time",
    # stdlib only: benchmarks/bench_warm_imports.py measured numpy at +21 % CPU per run
)
WARM_CODE = """
import math, collections
def f(xs: list[int]) -> dict:
    c = collections.Counter(x % 7 for x in xs)
    return {str(k): math.sqrt(v) for k, v in sorted(c.items())}
out = f(list(range(100)))
print(len(out), file=open('/dev/null', 'w'))
"""


class Zygote:
    def __init__(self, ctl: socket.socket, pol: isolation.Policy, fault_fork: bool = False) -> None:
        self.ctl, self.pol = ctl, pol
        self.fault_fork = fault_fork  # tests only: every fork fails as on a full host
        self.poll = select.epoll()
        self.pidns = pol.on("pid_namespace")
        self.children: dict[int, tuple[int, int, dict[str, Any]]] = {}
        self.rulesets: dict[str, int] = {}

    def ruleset(self, header: dict[str, Any]) -> int | None:
        """Landlock ruleset for the workdir's parent dir (one per slot and role), built
        once; the child then needs a single restrict_self()."""
        if not self.pol.on("landlock") or header["kind"] == "kernel":
            return None
        area = os.path.dirname(header["workdir"])
        if area not in self.rulesets:
            self.rulesets[area] = landlock.build(
                self.pol.read_only, isolation.writable(self.pol, area), self.pol.landlock_abi
            )
            os.set_inheritable(self.rulesets[area], False)
        return self.rulesets[area]

    def serve(self) -> None:
        """One epoll over the control socket and a pidfd per child: the fewer Python
        objects the zygote touches per run, the fewer pages it copies on write while
        its children share them."""
        ctl = self.ctl.fileno()
        self.poll.register(ctl, select.EPOLLIN)
        while True:
            for fd, _ in self.poll.poll():
                if fd == ctl:
                    self._on_request()
                else:
                    self._on_exit(fd)

    def _on_request(self) -> None:
        try:
            msg, fds, _, _ = socket.recv_fds(self.ctl, 65536, 16)
        except OSError:
            msg, fds = b"", []
        if not msg:
            self._shutdown()
        try:
            header = json.loads(msg)
            reply = fds[0]
        except Exception:  # noqa: BLE001 - malformed request from the server: drop it
            for fd in fds:
                os.close(fd)
            return
        try:
            rfd = self.ruleset(header)
        except OSError:
            rfd = None
        pid, why = self._fork(header, fds[1:], rfd)
        for fd in fds[1:]:
            os.close(fd)
        if pid < 0:  # the host refused the fork: say so (the zygote itself is fine)
            _send(reply, json.dumps({"error": why}).encode())
            os.close(reply)
            return
        _send(reply, b'{"pid": %d}' % pid)
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, reply, header)
        self.poll.register(pidfd, select.EPOLLIN)

    def _fork(self, header: dict[str, Any], fds: list[int], rfd: int | None) -> tuple[int, str]:
        pidns = self.pidns
        why = ""
        try:
            if pidns:
                sc.unshare(sc.CLONE_NEWPID)
            if self.fault_fork:
                raise BlockingIOError(11, "injected fault: fork refused")
            pid = os.fork()
        except OSError as e:
            pid, why = -1, f"fork failed: {e}"
        if pid == 0:
            self._child(header, fds, rfd)  # never returns
        if pidns:
            sc.setns(self.pol.pid_ns_fd, sc.CLONE_NEWPID)
        return pid, why

    def _child(self, header: dict[str, Any], fds: list[int], rfd: int | None) -> None:
        code = 70
        try:
            for procs in header.get("cgroup") or ():  # its own group (as cgroups.join()),
                _write(procs, b"0")  # before it runs or forks anything
            _write(_OOM_ADJ, b"0")
            if not self.pol.on("pid_namespace"):  # orphans stay in the tree (proc_watch)
                _subreaper()
            kind = header["kind"]
            spare = kind == "spare"
            if kind == "kernel":
                targets = [3]
                payload: dict[str, Any] = {}
            elif spare:  # stdio, results and the socket its code will come on
                targets = [0, 1, 2, 3, 4]
                payload = {}
            else:
                payload = json.loads(os.pread(fds[0], os.fstat(fds[0]).st_size, 0))
                fds = fds[1:]
                targets = [0, 1, 2, 3, 4][: len(fds)]
            if rfd is not None:
                fds.append(rfd)
                targets.append(max(targets) + 1)
                rfd = targets[-1]
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
            for target, fd in zip(targets, high, strict=True):
                os.dup2(fd, target)
            sc.close_fds_from(max(targets) + 1)
            # _signal: signal.signal() converts to and from enums in Python code
            _signal.signal(_signal.SIGTERM, _signal.SIG_DFL)
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
            isolation.apply_child(
                self.pol,
                own_tmpfs=kind == "kernel",
                workdir=header["workdir"],
                uid=header.get("uid"),
                limits=header["limits"],
                dumpable=header.get("dumpable", True),
                ruleset_fd=rfd,
                spare=spare,
            )
            if spare:
                payload = harness.await_code(4)
                isolation.hand_over(self.pol, header.get("uid"), header.get("dumpable", True))
                kind = "run"
            gc.enable()
            if kind == "kernel":
                harness.kernel_loop(3)
            else:
                harness.KINDS[kind](payload)
            code = 0
        except BaseException as e:  # noqa: BLE001 - engine failure inside the child
            try:
                os.write(2, f"sandbox: child setup failed: {type(e).__name__}: {e}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)

    def _on_exit(self, pidfd: int) -> None:
        pid, reply, header = self.children.pop(pidfd)
        self.poll.unregister(pidfd)
        os.close(pidfd)
        _, status, ru = os.wait4(pid, 0)
        if not self.pidns:
            self._sweep(pid, header)
        _send(
            reply,
            b'{"exit": %d, "utime": %r, "stime": %r, "minflt": %d}'
            % (status, ru.ru_utime, ru.ru_stime, ru.ru_minflt),
        )
        os.close(reply)

    def _sweep(self, pid: int, header: dict[str, Any]) -> None:
        """Without a PID namespace: kill what is left of the run (its process group, the
        orphans it left, which came back to this subreaper, and with a private uid every
        process of that uid)."""
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        from . import proctree  # only without a PID namespace (it imports threading)

        ours = {p for p, _, _ in self.children.values()}
        strays = [p for p in proctree.children(os.getpid()) if p not in ours]  # adopted
        for orphan in strays:
            try:
                os.kill(orphan, signal.SIGKILL)
            except OSError:
                pass
        for orphan in strays:  # reaped, or each stays a zombie of this zygote for good
            try:
                os.waitpid(orphan, 0)
            except ChildProcessError:
                pass
        uid = header.get("uid")
        if uid is None or not self.pol.on("uid_drop") or header["kind"] == "kernel":
            return
        killer = os.fork()
        if killer == 0:
            try:
                isolation.drop_uid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(killer, 0)

    def _shutdown(self) -> None:
        for pidfd in list(self.children):
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)


_OOM_ADJ = "/proc/self/oom_score_adj"


def _oom_score_adj(value: int) -> None:
    """The zygote shares its slot's memory group with the runs: -1000, never the OOM
    killer's victim; its children reset theirs to 0."""
    try:
        _write(_OOM_ADJ, str(value).encode())
    except OSError:
        pass


def _send(sock: int, data: bytes) -> None:
    """One message on a SOCK_SEQPACKET reply socket; a server gone away is no error."""
    try:
        os.write(sock, data)
    except OSError:
        pass


def _write(path: str, data: bytes) -> None:
    """One write to a /proc or /sys file, with no file object (a child's every Python
    object costs it copy-on-write faults)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _subreaper() -> None:
    """proctree.make_subreaper(), without importing proctree (and threading) here."""
    sc.prctl(PR_SET_CHILD_SUBREAPER, 1)


PR_SET_CHILD_SUBREAPER = 36


def warm_up() -> None:
    for name in WARM_IMPORTS:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a module this interpreter lacks
            pass
    ns: dict[str, Any] = {"__name__": "__warm__"}
    exec(compile(WARM_CODE, "<warm>", "exec"), ns)
    harness.dumps(harness.to_plain({"a": [1, 2.5, None, (3,)], "b": {1, 2}}))
    harness.decode(harness.encode((1, [2], {"x": {3}})))
    gc.collect()
    gc.freeze()


def main(argv: list[str]) -> None:
    """Two stages in one process. Stage 1 (argv: ctl fd, options) probes and sets up the
    zygote-wide layers, then execs stage 2 (argv + the policy found), which keeps the
    namespaces, mounts and fds but none of the setup's memory (sysconfig, probes,
    garbage): every fork copies, and every child tears down, ~2.5 MB less."""
    ctl = socket.socket(fileno=int(argv[0]))
    opts = json.loads(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(argv) == 2:
        # this package's directory is hidden by the mount namespace: stage 2 imports it
        # through an fd opened now
        pkg = os.open(sys.argv[1], os.O_PATH | os.O_DIRECTORY)
        os.set_inheritable(pkg, True)
        pol = isolation.setup_zygote(
            set(opts["disabled"]),
            opts["private_roots"],
            opts["workbase"],
            opts["probe_uid"],
            opts["areas"],
            opts["disk_mb"],
        )
        os.set_inheritable(ctl.fileno(), True)
        if pol.pid_ns_fd >= 0:
            os.set_inheritable(pol.pid_ns_fd, True)
        exe, here = sys.executable, f"/proc/self/fd/{pkg}"
        os.execv(exe, [exe, "-s", "-P", "-c", BOOTSTRAP, here, sys.argv[2], *argv, pol.to_json()])
    os.set_inheritable(ctl.fileno(), False)
    pol = isolation.Policy.from_json(argv[2])
    isolation.base_env()  # once here: a child then only sets its HOME and TMPDIR
    pol.prepare()
    if pol.pid_ns_fd >= 0:
        os.set_inheritable(pol.pid_ns_fd, False)
    warm_up()
    _oom_score_adj(-1000)
    if not pol.on("pid_namespace"):  # a finished run's orphans come back here: see _sweep
        _subreaper()
    ctl.send(json.dumps({"report": pol.report(), "pid": os.getpid()}).encode())
    Zygote(ctl, pol, opts.get("fault") == "fork").serve()


BOOTSTRAP = """
import sys, types
d, n = sys.argv[1], sys.argv[2]
m = types.ModuleType(n); m.__path__ = [d]; m.__package__ = n
sys.modules[n] = m
import importlib
importlib.import_module(n + ".zygote").main(sys.argv[3:])
"""

if __name__ == "__main__":
    main(sys.argv[1:])
