"""Baseline inference in the OpenEnv hackathon style: an OpenAI-compatible model plays
python_env tasks and prints [START]/[STEP]/[END] lines.

    export API_BASE_URL=https://router.huggingface.co/v1 MODEL_NAME=Qwen/Qwen2.5-72B-Instruct
    export HF_TOKEN=...                        # or OPENAI_API_KEY
    export PYTHON_ENV_URL=http://localhost:8000
    python examples/inference.py               # one task per family; extra args go to the runner

This is `python -m python_env.eval --policy openai` with defaults; see `--help`.
"""

import os
import sys

from python_env.eval.__main__ import main

if __name__ == "__main__":
    url = os.getenv("PYTHON_ENV_URL", "http://localhost:8000")
    extra = sys.argv[1:] or ["--count", "1"]
    sys.exit(
        main(["--base-url", url, "--policy", "openai", "--output", "results/inference", *extra])
    )
