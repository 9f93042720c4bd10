#!/usr/bin/env bash
# As a user or a container image installs Backline: `pip install .` (no extras) in a fresh venv,
# then one question with the installed `bot`, run from outside the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
project=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3.11 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
"$work/venv/bin/pip" install --quiet "$project"
cd "$work"
answer=$("$work/venv/bin/bot" ask --project "$project" "what do the paraspinal muscles do?")
echo "$answer"
grep -qi "muscle" <<<"$answer" || { echo "plain install: bot ask gave no answer about the muscles" >&2; exit 1; }
echo "plain install: pip install . + bot ask OK"
