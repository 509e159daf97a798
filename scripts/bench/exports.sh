#!/usr/bin/env bash
# Export benchmark (issue 7): latency of an account's full playlists and
# guide at an edge (docs/exports.md), for accounts of several sizes.
#
# Builds tvmw-cp, tvmw-edge and tvmwctl (or takes CP_BIN/EDGE_BIN/CTL_BIN),
# starts a fresh 3-node cluster and one edge on 127.0.0.1 (data in a mktemp
# dir), creates one client with max(SIZES) channels (archive 7 days, ten
# categories, one Flussonic service), for each size N in SIZES a tariff with
# the first N channels and an account "bench<N>" on it, imports a guide of
# every channel over DAYS days (scripts/xmltv_gen.py, starting DAYS/2 days
# ago, so the XMLTV export's window — the archive back, everything ahead —
# holds all of it) and waits for the edge to have it. Then, per account,
# requests each export REQUESTS times one after the other over one
# keep-alive connection and reports the time to the last byte (median, p90,
# max), the body size and the count of entries:
#   /playlist.m3u8      tvmw M3U, a routed URL and two stream tokens per channel
#   /get.php            Xtream m3u_plus (URLs point back at the edge)
#   /xmltv.php          the guide, plain and with Accept-Encoding: gzip
#   /player_api.php     get_live_streams, and get_short_epg of one channel
# and the edge's VmHWM after the runs. Prints a Markdown table for
# docs/benchmarks.md. Kills every process it started by PID and removes its
# temp dir on exit.
#
# Usage: scripts/bench/exports.sh                 (about 1-2 minutes)
# Environment (defaults in brackets):
#   SIZES         account sizes in channels [100 500]
#   DAYS          guide length in days [14]
#   REQUESTS      requests per export and account [10]
#   BUILD_DIR     where to build [build-bench-exports]; CP_BIN/EDGE_BIN/CTL_BIN skip it
#   HTTP_BASE, RAFT_BASE  ports [28700, 28720]; the edge is HTTP_BASE+51
#   BENCH_TMPDIR  where the temp dir is made [/tmp]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SIZES=${SIZES:-100 500}
DAYS=${DAYS:-14}
REQUESTS=${REQUESTS:-10}
BUILD_DIR=${BUILD_DIR:-$REPO/build-bench-exports}
HTTP_BASE=${HTTP_BASE:-28700}
RAFT_BASE=${RAFT_BASE:-28720}
BENCH_TMPDIR=${BENCH_TMPDIR:-/tmp}
TOKEN=exports-bench-token-0123456789
BKEY=exports-bench-billing-key
GEN=$REPO/scripts/xmltv_gen.py
MAX=0
for n in $SIZES; do ((n > MAX)) && MAX=$n; done

if [[ -z "${CP_BIN:-}" || -z "${EDGE_BIN:-}" || -z "${CTL_BIN:-}" ]]; then
    "$REPO"/scripts/install-deps.sh
    cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target tvmw-cp tvmw-edge tvmwctl >/dev/null
    CP_BIN=$BUILD_DIR/controlplane/tvmw-cp
    EDGE_BIN=$BUILD_DIR/edge/tvmw-edge
    CTL_BIN=$BUILD_DIR/controlplane/tvmwctl
fi

DIR=$(mktemp -d "$BENCH_TMPDIR/tvmw-exports-bench-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

node_http() { echo "127.0.0.1:$((HTTP_BASE + $1))"; }
EDGE_ADDR=127.0.0.1:$((HTTP_BASE + 51))
cat >"$DIR/cluster.json" <<EOF
{"cluster_name": "exports-bench", "admin_token": "$TOKEN", "data_root": "$DIR/data",
 "billing": {"check_interval_ms": 0},
 "epg": {"check_interval_ms": 0},
 "nodes": [
  {"id": 1, "raft_address": "127.0.0.1:$((RAFT_BASE + 1))", "http_address": "$(node_http 1)"},
  {"id": 2, "raft_address": "127.0.0.1:$((RAFT_BASE + 2))", "http_address": "$(node_http 2)"},
  {"id": 3, "raft_address": "127.0.0.1:$((RAFT_BASE + 3))", "http_address": "$(node_http 3)"}],
 "edges": [{"id": "e1", "http_address": "$EDGE_ADDR"}]}
EOF
for i in 1 2 3; do
    "$CP_BIN" --config "$DIR/cluster.json" --id "$i" >"$DIR/node-$i.log" 2>&1 &
    PIDS+=($!)
done
health() { curl -s --max-time 2 "http://$(node_http "$1")/healthz" || true; }
leader=0
for _ in $(seq 1 100); do
    for i in 1 2 3; do
        if health "$i" | grep -q '"role":"leader","leader_id":'"$i"; then leader=$i; fi
    done
    [[ $leader != 0 ]] && break
    sleep 0.2
done
[[ $leader != 0 ]] || { echo "no leader" >&2; exit 1; }
ctl() { "$CTL_BIN" --server "http://$(node_http "$leader")" --token "$TOKEN" "$@"; }

echo "== cluster up, leader $leader; catalogue of $MAX channels, accounts of: $SIZES" >&2
python3 - "$(node_http "$leader")" "$TOKEN" "$BKEY" "$MAX" $SIZES <<'EOF'
import base64, hashlib, http.client, json, sys, urllib.parse
addr, token, bkey, n, sizes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
c = http.client.HTTPConnection(addr, timeout=30)
def admin(method, path, body, want=(200, 201)):
    c.request(method, path, json.dumps(body),
              {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse()
    o = json.loads(r.read() or b"{}")
    if r.status not in want:
        sys.exit("%s %s: HTTP %d %s" % (method, path, r.status, o))
    return o
def billing(method, **p):
    p["client_id"] = "1"
    src = "".join("%s:%s;" % (k, p[k]) for k in sorted(p)) + bkey
    p["signature"] = hashlib.md5(base64.b64encode(src.encode())).hexdigest()
    c.request("POST", "/billing/api/%s/" % method, urllib.parse.urlencode(p),
              {"Content-Type": "application/x-www-form-urlencoded"})
    o = json.loads(c.getresponse().read())
    if o.get("error") != 0:
        sys.exit("%s: %s" % (method, o))
    return o
admin("POST", "/admin/v1/clients", {"name": "Bench TV", "api_key": "exports-bench-api-key",
                                    "billing_api_key": bkey})
cats = [admin("POST", "/admin/v1/clients/1/categories",
              {"name": "Category %d" % k, "order": k})["category"]["id"] for k in range(10)]
svc = admin("POST", "/admin/v1/clients/1/streaming-services", {
    "name": "fl", "type": "flussonic", "url_masks": {
        "live": "http://fl.example/$cid/index.m3u8?token=$token",
        "archive": "http://fl.example/$cid/video-$flpbt-$flpdur.m3u8?token=$token"}})["streaming_service"]["id"]
chans = []
for i in range(1, n + 1):
    chans.append(admin("POST", "/admin/v1/clients/1/channels", {
        "name": "Канал %d" % i, "number": i, "epg_channel_id": "ch%d.tvmw" % i,
        "stream_name": "ch%d" % i, "archive_days": 7, "icon": "http://img.example/%d.png" % i,
        "category_id": cats[i % 10]})["channel"]["id"])
for s in sizes:
    t = admin("POST", "/admin/v1/clients/1/tariffs", {
        "name": "T%s" % s, "period": 1, "price": 0, "sessions_count": 2,
        "basic_sessions_count": 1, "basic_tariff_priority": 5})["id"]
    admin("PUT", "/admin/v1/clients/1/tariffs/%d/channels" % t, {"ids": chans[:int(s)]})
    admin("PUT", "/admin/v1/clients/1/tariffs/%d/streaming-services" % t, {"ids": [svc]})
    cust = billing("customer/create", firstname="Bench", lastname=s)["id"]
    billing("account/create", customer_id=str(cust), abonement="bench%s" % s, password="pw%s" % s)
    billing("customer/tariff/assign", customer_id=str(cust), tariff_id=str(t))
EOF
ctl epg add --client 1 --name bench --field interval_s=0 >/dev/null

echo "== guide: $MAX channels x $DAYS days, from $((DAYS / 2)) days ago" >&2
python3 "$GEN" --channels "$MAX" --days "$DAYS" --start-offset-days "-$((DAYS / 2))" --seed 1 \
    --out "$DIR/guide.xml.gz" 2>"$DIR/gen.txt"
programmes=$(grep -o '[0-9]* programmes' "$DIR/gen.txt" | cut -d' ' -f1)
t0=$(date +%s.%N)
ctl --timeout 3600 epg import 1 "$DIR/guide.xml.gz" --client 1 >/dev/null
echo "   $programmes programmes imported in $(printf %.1f "$(echo "$(date +%s.%N) - $t0" | bc)") s" >&2

"$EDGE_BIN" --config "$DIR/cluster.json" --id e1 --data-dir "$DIR/edge" >"$DIR/edge.log" 2>&1 &
EDGE_PID=$!
PIDS+=($EDGE_PID)
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
want=$(health "$leader" | field commit_index)
for _ in $(seq 1 600); do
    got=$(curl -s --max-time 2 "http://$EDGE_ADDR/healthz" | field applied_index || true)
    [[ ${got:-0} -ge $want ]] && break
    sleep 0.2
done
[[ ${got:-0} -ge $want ]] || { echo "the edge did not catch up" >&2; exit 1; }
echo "== edge has index $got; measuring ($REQUESTS requests per export)" >&2

python3 - "$EDGE_ADDR" "$REQUESTS" $SIZES >"$DIR/rows.md" <<'EOF'
import http.client, json, sys, time
addr, reps, sizes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
host, port = addr.split(":")
def fetch(conn, path, headers):
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    body = r.read()
    took = (time.perf_counter() - t0) * 1000
    if r.status != 200:
        sys.exit("%s: HTTP %d" % (path, r.status))
    return took, body, r.getheader("Content-Encoding")
def row(size, name, path, count, headers={}):
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    fetch(conn, path, headers)  # warm: the first read of the state pages
    times, body, enc = [], b"", None
    for _ in range(reps):
        t, body, enc = fetch(conn, path, headers)
        times.append(t)
    conn.close()
    times.sort()
    med = times[len(times) // 2]
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    n = count(body)
    print("| %s | %s%s | %.1f | %.1f | %.1f | %.2f | %s |" % (
        size, name, " (gzip)" if enc == "gzip" else "", med, p90, times[-1],
        len(body) / 1048576, n), flush=True)
    print("   %s ch, %s: median %.1f ms, %.2f MiB" % (size, name, med, len(body) / 1048576),
          file=sys.stderr)
for s in sizes:
    q = "username=bench%s&password=pw%s" % (s, s)
    row(s, "`/playlist.m3u8`", "/playlist.m3u8?" + q,
        lambda b: "%d entries" % b.count(b"#EXTINF"))
    row(s, "`/get.php` m3u_plus", "/get.php?type=m3u_plus&output=ts&" + q,
        lambda b: "%d entries" % b.count(b"#EXTINF"))
    row(s, "`/xmltv.php`", "/xmltv.php?" + q,
        lambda b: "%d ch, %d programmes" % (b.count(b"<channel "), b.count(b"<programme ")))
    row(s, "`/xmltv.php`", "/xmltv.php?" + q, lambda b: "", {"Accept-Encoding": "gzip"})
    row(s, "`player_api` get_live_streams", "/player_api.php?action=get_live_streams&" + q,
        lambda b: "%d streams" % len(json.loads(b)))
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/player_api.php?action=get_live_streams&" + q)
    first = json.loads(conn.getresponse().read())[0]["stream_id"]
    row(s, "`player_api` get_short_epg", "/player_api.php?action=get_short_epg&stream_id=%d&%s"
        % (first, q), lambda b: "%d listings" % len(json.loads(b)["epg_listings"]))
EOF
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$EDGE_PID/status")
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$EDGE_PID/status")
echo
echo "Guide: $MAX channels x $DAYS days = $programmes programmes; $REQUESTS sequential requests per row after one warm-up, one keep-alive connection; time to the last byte. Edge after the runs: VmHWM $((hwm / 1024)) MiB, VmRSS $((rss / 1024)) MiB."
echo
echo "| account (channels) | export | median (ms) | p90 (ms) | max (ms) | body (MiB) | entries |"
echo "|---:|---|---:|---:|---:|---:|---|"
cat "$DIR/rows.md"
