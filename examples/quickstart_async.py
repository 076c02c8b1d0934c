"""README quick start 2: the same with asyncio.

python examples/quickstart_async.py [BASE_URL]
"""

import asyncio
import os
import sys

from python_env import PythonAction, PythonEnv

BASE_URL = (
    sys.argv[1] if len(sys.argv) > 1 else os.getenv("PYTHON_ENV_URL", "http://localhost:8000")
)


async def main() -> None:
    async with PythonEnv(base_url=BASE_URL) as env:
        await env.reset()
        result = await env.step(PythonAction(code="print(sum(range(10)))"))
        print(result.observation.run.stdout, end="")  # 45


asyncio.run(main())
