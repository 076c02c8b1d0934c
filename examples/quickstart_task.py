"""README quick start 3: a task episode: read it, test, fix, submit.

    python examples/quickstart_task.py [BASE_URL]

The "fix" here is the README's naive guess (turn `<` into `<=`), so the score depends on
the task drawn; the point is the shape of an episode.
"""

import os
import sys

from python_env import PythonAction, PythonEnv

BASE_URL = (
    sys.argv[1] if len(sys.argv) > 1 else os.getenv("PYTHON_ENV_URL", "http://localhost:8000")
)

with PythonEnv(base_url=BASE_URL) as env:
    obs = env.reset(family="fix-bug", difficulty="easy", seed=7).observation
    print(obs.task.task_id, "-", obs.task.title)
    print(obs.task.statement)
    print(obs.task.starter_code)  # the buggy solution.py
    tests = env.step(PythonAction(kind="test")).observation.tests
    print(f"visible tests: {tests.passed}/{tests.total}")
    print([t.message for t in tests.results if not t.passed])
    env.step(PythonAction(kind="edit", code=obs.task.starter_code.replace("<", "<=")))
    result = env.step(PythonAction(kind="submit"))
    print("score", result.observation.grade.score, "reward", result.reward, "done", result.done)
