#!/usr/bin/env bash
# The Ray tier: python_env replicas on a local two-node Ray cluster (tests/ray).
# Ray (ray==2.60.0, the `ray` extra) lives in its own venv, .venv-ray, never in the
# project's .venv. The cluster (a head and one more node, `ray start --address`) runs in
# a private network namespace, so every byte stays on loopback, and only the processes
# it started are ended afterwards (scripts/ray_cluster.py says how). Needs root.
#   bash scripts/ray-tier.sh            the whole tier
#   bash scripts/ray-tier.sh --sample   CI's bounded sample (fewer episodes, same checks)
#   bash scripts/ray-tier.sh --install  only create or update .venv-ray
# Other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-ray

install() {
  command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
  UV_PROJECT_ENVIRONMENT="$VENV" uv sync --frozen --extra ray --extra dev --quiet
  [ -x .venv-runtime/bin/python ] || bash runtime/install.sh
}

SAMPLE=0
case "${1:-}" in
  --install) install; exit 0 ;;
  --sample) SAMPLE=1; shift ;;
esac
install
export PYTHON_ENV_RAY_SAMPLE=$SAMPLE PATH="$PWD/$VENV/bin:$PATH"
exec "$VENV/bin/python" scripts/ray_cluster.py \
  python -m pytest -p no:cacheprovider -m ray tests/ray "$@"
