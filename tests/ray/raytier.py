"""The Ray tier's settings, from scripts/ray-tier.sh (which starts the cluster)."""

from __future__ import annotations

import os

ADDRESS = os.environ.get("PYTHON_ENV_RAY_ADDRESS")
"""The local cluster's head (127.0.0.1 inside the tier's network namespace)."""
SAMPLE = os.environ.get("PYTHON_ENV_RAY_SAMPLE") == "1"
"""CI's bounded sample (scripts/ray-tier.sh --sample): fewer episodes, the same checks."""
SERVER_ENV = {"MAX_CONCURRENT_ENVS": "32", "SESSION_TIMEOUT_S": "300", "PYTHON_ENV_TIMEOUT_S": "8"}
