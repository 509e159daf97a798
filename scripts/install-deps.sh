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
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
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
echo "install-deps: done"
