#!/usr/bin/env bash
# Edge benchmark (issue 5): device-API requests/s and p99 with a 1M-account
# data set, edge cold start and resident memory, feed propagation under
# 1,000 writes/s. Builds the committed HEAD (git archive) and runs
# scripts/bench/edge_device.py (its docstring describes every step).
#
# Usage: scripts/bench/edge_device.sh    (first run: + the data set import)
# Environment: ACCOUNTS [1000000], CHANNELS [200], LOGINS [20000],
#   DURATION [30] s of wrk, WRITE_RATE [1000], PROPAGATION_S [20], COLD_RUNS [3],
#   DATASET_DIR [/var/tmp/tvmw-bench-dataset-ACCOUNTS] (kept between runs;
#   delete it to import again), UPDATE_DOCS [1].
# Ports: control plane HTTP 8601-8603, raft 9601-9603, edge 8651.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$REPO"/scripts/install-deps.sh
COMMIT_FULL=$(git -C "$REPO" rev-parse HEAD)
src=$REPO/build-bench/edge-src obj=$REPO/build-bench/edge-obj
if [[ $(cat "$src/.commit" 2>/dev/null) != "$COMMIT_FULL" ]]; then
  rm -rf "$src" "$obj"
  mkdir -p "$src"
  git -C "$REPO" archive HEAD | tar -x -C "$src"
  echo "$COMMIT_FULL" >"$src/.commit"
fi
cmake -S "$src" -B "$obj" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$obj" -j"$(nproc)" --target tvmw-cp tvmw-edge tvmwctl >/dev/null
export BENCH_BIN_DIR=$obj
export BENCH_BIN_DESC="HEAD $(git -C "$REPO" rev-parse --short HEAD), RelWithDebInfo"
cmd="scripts/bench/edge_device.sh"
for v in ACCOUNTS CHANNELS LOGINS DURATION WRITE_RATE PROPAGATION_S COLD_RUNS; do
  [[ -n ${!v:-} ]] && cmd="$v=${!v} $cmd"
done
export BENCH_CMD=$cmd
exec python3 "$REPO/scripts/bench/edge_device.py"
