#!/usr/bin/env bash
# Quick start on a fresh Debian machine: install what is missing, build wsgid, and serve an example
# app (Hono by default; pass another name from examples/) through a real mongrel2 with `wsgid dev`
# (reloads on edits). Ctrl-C stops.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh
npm ci --no-audit --no-fund
npm run example -- "${1:-hono}"
