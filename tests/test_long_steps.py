"""A cell that legitimately runs for (almost) its whole wall limit keeps its session:
neither the client's message timeout (OpenEnv's default is 60 s; PythonEnv's is above
the run limits) nor the keep-alive pings on either side (every 20 s) drop it, here with
PYTHON_ENV_TIMEOUT_S raised above OpenEnv's default."""

from __future__ import annotations

from python_env import PythonAction, PythonEnv
from python_env.client import MESSAGE_TIMEOUT_S
from python_env.server.launcher import run_server

WALL_S = 75


def test_a_cell_longer_than_openenv_default_timeout_keeps_its_session():
    assert MESSAGE_TIMEOUT_S > WALL_S > 60
    with run_server(PYTHON_ENV_TIMEOUT_S=str(WALL_S)) as server:
        with PythonEnv(base_url=server.url) as env:
            env.reset()
            env.step(PythonAction(code="kept = 'yes'"))
            long = env.step(PythonAction(code="import time; time.sleep(66); print('woke')"))
            run = long.observation.run
            assert run is not None and run.stdout == "woke\n" and not run.timed_out
            after = env.step(PythonAction(code="print(kept)")).observation.run
            assert after is not None and after.stdout == "yes\n"
            assert env.state().step_count == 3
