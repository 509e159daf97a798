#!/usr/bin/env bash
# Builds tvmw into build/ (and, with --asan, the AddressSanitizer+UBSan
# build into build-asan/). Installs dependencies first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTVMW_SANITIZE=address,undefined >/dev/null
  cmake --build build-asan -j "$jobs"
fi
