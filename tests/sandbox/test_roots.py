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
