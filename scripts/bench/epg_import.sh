#!/usr/bin/env bash
# EPG import benchmark (issue 7): import time and peak memory of tvmw-cp for
# an XMLTV guide of CHANNELS channels x DAYS days.
#
# Builds tvmw-cp and tvmwctl (or takes CP_BIN/CTL_BIN), starts a fresh
# 3-node cluster on 127.0.0.1 (HTTP HTTP_BASE+1..3, raft RAFT_BASE+1..3, data
# in a mktemp dir), creates one client with CHANNELS channels whose
# epg_channel_id matches the guide, generates the guide with
# scripts/xmltv_gen.py (plain and gzip) and runs, each timed with
# tvmwctl epg import (upload; the receiving node parses, spools and proposes):
#   1. the plain XML uploaded to a follower: every programme new;
#   2. the same gzip uploaded to the leader: every programme unchanged;
#   3. a changed guide (--variant 1, every title differs), gzip, to a
#      follower: every programme rewritten;
#   4. the plain XML served over HTTP and imported with tvmwctl epg run
#      (download + import) on a follower.
# While each runs, every node's VmRSS/RssAnon is sampled every 100 ms; the
# peak RSS (VmHWM) and the peak anonymous RSS of every node are printed,
# with the time until every node applied the last batch. Prints a Markdown
# table for docs/benchmarks.md. Kills every process it started by PID and
# removes its temp dir on exit.
#
# Usage: scripts/bench/epg_import.sh                  (about 3-5 minutes)
# Environment (defaults in brackets):
#   CHANNELS, DAYS      guide size [1000, 14]
#   BUILD_DIR           where to build [build-bench-epg]; CP_BIN/CTL_BIN skip it
#   HTTP_BASE, RAFT_BASE  ports [26700, 26720]; the web server is HTTP_BASE+50
#   BENCH_TMPDIR        where the temp dir is made (not tmpfs) [/tmp]
#   KEEP_LOGS           copy node logs, reports and RSS samples into this dir [unset]
#   SNAPSHOT_THRESHOLD, SNAPSHOT_TRAILING  raft.snapshot_threshold/_trailing of the
#                       cluster [unset: the defaults, 32768 / 8192]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CHANNELS=${CHANNELS:-1000}
DAYS=${DAYS:-14}
BUILD_DIR=${BUILD_DIR:-$REPO/build-bench-epg}
HTTP_BASE=${HTTP_BASE:-26700}
RAFT_BASE=${RAFT_BASE:-26720}
BENCH_TMPDIR=${BENCH_TMPDIR:-/tmp}
TOKEN=epg-bench-token-0123456789
GEN=$REPO/scripts/xmltv_gen.py

if [[ -z "${CP_BIN:-}" || -z "${CTL_BIN:-}" ]]; then
    cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target tvmw-cp tvmwctl >/dev/null
    CP_BIN=$BUILD_DIR/controlplane/tvmw-cp
    CTL_BIN=$BUILD_DIR/controlplane/tvmwctl
fi

DIR=$(mktemp -d "$BENCH_TMPDIR/tvmw-epg-bench-XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -n "${KEEP_LOGS:-}" ]]; then
        mkdir -p "$KEEP_LOGS" && cp "$DIR"/*.log "$DIR"/report-*.json "$DIR"/rss-*.txt "$KEEP_LOGS"/ || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT

node_http() { echo "127.0.0.1:$((HTTP_BASE + $1))"; }
RAFT_JSON=""
if [[ -n "${SNAPSHOT_THRESHOLD:-}" ]]; then
    RAFT_JSON="\"raft\": {\"snapshot_threshold\": $SNAPSHOT_THRESHOLD, \"snapshot_trailing\": ${SNAPSHOT_TRAILING:-0}},"
fi
cat >"$DIR/cluster.json" <<EOF
{"cluster_name": "epg-bench", "admin_token": "$TOKEN", "data_root": "$DIR/data", $RAFT_JSON
 "billing": {"check_interval_ms": 0},
 "epg": {"check_interval_ms": 0},
 "nodes": [
  {"id": 1, "raft_address": "127.0.0.1:$((RAFT_BASE + 1))", "http_address": "$(node_http 1)"},
  {"id": 2, "raft_address": "127.0.0.1:$((RAFT_BASE + 2))", "http_address": "$(node_http 2)"},
  {"id": 3, "raft_address": "127.0.0.1:$((RAFT_BASE + 3))", "http_address": "$(node_http 3)"}]}
EOF
declare -A NODE_PID
for i in 1 2 3; do
    "$CP_BIN" --config "$DIR/cluster.json" --id "$i" >"$DIR/node-$i.log" 2>&1 &
    NODE_PID[$i]=$!
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
follower=$((leader % 3 + 1))
ctl() { "$CTL_BIN" --server "http://$(node_http "$1")" --token "$TOKEN" "${@:2}"; }

echo "== cluster up, leader $leader; creating $CHANNELS channels" >&2
ctl "$leader" client create --name bench >/dev/null
python3 - "$(node_http "$leader")" "$TOKEN" "$CHANNELS" <<'EOF'
import http.client, json, sys
addr, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection(addr, timeout=30)
for i in range(1, n + 1):
    body = json.dumps({"name": "Channel %d" % i, "number": i, "epg_channel_id": "ch%d.tvmw" % i})
    c.request("POST", "/admin/v1/clients/1/channels", body,
              {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        sys.exit("channel %d: HTTP %d" % (i, r.status))
EOF
ctl "$leader" epg add --client 1 --name bench --field interval_s=0 >/dev/null

echo "== generating the guide: $CHANNELS channels x $DAYS days" >&2
t0=$(date +%s.%N)
python3 "$GEN" --channels "$CHANNELS" --days "$DAYS" --seed 1 --out "$DIR/guide.xml" 2>"$DIR/gen.txt"
python3 "$GEN" --channels "$CHANNELS" --days "$DAYS" --seed 1 --out "$DIR/guide.xml.gz" 2>/dev/null
python3 "$GEN" --channels "$CHANNELS" --days "$DAYS" --seed 1 --variant 1 \
    --out "$DIR/guide-v1.xml.gz" 2>/dev/null
gen_s=$(echo "$(date +%s.%N) - $t0" | bc)
programmes=$(grep -o '[0-9]* programmes' "$DIR/gen.txt" | cut -d' ' -f1)
size_xml=$(stat -c %s "$DIR/guide.xml")
size_gz=$(stat -c %s "$DIR/guide.xml.gz")
echo "   $programmes programmes, $size_xml bytes XML, $size_gz bytes gzip ($gen_s s)" >&2

# Samples RssAnon of every node every 100 ms into $DIR/rss-<run>.txt.
sample() {
    while :; do
        for i in 1 2 3; do
            awk -v n="$i" '/^RssAnon:/ {print n, $2}' "/proc/${NODE_PID[$i]}/status" 2>/dev/null
        done
        sleep 0.1
    done
}
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/${NODE_PID[$1]}/status"; }
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
applied_all() {
    local want got
    want=$(health "$leader" | field commit_index)
    for i in 1 2 3; do
        while got=$(health "$i" | field applied_index); [[ ${got:-0} -lt $want ]]; do
            sleep 0.05
        done
    done
}

ROWS=()
run() { # name node ctl-args...
    local name=$1 node=$2
    shift 2
    sample >"$DIR/rss-$name.txt" &
    local sp=$!
    local t0 t1 t2
    t0=$(date +%s.%N)
    ctl "$node" --json --timeout 3600 "$@" >"$DIR/report-$name.json"
    t1=$(date +%s.%N)
    applied_all
    t2=$(date +%s.%N)
    kill "$sp"
    wait "$sp" 2>/dev/null || true
    local peaks=""
    for i in 1 2 3; do
        local anon
        anon=$(awk -v n="$i" '$1 == n && $2 > m {m = $2} END {print m + 0}' "$DIR/rss-$name.txt")
        peaks+=" | $((anon / 1024)) / $(($(hwm "$i") / 1024))"
    done
    local rep
    rep=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["import"]; print("%d | %d | %d | %d/%d/%d/%d" % (r["programmes"], r["batches"], r["took_ms"], r["inserted"], r["updated"], r["unchanged"], r["deleted"]))' "$DIR/report-$name.json")
    ROWS+=("| $name | node $node$([[ $node == "$leader" ]] && echo " (leader)" || echo "") | $(printf %.1f "$(echo "$t1 - $t0" | bc)") | $(printf %.1f "$(echo "$t2 - $t0" | bc)") | $rep$peaks |")
    echo "   $name done: $(printf %.1f "$(echo "$t1 - $t0" | bc)") s" >&2
}

echo "== imports" >&2
run "1. plain XML, new" "$follower" epg import 1 "$DIR/guide.xml" --client 1
run "2. gzip, unchanged" "$leader" epg import 1 "$DIR/guide.xml.gz" --client 1
run "3. gzip, all titles changed" "$follower" epg import 1 "$DIR/guide-v1.xml.gz" --client 1
(cd "$DIR" && exec python3 -m http.server "$((HTTP_BASE + 50))" --bind 127.0.0.1 >"$DIR/web.log" 2>&1) &
PIDS+=($!)
sleep 1
ctl "$leader" epg add --client 1 --name web --field url="http://127.0.0.1:$((HTTP_BASE + 50))/guide.xml" \
    --field interval_s=0 >/dev/null
run "4. URL (plain XML, titles back), run" "$follower" epg run 2 --client 1

state_mb=$(du -sm "$DIR/data/node-$leader/state" | cut -f1)
echo
echo "Guide: $CHANNELS channels x $DAYS days = $programmes programmes; XML $((size_xml / 1048576)) MiB, gzip $((size_gz / 1048576)) MiB; leader state dir after the runs: $state_mb MiB"
echo
echo "| run | sent to | tvmwctl wall (s) | until all 3 applied (s) | programmes | batches | import took_ms | new/changed/unchanged/deleted | node 1 peak anon / VmHWM (MiB) | node 2 | node 3 |"
echo "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
