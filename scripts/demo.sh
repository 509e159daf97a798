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
EDGE=$ROOT/build/edge/tvmw-edge

for port in 8101 8102 8103 8201; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; then
    echo "demo: port $port is already in use (another demo running?)" >&2
    trap - INT TERM EXIT
    exit 1
  fi
done
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
BUNDLE=$DATA/sample-bundle.json
if [ "$("$CTL" --json client list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["clients"]))')" = 0 ]; then
  echo "demo: loading sample data"
  "$CTL" client create --name "Demo Operator" --billing-api-key "demo-billing-key" \
    --api-key "demo-device-api-key" --settings '{"timezone":"Europe/Moscow"}' >/dev/null
  "$CTL" client create --name "Second Operator" >/dev/null
  "$CTL" sample-data --accounts 40 --channels 200 --seed 42 --out "$BUNDLE"
  "$CTL" import --client 1 "$BUNDLE"
fi
read -r CID BKEY DKEY < <("$CTL" --json client get 1 | python3 -c '
import json,sys; c=json.load(sys.stdin)["client"]; print(c["id"], c["billing_api_key"], c["api_key"])')
"$EDGE" --config "$CONF" --id edge1 >"$DATA/edge1.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  curl -sf http://127.0.0.1:8201/healthz >/dev/null && break
  sleep 0.2
done
ACCOUNTS=$(python3 -c '
import json,sys
b=json.load(open(sys.argv[1]))
n=0
for c in b["customers"]:
    for a in c.get("accounts", []):
        print("    abonement %s  password %s  (customer %s)" % (a["abonement"], a["password"], c["ext_id"]))
        n+=1
        if n==3: sys.exit(0)' "$BUNDLE" 2>/dev/null || true)
read -r ABON PW < <(python3 -c '
import json,sys
b=json.load(open(sys.argv[1]))
a=b["customers"][0]["accounts"][0]
print(a["abonement"], a["password"])' "$BUNDLE")
DAPI=http://127.0.0.1:8201/tvmiddleware/api
AUTHKEY=""
for _ in $(seq 1 50); do
  AUTHKEY=$(curl -s "$DAPI/login/?client_id=$CID&api_key=$DKEY&abonement=$ABON&password=$PW&device=android" |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("authkey") or "")' 2>/dev/null || true)
  [ -n "$AUTHKEY" ] && break
  sleep 0.2
done
CID1=$("$CTL" --json catalog list channels --client 1 --stale |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["channels"][0]["id"])' 2>/dev/null || echo 1)

cat <<TXT

tvmw demo cluster is running.

  control-plane nodes   http://127.0.0.1:8101  http://127.0.0.1:8102  http://127.0.0.1:8103
  edge                  http://127.0.0.1:8201  (follows the control plane, serves the device API)
  admin token           $TOKEN
  sample client         client_id $CID
    billing API key     $BKEY
    device API key      $DKEY
  sample accounts
$ACCOUNTS

Try:
  export TVMW_SERVER=http://127.0.0.1:8102 TVMW_TOKEN=$TOKEN
  $CTL cluster status
  $CTL cluster members
  $CTL client list
  $CTL tariff list --client 1
  $CTL catalog list channels --client 1
  $CTL audit --client 1 --follow
  curl -s http://127.0.0.1:8103/healthz
  curl -s http://127.0.0.1:8201/healthz         # the edge: applied index, node followed, staleness
  curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:8201/edge/v1/debug/account?client_id=1&abonement=1000001"
  curl -s http://127.0.0.1:8101/metrics | grep tvmw_cp_

  # The Billing API (Smarty-compatible): signature = md5(base64("k1:v1;k2:v2;...;" + key)), keys sorted
  python3 - <<'PY'
import base64, hashlib, urllib.parse, urllib.request
def call(method, **p):
    p["client_id"] = "$CID"
    src = "".join("%s:%s;" % (k, p[k]) for k in sorted(p)) + "$BKEY"
    p["signature"] = hashlib.md5(base64.b64encode(src.encode())).hexdigest()
    body = urllib.parse.urlencode(p).encode()
    return urllib.request.urlopen("http://127.0.0.1:8102/billing/api/%s/" % method, body).read().decode()
print(call("tariff/list")[:300])
print(call("customer/info", ext_id="C-1"))
print(call("transaction/create", customer_id="1", id="DEMO-TX-1", amount="100", processed="1"))
PY

  # The device API at the edge (Smarty TVMiddleware API): JSON for android, <rss> XML for mag.
  # A session was opened for account $ABON: authkey $AUTHKEY
  curl -s "$DAPI/login/?client_id=$CID&api_key=$DKEY&abonement=$ABON&password=$PW&device=android"
  curl -s "$DAPI/account/status/?client_id=$CID&authkey=$AUTHKEY&device=android"
  curl -s "$DAPI/channel/list/?client_id=$CID&authkey=$AUTHKEY&device=mag&compact=1" | head -c 700; echo
  curl -s "$DAPI/category/list/?client_id=$CID&authkey=$AUTHKEY"
  curl -s "$DAPI/channel/url/?client_id=$CID&authkey=$AUTHKEY&cid=$CID1&redirect=0"
  curl -si "$DAPI/channel/url/?client_id=$CID&authkey=$AUTHKEY&cid=$CID1" | grep -i '^location'
  curl -s "$DAPI/customer/info/?client_id=$CID&authkey=$AUTHKEY"
  curl -s "$DAPI/health/check/?check_db_conn=1"
  # Kill the three control-plane nodes: the edge keeps logging devices in and serving.

  $CTL cluster transfer          # move leadership to another node
  kill -9 <pid of the leader>   # pids: ${pids[*]}; writes go on through the others

Ctrl-C stops the cluster.
TXT
wait
