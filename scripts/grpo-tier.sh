#!/usr/bin/env bash
# The GRPO tier: TRL's GRPOTrainer on CPU against a real python_env server
# (tests/grpo). Its heavy packages live in their own venv, .venv-grpo, never in the
# project's .venv nor in the sandbox's runtime:
#   - the project's own locked dependencies, by `uv sync` (no torch in the lock);
#   - torch==2.13.0 (CPU build) and the TRL stack, by pip: pip takes torch from the
#     machine's local wheel, while uv would resolve a CUDA build of several GB.
# `--install` only creates or updates the venv; otherwise the tier's tests run after it.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-grpo
PACKAGES=(torch==2.13.0 trl==1.16.0 transformers==5.24.0 accelerate==1.15.0 datasets==5.2.0)
STAMP="$VENV/.grpo-tier"  # what the venv was made from: redone when uv.lock or the pins change
WANT="${PACKAGES[*]} $(sha256sum uv.lock | cut -d' ' -f1)"

install() {
  command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
  if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    UV_PROJECT_ENVIRONMENT="$VENV" uv sync --frozen --inexact --no-dev --quiet
    "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip >/dev/null
    # (pip's notes on this machine's partial local indexes are noise: filtered out)
    "$VENV/bin/python" -m pip install -q "${PACKAGES[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
    "$VENV/bin/python" -c "import torch, trl; assert not torch.version.cuda, torch.__version__"
    echo "$WANT" >"$STAMP"
  fi
}

if [ "${1:-}" = "--install" ]; then
  install
  exit 0
fi
install
if [ ! -x .venv/bin/python ]; then
  uv sync --frozen --all-extras --quiet
fi
exec .venv/bin/python -m pytest -p no:cacheprovider -m grpo tests/grpo "$@"
