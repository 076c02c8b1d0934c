#!/usr/bin/env bash
# Create or update the sandbox runtime: the virtual environment agent code runs in
# (.venv-runtime at the repository root unless a directory is given), holding exactly
# the packages pinned in runtime/requirements.txt and nothing else (`uv pip sync`
# removes strays). Built from BASE_PYTHON, by default the interpreter of the server's
# .venv, else python3. Idempotent: about 8 s the first time, under 1 s when in sync.
# Usage: bash runtime/install.sh [VENV_DIR [BASE_PYTHON]]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$here/../.venv-runtime}"
base=python3
[ -x "$here/../.venv/bin/python" ] && base="$here/../.venv/bin/python"
base="${2:-$base}"
command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
[ -x "$venv/bin/python" ] || uv venv -q --python "$base" "$venv"
uv pip sync -q --compile-bytecode --python "$venv/bin/python" "$here/requirements.txt"
