"""A seccomp-BPF syscall filter built by hand (no libseccomp), installed via prctl.

Blocks what a test program never needs and an escape usually does: kill(-1), socket()
of every family (all network, even without a network namespace; and pathname unix
sockets, which Landlock does not mediate and which would let a session's kernel serve
another run; socketpair() stays allowed), namespace and
mount manipulation, ptrace and cross-process memory access, kernel keyrings, bpf,
io_uring (which bypasses seccomp), module loading, perf, kexec, reboot; and, where a
run has no IPC namespace of its own, System V IPC and POSIX message queues. Blocked calls
fail with EPERM (clone3 with ENOSYS, so libc falls back to clone, whose flags we can
inspect). Syscalls of another ABI (x32, 32-bit compat) are refused outright.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from . import syscalls as sc

_ARCH = {  # machine -> (AUDIT_ARCH, {always refused: nr}, {IPC calls: nr})
    "x86_64": (
        0xC000003E,
        dict(
            socket=41,
            clone=56,
            kill=62,
            clone3=435,
            ptrace=101,
            mount=165,
            umount2=166,
            pivot_root=155,
            chroot=161,
            unshare=272,
            setns=308,
            bpf=321,
            keyctl=250,
            add_key=248,
            request_key=249,
            io_uring_setup=425,
            io_uring_enter=426,
            io_uring_register=427,
            perf_event_open=298,
            kexec_load=246,
            kexec_file_load=320,
            init_module=175,
            finit_module=313,
            delete_module=176,
            reboot=169,
            swapon=167,
            swapoff=168,
            process_vm_readv=310,
            process_vm_writev=311,
            userfaultfd=323,
            open_by_handle_at=304,
            name_to_handle_at=303,
            acct=163,
            settimeofday=164,
            clock_settime=227,
            adjtimex=159,
            clock_adjtime=305,
            quotactl=179,
            vhangup=153,
            open_tree=428,
            move_mount=429,
            fsopen=430,
            fsconfig=431,
            fsmount=432,
            fspick=433,
            mount_setattr=442,
            pidfd_getfd=438,
            kcmp=312,
            iopl=172,
            ioperm=173,
            lookup_dcookie=212,
            uselib=134,
            personality=135,
        ),
        dict(
            shmget=29,
            shmat=30,
            shmctl=31,
            shmdt=67,
            semget=64,
            semop=65,
            semctl=66,
            semtimedop=220,
            msgget=68,
            msgsnd=69,
            msgrcv=70,
            msgctl=71,
            mq_open=240,
            mq_unlink=241,
            mq_timedsend=242,
            mq_timedreceive=243,
            mq_notify=244,
            mq_getsetattr=245,
        ),
    ),
    "aarch64": (
        0xC00000B7,
        dict(
            socket=198,
            clone=220,
            kill=129,
            clone3=435,
            ptrace=117,
            mount=40,
            umount2=39,
            pivot_root=41,
            chroot=51,
            unshare=97,
            setns=268,
            bpf=280,
            keyctl=219,
            add_key=217,
            request_key=218,
            io_uring_setup=425,
            io_uring_enter=426,
            io_uring_register=427,
            perf_event_open=241,
            kexec_load=104,
            kexec_file_load=294,
            init_module=105,
            finit_module=273,
            delete_module=106,
            reboot=142,
            swapon=224,
            swapoff=225,
            process_vm_readv=270,
            process_vm_writev=271,
            userfaultfd=282,
            open_by_handle_at=265,
            name_to_handle_at=264,
            acct=89,
            settimeofday=170,
            clock_settime=112,
            adjtimex=171,
            clock_adjtime=266,
            quotactl=60,
            vhangup=58,
            open_tree=428,
            move_mount=429,
            fsopen=430,
            fsconfig=431,
            fsmount=432,
            fspick=433,
            mount_setattr=442,
            pidfd_getfd=438,
            kcmp=272,
            personality=92,
        ),
        dict(
            shmget=194,
            shmat=196,
            shmctl=195,
            shmdt=197,
            semget=190,
            semop=193,
            semctl=191,
            semtimedop=192,
            msgget=186,
            msgsnd=189,
            msgrcv=188,
            msgctl=187,
            mq_open=180,
            mq_unlink=181,
            mq_timedsend=182,
            mq_timedreceive=183,
            mq_notify=184,
            mq_getsetattr=185,
        ),
    ),
}

_LD_ABS_W = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000
_SECCOMP_MODE_FILTER = 2


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter(machine: str = sc.MACHINE, *, deny_ipc: bool = False) -> bytes:
    """Return the BPF program bytes for this machine (KeyError if unsupported).
    `deny_ipc`: also refuse System V IPC and POSIX message queues (for runs that share
    the host's IPC namespace)."""
    arch, nr, ipc = _ARCH[machine]
    special = ("clone", "clone3", "kill")
    blocked = [n for name, n in nr.items() if name not in special]
    if deny_ipc:
        blocked += list(ipc.values())
    body = [
        (_JGE, _X32_BIT, "eperm"),
        (_JEQ, nr["clone"], "clone"),
        (_JEQ, nr["clone3"], "enosys"),
        (_JEQ, nr["kill"], "kill"),
    ]
    body += [(_JEQ, n, "eperm") for n in blocked]
    e = 5 + len(body)  # index of the EPERM return, right after the fallthrough ALLOW
    targets = {"eperm": e, "enosys": e + 1, "clone": e + 3, "kill": e + 7}
    prog = [
        _ins(_LD_ABS_W, 4),
        _ins(_JEQ, arch, 1, 0),
        _ins(_RET, _KILL_PROCESS),  # arch
        _ins(_LD_ABS_W, 0),  # nr
    ]
    for op, k, tgt in body:
        prog.append(_ins(op, k, targets[tgt] - len(prog) - 1, 0))
    prog.append(_ins(_RET, _ALLOW))
    prog += [
        _ins(_RET, _ERRNO | errno.EPERM),
        _ins(_RET, _ERRNO | errno.ENOSYS),
        _ins(_RET, _ALLOW),
    ]
    assert len(prog) == targets["clone"]
    ns_flags = sc.NAMESPACE_FLAGS & ~sc.CLONE_NEWTIME  # 0x80 is CSIGNAL for clone()
    prog += [
        _ins(_LD_ABS_W, 16),
        _ins(_JSET, ns_flags, 0, 1),  # clone(flags): no namespaces
        _ins(_RET, _ERRNO | errno.EPERM),
        _ins(_RET, _ALLOW),
    ]
    assert len(prog) == targets["kill"]
    prog += [
        _ins(_LD_ABS_W, 16),
        _ins(_JEQ, 0xFFFFFFFF, 0, 1),  # kill(-1, sig): everyone
        _ins(_RET, _ERRNO | errno.EPERM),
        _ins(_RET, _ALLOW),
    ]
    assert max(targets.values()) - 4 < 256
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class Filter:
    """A program ready to install: built once in the zygote, so a child's install is a
    single prctl (no ctypes objects made in the child)."""

    def __init__(self, program: bytes) -> None:
        self.buf = ctypes.create_string_buffer(program, len(program))
        self.fprog = _SockFprog(len(program) // 8, ctypes.cast(self.buf, ctypes.c_void_p))
        self.address = ctypes.addressof(self.fprog)

    def install(self) -> None:
        """On the calling thread (and its future children). Needs no_new_privs (or
        CAP_SYS_ADMIN). Irreversible."""
        sc.prctl(sc.PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, self.address)


def install(program: bytes) -> None:
    """Install `program` on the calling thread (see Filter.install)."""
    Filter(program).install()
