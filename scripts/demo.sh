#!/usr/bin/env bash
# Starts a local demo cluster: 3 control-plane nodes from
# cluster-conf/local-3 on 127.0.0.1, with sample data, and stays in the
# foreground until Ctrl-C, then stops every node cleanly.
#   scripts/demo.sh           resume the demo's data if there is some
#   scripts/demo.sh --fresh   start from empty data directories
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CONF=cluster-conf/local-3/cluster.json
TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$CONF")
DATA=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data_root"])' "$CONF")

scripts/build.sh
CP=$ROOT/build/controlplane/tvmw-cp
CTL=$ROOT/build/controlplane/tvmwctl

if [ "${1:-}" = "--fresh" ]; then
  rm -rf "$DATA"
fi
mkdir -p "$DATA"

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping nodes"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "demo: stopped (data kept in $DATA; --fresh starts over)"
}
trap stop INT TERM EXIT

for id in 1 2 3; do
  if curl -s -o /dev/null "http://127.0.0.1:810$id/healthz"; then
    echo "demo: port 810$id is already in use (another demo running?)" >&2
    exit 1
  fi
  "$CP" --config "$CONF" --id "$id" >"$DATA/node-$id.log" 2>&1 &
  pids+=($!)
done
echo "demo: started nodes (logs in $DATA/node-N.log); waiting for a leader"
for _ in $(seq 1 100); do
  if curl -sf http://127.0.0.1:8101/healthz >/dev/null && curl -sf http://127.0.0.1:8102/healthz >/dev/null &&
     curl -sf http://127.0.0.1:8103/healthz >/dev/null; then
    break
  fi
  sleep 0.2
done

export TVMW_SERVER=http://127.0.0.1:8101 TVMW_TOKEN=$TOKEN
if [ "$("$CTL" --json client list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["clients"]))')" = 0 ]; then
  echo "demo: loading sample data"
  "$CTL" client create --name "Demo Operator" --settings '{"timezone":"Europe/Moscow"}' >/dev/null
  "$CTL" client create --name "Second Operator" >/dev/null
fi

cat <<TXT

tvmw demo cluster is running.

  control-plane nodes   http://127.0.0.1:8101  http://127.0.0.1:8102  http://127.0.0.1:8103
  admin token           $TOKEN

Try:
  export TVMW_SERVER=http://127.0.0.1:8102 TVMW_TOKEN=$TOKEN
  $CTL cluster status
  $CTL cluster members
  $CTL client list
  $CTL client create --name "My Operator"
  curl -s http://127.0.0.1:8103/healthz
  curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8103/admin/v1/clients
  curl -s http://127.0.0.1:8101/metrics | grep tvmw_cp_
  $CTL cluster transfer          # move leadership to another node
  kill -9 <pid of the leader>   # pids: ${pids[*]}; writes go on through the others

Ctrl-C stops the cluster.
TXT
"$CTL" client list || true
wait
