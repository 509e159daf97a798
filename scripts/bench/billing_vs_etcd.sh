#!/usr/bin/env bash
# Billing API transaction/create vs etcd 3.4 v3 put (issue 4).
#
# In one invocation, one system after the other (never both at once: they
# share the cores with wrk):
#   1. tvmw: a fresh 3-node tvmw-cp cluster on 127.0.0.1 (HTTP HTTP_BASE+1..3,
#      raft RAFT_BASE+1..3, config generated from cluster-conf/local-3/
#      cluster.json, data under a mktemp dir; libraft fsyncs every append).
#      A client with billing_api_key "bench-billing-key" (admin API), CUSTOMERS
#      customers made with signed Billing API customer/create calls, then
#      wrk -tTHREADS -cCONNS -dDURATION --latency on the leader, POSTing
#      precomputed signed transaction/create bodies (a unique id each, a
#      random customer, amount=1.5, processed=1; application/x-www-form-
#      urlencoded). Every reply is checked: HTTP 200 with "error":0 counts
#      as a write, anything else as an error. Afterwards the customers'
#      payments_count (customer/list) must account for every write.
#   2. etcd: 3 members of Debian's etcd-server 3.4 on 127.0.0.1 (client ports
#      2379/22379/32379, peer 2380/22380/32380, shifted if taken; data under
#      the same temp dir; fsync is always on in 3.4), wrk with the same
#      settings and the same Lua script on the leader's gRPC gateway
#      POST /v3/kv/put with precomputed unique keys. HTTP 200 with a
#      "revision" counts as a write; the revision delta and a count of the
#      keys must account for every write.
# Target of the issue: tvmw writes/s >= 2 x etcd's, tvmw p99 <= etcd's.
# Prints a summary and writes the section "Billing API transaction/create vs
# etcd (issue 4)" of docs/benchmarks.md. Every process it starts is stopped
# by PID on exit; its temp dir is removed.
#
# Usage: scripts/bench/billing_vs_etcd.sh          (about 2-3 minutes)
# Environment (defaults in brackets):
#   DURATION      seconds of each wrk run [30]
#   THREADS CONNS wrk threads / connections [2 / 64]
#   CUSTOMERS     customers created before the run [1000]
#   BODIES        precomputed bodies per system; a run that uses them all is
#                 refused [max(400000, 20000 x DURATION)]
#   BUILD_WAIT_MIN  the working tree may not build while colleagues edit it:
#                 retry every BUILD_RETRY_S [180] seconds for this long [60]
#   EXTRA_CFLAGS  CMAKE_C_FLAGS of that build, e.g. -Wno-error=maybe-uninitialized
#                 when -O3 finds a warning the default -O2 build does not [unset]
#   CP_BIN        use this tvmw-cp binary instead of building one [unset]
#   HTTP_BASE, RAFT_BASE  tvmw node i listens on HTTP_BASE+i / RAFT_BASE+i
#                 [8700, 9700]; shifted by 10 while taken
#   ETCD_CLIENT_PORTS, ETCD_PEER_PORTS  [2379 22379 32379 / 2380 22380 32380];
#                 all shifted by 1 while one is taken
#   IDLE_WAIT_S, IDLE_MAX_PCT  before each run wait up to IDLE_WAIT_S [900]
#                 seconds until the machine is at most IDLE_MAX_PCT [10] % busy
#                 (other people's benchmarks, builds, tests); a run during
#                 which other processes used more than OTHER_MAX_CORES [0.2]
#                 cores is reported as disturbed
#   SNAPSHOT_THRESHOLD  override raft.snapshot_threshold of the tvmw config
#                 [unset: the value of cluster-conf/local-3/cluster.json]
#   UPDATE_DOCS   1: write docs/benchmarks.md, 0: only print [1]
#   KEEP_LOGS     directory to copy logs and wrk outputs into [unset]
#   BENCH_TMPDIR  where the temp dir is made (must not be tmpfs: fsync) [/tmp]
#
# The tvmw binary: the working tree (what colleagues are writing, uncommitted
# changes included) is copied (git ls-files -co --exclude-standard) to
# build-bench/billing-src and built there with CMake Release into
# build-bench/billing-obj (target tvmw-cp; the script needs no tvmwctl); the report names the
# commit, the changed files and a hash of the copied tree.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/scripts/bench
DURATION=${DURATION:-30}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
CUSTOMERS=${CUSTOMERS:-1000}
BODIES_DEFAULT=$((20000 * ${DURATION//[^0-9]/}))
((BODIES_DEFAULT >= 400000)) || BODIES_DEFAULT=400000
BODIES=${BODIES:-$BODIES_DEFAULT}
BUILD_WAIT_MIN=${BUILD_WAIT_MIN:-60}
BUILD_RETRY_S=${BUILD_RETRY_S:-180}
EXTRA_CFLAGS=${EXTRA_CFLAGS:-}
HTTP_BASE=${HTTP_BASE:-8700}
RAFT_BASE=${RAFT_BASE:-9700}
read -r -a ECP <<<"${ETCD_CLIENT_PORTS:-2379 22379 32379}"
read -r -a EPP <<<"${ETCD_PEER_PORTS:-2380 22380 32380}"
IDLE_WAIT_S=${IDLE_WAIT_S:-900}
IDLE_MAX_PCT=${IDLE_MAX_PCT:-10}
OTHER_MAX_CORES=${OTHER_MAX_CORES:-0.2}
UPDATE_DOCS=${UPDATE_DOCS:-1}
KEEP_LOGS=${KEEP_LOGS:-}
BENCH_TMPDIR=${BENCH_TMPDIR:-/tmp}
SRC_CONF=$REPO/cluster-conf/local-3/cluster.json
LUA=$HERE/billing_vs_etcd.lua
PY=$HERE/billing_vs_etcd.py
DOC=$REPO/docs/benchmarks.md
SECTION="## Billing API transaction/create vs etcd (issue 4)"
BILLING_KEY=bench-billing-key
NODES=(1 2 3)

CMDLINE=""
for v in DURATION THREADS CONNS CUSTOMERS BODIES SNAPSHOT_THRESHOLD EXTRA_CFLAGS CP_BIN HTTP_BASE RAFT_BASE ETCD_CLIENT_PORTS ETCD_PEER_PORTS; do
    [[ -n ${!v+x} ]] || continue
    case $v in
    DURATION) [[ $DURATION == 30 ]] && continue ;;
    THREADS) [[ $THREADS == 2 ]] && continue ;;
    CONNS) [[ $CONNS == 64 ]] && continue ;;
    CUSTOMERS) [[ $CUSTOMERS == 1000 ]] && continue ;;
    BODIES) [[ $BODIES == "$BODIES_DEFAULT" ]] && continue ;;
    HTTP_BASE) [[ $HTTP_BASE == 8700 ]] && continue ;;
    RAFT_BASE) [[ $RAFT_BASE == 9700 ]] && continue ;;
    EXTRA_CFLAGS) [[ -z $EXTRA_CFLAGS ]] && continue ;;
    esac
    CMDLINE+="$v=${!v@Q} "
done
CMDLINE+="scripts/bench/billing_vs_etcd.sh"

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
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for v in DURATION THREADS CONNS CUSTOMERS BODIES BUILD_WAIT_MIN BUILD_RETRY_S HTTP_BASE RAFT_BASE IDLE_WAIT_S IDLE_MAX_PCT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer"
done
((DURATION >= 1 && THREADS >= 1 && CONNS >= THREADS && CUSTOMERS >= 1)) || die "bad DURATION/THREADS/CONNS/CUSTOMERS"
((${#ECP[@]} == 3 && ${#EPP[@]} == 3)) || die "ETCD_CLIENT_PORTS and ETCD_PEER_PORTS need 3 ports each"

# ---- 1. tools ------------------------------------------------------------------

need_pkgs=()
dpkg -s etcd-server >/dev/null 2>&1 || need_pkgs+=(etcd-server)
dpkg -s wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
for t in curl python3 git awk cmake make; do
    command -v "$t" >/dev/null || need_pkgs+=("$t")
done
if ((${#need_pkgs[@]} > 0)); then
    log "installing ${need_pkgs[*]}"
    ((EUID == 0)) || die "need root to apt-get install ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${need_pkgs[@]}" >/dev/null 2>&1 ||
        { apt-get update >/dev/null 2>&1 && apt-get install -y "${need_pkgs[@]}" >/dev/null; } ||
        die "apt-get install ${need_pkgs[*]} failed"
fi
ETCD_BIN=$(dpkg -L etcd-server | grep -E '/bin/etcd$' | head -n1)
[[ -x $ETCD_BIN ]] || die "no etcd binary in package etcd-server"
ETCD_VERSION=$("$ETCD_BIN" --version | awk '/^etcd Version/ { print $3 }')
[[ $ETCD_VERSION == 3.4.* ]] || log "WARNING: etcd $ETCD_VERSION is not 3.4"
ETCD_PKG=$(dpkg-query -W -f='${Version}' etcd-server)
WRK_VERSION=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 { sub(/^debian\//, "", $2); print $2 }')

# ---- processes and cleanup --------------------------------------------------

declare -A NODE_PID=()   # tvmw node id -> pid
declare -A ETCD_PID=()   # etcd member index -> pid
declare -a BG_PIDS=()    # wrk, samplers
TMP=""

stop_pids() { # stop_pids PID...: TERM, up to 10 s, then KILL; reaps them
    local pid alive
    (($# > 0)) || return 0
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 100); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

cleanup() {
    local rc=$? pids=()
    trap - EXIT INT TERM
    pids+=("${BG_PIDS[@]}")
    pids+=("${NODE_PID[@]}")
    pids+=("${ETCD_PID[@]}")
    stop_pids "${pids[@]}"
    if [[ -n $TMP && -d $TMP ]]; then
        if [[ -n $KEEP_LOGS ]]; then
            mkdir -p "$KEEP_LOGS" &&
                cp "$TMP"/*.log "$TMP"/*.txt "$TMP"/cluster.json "$KEEP_LOGS"/ 2>/dev/null || true
            log "logs kept in $KEEP_LOGS"
        elif ((rc != 0)); then
            for f in "$TMP"/node-*.log "$TMP"/etcd-*.log; do
                [[ -f $f ]] || continue
                log "last lines of $(basename "$f"):"
                tail -n 10 "$f" >&2 || true
            done
        fi
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d "$BENCH_TMPDIR/billing-vs-etcd.XXXXXX")
FSTYPE=$(df -T "$TMP" | awk 'NR == 2 { print $2 " (" $1 ")" }')
[[ $FSTYPE == tmpfs* ]] && log "WARNING: $TMP is on tmpfs, fsync costs nothing there"

# ---- 2. build ------------------------------------------------------------------

COMMIT_FULL=$(git -C "$REPO" rev-parse HEAD)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD)
BUILD_ROOT=$REPO/build-bench
if [[ -n ${CP_BIN:-} ]]; then
    BIN_DESC="\`$CP_BIN\` (given with CP_BIN)"
else
    SNAP=$BUILD_ROOT/billing-src
    OBJ=$BUILD_ROOT/billing-obj
    CP_BIN=$OBJ/controlplane/tvmw-cp
    blog=$TMP/build.log
    t_build0=$(date +%s)
    attempt=0
    while :; do
        attempt=$((attempt + 1))
        # A copy of the working tree, so that files saved during the build
        # do not mix two states, and the report can name what was built.
        rm -rf "$SNAP.new"
        mkdir -p "$SNAP.new"
        git -C "$REPO" ls-files -co --exclude-standard -z |
            (cd "$REPO" && tar -c --ignore-failed-read --null -T - 2>/dev/null) | tar -x -C "$SNAP.new"
        COMMIT_FULL=$(git -C "$REPO" rev-parse HEAD)
        COMMIT=$(git -C "$REPO" rev-parse --short HEAD)
        TREE_HASH=$(cd "$SNAP.new" && find . -type f -print0 | sort -z |
            xargs -0 sha256sum | sha256sum | cut -c1-12)
        DIRTY=$(git -C "$REPO" status --porcelain -- controlplane common CMakeLists.txt |
            awk '{ print $2 }' | paste -sd' ' - || true)
        # The object dir is kept (incremental build): tar keeps the files'
        # mtimes, so make rebuilds only what changed.
        if [[ -d $SNAP ]]; then
            rm -rf "$SNAP.old" && mv "$SNAP" "$SNAP.old"
        fi
        mv "$SNAP.new" "$SNAP"
        rm -rf "$SNAP.old"
        log "build attempt $attempt: working tree at $COMMIT (snapshot $TREE_HASH) -> $OBJ"
        if cmake -S "$SNAP" -B "$OBJ" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS=$EXTRA_CFLAGS" >"$blog" 2>&1 &&
            nice -n 10 make -C "$OBJ" -j"$(nproc)" tvmw-cp >>"$blog" 2>&1; then
            break
        fi
        waited=$(($(date +%s) - t_build0))
        log "  build failed: $(grep -m3 -E 'error|Error' "$blog" | sed 's/^.*controlplane\///' | paste -sd'|' -)"
        ((waited + BUILD_RETRY_S <= BUILD_WAIT_MIN * 60)) ||
            die "the working tree did not build within $BUILD_WAIT_MIN min: $(grep -m5 -E 'error' "$blog")"
        log "  retrying in $BUILD_RETRY_S s (waited $((waited / 60)) of $BUILD_WAIT_MIN min)"
        sleep "$BUILD_RETRY_S"
    done
    BIN_DESC="working tree at \`$COMMIT\`${DIRTY:+ with uncommitted changes in $DIRTY} (copy hashed \`$TREE_HASH\`), CMake Release build${EXTRA_CFLAGS:+ with CMAKE_C_FLAGS=\`$EXTRA_CFLAGS\`} in \`build-bench/billing-obj\`"
fi
[[ -x $CP_BIN ]] || die "CP_BIN=$CP_BIN is not executable"

# ---- machine, other load -----------------------------------------------------------

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
NPROC=$(nproc)
KERNEL=$(uname -r)
declare -a NOTES=()

# Anything else busy on the machine (colleagues' benchmarks, builds, tests)
# would steal the cores from the run: wait until it is quiet.
declare -A IDLE_PCT=()
wait_idle() { # wait_idle LABEL
    local t0 b0 x0 b1 x1 pct
    t0=$(date +%s)
    while :; do
        read -r b0 x0 < <(machine_busy)
        sleep 3
        read -r b1 x1 < <(machine_busy)
        pct=$(((b1 - b0) * 100 / (x1 - x0 > 0 ? x1 - x0 : 1)))
        IDLE_PCT[$1]=$pct
        ((pct <= IDLE_MAX_PCT)) && return 0
        if (($(date +%s) - t0 >= IDLE_WAIT_S)); then
            NOTES+=("the machine was ${pct}% busy with other work just before the $1 run (waited ${IDLE_WAIT_S} s for it to calm down)")
            log "WARNING: machine still ${pct}% busy after ${IDLE_WAIT_S} s, measuring anyway"
            return 0
        fi
        log "machine ${pct}% busy before the $1 run, waiting: $(ps -eo pid=,comm=,pcpu= --sort=-pcpu | head -n 4 | awk '{ printf "%s%s(%s)", (NR > 1 ? " " : ""), $2, $1 }')"
        sleep 10
    done
}

# fdatasync latency of the data disk (the floor under every fsynced write).
FSYNC_DESC=$(python3 - "$TMP" <<'EOF'
import os, sys, time
p = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
buf = b"x" * 4096
ts = []
for i in range(200):
    os.pwrite(fd, buf, (i % 64) * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    ts.append(time.perf_counter() - t)
os.close(fd); os.unlink(p)
ts.sort()
print("4 KiB write + fdatasync: p50 %.2f ms, p99 %.2f ms (200 samples)" % (ts[100] * 1e3, ts[197] * 1e3))
EOF
)
log "disk: $FSTYPE, $FSYNC_DESC"

# CPU seconds (user+sys) of the reaped children of this shell (wrk)
# into CHILD_CPU (`times` must run in this shell, not in a pipe or $(): a
# fork starts at 0)
children_cpu() {
    times >"$TMP/times.txt"
    CHILD_CPU=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' "$TMP/times.txt")
}
# /proc/PID/stat utime+stime in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
machine_busy() { awk '/^cpu / { idle = $5 + $6; tot = 0; for (i = 2; i <= NF; i++) tot += $i; print tot - idle, tot }' /proc/stat; }
HZ=$(getconf CLK_TCK)

# ---- wrk -------------------------------------------------------------------------

ms() { awk -v us="$1" 'BEGIN { if (us < 10000) printf "%.2f", us / 1000; else printf "%.1f", us / 1000 }'; }

# run_wrk LABEL URL PATH CTYPE KIND BODIES PIDS...: fills R[] and CPU_DESC
run_wrk() {
    local label=$1 url=$2 path=$3 ctype=$4 kind=$5 bodies=$6
    shift 6
    local out=$TMP/wrk-$label.txt pid p b0 b1 busy0 tot0 busy1 tot1
    declare -A c0=()
    for p in "$@"; do c0[$p]=$(cpu_ticks "$p"); done
    local wrk0 wrk1
    children_cpu
    wrk0=$CHILD_CPU
    read -r busy0 tot0 < <(machine_busy)
    log "wrk $label: -t$THREADS -c$CONNS -d${DURATION}s --latency POST $url$path"
    BENCH_BODIES=$bodies BENCH_PATH=$path BENCH_CTYPE=$ctype BENCH_KIND=$kind \
        wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 15s --latency -s "$LUA" "$url" \
        >"$out" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    local rc=0
    wait "$pid" || rc=$?
    BG_PIDS=()
    read -r busy1 tot1 < <(machine_busy)
    children_cpu
    wrk1=$CHILD_CPU
    ((rc == 0)) || die "wrk $label exited with $rc: $(tail -5 "$out")"
    local line kv
    line=$(grep '^BENCH_RESULT ' "$out") || die "wrk $label printed no result: $(tail -5 "$out")"
    declare -gA R=()
    for kv in ${line#BENCH_RESULT }; do R[${kv%%=*}]=${kv#*=}; done
    ((R[exhausted] == 0)) ||
        die "wrk $label used up its $BODIES precomputed bodies (${R[requests]} requests): rerun with BODIES=$((BODIES * 3))"
    R[sockerr]=$((R[err_connect] + R[err_read] + R[err_write] + R[err_timeout]))
    R[wps]=$(awk -v g="${R[good]}" -v d="${R[duration_us]}" 'BEGIN { printf "%.0f", g / (d / 1e6) }')
    # CPU of the servers during the run, in cores (leader first)
    CPU_DESC=""
    local secs
    secs=$(awk -v d="${R[duration_us]}" 'BEGIN { print d / 1e6 }')
    for p in "$@"; do
        CPU_DESC+=$(awk -v a="${c0[$p]}" -v b="$(cpu_ticks "$p")" -v hz="$HZ" -v s="$secs" 'BEGIN { printf "%.2f ", (b - a) / hz / s }')
    done
    R[cpu]=${CPU_DESC% }
    R[machine]=$(awk -v a="$busy0" -v b="$busy1" -v x="$tot0" -v y="$tot1" 'BEGIN { printf "%.0f", 100 * (b - a) / (y - x) }')
    # server CPU time per successful write (all members), wrk's CPU, and the
    # rest of the machine (other people's work) in cores
    R[cpu_per_write_us]=$(awk -v c="${R[cpu]}" -v g="${R[good]}" -v s="$secs" 'BEGIN { n = split(c, a, " "); for (i = 1; i <= n; i++) t += a[i]; printf "%.0f", (g > 0 ? t * s / g * 1e6 : 0) }')
    R[wrk_cores]=$(awk -v a="$wrk0" -v b="$wrk1" -v s="$secs" 'BEGIN { printf "%.2f", (b - a) / s }')
    R[other_cores]=$(awk -v c="${R[cpu]}" -v m="${R[machine]}" -v w="${R[wrk_cores]}" -v n="$NPROC" 'BEGIN { k = split(c, a, " "); for (i = 1; i <= k; i++) t += a[i]; o = m / 100 * n - t - w; printf "%.2f", (o < 0 ? 0 : o) }')
    if awk -v o="${R[other_cores]}" -v m="$OTHER_MAX_CORES" 'BEGIN { exit !(o > m) }'; then
        NOTES+=("processes not started by this script used ${R[other_cores]} cores during the $label run: its figures are disturbed")
    fi
    log "  ${R[wps]} writes/s, p50 $(ms "${R[p50_us]}") ms, p99 $(ms "${R[p99_us]}") ms, max $(ms "${R[max_us]}") ms;" \
        "bad ${R[bad]} (HTTP ${R[statuses]}; error ${R[errors]}), socket errors ${R[sockerr]};" \
        "server CPU (cores) ${R[cpu]} = ${R[cpu_per_write_us]} us per write; wrk ${R[wrk_cores]} cores;" \
        "machine ${R[machine]}% busy (other processes ${R[other_cores]} cores)"
}

# ---- 3. tvmw ------------------------------------------------------------------------

http_port() { echo $((HTTP_BASE + $1)); }
url() { echo "http://127.0.0.1:$(http_port "$1")"; }
for _ in $(seq 50); do
    busy=0
    for i in "${NODES[@]}"; do
        port_busy $((HTTP_BASE + i)) && busy=1
        port_busy $((RAFT_BASE + i)) && busy=1
    done
    ((busy)) || break
    HTTP_BASE=$((HTTP_BASE + 10)) RAFT_BASE=$((RAFT_BASE + 10))
done
((busy == 0)) || die "no free ports for the tvmw cluster"

DATA=$TMP/tvmw
CONF=$TMP/cluster.json
awk -v root="$DATA" -v hb="$HTTP_BASE" -v rb="$RAFT_BASE" -v th="${SNAPSHOT_THRESHOLD:-}" '
    /"data_root"/ { sub(/"data_root": *"[^"]*"/, "\"data_root\": \"" root "\"") }
    /"raft_address"/ && match($0, /"id": *[0-9]+/) {
        id = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", id)
        sub(/"raft_address": *"[^"]*"/, "\"raft_address\": \"127.0.0.1:" rb + id "\"")
        sub(/"http_address": *"[^"]*"/, "\"http_address\": \"127.0.0.1:" hb + id "\"")
    }
    /"snapshot_threshold"/ && th != "" { sub(/"snapshot_threshold": *[0-9]+/, "\"snapshot_threshold\": " th) }
    { print }' "$SRC_CONF" >"$CONF"
read -r TOKEN SNAP_TH RAFT_DESC < <(python3 -c '
import json, sys
c = json.load(open(sys.argv[1])); r = c.get("raft", {})
print(c["admin_token"], r.get("snapshot_threshold", 8192), "election timeout %s ms, heartbeat %s ms, snapshot every %s entries" % (
    r.get("election_timeout_ms", 1000), r.get("heartbeat_timeout_ms", 100),
    r.get("snapshot_threshold", 8192)))' "$CONF")
python3 - "$CONF" "$HTTP_BASE" "$RAFT_BASE" <<'EOF' || die "generated config is wrong"
import json, sys
c = json.load(open(sys.argv[1]))
hb, rb = int(sys.argv[2]), int(sys.argv[3])
assert [n["id"] for n in c["nodes"]] == [1, 2, 3]
for n in c["nodes"]:
    assert n["http_address"] == "127.0.0.1:%d" % (hb + n["id"]), n
    assert n["raft_address"] == "127.0.0.1:%d" % (rb + n["id"]), n
EOF
"$CP_BIN" --config "$CONF" --id 1 --print-config >/dev/null || die "tvmw-cp refuses $CONF"
[[ -z ${SNAPSHOT_THRESHOLD:-} || $SNAP_TH == "$SNAPSHOT_THRESHOLD" ]] || die "SNAPSHOT_THRESHOLD was not applied"

healthz() { curl -s --max-time 2 "$(url "$1")/healthz" 2>/dev/null || true; }
jnum() { [[ $1 =~ \"$2\":\ *(-?[0-9]+) ]] && echo "${BASH_REMATCH[1]}" || true; }
jstr() { [[ $1 =~ \"$2\":\ *\"([^\"]*)\" ]] && echo "${BASH_REMATCH[1]}" || true; }

check_nodes() {
    local i rc
    for i in "${!NODE_PID[@]}"; do
        if ! kill -0 "${NODE_PID[$i]}" 2>/dev/null; then
            rc=0
            wait "${NODE_PID[$i]}" 2>/dev/null || rc=$?
            unset "NODE_PID[$i]"
            die "tvmw node $i died (exit status $rc) $1: $(tail -n 5 "$TMP/node-$i.log")"
        fi
    done
}

# settle LABEL: a ready leader, every node applied the leader's commit index.
settle() {
    local deadline=$(($(now_ns) + 60000000000)) i h ci a ok
    while (($(now_ns) < deadline)); do
        check_nodes "$1"
        LEADER=""
        for i in "${NODES[@]}"; do
            h=$(healthz "$i")
            [[ $(jstr "$h" status) == ok && $(jstr "$h" role) == leader ]] && LEADER=$i
        done
        if [[ -n $LEADER ]]; then
            ci=$(jnum "$(healthz "$LEADER")" commit_index)
            ok=1
            for i in "${NODES[@]}"; do
                a=$(jnum "$(healthz "$i")" applied_index)
                [[ -n $a && -n $ci && $a -ge $ci ]] || ok=0
            done
            ((ok)) && return 0
        fi
        sleep 0.1
    done
    die "tvmw cluster not settled within 60 s ($1)"
}

log "tvmw: temp dir $TMP ($FSTYPE), binary $CP_BIN, HTTP $((HTTP_BASE + 1))-$((HTTP_BASE + 3))"
for i in "${NODES[@]}"; do
    "$CP_BIN" --config "$CONF" --id "$i" >>"$TMP/node-$i.log" 2>&1 &
    NODE_PID[$i]=$!
done
settle startup
log "tvmw: leader node $LEADER"

out=$(curl -s --max-time 15 -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"name\":\"bench-billing\",\"billing_api_key\":\"$BILLING_KEY\"}" -w '\n%{http_code}' \
    "$(url "$LEADER")/admin/v1/clients") || true
[[ ${out##*$'\n'} == 201 ]] || die "POST /admin/v1/clients failed: $out"
CLIENT_ID=$(jnum "$out" id)
[[ -n $CLIENT_ID ]] || die "no client id in $out"
LURL=$(url "$LEADER")
log "tvmw: client $CLIENT_ID; creating $CUSTOMERS customers (signed customer/create)"
PREFIX=bvx$(date +%s)
python3 "$PY" customers --url "$LURL" --client-id "$CLIENT_ID" --key "$BILLING_KEY" \
    --count "$CUSTOMERS" --out "$TMP/customers.txt" --prefix "$PREFIX" 2>"$TMP/customers.log" ||
    die "creating customers failed: $(tail -3 "$TMP/customers.log")"
log "  $(tail -1 "$TMP/customers.log")"

# One call by hand first: a stub or a broken method fails here, not in wrk.
smoke=$(python3 "$PY" call --url "$LURL" --client-id "$CLIENT_ID" --key "$BILLING_KEY" transaction/create \
    customer_id="$(head -n1 "$TMP/customers.txt")" id="$PREFIX-smoke" amount=1.5 processed=1) ||
    die "transaction/create smoke call failed"
[[ $(jnum "$smoke" error) == 0 ]] || die "transaction/create answers $smoke"
log "  smoke transaction/create: $smoke"

log "tvmw: precomputing $BODIES signed transaction/create bodies"
python3 "$PY" billing-bodies --client-id "$CLIENT_ID" --key "$BILLING_KEY" --ids "$TMP/customers.txt" \
    --count "$BODIES" --out "$TMP/tx-bodies" --prefix "$PREFIX-tx" --split "$THREADS" 2>"$TMP/gen.log" ||
    die "body generator failed: $(tail -3 "$TMP/gen.log")"
GEN_DESC=$(tail -1 "$TMP/gen.log")
log "  $GEN_DESC"

totals() { python3 "$PY" customer-totals --url "$LURL" --client-id "$CLIENT_ID" --key "$BILLING_KEY"; }
wait_idle tvmw
settle "before the tvmw run"
LURL=$(url "$LEADER")
T_BEFORE=$(totals) || die "customer/list failed"
CI_BEFORE=$(jnum "$(healthz "$LEADER")" commit_index)
RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
TV_T0=$(date -u +%Y-%m-%dT%H:%M:%S)
TV_PIDS=("${NODE_PID[$LEADER]}")
for i in "${NODES[@]}"; do [[ $i == "$LEADER" ]] || TV_PIDS+=("${NODE_PID[$i]}"); done
run_wrk tvmw "$LURL" /billing/api/transaction/create/ application/x-www-form-urlencoded billing \
    "$TMP/tx-bodies" "${TV_PIDS[@]}"
declare -A TV=()
for k in "${!R[@]}"; do TV[$k]=${R[$k]}; done
check_nodes "during the tvmw run"
[[ $(jstr "$(healthz "$LEADER")" role) == leader ]] || NOTES+=("tvmw: node $LEADER lost leadership during the run")
settle "after the tvmw run"
CI_AFTER=$(jnum "$(healthz "$LEADER")" commit_index)
T_AFTER=$(totals) || die "customer/list failed"
PAY0=$(jnum "$T_BEFORE" payments) PAY1=$(jnum "$T_AFTER" payments)
TV[committed]=$((PAY1 - PAY0))
TV[entries]=$((CI_AFTER - CI_BEFORE))
log "  transactions counted in payments_count: ${TV[committed]} (wrk saw ${TV[good]} successful); raft entries ${TV[entries]}"
# a write wrk did not see the reply of (stopped in flight) may have landed
((TV[committed] >= TV[good] && TV[committed] <= TV[good] + CONNS + TV[sockerr])) ||
    NOTES+=("tvmw: payments_count grew by ${TV[committed]}, wrk saw ${TV[good]} successful writes")
TV_LOG=""
for i in "${NODES[@]}"; do
    f=$TMP/node-$i.log
    TV_LOG+="node $i: $(grep -c ' ERROR ' "$f" || true) ERROR, $(grep -c ' WARN ' "$f" || true) WARN lines; "
done
TV_DU=$(du -sh "$DATA/node-$LEADER" | cut -f1)
TV_SNAPS=$(awk -v t0="$TV_T0" '/snapshot taken/ && $1 >= t0 { n++; for (i = 1; i <= NF; i++) if ($i ~ /^bytes=/) b = substr($i, 7) } END { if (n) printf "%d snapshot%s of the state on the leader during the run, the last %.0f MB", n, (n > 1 ? "s" : ""), b / 1e6; else printf "no snapshot during the run" }' "$TMP/node-$LEADER.log")
stop_pids "${NODE_PID[@]}"
NODE_PID=()
log "tvmw: stopped ($TV_LOG leader data dir $TV_DU)"

# ---- 4. etcd ---------------------------------------------------------------------------

for _ in $(seq 50); do
    busy=0
    for p in "${ECP[@]}" "${EPP[@]}"; do port_busy "$p" && busy=1; done
    ((busy)) || break
    for k in 0 1 2; do ECP[$k]=$((ECP[k] + 1)) EPP[$k]=$((EPP[k] + 1)); done
done
((busy == 0)) || die "no free ports for etcd"
EURLS=()
ICLUSTER=""
for k in 0 1 2; do
    EURLS+=("http://127.0.0.1:${ECP[$k]}")
    ICLUSTER+="${ICLUSTER:+,}m$((k + 1))=http://127.0.0.1:${EPP[$k]}"
done
ETCD_FLAGS="--quota-backend-bytes=8589934592 --logger=zap --log-outputs=stderr (defaults otherwise: heartbeat 100 ms, election 1000 ms, snapshot-count 100000)"
log "etcd $ETCD_VERSION: 3 members, client ports ${ECP[*]}, peer ports ${EPP[*]}"
for k in 0 1 2; do
    # env -i: no ETCD_* variables from the caller's environment
    env -i PATH=/usr/bin:/bin "$ETCD_BIN" --name "m$((k + 1))" --data-dir "$TMP/etcd/m$((k + 1))" \
        --listen-client-urls "${EURLS[$k]}" --advertise-client-urls "${EURLS[$k]}" \
        --listen-peer-urls "http://127.0.0.1:${EPP[$k]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${EPP[$k]}" \
        --initial-cluster "$ICLUSTER" --initial-cluster-token "bench-$$" --initial-cluster-state new \
        --quota-backend-bytes 8589934592 --logger zap --log-outputs stderr \
        >"$TMP/etcd-$((k + 1)).log" 2>&1 &
    ETCD_PID[$k]=$!
done
check_etcd() {
    local k rc
    for k in "${!ETCD_PID[@]}"; do
        if ! kill -0 "${ETCD_PID[$k]}" 2>/dev/null; then
            rc=0
            wait "${ETCD_PID[$k]}" 2>/dev/null || rc=$?
            unset "ETCD_PID[$k]"
            die "etcd member $((k + 1)) died (exit status $rc) $1: $(tail -n 5 "$TMP/etcd-$((k + 1)).log")"
        fi
    done
}
etcd_leader() { # sets ELEADER (url) and EREV
    local deadline=$(($(now_ns) + 60000000000)) r
    while (($(now_ns) < deadline)); do
        check_etcd "$1"
        if r=$(python3 "$PY" etcd-leader "${EURLS[@]}" 2>/dev/null); then
            read -r ELEADER EREV <<<"$r"
            return 0
        fi
        sleep 0.2
    done
    die "no etcd leader within 60 s ($1)"
}
etcd_leader startup
for u in "${EURLS[@]}"; do
    h=$(curl -s --max-time 5 "$u/health" || true)
    [[ $h == *'"health":"true"'* ]] || die "etcd $u not healthy: $h"
done
log "etcd: leader $ELEADER"

log "etcd: precomputing $BODIES put bodies"
python3 "$PY" etcd-bodies --count "$BODIES" --out "$TMP/put-bodies" --prefix "$PREFIX" --split "$THREADS" \
    2>"$TMP/gen-etcd.log" || die "etcd body generator failed: $(tail -3 "$TMP/gen-etcd.log")"
wait_idle etcd
etcd_leader "before the etcd run"
REV0=$EREV
E_PIDS=()
for k in 0 1 2; do [[ ${EURLS[$k]} == "$ELEADER" ]] && E_PIDS=("${ETCD_PID[$k]}"); done
for k in 0 1 2; do [[ ${EURLS[$k]} == "$ELEADER" ]] || E_PIDS+=("${ETCD_PID[$k]}"); done
ELEADER_RUN=$ELEADER
run_wrk etcd "$ELEADER" /v3/kv/put application/json etcd "$TMP/put-bodies" "${E_PIDS[@]}"
declare -A ET=()
for k in "${!R[@]}"; do ET[$k]=${R[$k]}; done
check_etcd "during the etcd run"
etcd_leader "after the etcd run"
[[ $ELEADER == "$ELEADER_RUN" ]] || NOTES+=("etcd: the leader changed during the run")
ET[committed]=$((EREV - REV0))
ET[keys]=$(python3 - "$ELEADER" "$PREFIX/" <<'EOF'
import base64, json, sys, urllib.request
ep, p = sys.argv[1], sys.argv[2]
end = p[:-1] + chr(ord(p[-1]) + 1)
b = lambda s: base64.b64encode(s.encode()).decode()
req = urllib.request.Request(ep + "/v3/kv/range", method="POST",
      data=json.dumps({"key": b(p), "range_end": b(end), "count_only": True}).encode())
print(int(json.load(urllib.request.urlopen(req, timeout=60)).get("count", 0)))
EOF
) || die "etcd range count failed"
log "  revision grew by ${ET[committed]}, ${ET[keys]} keys (wrk saw ${ET[good]} successful)"
((ET[committed] >= ET[good] && ET[committed] <= ET[good] + CONNS + ET[sockerr] && ET[keys] == ET[committed])) ||
    NOTES+=("etcd: revision grew by ${ET[committed]} and ${ET[keys]} keys exist, wrk saw ${ET[good]} successful puts")
ET_DU=$(du -sh "$TMP/etcd/m1" | cut -f1)
stop_pids "${ETCD_PID[@]}"
ETCD_PID=()
log "etcd: stopped"

# ---- 5. report ------------------------------------------------------------------------------

RATIO_W=$(awk -v a="${TV[wps]}" -v b="${ET[wps]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
RATIO_P99=$(awk -v a="${TV[p99_us]}" -v b="${ET[p99_us]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
if awk -v r="$RATIO_W" -v a="${TV[p99_us]}" -v b="${ET[p99_us]}" 'BEGIN { exit !(r >= 2 && a <= b) }'; then
    VERDICT="**met**"
else
    why=()
    awk -v r="$RATIO_W" 'BEGIN { exit !(r < 2) }' && why+=("writes/s ratio $RATIO_W < 2")
    ((TV[p99_us] > ET[p99_us])) && why+=("tvmw p99 $(ms "${TV[p99_us]}") ms > etcd p99 $(ms "${ET[p99_us]}") ms")
    VERDICT="**not met** ($(IFS=';'; echo "${why[*]}" | sed 's/;/; /g'))"
fi
errs() { # errs ARRAY-NAME -> "N" or "N (details)"
    local -n a=$1
    local n=$((a[bad] + a[sockerr])) d=""
    ((a[non2xx] > 0)) && d+="HTTP ${a[statuses]}; "
    [[ ${a[errors]} != none && ${a[errors]} != "0:${a[good]}" ]] && d+="error codes ${a[errors]}; "
    ((a[sockerr] > 0)) && d+="socket connect ${a[err_connect]} read ${a[err_read]} write ${a[err_write]} timeout ${a[err_timeout]}; "
    if [[ -n $d ]]; then echo "$n (${d%; })"; else echo "$n"; fi
}

SECTION_FILE=$TMP/section.md
{
    echo "$SECTION"
    echo
    echo "Target (issue 4): tvmw's \`transaction/create\` at least 2× etcd's v3 puts/s, with a p99 no higher than etcd's. Result: $VERDICT."
    echo
    echo "| system | writes/s | p50 | p99 | errors |"
    echo "|---|---:|---:|---:|---:|"
    echo "| tvmw \`transaction/create\` (3 nodes) | ${TV[wps]} | $(ms "${TV[p50_us]}") ms | $(ms "${TV[p99_us]}") ms | $(errs TV) |"
    echo "| etcd $ETCD_VERSION v3 put (3 members) | ${ET[wps]} | $(ms "${ET[p50_us]}") ms | $(ms "${ET[p99_us]}") ms | $(errs ET) |"
    echo "| **tvmw / etcd** | **$RATIO_W** | | **$RATIO_P99** | |"
    echo
    echo "- Date: $RUN_DATE"
    echo "- Commit: \`$COMMIT\`; tvmw binary: $BIN_DESC"
    echo "- Machine: $NPROC × $CPU_MODEL (nproc $NPROC), kernel $KERNEL; data on $FSTYPE, $FSYNC_DESC"
    echo "- Command: \`$CMDLINE\`"
    echo "- Load: wrk $WRK_VERSION \`-t$THREADS -c$CONNS -d${DURATION}s --timeout 15s --latency\` with \`scripts/bench/billing_vs_etcd.lua\` on the leader, the same machine and cores as the servers; the two systems ran one after the other, each with nothing else of the benchmark running (machine busy in the 3 s before: ${IDLE_PCT[tvmw]}% / ${IDLE_PCT[etcd]}%). Bodies are precomputed (\`scripts/bench/billing_vs_etcd.py\`), one per request, each wrk thread reads its own slice; every reply is parsed."
    echo "- tvmw: 3 \`tvmw-cp\` nodes on 127.0.0.1 (HTTP $((HTTP_BASE + 1))-$((HTTP_BASE + 3))), \`cluster-conf/local-3/cluster.json\` with its ports and \`data_root\` changed ($RAFT_DESC); libraft fsyncs every append. A client with \`billing_api_key\` \`$BILLING_KEY\`, $CUSTOMERS customers from signed \`customer/create\`. Requests: \`POST /billing/api/transaction/create/\`, form body \`customer_id=<random of the $CUSTOMERS>&id=<unique>&amount=1.5&processed=1&client_id=$CLIENT_ID&signature=<md5>\` (generator: $GEN_DESC). A write = HTTP 200 with \`\"error\":0\`. Check: the customers' \`payments_count\` (\`customer/list\`) grew by ${TV[committed]} (wrk saw ${TV[good]} successes), raft commit index by ${TV[entries]}."
    echo "- etcd: Debian \`etcd-server\` $ETCD_PKG, 3 members on 127.0.0.1 (client ports ${ECP[*]}, peer ${EPP[*]}), \`$ETCD_FLAGS\`; fsync of the WAL on every commit (3.4 cannot turn it off). Requests: gRPC gateway \`POST /v3/kv/put\` \`{\"key\":base64(\"$PREFIX/<n>\"),\"value\":base64(16 bytes)}\`, unique keys. A write = HTTP 200 with a \`revision\`. Check: the revision grew by ${ET[committed]}, ${ET[keys]} keys with the prefix (wrk saw ${ET[good]} successes)."
    echo "- Requests sent: tvmw ${TV[requests]}, etcd ${ET[requests]}; max latency tvmw $(ms "${TV[max_us]}") ms, etcd $(ms "${ET[max_us]}") ms; p90 tvmw $(ms "${TV[p90_us]}") ms, etcd $(ms "${ET[p90_us]}") ms."
    echo "- CPU during the run (cores; leader, follower, follower): tvmw ${TV[cpu]}, etcd ${ET[cpu]}, i.e. **${TV[cpu_per_write_us]} µs** vs **${ET[cpu_per_write_us]} µs** of server CPU per write (3 members together); wrk ${TV[wrk_cores]} / ${ET[wrk_cores]} cores; the machine was ${TV[machine]}% / ${ET[machine]}% busy of $NPROC cores, of which processes not started by this script ${TV[other_cores]} / ${ET[other_cores]} cores."
    echo "- Data dir of one member after its run: tvmw leader $TV_DU, etcd m1 $ET_DU. tvmw: $TV_SNAPS (\`raft.snapshot_threshold\` $SNAP_TH; etcd's snapshot-count is 100000)."
    echo "- tvmw node logs: $TV_LOG"
    if ((${#NOTES[@]} > 0)); then
        for n in "${NOTES[@]}"; do echo "- **Note:** $n"; done
    fi
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
    # Replace our section (from its heading to the next "## " heading) or
    # append it; the rest of the file is left as it is.
    awk -v head="$SECTION" -v file="$SECTION_FILE" '
        function emit(   l) { while ((getline l < file) > 0) print l; close(file); done = 1 }
        $0 == head { emit(); skip = 1; next }
        skip && /^## / { skip = 0; print "" }
        skip { next }
        { print }
        END { if (!done) { print ""; emit() } }' "$DOC" >"$TMP/doc.md"
    cat -s "$TMP/doc.md" >"$DOC"
    log "updated $DOC"
fi
