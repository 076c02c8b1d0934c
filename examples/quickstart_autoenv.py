"""README quick start 4: discover the installed environment with OpenEnv's AutoEnv.

python examples/quickstart_autoenv.py [BASE_URL]
"""

import os
import sys

from openenv import AutoAction, AutoEnv

BASE_URL = (
    sys.argv[1] if len(sys.argv) > 1 else os.getenv("PYTHON_ENV_URL", "http://localhost:8000")
)

env = AutoEnv.from_env("python-env", base_url=BASE_URL)
Action = AutoAction.from_env("python-env")
with env.sync() as e:
    e.reset()
    print(e.step(Action(code="print(2 ** 10)")).observation.run.stdout, end="")  # 1024
