"""The one I/O loop (`server/sandbox/ioloop.py`): its rules on real pipes and processes,
and that the parent side has no other."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

from python_env.server.sandbox.caps import KILL_GRACE_S
from python_env.server.sandbox.ioloop import Watch, serve
from python_env.server.sandbox.records import Limits
from python_env.server.sandbox.syscalls import process_cpu_s
from python_env.server.sandbox.treebudget import RunGuard

ROOT = Path(__file__).resolve().parents[2]


def _exit_watch(proc: subprocess.Popen[bytes], watch: Watch, exited: list[bool]) -> int:
    pidfd = os.pidfd_open(proc.pid)

    def on_exit() -> None:
        exited.append(True)
        watch.remove(pidfd)

    watch.add(pidfd, on_exit)
    return pidfd


def test_handlers_run_until_done_and_eof_takes_a_pipe_out():
    r, w = os.pipe()
    os.set_blocking(r, False)
    got: list[bytes] = []
    watch = Watch()

    def on_data() -> None:
        data = os.read(r, 1024)
        got.append(data)
        if not data:
            watch.remove(r)

    watch.add(r, on_data)
    os.write(w, b"hello")
    os.close(w)
    hit = serve(watch, time.monotonic() + 30, done=lambda: b"" in got, kill=lambda why: None)
    os.close(r)
    assert not hit and b"".join(got) == b"hello"
    watch.remove(r)  # idempotent


def test_the_deadline_kills_then_waits_for_the_exit():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watch, exited, reasons = Watch(), [], []
    pidfd = _exit_watch(proc, watch, exited)

    def kill(why: str) -> None:
        reasons.append(why)
        proc.kill()

    try:
        hit = serve(watch, time.monotonic() + 0.3, done=lambda: bool(exited), kill=kill)
    finally:
        proc.kill()
        proc.wait()
        os.close(pidfd)
    assert hit and exited and reasons == ["timeout"]


def test_an_exit_never_reported_ends_the_loop_after_the_grace():
    watch = Watch()
    reasons: list[str] = []
    t0 = time.monotonic()
    hit = serve(watch, t0 + 0.1, done=lambda: False, kill=reasons.append)
    assert hit and reasons == ["timeout"]
    assert time.monotonic() - t0 >= KILL_GRACE_S


def test_the_tree_cpu_budget_kills_before_the_wall_deadline():
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    watch, exited, reasons = Watch(), [], []
    pidfd = _exit_watch(proc, watch, exited)
    guard = RunGuard(None, lambda: process_cpu_s(proc.pid) or 0.0, Limits(cpu_s=0.3, wall_s=60))

    def kill(why: str) -> None:
        reasons.append(why)
        proc.kill()

    try:
        hit = serve(watch, time.monotonic() + 60, done=lambda: bool(exited), kill=kill, guard=guard)
    finally:
        proc.kill()
        proc.wait()
        os.close(pidfd)
    assert not hit and exited and reasons == ["CPU budget"] and guard.cpu_hit


def test_the_parent_side_has_one_io_loop():
    """Only ioloop.py builds a poll set on the server's side (the zygote's own epoll runs
    in the zygote process; a zero-timeout readiness check is not a loop)."""
    builders = {("select", "poll"), ("select", "epoll"), ("select", "devpoll")}
    found = []
    for path in sorted((ROOT / "server").rglob("*.py")):
        if path.name in ("ioloop.py", "zygote.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if "selectors" in names:
                    found.append(f"{path.name}: imports selectors")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in builders
            ):
                found.append(f"{path.name}:{node.lineno}: select.{node.attr}")
    assert not found, found
