"""README quick start 1: a free sandbox over a synchronous session.

python examples/quickstart_sync.py [BASE_URL]     # default: $PYTHON_ENV_URL or :8000
"""

import os
import sys

from python_env import PythonAction, PythonEnv

BASE_URL = (
    sys.argv[1] if len(sys.argv) > 1 else os.getenv("PYTHON_ENV_URL", "http://localhost:8000")
)

with PythonEnv(base_url=BASE_URL) as env:
    env.reset()  # a free sandbox
    env.step(PythonAction(code="import math"))  # the session's kernel keeps state
    result = env.step(PythonAction(code="print(math.factorial(20))"))
    print(result.observation.run.stdout, end="")  # 2432902008176640000
