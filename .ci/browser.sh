#!/usr/bin/env bash
# Install what the browser tests need: Debian chromium and axe-core (tests/browser). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends chromium
fi
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ]; then
  npm install --prefix tests/browser --no-audit --no-fund
fi
