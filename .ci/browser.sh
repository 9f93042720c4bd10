#!/usr/bin/env bash
# Install what the browser tests need: Debian chromium and the npm packages of tests/browser. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends chromium
fi
# axe-core, rasa-webchat and @scalableminds/chatroom, pinned by tests/browser/package-lock.json
if [ ! -f tests/browser/node_modules/axe-core/axe.min.js ] \
   || [ ! -f tests/browser/node_modules/rasa-webchat/lib/index.js ] \
   || [ ! -f tests/browser/node_modules/@scalableminds/chatroom/dist/Chatroom.js ]; then
  npm ci --prefix tests/browser --no-audit --no-fund
fi
