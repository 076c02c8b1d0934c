#!/usr/bin/env bash
# Install Debian's Chromium (and its driver) for the browser test tier, if missing.
# Idempotent and quiet: does nothing when /usr/bin/chromium is already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
log="${TMPDIR:-/tmp}/install-chromium.log"
echo "installing chromium (Debian) ..." >&2
if ! { as_root apt-get update -qq \
  && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "chromium install failed; full log: $log" >&2
  exit 1
fi
command -v chromium >/dev/null 2>&1
