#!/usr/bin/env bash
# Token-check benchmark (issue 6): the edge's Flussonic auth backend vs
# nginx `return 200`, same run, same machine, wrk -t2 -c64, with real
# tokens over a 1M-account data set. Builds the committed HEAD (git
# archive) and runs scripts/bench/token_check.py (its docstring describes
# every step).
#
# Usage: scripts/bench/token_check.sh    (first run: + the data set import)
# Environment: ACCOUNTS [1000000], CHANNELS [200], POOL [20000] tokens,
#   DURATION [20] s per wrk round, ROUNDS [5], EDGE_THREADS [2] (--http-threads),
#   DATASET_DIR [/var/tmp/tvmw-bench-tokencheck-ACCOUNTS] (kept between
#   runs; delete it to import again), UPDATE_DOCS [1].
# Ports: control plane HTTP 28401-28403, raft 28411-28413, edge 28450,
#   nginx 28460.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$REPO"/scripts/install-deps.sh
COMMIT_FULL=$(git -C "$REPO" rev-parse HEAD)
src=$REPO/build-bench/tokencheck-src obj=$REPO/build-bench/tokencheck-obj
if [[ $(cat "$src/.commit" 2>/dev/null) != "$COMMIT_FULL" ]]; then
  rm -rf "$src" "$obj"
  mkdir -p "$src"
  git -C "$REPO" archive HEAD | tar -x -C "$src"
  echo "$COMMIT_FULL" >"$src/.commit"
fi
cmake -S "$src" -B "$obj" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$obj" -j"$(nproc)" --target tvmw-cp tvmw-edge tvmwctl >/dev/null
export BENCH_BIN_DIR=$obj
export BENCH_BIN_DESC="binary: HEAD $(git -C "$REPO" rev-parse --short HEAD) (git archive), RelWithDebInfo"
cmd="scripts/bench/token_check.sh"
for v in ACCOUNTS CHANNELS POOL DURATION ROUNDS EDGE_THREADS; do
  [[ -n ${!v:-} ]] && cmd="$v=${!v} $cmd"
done
export BENCH_CMD=$cmd
exec python3 "$REPO/scripts/bench/token_check.py"
