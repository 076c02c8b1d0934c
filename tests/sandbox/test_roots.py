"""What a dead server left is removed by the next start; a live one's never is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

from python_env.server.sandbox import Sandbox, roots
from python_env.server.sandbox.workdirs import remove_tree

SANDBOX_DIR = os.path.dirname(os.path.abspath(roots.__file__))
START = (  # the sandbox alone (stdlib only), loaded by path: no server, no OpenEnv import
    "import importlib, sys, time, types\n"
    "m = types.ModuleType('sbx'); m.__path__ = [sys.argv[1]]; sys.modules['sbx'] = m\n"
    "Sandbox = importlib.import_module('sbx.engine').Sandbox\n"
    "sb = Sandbox(slots=1)\n"
    "k = sb.kernel(); k.run('x = 1')\n"  # a kernel and its workdir exist too
    "print(sb._base, flush=True)\n"
    "time.sleep(60)\n"
)


def _server(tmp: str) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, TMPDIR=tmp)
    proc = subprocess.Popen(
        [sys.executable, "-c", START, SANDBOX_DIR], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_a_killed_servers_root_is_swept_and_a_live_ones_is_kept(tmp_path, monkeypatch) -> None:
    tmp = str(tmp_path)
    os.chmod(tmp, 0o755)
    dead, dead_root = _server(tmp)
    live, live_root = _server(tmp)
    try:
        assert os.path.isdir(dead_root) and os.path.isdir(live_root)
        dead.send_signal(signal.SIGKILL)
        dead.wait(10)
        time.sleep(0.2)
        assert os.path.isdir(dead_root)  # nothing removed it: the owner died at once
        monkeypatch.setattr(tempfile, "tempdir", tmp)
        with Sandbox(slots=1) as sb:
            assert sb.swept == [dead_root]
            assert not os.path.exists(dead_root)
            assert os.path.isdir(live_root)  # another live server's: untouched
            assert sb.run("print(1)").stdout == "1\n"
        assert os.path.isdir(live_root)
    finally:
        live.kill()
        live.wait(10)
    time.sleep(0.2)
    assert roots.sweep(remove_tree) == [live_root]  # once dead, it goes too
    assert not os.path.exists(live_root)


def test_a_previous_process_with_our_pid_or_a_reused_pid_is_swept(tmp_path, monkeypatch) -> None:
    """A restarted container's server is PID 1 again: a root under our own pid with
    another token is a dead one's. A root whose pid now belongs to an unrelated live
    process is swept once it is older than a claim takes; a fresh one is left alone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ours = tmp_path / f"{roots.PREFIX}{os.getpid()}-aaaaaa"
    reused_old = tmp_path / f"{roots.PREFIX}1-bbbbbb"  # pid 1 is alive: never a server here
    reused_new = tmp_path / f"{roots.PREFIX}1-cccccc"
    for d in (ours, reused_old, reused_new):
        (d / "k1").mkdir(parents=True)
    past = time.time() - 2 * roots.CLAIM_S
    os.utime(reused_old, (past, past))
    swept = roots.sweep(remove_tree)
    assert sorted(swept) == sorted([str(ours), str(reused_old)])
    assert reused_new.is_dir()
    live, token, fd = roots.claim()  # a live root under our pid: its lock keeps it
    try:
        assert live not in roots.sweep(remove_tree) and os.path.isdir(live)
    finally:
        os.close(fd)
        remove_tree(live)
