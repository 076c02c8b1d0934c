#!/usr/bin/env bash
# Start the python_env server on a fresh machine: installs uv, the locked dependencies
# into .venv and the sandbox runtime (the packages agent code can import, pinned in
# runtime/requirements.txt) into .venv-runtime, then serves HTTP + WebSocket (no Docker,
# no network at run time). The `tasks` extra (reasoning-gym's data) adds CodeI/O's tasks.
# Usage: bash scripts/serve.sh [--host 0.0.0.0] [--port 8000]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
uv sync --frozen --inexact --quiet --extra tasks
bash runtime/install.sh
exec .venv/bin/python -m python_env.server.app "$@"
