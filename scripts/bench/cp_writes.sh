#!/usr/bin/env bash
# Control-plane write benchmark (issue 3).
#
# Starts a fresh 3-node tvmw-cp cluster on 127.0.0.1 (HTTP 8401-8403, raft
# 9401-9403, data under a mktemp dir; config generated from
# cluster-conf/local-3/cluster.json) and measures, with libraft's fsync on
# every append (always on, nothing to configure):
#   1. writes/s, p50/p99 latency and non-2xx of POST /admin/v1/clients with
#      wrk: 1 client on the leader, 1 client on a follower (forwarding),
#      64 clients on the leader, 63 clients spread over the 3 nodes
#      (wrk pins one server per thread: -t3, 21 connections per node);
#   2. kill -9 of the leader -> first successful write through a survivor
#      (curl POST every 10 ms), FAILOVER_RUNS times, killed node restarted
#      between runs;
#   3. catch-up of a follower restarted with the same command until its
#      applied_index reaches the leader's commit_index at restart:
#      a) stopped (SIGTERM) while LAG_WRITES clients are written, data kept
#         (these writes also bring the state to >= TARGET_OBJECTS clients);
#      b) stopped, its data dir deleted (it bootstraps again and gets a
#         snapshot), with >= TARGET_OBJECTS clients in the state.
# Prints a summary and writes the section "Control plane writes (issue 3)"
# of docs/benchmarks.md. Every process it starts is killed by PID on exit
# and its temp dir is removed.
#
# Usage: scripts/bench/cp_writes.sh            (about 2-3 minutes)
# Environment (defaults in brackets):
#   DURATION        seconds per wrk run [20]
#   TARGET_OBJECTS  clients that must exist before the catch-up test [100000]
#   LAG_WRITES      writes made while a follower is down (3a) [20000]
#   FAILOVER_RUNS   leader kills [3]
#   BENCH_SOURCE    head: build the committed HEAD (git archive into
#                   build-bench/head-src, built in build-bench/head-obj-TYPE,
#                   cached per commit); worktree: build the working tree in
#                   build-bench/worktree-obj-TYPE [head]
#   BUILD_TYPE      CMake build type [RelWithDebInfo, the project's default]
#   CP_BIN          use this tvmw-cp binary instead of building one [unset]
#   HTTP_BASE, RAFT_BASE  node i listens on HTTP_BASE+i / RAFT_BASE+i [8400, 9400]
#   SNAPSHOT_THRESHOLD  overrides raft.snapshot_threshold of the generated
#                   config (for comparisons; use with UPDATE_DOCS=0) [unset]
#   UPDATE_DOCS     1: write docs/benchmarks.md, 0: only print [1]
#   KEEP_LOGS       directory to copy the node logs and wrk outputs into [unset]
#   BENCH_TMPDIR    where the temp dir is made (must not be tmpfs: fsync) [/tmp]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/scripts/bench
DURATION=${DURATION:-20}
TARGET_OBJECTS=${TARGET_OBJECTS:-100000}
FAILOVER_RUNS=${FAILOVER_RUNS:-3}
LAG_WRITES=${LAG_WRITES:-20000}
HTTP_BASE=${HTTP_BASE:-8400}
RAFT_BASE=${RAFT_BASE:-9400}
UPDATE_DOCS=${UPDATE_DOCS:-1}
KEEP_LOGS=${KEEP_LOGS:-}
BENCH_TMPDIR=${BENCH_TMPDIR:-/tmp}
BENCH_SOURCE=${BENCH_SOURCE:-head}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
SNAPSHOT_THRESHOLD=${SNAPSHOT_THRESHOLD:-}
SRC_CONF=$REPO/cluster-conf/local-3/cluster.json
LUA=$HERE/cp_writes.lua
DOC=$REPO/docs/benchmarks.md
SECTION="## Control plane writes (issue 3)"
NODES=(1 2 3)

CMDLINE="DURATION=$DURATION TARGET_OBJECTS=$TARGET_OBJECTS FAILOVER_RUNS=$FAILOVER_RUNS"
[[ $LAG_WRITES != 20000 ]] && CMDLINE+=" LAG_WRITES=$LAG_WRITES"
[[ -n ${CP_BIN:-} ]] && CMDLINE+=" CP_BIN=$CP_BIN"
[[ $BENCH_SOURCE != head ]] && CMDLINE+=" BENCH_SOURCE=$BENCH_SOURCE"
[[ $BUILD_TYPE != RelWithDebInfo ]] && CMDLINE+=" BUILD_TYPE=$BUILD_TYPE"
[[ -n $SNAPSHOT_THRESHOLD ]] && CMDLINE+=" SNAPSHOT_THRESHOLD=$SNAPSHOT_THRESHOLD"
[[ $HTTP_BASE != 8400 || $RAFT_BASE != 9400 ]] && CMDLINE+=" HTTP_BASE=$HTTP_BASE RAFT_BASE=$RAFT_BASE"
CMDLINE+=" scripts/bench/cp_writes.sh"

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*)
    echo "usage: $0 [-h]   (settings are environment variables, see -h)" >&2
    exit 2
    ;;
esac

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    log "FATAL: $*"
    exit 1
}
now_ns() { date +%s%N; }
http_port() { echo $((HTTP_BASE + $1)); }
url() { echo "http://127.0.0.1:$(http_port "$1")"; }

for t in curl wrk python3 git awk; do
    command -v "$t" >/dev/null || die "$t is not installed"
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || die "DURATION must be a positive integer"
[[ -z $SNAPSHOT_THRESHOLD || $SNAPSHOT_THRESHOLD =~ ^[0-9]+$ ]] || die "SNAPSHOT_THRESHOLD must be an integer"
[[ $TARGET_OBJECTS =~ ^[0-9]+$ ]] || die "TARGET_OBJECTS must be an integer"
[[ $LAG_WRITES =~ ^[0-9]+$ && $LAG_WRITES -ge 1 ]] || die "LAG_WRITES must be >= 1"
[[ $FAILOVER_RUNS =~ ^[0-9]+$ && $FAILOVER_RUNS -ge 1 ]] || die "FAILOVER_RUNS must be >= 1"

# ---- processes and cleanup --------------------------------------------------

declare -A NODE_PID=()   # node id -> pid of its tvmw-cp (only while running)
declare -a BG_PIDS=()    # wrk and curl probes
TMP=""

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    set +e
    local pids=("${BG_PIDS[@]}")
    for pid in "${NODE_PID[@]}"; do pids+=("$pid"); done
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ -n $KEEP_LOGS ]]; then
            mkdir -p "$KEEP_LOGS" && cp "$TMP"/*.log "$TMP"/*.txt "$TMP"/cluster.json "$KEEP_LOGS"/ 2>/dev/null || true
            log "logs kept in $KEEP_LOGS"
        elif ((rc != 0)); then
            for f in "$TMP"/node-*.log; do
                [[ -f $f ]] || continue
                log "last lines of $(basename "$f"):"
                tail -n 15 "$f" >&2 || true
            done
        fi
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build, config -------------------------------------------------------------

COMMIT_FULL=$(git -C "$REPO" rev-parse HEAD)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD)
if [[ -n ${CP_BIN:-} ]]; then
    BIN_DESC="\`$CP_BIN\` (given with CP_BIN)"
    DIRTY=$(git -C "$REPO" status --porcelain -- controlplane common CMakeLists.txt | awk '{ print $2 }' | paste -sd, - || true)
    [[ -n $DIRTY ]] && BIN_DESC+="; the tree had uncommitted changes in $DIRTY"
elif [[ $BENCH_SOURCE == head ]]; then
    # The committed tree (git archive HEAD), not the working tree someone may
    # be editing; Release build, cached per commit.
    src=$REPO/build-bench/head-src obj=$REPO/build-bench/head-obj-$BUILD_TYPE
    if [[ $(cat "$src/.commit" 2>/dev/null) != "$COMMIT_FULL" ]]; then
        rm -rf "$src" "$REPO"/build-bench/head-obj-*
        mkdir -p "$src"
        git -C "$REPO" archive HEAD | tar -x -C "$src"
        echo "$COMMIT_FULL" >"$src/.commit"
    fi
    CP_BIN=$obj/controlplane/tvmw-cp
    BIN_DESC="HEAD \`$COMMIT\` (git archive), CMake $BUILD_TYPE build in \`build-bench/head-obj-$BUILD_TYPE\`"
else
    src=$REPO obj=$REPO/build-bench/worktree-obj-$BUILD_TYPE
    CP_BIN=$obj/controlplane/tvmw-cp
    DIRTY=$(git -C "$REPO" status --porcelain -- controlplane common CMakeLists.txt | awk '{ print $2 }' | paste -sd, - || true)
    BIN_DESC="working tree at \`$COMMIT\`${DIRTY:+ with uncommitted changes in $DIRTY}, CMake $BUILD_TYPE build in \`build-bench/worktree-obj-$BUILD_TYPE\`"
fi
if [[ -n ${src:-} ]]; then
    blog=$BENCH_TMPDIR/tvmw-cp-bench-build.$$.log
    log "building $CP_BIN from ${src#"$REPO"/}"
    { [[ -f $obj/CMakeCache.txt ]] || cmake -S "$src" -B "$obj" -DCMAKE_BUILD_TYPE="$BUILD_TYPE"; } >"$blog" 2>&1 ||
        die "cmake failed: $(tail -n 20 "$blog")"
    make -C "$obj" -j"$(nproc)" tvmw-cp >"$blog" 2>&1 || die "build failed: $(grep -m5 -E 'error|Error' "$blog")"
    rm -f "$blog"
fi
[[ -x $CP_BIN ]] || die "CP_BIN=$CP_BIN is not executable"

for i in "${NODES[@]}"; do
    for p in $((HTTP_BASE + i)) $((RAFT_BASE + i)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            die "port $p is already in use (another cluster running? set HTTP_BASE/RAFT_BASE)"
        fi
    done
done

TMP=$(mktemp -d "$BENCH_TMPDIR/tvmw-cp-bench.XXXXXX")
DATA=$TMP/data
CONF=$TMP/cluster.json
FSTYPE=$(df -T "$TMP" | awk 'NR == 2 { print $2 " (" $1 ")" }')
[[ $FSTYPE == tmpfs* ]] && log "WARNING: $TMP is on tmpfs, fsync costs nothing there"

# Same file with our data_root and ports (node i: HTTP_BASE+i, RAFT_BASE+i).
awk -v root="$DATA" -v hb="$HTTP_BASE" -v rb="$RAFT_BASE" -v st="$SNAPSHOT_THRESHOLD" '
    /"data_root"/ { sub(/"data_root": *"[^"]*"/, "\"data_root\": \"" root "\"") }
    /"snapshot_threshold"/ && st != "" { sub(/"snapshot_threshold": *[0-9]+/, "\"snapshot_threshold\": " st) }
    /"raft_address"/ && match($0, /"id": *[0-9]+/) {
        id = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", id)
        sub(/"raft_address": *"[^"]*"/, "\"raft_address\": \"127.0.0.1:" rb + id "\"")
        sub(/"http_address": *"[^"]*"/, "\"http_address\": \"127.0.0.1:" hb + id "\"")
    }
    { print }' "$SRC_CONF" >"$CONF"
# Effective raft settings: --print-config, else the file, else the default
# documented in docs/configuration.md.
"$CP_BIN" --config "$CONF" --id 1 --print-config >"$TMP/print-config.txt" 2>&1 ||
    die "tvmw-cp refuses $CONF: $(cat "$TMP/print-config.txt")"
read -r TOKEN RAFT_DESC < <(python3 - "$CONF" "$TMP/print-config.txt" "$REPO/docs/configuration.md" <<'PY'
import json, os, re, sys
c = json.load(open(sys.argv[1]))
eff = dict(l.strip().split("=", 1) for l in open(sys.argv[2]) if "=" in l)
docs = open(sys.argv[3]).read() if os.path.exists(sys.argv[3]) else ""
def get(key):
    if "raft." + key in eff:
        return eff["raft." + key]
    if key in c.get("raft", {}):
        return str(c["raft"][key])
    m = re.search(r"\|\s*`raft\.%s`\s*\|\s*([^|]*?)\s*\|" % key, docs)
    return (m.group(1) + " (documented default)") if m else "?"
print(c["admin_token"], "election timeout %s ms, heartbeat %s ms, snapshot every %s entries keeping %s, install_snapshot_timeout_ms %s" % (
    get("election_timeout_ms"), get("heartbeat_timeout_ms"), get("snapshot_threshold"),
    get("snapshot_trailing"), get("install_snapshot_timeout_ms")))
PY
)
python3 - "$CONF" "$HTTP_BASE" "$RAFT_BASE" <<'EOF' || die "generated config is wrong"
import json, sys
c = json.load(open(sys.argv[1]))
hb, rb = int(sys.argv[2]), int(sys.argv[3])
ids = [n["id"] for n in c["nodes"]]
assert ids == [1, 2, 3], ids
for n in c["nodes"]:
    assert n["http_address"] == "127.0.0.1:%d" % (hb + n["id"]), n
    assert n["raft_address"] == "127.0.0.1:%d" % (rb + n["id"]), n
EOF
PREFIX=$(date +%s)-$$

# ---- node control -------------------------------------------------------------

start_node() {
    local i=$1
    "$CP_BIN" --config "$CONF" --id "$i" >>"$TMP/node-$i.log" 2>&1 &
    NODE_PID[$i]=$!
    echo "$(date -u +%H:%M:%S.%3N) bench: started node $i pid ${NODE_PID[$i]}" >>"$TMP/events.log"
}

# kill_node ID SIGNAL: signals it and reaps it (SIGTERM: up to 20 s, then -9).
kill_node() {
    local i=$1 sig=$2 pid=${NODE_PID[$1]}
    kill "-$sig" "$pid"
    if [[ $sig == TERM ]]; then
        local t
        for t in $(seq 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            PROBLEMS+=("node $i did not exit within 20 s of SIGTERM; killed with -9")
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    local rc=0
    wait "$pid" 2>/dev/null || rc=$?
    [[ $sig == TERM && $rc != 0 ]] && PROBLEMS+=("node $i exited with status $rc after SIGTERM")
    unset "NODE_PID[$i]"
    echo "$(date -u +%H:%M:%S.%3N) bench: node $i pid $pid $sig -> exit $rc" >>"$TMP/events.log"
}

healthz() { curl -s --max-time 2 "$(url "$1")/healthz" 2>/dev/null || true; }
jnum() { # jnum JSON FIELD -> number or empty
    [[ $1 =~ \"$2\":\ *([0-9]+) ]] && echo "${BASH_REMATCH[1]}" || true
}
jstr() {
    [[ $1 =~ \"$2\":\ *\"([^\"]*)\" ]] && echo "${BASH_REMATCH[1]}" || true
}

# Every node we started is still alive, else record a crash.
declare -a PROBLEMS=()
check_alive() {
    local i
    for i in "${!NODE_PID[@]}"; do
        if ! kill -0 "${NODE_PID[$i]}" 2>/dev/null; then
            local rc=0
            wait "${NODE_PID[$i]}" 2>/dev/null || rc=$?
            PROBLEMS+=("node $i (pid ${NODE_PID[$i]}) died unexpectedly, exit status $rc ($1)")
            log "node $i died unexpectedly (status $rc) during $1"
            unset "NODE_PID[$i]"
        fi
    done
}

# Other tvmw-cp processes on the machine (not ours): the highest count seen
# at the checkpoints (settle) goes into the report, since they share the CPUs.
OTHER_CP_MAX=0
count_other_cp() {
    local mine=" ${NODE_PID[*]} " n
    n=$(ps -eo pid=,comm= | awk -v mine="$mine" '$2 == "tvmw-cp" && index(mine, " " $1 " ") == 0' | wc -l)
    ((n <= OTHER_CP_MAX)) || OTHER_CP_MAX=$n
}

# wait_leader TIMEOUT_S: prints the id of a ready leader (healthz 200).
wait_leader() {
    local deadline=$(($(now_ns) + $1 * 1000000000)) i h
    while (($(now_ns) < deadline)); do
        for i in "${!NODE_PID[@]}"; do
            h=$(healthz "$i")
            if [[ $(jstr "$h" status) == ok && $(jstr "$h" role) == leader ]]; then
                echo "$i"
                return 0
            fi
        done
        sleep 0.05
    done
    return 1
}

# wait_caught_up ID INDEX TIMEOUT_S: node ID serves and applied >= INDEX.
wait_caught_up() {
    local deadline=$(($(now_ns) + $3 * 1000000000)) h a
    while (($(now_ns) < deadline)); do
        h=$(healthz "$1")
        a=$(jnum "$h" applied_index)
        [[ $(jstr "$h" status) == ok && -n $a && $a -ge $2 ]] && return 0
        sleep 0.05
    done
    return 1
}

# settle: a ready leader, and every running node applied its commit index.
# Sets LEADER and FOLLOWERS.
LEADER=""
FOLLOWERS=()
settle() {
    check_alive "$1"
    count_other_cp
    LEADER=$(wait_leader 30) || die "no leader within 30 s ($1)"
    local ci i
    ci=$(jnum "$(healthz "$LEADER")" commit_index)
    [[ -n $ci ]] || die "leader $LEADER gave no commit_index"
    FOLLOWERS=()
    for i in $(printf '%s\n' "${!NODE_PID[@]}" | sort -n); do
        [[ $i == "$LEADER" ]] && continue
        wait_caught_up "$i" "$ci" 60 || die "node $i did not reach index $ci within 60 s ($1)"
        FOLLOWERS+=("$i")
    done
    # the leader may have changed meanwhile
    [[ $(jstr "$(healthz "$LEADER")" role) == leader ]] || settle "$1"
}

# post_client NODE NAME -> "HTTP_CODE BODY"
post_client() {
    curl -s --max-time 15 -X POST -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' -d "{\"name\":\"$2\"}" \
        -w '\n%{http_code}' "$(url "$1")/admin/v1/clients" 2>/dev/null || true
}

# count_clients: clients ids are a counter and nothing is deleted, so the id
# of a fresh client is the number of clients.
count_clients() {
    local out code id
    out=$(post_client "$LEADER" "bench-$PREFIX-count-$(now_ns)")
    code=${out##*$'\n'}
    id=$(jnum "$out" id)
    [[ $code == 201 && -n $id ]] || die "count probe failed: $out"
    echo "$id"
}

# ---- wrk -------------------------------------------------------------------------

declare -a THR_ROWS=()
# run_wrk LABEL THREADS CONNS URL_NODE HOSTS(comma list or "") [STOP_AT_COMMIT]
# Without STOP_AT_COMMIT: runs DURATION seconds. With it: runs until the
# leader's commit_index reaches it, then stops wrk with SIGINT (wrk still
# reports; thread:stop() would not shorten a wrk run).
run_wrk() {
    local label=$1 t=$2 c=$3 node=$4 hosts=$5 stop_at=${6:-}
    local out=$TMP/wrk-$label.txt dur=$DURATION
    [[ -n $stop_at ]] && dur=600
    local objs leader_log=$TMP/node-$LEADER.log from
    objs=$(count_clients)
    from=$(($(wc -l <"$leader_log") + 1))
    log "wrk $label: -t$t -c$c ${stop_at:+until commit_index $stop_at, max }-d${dur}s -> ${hosts:-$(url "$node")}"
    BENCH_TOKEN=$TOKEN BENCH_PREFIX="$PREFIX-$label" BENCH_HOSTS=$hosts \
        wrk -t"$t" -c"$c" -d"${dur}s" --timeout 15s --latency -s "$LUA" "$(url "$node")/" \
        >"$out" 2>&1 &
    local pid=$!
    BG_PIDS+=("$pid")
    if [[ -n $stop_at ]]; then
        local ci
        while kill -0 "$pid" 2>/dev/null; do
            ci=$(jnum "$(healthz "$node")" commit_index)
            if [[ -n $ci && $ci -ge $stop_at ]]; then
                kill -INT "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.2
        done
    fi
    local rc=0
    wait "$pid" || rc=$?
    BG_PIDS=()
    ((rc == 0)) || die "wrk $label exited with $rc: $(tail -5 "$out")"
    local line
    line=$(grep '^BENCH_RESULT ' "$out") || die "wrk $label printed no result: $(tail -5 "$out")"
    declare -gA R=()
    local kv
    for kv in ${line#BENCH_RESULT }; do R[${kv%%=*}]=${kv#*=}; done
    local sockerr=$((R[err_connect] + R[err_read] + R[err_write] + R[err_timeout]))
    local ok_rps
    ok_rps=$(awk -v ok="${R[ok]}" -v d="${R[duration_us]}" 'BEGIN { printf "%.0f", ok / (d / 1e6) }')
    log "  $ok_rps 2xx/s, p50 ${R[p50_us]} us, p99 ${R[p99_us]} us, non-2xx ${R[non2xx]} (${R[statuses]}), socket errors $sockerr"
    ((R[non2xx] == 0)) || PROBLEMS+=("wrk $label: ${R[non2xx]} non-2xx responses (${R[statuses]})")
    ((sockerr == 0)) || PROBLEMS+=("wrk $label: socket errors connect=${R[err_connect]} read=${R[err_read]} write=${R[err_write]} timeout=${R[err_timeout]}")
    # snapshots the leader took meanwhile, and the size of the last one
    local snaps
    snaps=$(tail -n +"$from" "$leader_log" | awk '/snapshot taken/ { n++; for (i = 1; i <= NF; i++) if ($i ~ /^bytes=/) b = substr($i, 7) }
        END { printf "%d|%.0f", n, b / 1e6 }')
    log "  clients at start $objs; leader snapshots during the run: ${snaps%|*} (last ${snaps#*|} MB)"
    LAST_ROW="$ok_rps|${R[p50_us]}|${R[p99_us]}|${R[max_us]}|${R[non2xx]}|${R[statuses]}|$sockerr|${R[requests]}|$objs|$snaps"
}

ms() { awk -v us="$1" 'BEGIN { if (us < 10000) printf "%.2f", us / 1000; else printf "%.1f", us / 1000 }'; }

# ---- 0. machine, cluster ------------------------------------------------------------

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NPROC=$(nproc)
KERNEL=$(uname -r)
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
OTHER_CP=$(ps -eo comm= | grep -c '^tvmw-cp$' || true)
RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
T_START=$(now_ns)

log "temp dir $TMP ($FSTYPE), binary $CP_BIN"
for i in "${NODES[@]}"; do start_node "$i"; done
settle "startup"
log "cluster up: leader $LEADER, followers ${FOLLOWERS[*]}"

# ---- 1. throughput ---------------------------------------------------------------------

ALL_HOSTS=$(for i in "${NODES[@]}"; do printf '127.0.0.1:%s,' "$(http_port "$i")"; done)
ALL_HOSTS=${ALL_HOSTS%,}

settle "before c1-leader"
run_wrk c1-leader 1 1 "$LEADER" ""
THR_ROWS+=("1|leader (node $LEADER)|-t1 -c1|$LAST_ROW")

settle "before c1-follower"
run_wrk c1-follower 1 1 "${FOLLOWERS[0]}" ""
THR_ROWS+=("1|follower (node ${FOLLOWERS[0]}, forwards)|-t1 -c1|$LAST_ROW")

settle "before c64-leader"
run_wrk c64-leader 2 64 "$LEADER" ""
THR_ROWS+=("64|leader (node $LEADER)|-t2 -c64|$LAST_ROW")

settle "before c63-spread"
run_wrk c63-spread 3 63 "$LEADER" "$ALL_HOSTS"
THR_ROWS+=("63|all 3 nodes, 21 each (leader $LEADER)|-t3 -c63|$LAST_ROW")
settle "after throughput"

# ---- 2. failover ------------------------------------------------------------------------

declare -a FO_MS=() FO_ROWS=()
probe() { # probe NODE NAME FILE: one POST, appends "start_ns end_ns code node"
    local s e out code
    s=$(now_ns)
    out=$(post_client "$1" "$2")
    e=$(now_ns)
    code=${out##*$'\n'}
    [[ $code =~ ^[0-9]{3}$ ]] || code=000
    echo "$s $e $code $1" >>"$3"
}

for run in $(seq "$FAILOVER_RUNS"); do
    settle "before failover $run"
    old=$LEADER
    survivors=("${FOLLOWERS[@]}")
    old_term=$(jnum "$(healthz "$old")" term)
    f=$TMP/failover-$run.txt
    : >"$f"
    log "failover $run: kill -9 leader $old (term $old_term), probing nodes ${survivors[*]} every 10 ms"
    declare -a probes=()
    t0=$(now_ns)
    kill_node "$old" KILL
    k=0
    while :; do
        probe "${survivors[$((k % ${#survivors[@]}))]}" "bench-$PREFIX-fo$run-$k" "$f" &
        probes+=($!)
        BG_PIDS+=($!)
        k=$((k + 1))
        sleep 0.01
        grep -q ' 2[0-9][0-9] [0-9]*$' "$f" && break
        (($(now_ns) - t0 > 30000000000)) && break
    done
    for p in "${probes[@]}"; do wait "$p" 2>/dev/null || true; done
    unset probes
    BG_PIDS=()
    read -r first_ok first_ok_sent n_probes n_bad _ codes < <(awk -v t0="$t0" '
        { n++; c[$3]++ }
        $3 ~ /^2/ { ok++; if (best == "" || $2 < best) { best = $2; sent = $1 } }
        $3 !~ /^2/ { bad++ }
        END {
            s = ""; for (k in c) s = s (s == "" ? "" : ",") k ":" c[k]
            if (best == "") print "none none", n + 0, bad + 0, ok + 0, s
            else printf "%.1f %.1f %d %d %d %s\n", (best - t0) / 1e6, (sent - t0) / 1e6, n, bad, ok, s
        }' "$f")
    [[ $first_ok != none ]] || die "failover $run: no successful write within 30 s ($codes)"
    ((n_bad == 0)) || PROBLEMS+=("failover $run: $n_bad of $n_probes probe writes were not 2xx ($codes)")
    check_alive "failover $run"
    new=$(wait_leader 10) || die "no leader after failover $run"
    new_term=$(jnum "$(healthz "$new")" term)
    log "  first 2xx write ${first_ok} ms after kill -9 (that request was sent at +${first_ok_sent} ms); new leader $new term $new_term; probes $n_probes ($codes)"
    FO_MS+=("$first_ok")
    FO_ROWS+=("$run|$old (term $old_term)|$new (term $new_term)|$first_ok|$first_ok_sent|$n_probes|$n_bad")
    start_node "$old"
    settle "restart after failover $run"
done
FO_MEDIAN=$(printf '%s\n' "${FO_MS[@]}" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
log "failover median ${FO_MEDIAN} ms (${FO_MS[*]})"

# ---- 3. catch-up: a lagging follower, then a wiped one -------------------------

# catch_up NODE LABEL: starts NODE (its previous process is stopped) and times
# until its applied_index reaches the leader's commit_index of now. Sets
# CU_TARGET, CU_SERVE_S, CU_S, CU_SNAP, CU_STALL_S (longest time its
# applied_index stood still below the target).
catch_up() {
    local v=$1 label=$2 h t t0 a t_serving="" t_done="" prog=$TMP/catchup-$2.txt
    h=$(healthz "$LEADER")
    CU_TARGET=$(jnum "$h" commit_index)
    [[ $(jstr "$h" role) == leader && -n $CU_TARGET ]] || die "leader $LEADER lost leadership before the $label catch-up"
    local logline
    logline=$(($(wc -l <"$TMP/node-$v.log") + 1))
    : >"$prog"
    t0=$(now_ns)
    start_node "$v"
    while :; do
        h=$(healthz "$v")
        t=$(now_ns)
        a=$(jnum "$h" applied_index)
        echo "$(((t - t0) / 1000000)) ${a:--} $(jnum "$h" commit_index) $(jstr "$h" status)" >>"$prog"
        [[ -z $t_serving && $(jstr "$h" status) == ok ]] && t_serving=$t
        if [[ -n $a && $a -ge $CU_TARGET ]]; then
            t_done=$t
            [[ -n $t_serving ]] || t_serving=$t
            break
        fi
        ((t - t0 < 300000000000)) || die "node $v did not catch up within 300 s ($label; applied ${a:-?} of $CU_TARGET)"
        check_alive "$label catch-up"
        [[ -n ${NODE_PID[$v]:-} ]] || die "node $v died during the $label catch-up"
        sleep 0.02
    done
    CU_S=$(awk -v d=$((t_done - t0)) 'BEGIN { printf "%.2f", d / 1e9 }')
    CU_SERVE_S=$(awk -v d=$((t_serving - t0)) 'BEGIN { printf "%.2f", d / 1e9 }')
    CU_STALL_S=$(awk -v tgt="$CU_TARGET" '
        $2 == "-" { next }
        $2 != last { if (seen && $1 - since > best) best = $1 - since; last = $2; since = $1; seen = 1 }
        END { printf "%.1f", best / 1000 }' "$prog")
    local snaps
    snaps=$(tail -n +"$logline" "$TMP/node-$v.log" | grep 'snapshot restored' || true)
    if [[ -z $snaps ]]; then
        CU_SNAP="log entries only"
    else
        CU_SNAP=$(awk '{ n++; for (i = 1; i <= NF; i++) { if ($i ~ /^records=/) r = substr($i, 9); if ($i ~ /^bytes=/) b = substr($i, 7) } }
            END { printf "%d snapshot%s (%s records, %.1f MB) + log", n, (n > 1 ? "s" : ""), r, b / 1e6 }' <<<"$snaps")
    fi
    log "  $label: node $v applied index $CU_TARGET after $CU_S s (healthz 200 after $CU_SERVE_S s, longest stall ${CU_STALL_S} s); $CU_SNAP"
}

declare -a CU_ROWS=()

# 3a. A follower stopped (SIGTERM, data kept) while LAG_WRITES clients are
# written (at least enough to reach TARGET_OBJECTS), then restarted.
settle "before lagging follower"
COUNT=$(count_clients)
need=$((TARGET_OBJECTS - COUNT + 1000))
((need > LAG_WRITES)) || need=$LAG_WRITES
lagger=${FOLLOWERS[0]}
log "lagging follower: SIGTERM node $lagger, write $need clients on leader $LEADER, restart it (clients now: $COUNT)"
kill_node "$lagger" TERM
base=$(jnum "$(healthz "$LEADER")" commit_index)
run_wrk fill 2 64 "$LEADER" "" $((base + need))
FILL_ROW=$LAST_ROW
sleep 1 # requests wrk left in flight finish
COUNT=$(count_clients)
catch_up "$lagger" lagging
CU_ROWS+=("stopped (SIGTERM) during $need writes, restarted with its data|$COUNT|$CU_TARGET|$CU_SNAP|$CU_SERVE_S|$CU_STALL_S|$CU_S")
settle "after lagging follower"

# 3b. A follower stopped, its data dir deleted, restarted with the same command.
COUNT=$(count_clients)
((COUNT >= TARGET_OBJECTS)) || die "only $COUNT clients, wanted $TARGET_OBJECTS"
victim=${FOLLOWERS[-1]}
LEADER_DU=$(du -sh "$DATA/node-$LEADER" | cut -f1)
log "wiped follower: SIGTERM node $victim, delete $DATA/node-$victim ($(du -sh "$DATA/node-$victim" | cut -f1)), restart (clients: $COUNT)"
kill_node "$victim" TERM
rm -rf "${DATA:?}/node-$victim"
catch_up "$victim" wiped
CU_ROWS+=("**stopped (SIGTERM), data dir deleted, restarted**|$COUNT|$CU_TARGET|$CU_SNAP|$CU_SERVE_S|$CU_STALL_S|**$CU_S s**")
WIPED_STALL=$CU_STALL_S
settle "after catch-up"
T_TOTAL=$(awk -v d=$(($(now_ns) - T_START)) 'BEGIN { printf "%.0f", d / 1e9 }')

# ---- 4. server problems in the logs -------------------------------------------------

check_alive "end"
LOG_REPORT=""
for i in "${NODES[@]}"; do
    f=$TMP/node-$i.log
    nerr=$(grep -c ' ERROR ' "$f" || true)
    nwarn=$(grep -c ' WARN ' "$f" || true)
    LOG_REPORT+="node $i: $nerr ERROR, $nwarn WARN lines"$'\n'
    if ((nerr + nwarn > 0)); then
        # distinct messages (timestamps cut), most frequent first
        LOG_REPORT+=$(grep -E ' (ERROR|WARN) ' "$f" | cut -d' ' -f2- | sed 's/[0-9]\{2,\}/N/g' |
            sort | uniq -c | sort -rn | head -8 | sed 's/^/    /')$'\n'
    fi
    crash_re='Sanitizer|runtime error:|Segmentation fault|Assertion .* failed|core dumped'
    if grep -qE "$crash_re" "$f"; then
        PROBLEMS+=("node $i log shows a crash: $(grep -m1 -E "$crash_re" "$f")")
    fi
done

# ---- 5. report -----------------------------------------------------------------------

SECTION_FILE=$TMP/section.md
{
    echo "$SECTION"
    echo
    echo "- Date: $RUN_DATE; whole run ${T_TOTAL} s"
    echo "- Commit: \`$COMMIT\`; binary: $BIN_DESC"
    echo "- Machine: $NPROC × $CPU_MODEL (nproc $NPROC), kernel $KERNEL; data on $FSTYPE; load average before the run $LOADAVG; other tvmw-cp processes (other people's tests) running: $OTHER_CP before, up to $OTHER_CP_MAX during the run"
    echo "- Cluster: 3 tvmw-cp nodes on 127.0.0.1 (HTTP $((HTTP_BASE + 1))-$((HTTP_BASE + 3)), raft $((RAFT_BASE + 1))-$((RAFT_BASE + 3))), \`cluster-conf/local-3/cluster.json\` with its ports and \`data_root\` changed ($RAFT_DESC); libraft fsyncs every append"
    echo "- Command: \`$CMDLINE\`"
    echo
    echo "### Writes: \`POST /admin/v1/clients\` with a unique \`{\"name\"}\`, ${DURATION} s per row (wrk 4.1, \`scripts/bench/cp_writes.lua\`)"
    echo
    echo "| clients | sent to | wrk | writes/s (2xx) | p50 | p99 | max | non-2xx | socket errors | objects at start | leader snapshots (last) |"
    echo "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${THR_ROWS[@]}"; do
        IFS='|' read -r c to w rps p50 p99 mx bad _ se _ objs nsnap smb _ <<<"$r"
        echo "| $c | $to | \`$w\` | $rps | $(ms "$p50") ms | $(ms "$p99") ms | $(ms "$mx") ms | $bad | $se | $objs | $nsnap ($smb MB) |"
    done
    echo
    echo "wrk keeps one server address per thread, so \"all 3 nodes\" means one thread of 21 connections per node; the followers forward their writes to the leader. The rows run one after the other on the same cluster, so the state grows from row to row (objects at start); every \`raft.snapshot_threshold\` entries each node serializes its whole state into a snapshot (last column: how many the leader took during the row, and the size of the last one)."
    echo
    echo "### Leader failover: \`kill -9\` of the leader → first successful write"
    echo
    echo "A \`curl\` POST to a surviving node (alternating) is started every 10 ms from the kill on; time of the end of the first 2xx answer minus the time just before \`kill -9\` (\`date +%s%N\`). The killed node is restarted and caught up between runs."
    echo
    echo "| run | killed leader | new leader | kill → first 2xx (ms) | that request sent at (ms) | probes | non-2xx probes |"
    echo "|---:|---|---|---:|---:|---:|---:|"
    for r in "${FO_ROWS[@]}"; do
        IFS='|' read -r n o nw ok sent np nb <<<"$r"
        echo "| $n | $o | $nw | $ok | $sent | $np | $nb |"
    done
    echo "| **median** | | | **$FO_MEDIAN** | | | |"
    echo
    echo "### Catch-up of a restarted follower"
    echo
    echo "Time from starting the follower again (same command) until its \`/healthz\` \`applied_index\` reaches the leader's \`commit_index\` at that moment (polled every 20 ms). The wiped node bootstraps again and gets a snapshot from the leader. Leader data dir before the wipe: $LEADER_DU."
    echo
    echo "| follower | clients in the state | target index | transfer | → /healthz 200 | longest stall of applied_index | → caught up |"
    echo "|---|---:|---:|---|---:|---:|---:|"
    for r in "${CU_ROWS[@]}"; do
        IFS='|' read -r what cnt tgt snap serve stall done_s <<<"$r"
        [[ $done_s == *s\*\* ]] || done_s+=" s"
        echo "| $what | $cnt | $tgt | $snap | $serve s | $stall s | $done_s |"
    done
    echo
    if awk -v s="$WIPED_STALL" 'BEGIN { exit !(s >= 2) }'; then
        echo "The wiped node restores the snapshot quickly, then its \`applied_index\` stands still for ${WIPED_STALL} s while its \`/healthz\` already answers 200: the leader still holds the wiped node's old \`match_index\`, so the acknowledgement of the snapshot (a lower index) does not take the follower out of snapshot mode, and it waits for \`raft.install_snapshot_timeout_ms\` (see the cluster line above) before it probes again (\`LIBRAFT_TRACE=1\` on the leader shows \`sending snapshot with last index … to N\`, then \`snapshot timed out for index:1\`). A follower restarted with its data (first row) does not wait."
        echo
    fi
    IFS='|' read -r rps _ _ _ _ _ _ nreq _ <<<"$FILL_ROW"
    echo "The lagging follower's writes (also what brings the state to ≥ $TARGET_OBJECTS clients) were made with \`wrk -t2 -c64\` on the leader: $nreq requests, $rps writes/s with one follower down."
    echo
    echo "### Server problems seen"
    echo
    if ((${#PROBLEMS[@]} == 0)); then
        echo "- none: no non-2xx answer, no socket error, no crash"
    else
        for p in "${PROBLEMS[@]}"; do echo "- $p"; done
    fi
    echo "- ERROR/WARN lines in the node logs (distinct messages, numbers replaced by N):"
    echo
    echo '```'
    printf '%s' "$LOG_REPORT"
    echo '```'
} >"$SECTION_FILE"

echo
echo "================ summary ================"
cat "$SECTION_FILE"
echo "========================================="

if [[ $UPDATE_DOCS == 1 ]]; then
    if [[ ! -f $DOC ]]; then
        cat >"$DOC" <<'EOF'
# Benchmarks

Every figure on this page comes with the command that produced it, the commit
and the machine it ran on. Rerun the command to check a figure; figures from
different machines or commits are not comparable.

EOF
    fi
    # Replace the section (from its heading to the next "## " heading) or append it.
    awk -v head="$SECTION" -v file="$SECTION_FILE" '
        function emit(   l) { while ((getline l < file) > 0) print l; close(file); done = 1 }
        $0 == head { emit(); skip = 1; next }
        skip && /^## / { skip = 0; print "" }
        skip { next }
        { print }
        END { if (!done) { print ""; emit() } }' "$DOC" >"$TMP/doc.md"
    # squeeze runs of blank lines left by the replacement
    cat -s "$TMP/doc.md" >"$DOC"
    log "updated $DOC"
fi
