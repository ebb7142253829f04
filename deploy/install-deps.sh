#!/usr/bin/env bash
# deploy/install-deps.sh - install what emitd needs to build and to run its
# tests, from Debian 12's packages, and the end-to-end tests' npm packages.
#
# usage: deploy/install-deps.sh
#   Runs apt-get (through sudo when not root). Node.js and npm come from
#   Debian unless a `node` is already on PATH. Then `npm ci` in tests/e2e
#   (socket.io-client pinned by tests/e2e/package-lock.json).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  SUDO=(sudo)
fi

PACKAGES=(
  meson ninja-build pkg-config gcc clang
  libevent-dev libwslay-dev liblua5.4-dev libconfig-dev check
  libsodium-dev libssl-dev libjansson-dev uthash-dev libjwt-dev libcurl4-openssl-dev libsystemd-dev
  libcrypt-dev libmsgpack-dev libhiredis-dev
  openssl
  python3-socketio python3-aiohttp python3-websocket python3-requests
  redis-server valgrind groff-base
)
if ! command -v node >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
elif ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: node is on PATH but npm is not; install npm for that node" >&2
  exit 1
fi

"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}"
# promtool (the tests check /metrics with it), without the exporters that
# the prometheus package recommends.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus

cd "$ROOT/tests/e2e"
npm ci --no-audit --no-fund
