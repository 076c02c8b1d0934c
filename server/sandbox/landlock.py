"""Landlock (unprivileged LSM): confine file access to an allow-list of paths.

The child may read the Python installation (stdlib, site-packages) and a few device
files, and may read/write only its own working directory. Everything else (the repo,
hidden task data, /root, /etc/shadow, /proc of other processes, other sessions'
working dirs) is refused with EACCES. With ABI >= 4 all TCP bind/connect is refused;
with ABI >= 6 signals and abstract unix sockets outside the sandbox are refused too.
Works without root (needs no_new_privs), so it survives in unprivileged containers.
"""

from __future__ import annotations

import ctypes
import os

from . import syscalls as sc

_CREATE, _ADD_RULE, _RESTRICT = 444, 445, 446
_RULE_PATH_BENEATH = 1
_VERSION_FLAG = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1, 2, 4, 8
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | (1 << 14) | (1 << 15)  # + truncate, ioctl
READ_ONLY = EXECUTE | READ_FILE | READ_DIR
_NET_TCP = 1 | 2  # bind, connect
_SCOPE = 1 | 2  # abstract unix sockets, signals


class _Attr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    ret = sc.libc.syscall(_CREATE, None, 0, _VERSION_FLAG)
    return int(ret) if ret > 0 else 0


def handled_fs(abi: int) -> int:
    return _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]


def build(read_only: list[str], read_write: list[str], abi: int) -> int:
    """Create a ruleset fd (reusable: a forked child only needs `restrict_self`).
    Paths that do not exist are skipped."""
    fs = handled_fs(abi)
    attr = _Attr(fs, _NET_TCP if abi >= 4 else 0, _SCOPE if abi >= 6 else 0)
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    rfd = sc.syscall(_CREATE, ctypes.byref(attr), size, 0)
    try:
        for paths, access in ((read_only, READ_ONLY), (read_write, fs)):
            for path in paths:
                try:
                    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    allowed = access
                    if not os.path.isdir(path):
                        allowed &= _FILE_ONLY
                    rule = _PathBeneath(allowed & fs, pfd)
                    sc.syscall(_ADD_RULE, rfd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
                finally:
                    os.close(pfd)
    except BaseException:
        os.close(rfd)
        raise
    return rfd


def restrict_self(ruleset_fd: int) -> None:
    """Apply a ruleset to the calling process (irreversible; needs no_new_privs)."""
    sc.syscall(_RESTRICT, ruleset_fd, 0)


def restrict(read_only: list[str], read_write: list[str], abi: int) -> None:
    rfd = build(read_only, read_write, abi)
    try:
        restrict_self(rfd)
    finally:
        os.close(rfd)
