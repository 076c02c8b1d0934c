#!/usr/bin/env bash
# The Docker tier on this machine: starts a Docker engine and builds the local OpenEnv
# base image (../shared/docker/local-base-image.sh), builds python-env:latest from
# server/Dockerfile, then plays episodes, hostile programs and a uid-1000 run inside
# containers (tests/docker). Fails, never skips, when Docker is unavailable.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
  uv sync --frozen --all-extras --quiet
fi
exec .venv/bin/python -m pytest -p no:cacheprovider -m docker tests/docker "$@"
