#!/usr/bin/env bash
# Installs every Debian 12 package tvmw needs to build, test, run the demo
# and the benchmarks. Idempotent: does nothing when all are present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang-format
  libraft-dev libuv1-dev libmicrohttpd-dev liblmdb-dev libcurl4-openssl-dev
  libxml2-dev libjansson-dev libssl-dev
  libcmocka-dev python3 curl lmdb-utils
  iproute2 nftables iptables faketime procps
  wrk
  clang nginx # libFuzzer for tests/fuzz; the token-check benchmark's baseline
  xmltv-util nodejs # it_exports: tv_validate_file and the npm player parsers
)

# The player-side parsers it_exports runs (tests/integration/players:
# versions pinned by its package-lock.json), from the npm registry.
players_npm() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/integration/players"
  [ -d "$dir/node_modules" ] && return 0
  if ! command -v npm >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "install-deps: npm missing" >&2; return 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
  fi
  echo "install-deps: npm packages in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  players_npm
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root (or install them)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
players_npm
echo "install-deps: done"
