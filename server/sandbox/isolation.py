"""The isolation layers: set up once in the zygote, applied in every child before
candidate code runs, each one detected (it may be refused, e.g. in an unprivileged
container) and reported instead of assumed.

Zygote-wide, once:   net_namespace (an empty netns: no interface but a down lo),
                     mount_namespace (tmpfs over /root, /home, /work, /tmp, the repo,
                     ..., with the Python installation bound back read-only and the
                     workdir area read-write; /proc with hidepid=invisible; an
                     empty read-only /dev/shm and /dev/mqueue).
Per child, in order: ipc_namespace (a fresh one: System V IPC and POSIX message
                     queues die with the run; where it is refused, seccomp refuses
                     those calls instead), setsid, file descriptors, scrubbed_env, private_workdir, rlimits,
                     no_new_privs, landlock, uid_drop (per-slot uid: NPROC works, no
                     signalling the server, no reading root's 0600 files), seccomp.
Per child, by the zygote: pid_namespace (unshare(NEWPID) + fork + setns back).
By the parent:       wall_timeout (SIGKILL to the PID-namespace init / process group).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from . import landlock, seccomp
from . import syscalls as sc

ALWAYS = ("rlimits", "setsid", "wall_timeout", "scrubbed_env", "private_workdir")
OPTIONAL = (
    "pid_namespace",
    "ipc_namespace",
    "private_tmpfs",
    "net_namespace",
    "mount_namespace",
    "uid_drop",
    "no_new_privs",
    "seccomp",
    "landlock",
)
LAYERS = ALWAYS + OPTIONAL

HIDE_ROOTS = ("/root", "/home", "/work", "/srv", "/opt", "/var", "/tmp", "/run")
HIDE_FILES = ("/etc/shadow", "/etc/gshadow")
# The host's shared-memory and message-queue directories: shared by every process on
# the host, so an empty read-only tmpfs covers them (a run gets no channel through them).
HIDE_SHARED_DIRS = ("/dev/shm", "/dev/mqueue")
_SYSTEM_RO = (
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc/ld.so.cache",
    "/etc/localtime",
)
_DEVICES_RW = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/random")
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONIOENCODING": "utf-8",
    # one BLAS/OpenMP thread per run: numpy/scipy would start one per host CPU at
    # import, more than the process limit allows on a large host (the import then fails)
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
DEVICES_RW = _DEVICES_RW


@dataclass
class Policy:
    """What the zygote found usable, plus the path lists the child layers need."""

    active: set[str] = field(default_factory=set)
    unavailable: dict[str, str] = field(default_factory=dict)
    read_only: list[str] = field(default_factory=list)
    landlock_abi: int = 0
    bpf: bytes = b""
    pid_ns_fd: int = -1
    _filter: seccomp.Filter | None = None

    def prepare(self) -> None:
        """Build in the zygote what every child would otherwise build for itself."""
        if self.on("seccomp"):
            self._filter = seccomp.Filter(self.bpf)

    def install_seccomp(self) -> None:
        (self._filter or seccomp.Filter(self.bpf)).install()

    def on(self, layer: str) -> bool:
        return layer in self.active

    def to_json(self) -> str:
        return json.dumps(
            {
                "active": sorted(self.active),
                "unavailable": self.unavailable,
                "read_only": self.read_only,
                "landlock_abi": self.landlock_abi,
                "bpf": self.bpf.hex(),
                "pid_ns_fd": self.pid_ns_fd,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Policy:
        d = json.loads(text)
        return cls(
            set(d["active"]),
            d["unavailable"],
            d["read_only"],
            d["landlock_abi"],
            bytes.fromhex(d["bpf"]),
            d["pid_ns_fd"],
        )

    def report(self) -> dict[str, Any]:
        return {
            "active": [x for x in LAYERS if x in self.active],
            "unavailable": dict(self.unavailable),
        }


def python_paths() -> list[str]:
    """Directories the interpreter itself needs to read (prefixes, stdlib, site)."""
    import sysconfig  # setup only: the zygote's serving stage never imports it

    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    paths.update(v for k, v in sysconfig.get_paths().items() if k != "include")
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    real = {os.path.realpath(p) for p in paths if os.path.exists(p)}
    return sorted(real)


def _allow_except(path: str, private: list[str], seen: set[str]) -> list[str]:
    """`path`, or, when a private root lies beneath it, its entries minus that root.

    Works on resolved paths: a Landlock rule binds to the directory a path resolves to,
    so allowing a symlink such as a venv's `lib64 -> lib` would allow all of `lib`.
    """
    path = os.path.realpath(path)
    if path in seen or path in private or not os.path.exists(path):
        return []
    seen.add(path)
    if not any(r.startswith(path + os.sep) for r in private):
        return [path]
    out: list[str] = []
    for entry in os.listdir(path):
        out += _allow_except(os.path.join(path, entry), private, seen)
    return out


def readable_paths(private_roots: list[str]) -> list[str]:
    """Landlock read-only allow-list: system dirs + the Python installation, minus any
    private root (our own package and its task data), wherever and however it is reached."""
    private = [os.path.realpath(r) for r in private_roots]
    seen: set[str] = set()
    out: list[str] = []
    for p in [*python_paths(), *_SYSTEM_RO]:
        out += _allow_except(p, private, seen)
    return out


def _hide(roots: list[str], keeps: list[str], writable: list[str], private: list[str]) -> None:
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    roots = sorted({os.path.realpath(r) for r in roots if os.path.isdir(r)})
    roots = [r for r in roots if not any(r.startswith(o + os.sep) for o in roots)]
    for root in roots:
        under = [k for k in keeps if k.startswith(root + os.sep)]
        if root in keeps:
            continue  # the root is itself needed
        fds = {k: os.open(k, os.O_PATH | os.O_DIRECTORY) for k in under if os.path.isdir(k)}
        sc.mount("tmpfs", root, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "mode=755,size=64k")
        for k, fd in sorted(fds.items()):
            os.makedirs(k, exist_ok=True)
            sc.mount(f"/proc/self/fd/{fd}", k, None, sc.MS_BIND | sc.MS_REC)
            if k not in writable:
                sc.mount(None, k, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY)
            os.close(fd)
        sc.mount(None, root, None, sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV)
    for r in private:  # our package installed inside a kept prefix (site-packages)
        if os.path.isdir(r) and any(r.startswith(k + os.sep) for k in keeps):
            sc.mount("tmpfs", r, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_RDONLY, "size=4k")
    for f in HIDE_FILES:
        if os.path.isfile(f):
            sc.mount("/dev/null", f, None, sc.MS_BIND)
    for d in HIDE_SHARED_DIRS:
        if os.path.isdir(d):
            sc.mount("tmpfs", d, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_RDONLY, "size=4k")
    sc.mount("proc", "/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | 8, "hidepid=invisible")


def _probe(fn: Any) -> str | None:
    """Run fn() in a forked child; None if it returned True, else the reason."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = b""
        try:
            msg = b"" if fn() else b"check failed"
        except BaseException as e:  # noqa: BLE001 - report anything
            msg = f"{type(e).__name__}: {e}".encode()
        os.write(w, msg[:500])
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read()
    os.waitpid(pid, 0)
    return msg.decode(errors="replace") or None


def setup_zygote(
    disabled: set[str],
    private_roots: list[str],
    workbase: str,
    probe_uid: int,
    areas: list[str],
    disk_mb: int,
) -> Policy:
    """Called once in the zygote, before warm-up forks. Never raises."""
    pol = Policy(active=set(ALWAYS))

    def attempt(layer: str, fn: Any) -> None:
        if layer in disabled:
            pol.unavailable[layer] = "disabled by configuration"
            return
        try:
            why = fn()
        except Exception as e:  # noqa: BLE001
            why = f"{type(e).__name__}: {e}"
        if why:
            pol.unavailable[layer] = str(why)
        else:
            pol.active.add(layer)

    attempt("net_namespace", lambda: sc.unshare(sc.CLONE_NEWNET))
    keeps = python_paths() + [os.path.realpath(workbase)]

    def mount_ns() -> None:
        sc.unshare(sc.CLONE_NEWNS)
        _hide(list(HIDE_ROOTS) + private_roots, keeps, [os.path.realpath(workbase)], private_roots)

    attempt("mount_namespace", mount_ns)

    def pid_ns() -> str | None:
        pol.pid_ns_fd = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        sc.unshare(sc.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if os.getpid() == 1 else 1)
        sc.setns(pol.pid_ns_fd, sc.CLONE_NEWPID)
        _, status = os.waitpid(pid, 0)
        return None if status == 0 else "child was not PID 1"

    attempt("pid_namespace", pid_ns)

    def ipc_ns() -> str | None:
        def check() -> bool:
            sc.unshare(sc.CLONE_NEWIPC)
            return True

        return _probe(check)

    attempt("ipc_namespace", ipc_ns)

    def private_tmpfs() -> str | None:
        if not pol.on("mount_namespace"):
            return "needs mount_namespace"
        for area in areas:  # one run at a time per area: the slot's runs' workdirs
            _tmpfs(area, disk_mb, 0o711)
        _tmpfs(SHM, disk_mb, 0o1777)  # the slot's /dev/shm, emptied after every run
        return None

    attempt("private_tmpfs", private_tmpfs)

    import sysconfig

    stdlib = sysconfig.get_paths()["stdlib"]

    def uid_drop() -> str | None:
        def check() -> bool:
            drop_uid(probe_uid)
            os.listdir(stdlib)
            with open(os.path.join(stdlib, "os.py"), "rb"):
                pass
            return True

        return _probe(check)

    attempt("uid_drop", uid_drop)

    def nnp_check() -> bool:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        return True

    attempt("no_new_privs", lambda: _probe(nnp_check))
    nnp = pol.on("no_new_privs")

    def seccomp_layer() -> str | None:
        if not nnp:
            return "needs no_new_privs"
        # Without a private IPC namespace System V IPC and POSIX message queues are
        # host-wide channels between runs: refuse them.
        pol.bpf = seccomp.build_filter(deny_ipc=not pol.on("ipc_namespace"))

        def check() -> bool:
            import socket

            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.install(pol.bpf)
            try:
                socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            except PermissionError:
                return True
            return False

        return _probe(check)

    attempt("seccomp", seccomp_layer)

    def landlock_layer() -> str | None:
        if not nnp:
            return "needs no_new_privs"
        abi = landlock.abi_version()
        if abi < 1:
            return "landlock not supported by this kernel (or disabled at boot)"
        pol.landlock_abi = abi
        pol.read_only = readable_paths(private_roots)

        def check() -> bool:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            landlock.restrict(pol.read_only, [workbase, *_DEVICES_RW], abi)
            os.listdir(stdlib)
            try:
                os.listdir("/proc")
            except PermissionError:
                return True
            return False

        return _probe(check)

    attempt("landlock", landlock_layer)
    return pol


SHM = "/dev/shm"
_TMPFS_INODES = 65536


def _tmpfs(path: str, size_mb: int, mode: int) -> None:
    opts = f"size={int(size_mb)}m,nr_inodes={_TMPFS_INODES},mode={mode:o}"
    sc.mount("tmpfs", path, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, opts)


def mount_private_tmpfs(workdir: str, uid: int | None, size_mb: int) -> None:
    """A kernel's own tmpfs of `size_mb`, private to it and its descendants, holding
    both its working directory and its /dev/shm: one budget for all it writes, counted
    as memory, and gone with the kernel (no files to remove, no channel to a later run)."""
    sc.unshare(sc.CLONE_NEWNS)
    _tmpfs(SHM, size_mb, 0o1777)
    work = os.path.join(SHM, ".work")
    os.mkdir(work, 0o700)
    if uid is not None:
        os.chown(work, uid, uid)
    sc.mount(work, workdir, None, sc.MS_BIND)


def drop_uid(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def set_rlimits(lim: dict[str, Any]) -> None:
    cpu = max(1, int(-(-float(lim["cpu_s"]) // 1)))
    mem = int(lim["memory_mb"]) * 1024 * 1024
    fsize = int(lim["file_size_mb"]) * 1024 * 1024
    for res, val in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (mem, mem)),
        (resource.RLIMIT_FSIZE, (fsize, fsize)),
        (resource.RLIMIT_CORE, (0, 0)),
        (resource.RLIMIT_NOFILE, (int(lim["max_open_files"]),) * 2),
        (resource.RLIMIT_NPROC, (int(lim["max_processes"]),) * 2),
    ):
        resource.setrlimit(res, val)


def base_env() -> None:
    """The zygote's own environment: BASE_ENV only (the server starts it so)."""
    if set(os.environ) - set(BASE_ENV) - {"HOME"}:
        os.environ.clear()
        os.environ.update(BASE_ENV)


def scrub_env(workdir: str) -> None:
    """A child inherits the zygote's (base_env()); it just gets its own HOME."""
    os.environ["HOME"] = os.environ["TMPDIR"] = workdir


def writable(pol: Policy, workdir: str) -> list[str]:
    """What a child may write: its workdir, a few devices and, on its private tmpfs,
    /dev/shm (POSIX semaphores and shared memory: multiprocessing needs them)."""
    return [workdir, *_DEVICES_RW, *([SHM] if pol.on("private_tmpfs") else [])]


def apply_child(
    pol: Policy,
    *,
    own_tmpfs: bool = False,
    workdir: str,
    uid: int | None,
    limits: dict[str, Any],
    dumpable: bool = True,
    ruleset_fd: int | None = None,
    spare: bool = False,
) -> None:
    """Confine the calling (freshly forked) child. Order matters; see module doc.
    `ruleset_fd`: a Landlock ruleset the zygote pre-built for this workdir's parent.
    `spare`: a child set up ahead of its run: it makes its own workdir (root's, 0700:
    nothing of the slot can reach it) and stops before the uid drop; `hand_over()`
    finishes once its code has come."""
    if pol.on("ipc_namespace"):  # SysV IPC and POSIX queues die with the run
        sc.unshare(sc.CLONE_NEWIPC)
    if own_tmpfs and pol.on("private_tmpfs"):
        mount_private_tmpfs(workdir, uid if pol.on("uid_drop") else None, limits["disk_mb"])
    if spare:
        os.mkdir(workdir, 0o700)
    os.setsid()
    os.chdir(workdir)
    scrub_env(workdir)
    set_rlimits(limits)
    if pol.on("no_new_privs"):
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    if pol.on("landlock"):
        if ruleset_fd is not None:
            landlock.restrict_self(ruleset_fd)
            os.close(ruleset_fd)
        else:
            landlock.restrict(pol.read_only, writable(pol, workdir), pol.landlock_abi)
    if spare:  # seccomp refuses none of what hand_over() does
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if pol.on("seccomp"):
            pol.install_seccomp()
        return
    if uid is not None and pol.on("uid_drop"):
        drop_uid(uid)
    # credential changes reset these two; set them afterwards
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    sc.prctl(sc.PR_SET_DUMPABLE, 1 if dumpable else 0)
    if pol.on("seccomp"):
        pol.install_seccomp()


def hand_over(pol: Policy, uid: int | None, dumpable: bool = True) -> None:
    """The rest of apply_child(spare=True), once the spare's code has come: its workdir
    becomes the run's uid's, then the uid drop (which resets the two prctls)."""
    if uid is not None and pol.on("uid_drop"):
        os.chown(".", uid, uid)
        drop_uid(uid)
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    sc.prctl(sc.PR_SET_DUMPABLE, 1 if dumpable else 0)
