"""One run of the jepsen-like suite: topology, cluster, data, workloads,
nemesis, final reads, checks, summary.  Entry point: ./run (see --help).

Exit codes: 0 no anomaly, 1 anomaly found, 2 infrastructure failure,
3 checker gave up (unknown), 77 not root (ctest SKIP_RETURN_CODE).
With --expect-anomaly (the --unsafe self-test) 0 means "the checker found
the anomaly it had to find" and 1 means it did not.
"""

import argparse
import atexit
import fcntl
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import checker  # noqa: E402
import edgecheck  # noqa: E402
import edgeload  # noqa: E402
import history as hist  # noqa: E402
import jlclient  # noqa: E402
import jlcluster  # noqa: E402
import jledge  # noqa: E402
import jlnet  # noqa: E402
import nemesis as nem  # noqa: E402
import workloads as wl  # noqa: E402

DEFAULT_BIN = "/work/main/build/controlplane/tvmw-cp"
LOCK_PATH = "/run/lock/tvmw-jepsen-like.lock"
EXIT_OK, EXIT_ANOMALY, EXIT_INFRA, EXIT_UNKNOWN, EXIT_SKIP = 0, 1, 2, 3, 77


SAFETY_CHECKS = ("register linearizability", "register audit trail", "bank balance reads",
                 "bank ledger", "convergence", "edge revocation", "edge validity",
                 "edge convergence")
WORKLOADS = ("register", "bank", "edge")


class InfraError(RuntimeError):
    pass


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="run", description="tvmw jepsen-like fault-injection run")
    ap.add_argument("--time", type=float, default=60, help="seconds of faults + traffic")
    ap.add_argument("--nemesis", default="all",
                    help="all | none | comma list of %s" % ",".join(nem.KINDS))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--bin", default=None,
                    help="tvmw-cp binary (default $TVMW_CP_BIN or %s)" % DEFAULT_BIN)
    ap.add_argument("--nodes", type=int, default=None,
                    help="initial voters (default 3 if --time <= 120, else 5)")
    ap.add_argument("--workload", default="all",
                    help="all (= register,bank,edge) or a comma list of %s" % ",".join(WORKLOADS))
    ap.add_argument("--edges", type=int, default=2,
                    help="edges of the edge workload (default 2)")
    ap.add_argument("--edge-bin", default=None,
                    help="tvmw-edge binary (default $TVMW_EDGE_BIN, else edge/tvmw-edge "
                         "next to the tvmw-cp binary's directory)")
    ap.add_argument("--keys", type=int, default=3, help="register keys (accounts)")
    ap.add_argument("--customers", type=int, default=5, help="bank customers")
    ap.add_argument("--op-timeout", type=float, default=3.0)
    ap.add_argument("--subnet", type=int, default=90, help="uses 10.77.SUBNET.0/24")
    ap.add_argument("--unsafe", action="store_true",
                    help="start nodes with --unsafe-ack-before-commit (self-test)")
    ap.add_argument("--scenario", default="random",
                    choices=["random", "leader-partition", "leader-churn"],
                    help="random: the nemesis schedule of --nemesis; leader-partition "
                         "(the --unsafe self-test): isolate the leader while writing to "
                         "it, then heal, twice; leader-churn: every few seconds kill, "
                         "restart or transfer the leader while clients write through "
                         "the followers")
    ap.add_argument("--expect-anomaly", action="store_true",
                    help="succeed only if an anomaly is found (self-test)")
    ap.add_argument("--checker-time-limit", type=float, default=None,
                    help="seconds per register key (default 30, 120 for long runs)")
    ap.add_argument("--runs-dir", default=os.path.join(HERE, "runs"))
    ap.add_argument("--keep-data", action="store_true",
                    help="keep the nodes' data dirs (and the binary copy) in the run dir")
    ap.add_argument("--keep-cores", action="store_true",
                    help="keep core files of crashed nodes (default: backtrace.txt only)")
    ap.add_argument("--election-ms", type=int, default=1000)
    ap.add_argument("--heartbeat-ms", type=int, default=100)
    ap.add_argument("--snapshot-threshold", type=int, default=None,
                    help="raft.snapshot_threshold (default 64, 512 for long runs)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.seed is None:
        a.seed = random.SystemRandom().randint(1, 10**6)
    if a.nodes is None:
        a.nodes = 3 if a.time <= 120 else 5
    try:
        a.kinds = nem.parse_kinds(a.nemesis)
    except ValueError as e:
        ap.error(str(e))
    a.workloads = list(WORKLOADS) if a.workload == "all" else \
        [w.strip() for w in a.workload.split(",") if w.strip()]
    for w in a.workloads:
        if w not in WORKLOADS:
            ap.error("unknown workload %s" % w)
    if "edge" in a.workloads:
        if not 1 <= a.edges <= 20:
            ap.error("--edges must be 1..20")
    else:
        asked = [k for k in a.kinds if k in nem.EDGE_KINDS]
        if asked and a.nemesis != "all":
            ap.error("nemesis %s needs the edge workload" % ",".join(asked))
        a.kinds = [k for k in a.kinds if k not in nem.EDGE_KINDS]
        a.edges = 0
    if a.snapshot_threshold is None:
        a.snapshot_threshold = 64 if a.time <= 120 else 512
    if a.checker_time_limit is None:
        a.checker_time_limit = 30.0 if a.time <= 120 else 120.0
    a.bin = a.bin or os.environ.get("TVMW_CP_BIN") or DEFAULT_BIN
    a.edge_bin = a.edge_bin or os.environ.get("TVMW_EDGE_BIN") or \
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(a.bin))), "edge",
                     "tvmw-edge")
    return a


class Run:
    def __init__(self, a):
        self.a = a
        self.rng = random.Random(a.seed)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = "%s-%d%s" % (stamp, a.seed, "-unsafe" if a.unsafe else "")
        self.dir = os.path.join(a.runs_dir, name)
        os.makedirs(self.dir, exist_ok=False)
        self.log_fh = open(os.path.join(self.dir, "run.log"), "a")
        self.t0 = time.monotonic()
        self.topo = self.cluster = self.nemesis = self.edges = None
        self.edge = None          # the edge workload
        self.stop_workers = threading.Event()
        self.stop_monitor = threading.Event()
        self.workers = []
        self.unexpected = []
        self.crashes = []
        self.bias = None          # (slot, probability) for the self-test scenario
        self.avoid = None         # slot clients avoid (leader-churn scenario)
        self.cleaned = False
        self.lock_fh = None

    def log(self, msg):
        line = "[%7.2f] %s" % (time.monotonic() - self.t0, msg)
        self.log_fh.write(line + "\n")
        self.log_fh.flush()
        if not self.a.quiet:
            print(line, flush=True)

    # ---- lifecycle -------------------------------------------------------------
    def acquire_lock(self):
        os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
        self.lock_fh = open(LOCK_PATH, "w")
        deadline = time.monotonic() + 900
        while True:
            try:
                fcntl.flock(self.lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InfraError("another jepsen-like run holds %s" % LOCK_PATH)
                if not getattr(self, "_said_wait", False):
                    self.log("waiting for another jepsen-like run to finish (%s)"
                             % LOCK_PATH)
                    self._said_wait = True
                time.sleep(1)
        self.lock_fh.write("%d\n" % os.getpid())
        self.lock_fh.flush()

    def cleanup(self):
        if self.cleaned:
            return
        self.cleaned = True
        self.stop_workers.set()
        self.stop_monitor.set()
        if self.nemesis:
            self.nemesis.stop_event.set()
        if self.cluster:
            self.cluster.stop_all()
        if self.edges:
            self.edges.stop_all()
        if self.topo:
            try:
                self.topo.destroy()
            except Exception as e:
                print("cleanup: %s" % e, file=sys.stderr)
        if self.cluster and not self.a.keep_data:
            shutil.rmtree(os.path.join(self.dir, "data"), ignore_errors=True)
        if self.cluster:
            self.cores = jlcluster.remove_empty_core_dirs(self.dir)
            self.backtraces()
        for bc in (getattr(self, "bin_copy", None), getattr(self, "edge_bin_copy", None)):
            if bc and os.path.exists(bc) and not self.a.keep_data and \
                    not (self.a.keep_cores and getattr(self, "cores", None)):
                os.unlink(bc)      # kept only with the cores it can read
        if self.lock_fh:
            self.lock_fh.close()
            self.lock_fh = None

    def backtraces(self):
        """backtrace.txt next to every core (gdb), then drop the core unless
        --keep-cores (they are 100-200 MB each)."""
        for d in self.cores or []:
            core = os.path.join(d, "core")
            if not os.path.exists(core):
                continue
            # cores/n<slot>-<start> of nodes, cores/e<j>-<start> of edges
            bc = getattr(self, "edge_bin_copy" if os.path.basename(d).startswith("e")
                         else "bin_copy", None)
            if shutil.which("gdb") and bc and os.path.exists(bc):
                try:
                    p = subprocess.run(["gdb", "-batch", "-ex", "bt 30", bc, core],
                                       capture_output=True, text=True, timeout=120)
                    bt = "\n".join(ln for ln in p.stdout.splitlines()
                                   if ln.startswith("#"))
                    with open(os.path.join(d, "backtrace.txt"), "w") as fh:
                        fh.write(bt + "\n")
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if not self.a.keep_cores:
                os.unlink(core)
        for c in self.crashes:
            f = os.path.join(c.get("core_dir", ""), "backtrace.txt")
            if os.path.exists(f):
                with open(f) as fh:
                    c["backtrace"] = fh.read().splitlines()[:12]

    # ---- node choice ---------------------------------------------------------
    def pick_node(self, rng):
        slots = self.cluster.running_slots()
        if not slots:
            slots = [s for s, n in self.cluster.nodes.items() if n.starts] or [1]
        if self.bias is not None and rng.random() < self.bias[1]:
            return self.bias[0]
        if self.avoid is not None and len(slots) > 1:
            slots = [s for s in slots if s != self.avoid] or slots
        return rng.choice(slots)

    # ---- phases ----------------------------------------------------------------
    def start_cluster(self):
        a = self.a
        spares = 2 if ("member" in a.kinds or "wipe" in a.kinds) else 0
        self.topo = jlnet.Topology(a.nodes + spares, a.subnet, log=self.log, nedges=a.edges)
        self.topo.create()
        self.log("topology: bridge %s %s/24, namespaces %s" % (
            jlnet.BRIDGE, self.topo.bridge_addr,
            " ".join("%s=%s" % (jlnet.ns_name(s), self.topo.addr(s))
                     for s in self.topo.all_slots)))
        self.cluster = jlcluster.Cluster(
            self.topo, self.dir, self.bin_copy, a.nodes, secrets.token_hex(16),
            unsafe=a.unsafe, election_ms=a.election_ms, heartbeat_ms=a.heartbeat_ms,
            snapshot_threshold=a.snapshot_threshold,
            snapshot_trailing=max(16, a.snapshot_threshold // 2), log=self.log,
            edges=jledge.conf_entries(self.topo))
        if a.edges:
            # Started by the edge workload's setup, once the data exists.
            self.edges = jledge.Edges(self.topo, self.dir, self.edge_bin_copy,
                                      self.cluster.conf_path, log=self.log)
        for s in range(1, a.nodes + 1):
            self.cluster.start(s)
        if not self.cluster.wait_healthy(range(1, a.nodes + 1), 30):
            raise InfraError("cluster did not become healthy in 30 s (see logs/)")
        ls, v = self.cluster.leader()
        self.log("cluster up: %d voters, leader n%s term %s%s" % (
            a.nodes, ls, v and v.get("term"), " (UNSAFE mode)" if a.unsafe else ""))

    def setup_data(self):
        c = self.cluster
        key = secrets.token_hex(16)
        self.api_key = secrets.token_hex(16)       # the device API's (edge workload)
        r = None
        cid = None
        for _ in range(10):
            r = c.admin_call("POST", "/admin/v1/clients",
                             {"name": "jepsen-like", "billing_api_key": key,
                              "api_key": self.api_key},
                             headers={"Idempotency-Key": "jl-setup-client"})
            if r.status in (200, 201) and isinstance(r.body, dict) and "client" in r.body:
                cid = r.body["client"]["id"]
                break
            if r.status in (200, 201):
                # --unsafe answers a bare {"error":0}: look the client up
                for _ in range(20):
                    lr = c.admin_call("GET", "/admin/v1/clients")
                    for cl in (lr.body or {}).get("clients", []) \
                            if isinstance(lr.body, dict) else []:
                        if cl.get("billing_api_key") == key:
                            cid = cl["id"]
                    if cid:
                        break
                    time.sleep(0.5)
                if cid:
                    break
            time.sleep(1)
        if cid is None:
            raise InfraError("cannot create the client: %s" % r)
        self.client_id = cid
        self.billing = jlclient.Billing(cid, key, timeout=self.a.op_timeout)
        self.ctx = wl.Ctx(c, self.billing, None, self._rng_for, cid,
                          self.stop_workers, self.pick_node, self.unexpected,
                          self.a.op_timeout)
        self.register = wl.RegisterWorkload(self.a.keys) \
            if "register" in self.a.workloads else None
        self.bank = wl.BankWorkload(self.a.customers) \
            if "bank" in self.a.workloads else None
        items = []
        if self.register:
            items += self.register.setup_items()
        if self.bank:
            items += self.bank.setup_items()
        if items:
            self._import(items, "jl-setup-1")
        addr = lambda: c.nodes[c.leader()[0] or 1].http_address  # noqa: E731
        if self.bank:
            err = self._retry(lambda: self.bank.load_ids(self.ctx, addr()))
            if err:
                raise InfraError("bank setup: %s" % err)
            self._import(self.bank.setup_items2(), "jl-setup-2")
            err = self._retry(lambda: self.bank.verify_setup(self.ctx, addr()))
            if err:
                raise InfraError("bank setup: %s" % err)
        if self.register:
            err = self._retry(lambda: self.register.verify_setup(self.ctx, addr()))
            if err:
                raise InfraError("register setup: %s" % err)
        if "edge" in self.a.workloads:
            self.edge = edgeload.EdgeWorkload(self.edges)
            try:
                self.edge.setup(self.ctx, self.api_key)
            except edgeload.SetupError as e:
                raise InfraError("edge setup: %s" % e)
            self.log("edges: %s, serving (tokens of the main client; expiry tenant %d)" % (
                ", ".join("%s=%s" % (e.name, e.http_address) for e in self.edges),
                self.edge.exp_cid))
        self.log("data: client %d, register keys %s, bank customers %s (total %s)" % (
            cid, self.register and self.register.keys,
            self.bank and self.bank.ids, self.bank and self.bank.total))

    def _retry(self, fn, timeout=20):
        deadline = time.monotonic() + timeout
        err = fn()
        while err and time.monotonic() < deadline:
            time.sleep(0.5)
            err = fn()
        return err

    def _import(self, items, idem):
        r = None
        for _ in range(10):
            r = self.cluster.admin_call("POST", "/admin/v1/clients/%d/import" % self.client_id,
                                        {"items": items}, timeout=10,
                                        headers={"Idempotency-Key": idem})
            if r.status == 200:
                b = r.body or {}
                if b.get("failed", 0) not in (0, None):
                    raise InfraError("setup import %s: %s" % (idem, r))
                return
            time.sleep(1)
        raise InfraError("setup import %s: %s" % (idem, r))

    def _rng_for(self, wid):
        return random.Random(self.a.seed * 1000 + wid)

    def monitor(self):
        while not self.stop_monitor.wait(0.5):
            if self.edges:
                self.monitor_edges()
            for slot, rc, t, start_no in self.cluster.new_crashes():
                n = self.cluster.nodes[slot]
                tail = ""
                try:
                    with open(n.log_path, errors="replace") as fh:
                        tail = "".join(fh.readlines()[-15:])
                except OSError:
                    pass
                self.crashes.append({"node": n.name, "returncode": rc,
                                     "time": t - self.t0, "log_tail": tail,
                                     "core_dir": os.path.join(self.dir, "cores", "%s-%d"
                                                              % (n.name, start_no))})
                self.log("NODE CRASH: %s exited with %s on its own; log tail:\n%s"
                         % (n.name, rc, tail))
                if self.nemesis:
                    self.nemesis.event("crash", {"node": n.name, "returncode": rc},
                                       "info")
                # Keep the run going: restart it from its data dir.
                time.sleep(1)
                try:
                    if not n.alive() and not self.stop_workers.is_set():
                        self.cluster.start(slot)
                        self.log("restarted %s after its crash" % n.name)
                except Exception as e:
                    self.log("restart of %s after crash failed: %r" % (n.name, e))

    def monitor_edges(self):
        for j, rc, t, start_no in self.edges.new_crashes():
            e = self.edges.edges[j]
            tail = ""
            try:
                with open(e.log_path, errors="replace") as fh:
                    tail = "".join(fh.readlines()[-15:])
            except OSError:
                pass
            self.crashes.append({"node": e.name, "returncode": rc, "time": t - self.t0,
                                 "log_tail": tail,
                                 "core_dir": os.path.join(self.dir, "cores", "%s-%d"
                                                          % (e.name, start_no))})
            self.log("EDGE CRASH: %s exited with %s on its own; log tail:\n%s"
                     % (e.name, rc, tail))
            if self.nemesis:
                self.nemesis.event("edge-crash", {"edges": [e.name], "returncode": rc},
                                   "info")
            time.sleep(1)
            try:
                if not e.alive() and not self.stop_workers.is_set():
                    self.edges.start(j)
                    self.log("restarted %s after its crash" % e.name)
            except Exception as ex:
                self.log("restart of %s after crash failed: %r" % (e.name, ex))

    def progress(self):
        counts = {}
        with open(self.history_path) as fh:
            for line in fh:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev["type"] != "invoke":
                    counts[ev["type"]] = counts.get(ev["type"], 0) + 1
        act = [a["kind"] for a in self.nemesis.active] if self.nemesis else []
        self.log("progress: ok %d fail %d info %d; active faults %s" % (
            counts.get("ok", 0), counts.get("fail", 0), counts.get("info", 0), act))

    def start_workers(self):
        ws = []
        wid = 0
        if self.register:
            n = 2 * len(self.register.keys)
            for _ in range(n):
                ws.append((self.register, wid))
                wid += 1
        if self.bank:
            for _ in range(3):
                ws.append((self.bank, wid))
                wid += 1
        if self.edge:
            for role in self.edge.roles():
                ws.append((role, wid))
                wid += 1
        total = len(ws)
        for w, i in ws:
            t = wl.Worker(self.ctx, w, i, total)
            self.workers.append(t)
            t.start()
        self.log("workers: %d (%s)" % (total, ", ".join(self.a.workloads)))

    def scenario_leader_partition(self):
        """Self-test: isolate the leader from the majority while most ops go
        to it, then heal; twice."""
        ev = self.nemesis.event
        for rnd in range(2):
            if self.stop_scenario.wait(3.0):
                return
            ls, _ = self.cluster.leader()
            if ls is None:
                continue
            self.bias = (ls, 0.8)
            time.sleep(0.5)
            rest = [s for s in self.cluster.running_slots() if s != ls]
            g = jlnet.grudge_split([[ls], rest])
            self.topo.partition(g)
            ev("partition", {"mode": "leader", "isolated": "n%d" % ls, "round": rnd})
            self.stop_scenario.wait(6.0)
            self.topo.heal()
            ev("partition", {"mode": "leader", "isolated": "n%d" % ls}, "end")
            self.bias = None

    def scenario_leader_churn(self):
        """Leader kills, restarts, transfers and pauses, clients on followers."""
        ev = self.nemesis.event
        c = self.cluster
        rng = random.Random(self.a.seed + 7)
        while not self.stop_scenario.wait(rng.uniform(1.0, 2.5)):
            ls, _ = c.leader()
            if ls is None:
                continue
            self.avoid = ls
            what = rng.choice(["kill", "bounce", "bounce", "transfer", "pause"])
            if what in ("kill", "bounce"):
                # bounce: back before the followers notice (< election timeout)
                c.kill(ls)
                ev("kill", {"nodes": ["n%d" % ls], "leader": True, "mode": what})
                self.stop_scenario.wait(rng.uniform(0.5, 2.0) if what == "kill"
                                        else rng.uniform(0.0, 0.3))
                c.start(ls)
                ev("kill", {"nodes": ["n%d" % ls]}, "end")
            elif what == "pause":
                c.signal(ls, signal.SIGSTOP)
                ev("pause", {"node": "n%d" % ls, "leader": True})
                self.stop_scenario.wait(rng.uniform(0.5, 2.5))
                c.signal(ls, signal.SIGCONT)
                ev("pause", {"node": "n%d" % ls}, "end")
            else:
                others = [s for s in c.running_slots() if s != ls]
                if not others:
                    continue
                t = rng.choice(others)
                ev("member", {"transfer": "n%d" % t})
                r = c.admin_call("POST", "/admin/v1/cluster/transfer", {"id": t}, timeout=5)
                ev("member", {"transfer": "n%d" % t, "reply": str(r)[:100]}, "end")

    def execute(self):
        a = self.a
        self.acquire_lock()
        n = jlnet.cleanup_leftovers(log=self.log)
        if n:
            self.log("removed %d leftovers of an earlier run" % n)
        self.log("run %s: seed %d, %d nodes, nemesis %s, %ss, workloads %s, bin %s%s"
                 % (os.path.basename(self.dir), a.seed, a.nodes, ",".join(a.kinds) or "none",
                    a.time, ",".join(a.workloads), a.bin, " UNSAFE" if a.unsafe else ""))
        # Restarts during the run must run the same code even if the build
        # dir is rebuilt meanwhile: use a copy of the binary.
        self.bin_copy = os.path.join(self.dir, "tvmw-cp")
        shutil.copy2(a.bin, self.bin_copy)
        import hashlib
        with open(self.bin_copy, "rb") as fh:
            self.bin_sha = hashlib.sha256(fh.read()).hexdigest()
        self.log("binary %s sha256 %s (copied to the run dir)" % (a.bin, self.bin_sha[:16]))
        if a.edges:
            self.edge_bin_copy = os.path.join(self.dir, "tvmw-edge")
            shutil.copy2(a.edge_bin, self.edge_bin_copy)
        self.start_cluster()
        self.history_path = os.path.join(self.dir, "history.jsonl")
        self.history = hist.HistoryWriter(self.history_path)
        self.setup_data()
        self.ctx.history = self.history
        self.ctx.replies = open(os.path.join(self.dir, "replies.jsonl"), "a")
        self.nemesis = nem.Nemesis(self.cluster, self.topo, random.Random(a.seed), a.kinds,
                                   os.path.join(self.dir, "nemesis.jsonl"), self.history,
                                   log=self.log, edges=self.edges,
                                   calm_every=30.0 if self.edges else None, calm_len=20.0)
        mon = threading.Thread(target=self.monitor, daemon=True, name="monitor")
        mon.start()
        self.start_workers()
        t_start = time.monotonic()
        self.stop_scenario = threading.Event()
        scen = None
        if a.scenario != "random":
            fn = getattr(self, "scenario_" + a.scenario.replace("-", "_"))
            scen = threading.Thread(target=fn, daemon=True, name="scenario")
            scen.start()
        elif a.kinds:
            self.nemesis.start()
        next_progress = t_start + 10
        while time.monotonic() < t_start + a.time:
            time.sleep(0.5)
            if time.monotonic() >= next_progress:
                self.progress()
                next_progress += 10
        # ---- heal, recover, final reads -------------------------------------------
        self.log("time is up: stopping the nemesis and healing")
        self.stop_scenario.set()
        if scen:
            scen.join(timeout=30)
        self.bias = self.avoid = None
        self.nemesis.stop()
        self.nemesis.heal_all()
        self.nemesis.event("heal", {"all": True}, "info")
        members = self.cluster.members() or {}
        slots = sorted(s for s in members if self.cluster.nodes[s].alive())
        t_heal = time.monotonic()
        healthy = self.cluster.wait_healthy(slots, 40)
        self.recovery_s = time.monotonic() - t_heal
        self.log("after heal: members %s, healthy=%s after %.1fs" % (
            members, healthy, self.recovery_s))
        time.sleep(3)      # traffic on the healed cluster
        self.stop_workers.set()
        for w in self.workers:
            w.join(timeout=a.op_timeout + 5)
        self.cluster.wait_healthy(slots, 30, same_applied=True)
        self.final_slots = slots
        p = 1000000
        if self.register:
            p = self.register.final_ops(self.ctx, p, slots)
        if self.bank:
            p = self.bank.final_ops(self.ctx, p, slots)
        if self.edge:
            p = self.edge.final_ops(self.ctx, p, slots, self.history, log=self.log)
            with open(os.path.join(self.dir, "edge_final.json"), "w") as fh:
                json.dump(self.edge.final, fh, indent=1, default=str)
        self.history.close()
        self.stop_monitor.set()
        mon.join(timeout=5)
        self.healthy_at_end = healthy

    # ---- checks --------------------------------------------------------------------
    def convergence(self):
        """Every member's local (stale) state equals every other's."""
        c = self.cluster
        deadline = time.monotonic() + 15
        last = None
        while time.monotonic() < deadline:
            c.wait_healthy(self.final_slots, 5, same_applied=True)
            views = {}
            for s in self.final_slots:
                addr = c.nodes[s].http_address
                v = {}
                if self.register:
                    for k in self.register.keys:
                        r = self.billing.call(addr, "account/info", {"abonement": k},
                                              query={"stale": 1})
                        v[k] = r.body.get("status_reason") if r.status == 200 and \
                            r.code == 0 else "<%s>" % r
                if self.bank:
                    b, r = self.bank.read_balances(self.ctx, addr, stale=True)
                    v["balances"] = b if b is not None else "<%s>" % r
                views[c.nodes[s].name] = v
            last = views
            distinct = {json.dumps(v, sort_keys=True) for v in views.values()}
            if len(distinct) == 1:
                return None, views
            time.sleep(1)
        return "replicas differ: %s" % json.dumps(last, sort_keys=True), last

    def check(self):
        a = self.a
        res = {"anomalies": [], "unknown": []}
        events = hist.load(self.history_path)
        ops = hist.pair(events)
        self.ops = ops
        if self.register:
            model = checker.RegisterModel(initial=wl.REG_INITIAL)
            t = time.monotonic()
            r = checker.check(ops, model, a.checker_time_limit)
            res["register"] = r
            res["register_secs"] = time.monotonic() - t
            if r["valid"] is False:
                res["anomalies"].append({"check": "register linearizability",
                                         "detail": r["anomaly"]})
            for k in r["keys"]:
                if k["result"] == checker.UNKNOWN:
                    res["unknown"].append("register key %s: checker time limit" % k["key"])
        if self.register:
            try:
                audit = wl.fetch_audit(self.ctx, self.client_id)
                replies = {}
                rp = os.path.join(self.dir, "replies.jsonl")
                if os.path.exists(rp):
                    with open(rp) as fh:
                        for ln in fh:
                            x = json.loads(ln)
                            replies[x["index"]] = x
                problems, stats = wl.check_register_audit(self.register.keys, audit,
                                                          ops, replies)
                res["audit"] = {"problems": problems, "stats": stats,
                                "records": len(audit)}
                if problems:
                    res["anomalies"].append({"check": "register audit trail",
                                             "detail": problems[:20],
                                             "count": len(problems)})
            except RuntimeError as e:
                res["audit"] = {"error": str(e)}
                res["unknown"].append("register audit trail: %s" % e)
        if self.bank:
            b = checker.check_bank(ops, self.bank.customers, self.bank.total,
                                   allow_negative=True)
            res["bank_reads"] = b
            if not b["valid"]:
                res["anomalies"].append({"check": "bank balance reads",
                                         "detail": b["anomaly"]})
            try:
                ls, _ = self.cluster.leader()
                addr = self.cluster.nodes[ls or self.final_slots[0]].http_address
                problems, stats, bal = self.bank.check_ledger(self.ctx, addr, ops)
                res["ledger"] = {"problems": problems, "stats": stats, "final": bal}
                if problems:
                    res["anomalies"].append({"check": "bank ledger",
                                             "detail": problems[:20],
                                             "count": len(problems)})
            except RuntimeError as e:
                res["ledger"] = {"error": str(e)}
                res["unknown"].append("bank ledger: %s" % e)
        if self.edge:
            evs = []
            with open(os.path.join(self.dir, "nemesis.jsonl")) as fh:
                evs = [json.loads(ln) for ln in fh if ln.strip()]
            end = max((o.ret_time or o.call_time or 0) for o in ops) if ops else None
            e = edgecheck.check(ops, edgecheck.disturbances(evs, end), self.edge.final,
                                bound_s=self.edge.bound_s)
            res["edge"] = {"stats": e["stats"], "problems": e["problems"],
                           "final": {k: v for k, v in (self.edge.final or {}).items()
                                     if k != "accounts"}}
            groups = {}
            for pr in e["problems"]:
                groups.setdefault(edgecheck.RULE_CHECK[pr["rule"]], []).append(pr)
            for name, prs in groups.items():
                res["anomalies"].append({"check": name, "detail": prs[:10],
                                         "count": len(prs)})
        err, views = self.convergence()
        res["convergence"] = {"ok": err is None, "views": views}
        if err:
            res["anomalies"].append({"check": "convergence", "detail": err})
        if self.crashes:
            res["anomalies"].append({"check": "node crash", "detail": self.crashes})
        if not self.healthy_at_end:
            res["anomalies"].append({"check": "recovery",
                                     "detail": "cluster not healthy 40 s after the heal"})
        return res

    # ---- summary ---------------------------------------------------------------------
    def summary(self, res, elapsed):
        a = self.a
        ops = self.ops
        rows = {}
        for op in ops:
            wname = "register" if op.f in ("read", "write", "cas") else \
                "edge" if op.f in ("create", "token", "forge", "check", "revoke") else "bank"
            key = (wname, op.f)
            r = rows.setdefault(key, {"ok": 0, "fail": 0, "info": 0})
            r[op.type] += 1
        lines = []
        P = lines.append
        P("")
        P("=" * 72)
        P("jepsen-like run %s" % os.path.basename(self.dir))
        P("seed %d, %d initial voters, nemesis %s, %ss of faults, %s%s" % (
            a.seed, a.nodes, ",".join(a.kinds) or "none", a.time,
            "scenario " + a.scenario, "  ** UNSAFE nodes **" if a.unsafe else ""))
        P("-" * 72)
        P("%-10s %-10s %8s %8s %8s %8s" % ("workload", "op", "total", "ok", "fail", "info"))
        tot = {"ok": 0, "fail": 0, "info": 0}
        for (w, f), r in sorted(rows.items()):
            P("%-10s %-10s %8d %8d %8d %8d" % (w, f, sum(r.values()), r["ok"], r["fail"],
                                               r["info"]))
            for t in tot:
                tot[t] += r[t]
        P("%-10s %-10s %8d %8d %8d %8d" % ("all", "", sum(tot.values()), tot["ok"],
                                           tot["fail"], tot["info"]))
        P("-" * 72)
        counts = self.nemesis.counts if self.nemesis else {}
        P("nemesis events: %s" % (", ".join("%s %d" % kv for kv in sorted(counts.items()))
                                  or "none"))
        if self.nemesis and self.nemesis.errors:
            P("nemesis errors: %s" % self.nemesis.errors[:5])
        P("recovery after heal: %.1f s; unexpected replies: %d; node crashes: %d" % (
            getattr(self, "recovery_s", -1), len(self.unexpected), len(self.crashes)))
        if self.unexpected:
            groups = {}
            for u in self.unexpected:
                g = "%s: %s" % (u["op"].split()[0], u["reply"][:70])
                groups[g] = groups.get(g, 0) + 1
            for g, n in sorted(groups.items(), key=lambda x: -x[1])[:5]:
                P("  unexpected %4d x %s" % (n, g))
        if "register" in res:
            for k in res["register"]["keys"]:
                P("register key %-8s %5d ops (ok %d fail %d info %d) %6.2fs  %s" % (
                    k["key"], k["ok"] + k["fail"] + k["info"], k["ok"], k["fail"],
                    k["info"], k["elapsed"], k["result"]))
        if "audit" in res:
            A = res["audit"]
            if "error" in A:
                P("register audit trail: could not check: %s" % A["error"])
            else:
                P("register audit trail: %d records, %s; %s" % (
                    A["records"], "ok" if not A["problems"] else
                    "%d PROBLEMS" % len(A["problems"]),
                    ", ".join("%s %s" % kv for kv in sorted(A["stats"].items()))))
        if "bank_reads" in res:
            b = res["bank_reads"]
            P("bank: %d ok balance reads, %s" % (b["reads"], "all sum to %d" % self.bank.total
                                                 if b["valid"] else "INVALID"))
        if "ledger" in res:
            L = res["ledger"]
            if "error" in L:
                P("bank ledger: could not check: %s" % L["error"])
            else:
                P("bank ledger: %s; %s" % ("ok" if not L["problems"] else
                                           "%d PROBLEMS" % len(L["problems"]),
                                           ", ".join("%s %s" % kv for kv in
                                                     sorted(L["stats"].items()))))
        if "edge" in res:
            st, fin = res["edge"]["stats"], res["edge"]["final"]
            P("edges %s: %d tokens (+%d expiring, %d forged); checks allow %d deny %d "
              "no answer %d" % (
                  ",".join(e.name for e in self.edges), st["tokens"], st["expiry_tokens"],
                  st["forged"], st["checks_allow"], st["checks_deny"], st["checks_no_answer"]))
            P("edge revocations: %d acknowledged, %d unknown; bound %.1f s enforced on %d "
              "(revocation, edge) pairs; undisturbed deny latency max %s s median %s s (n=%d)"
              % (st["revocations_acked"], st["revocations_unknown"], self.edge.bound_s,
                 st["bound_enforced_pairs"], st["undisturbed_deny_latency_max"],
                 st["undisturbed_deny_latency_median"], st["undisturbed_deny_latency_n"]))
            P("edge convergence after heal: %s; %s tokens checked at every edge: %s" % (
                ", ".join("%s %s in %ss" % (n, "ok" if x.get("converged") else "NOT",
                                            x.get("secs"))
                          for n, x in sorted((fin.get("edges") or {}).items())),
                fin.get("checked_tokens"),
                "ok" if not res["edge"]["problems"] else
                "%d PROBLEMS" % len(res["edge"]["problems"])))
        P("replica convergence: %s" % ("ok" if res["convergence"]["ok"] else "DIVERGED"))
        P("-" * 72)
        P("ANOMALIES FOUND: %d%s" % (len(res["anomalies"]),
                                     "  (%s)" % ", ".join(x["check"] for x in res["anomalies"])
                                     if res["anomalies"] else ""))
        for x in res["anomalies"][:4]:
            P("  first %s anomaly:" % x["check"])
            detail = x["detail"]
            if x["check"] == "node crash":
                detail = [{k: v for k, v in c.items() if k not in ("log_tail", "core_dir")}
                          for c in detail]
            for ln in json.dumps(detail, indent=1, default=str).splitlines()[:40]:
                P("    " + ln)
        if res["unknown"]:
            P("NOT VERIFIED: %s" % "; ".join(res["unknown"]))
        P("history: %s" % self.history_path)
        P("run dir: %s (history.jsonl, nemesis.jsonl, logs/, run.log, summary.*)"
          % self.dir)
        P("elapsed: %.1f s" % elapsed)
        P("=" * 72)
        text = "\n".join(lines)
        with open(os.path.join(self.dir, "summary.txt"), "w") as fh:
            fh.write(text + "\n")
        out = {"seed": a.seed, "nodes": a.nodes, "nemesis": a.kinds, "time": a.time,
               "unsafe": a.unsafe, "scenario": a.scenario,
               "ops": {"%s/%s" % k: v for k, v in rows.items()}, "totals": tot,
               "nemesis_counts": counts, "anomalies": res["anomalies"],
               "unknown": res["unknown"], "unexpected_replies": self.unexpected,
               "crashes": self.crashes, "elapsed": elapsed,
               "register": res.get("register"), "bank_reads": res.get("bank_reads"),
               "ledger": res.get("ledger"), "audit": res.get("audit"),
               "convergence": res.get("convergence"), "edge": res.get("edge"),
               "history": self.history_path}
        with open(os.path.join(self.dir, "summary.json"), "w") as fh:
            json.dump(out, fh, indent=1, default=str)
        if self.unexpected:
            with open(os.path.join(self.dir, "unexpected.json"), "w") as fh:
                json.dump(self.unexpected, fh, indent=1, default=str)
        return text


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("SKIP: the jepsen-like suite needs root (network namespaces, nftables); "
              "run it as root", flush=True)
        return EXIT_SKIP
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            print("ERROR: %s missing: apt-get install -y iproute2 nftables" % tool)
            return EXIT_INFRA
    if "clock" in a.kinds and not os.path.exists(jlcluster.FAKETIME_LIB):
        print("ERROR: libfaketime missing: apt-get install -y faketime")
        return EXIT_INFRA
    if not os.access(a.bin, os.X_OK):
        print("ERROR: no tvmw-cp at %s (cmake --build /work/main/build -j2 --target "
              "tvmw-cp, or --bin / TVMW_CP_BIN)" % a.bin)
        return EXIT_INFRA
    if a.edges and not os.access(a.edge_bin, os.X_OK):
        print("ERROR: no tvmw-edge at %s (cmake --build <build dir> --target tvmw-edge, or "
              "--edge-bin / TVMW_EDGE_BIN, or --workload register,bank)" % a.edge_bin)
        return EXIT_INFRA
    jlcluster.allow_cores()
    run = Run(a)
    atexit.register(run.cleanup)

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    # A background job of a non-interactive shell starts with SIGINT ignored;
    # Ctrl-C / kill -INT must still clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    code = EXIT_INFRA
    try:
        try:
            run.execute()
        except InfraError as e:
            run.log("INFRASTRUCTURE FAILURE: %s" % e)
            return EXIT_INFRA
        except jlnet.NetError as e:
            run.log("INFRASTRUCTURE FAILURE (network): %s" % e)
            return EXIT_INFRA
        res = run.check()
        run.cleanup()
        text = run.summary(res, time.monotonic() - t0)
        print(text, flush=True)
        if a.expect_anomaly:
            # Only a safety finding of the checkers counts (not a crash).
            safety = [x["check"] for x in res["anomalies"] if x["check"] in SAFETY_CHECKS]
            code = EXIT_OK if safety else EXIT_ANOMALY
            print("self-test: %s" % ("the checkers caught the unsafe mode (expected): %s"
                                     % ", ".join(safety) if code == 0 else
                                     "NO safety anomaly found in unsafe mode: the suite "
                                     "is blind"))
        elif res["anomalies"]:
            code = EXIT_ANOMALY
        elif res["unknown"]:
            code = EXIT_UNKNOWN
        else:
            code = EXIT_OK
        return code
    except KeyboardInterrupt:
        run.log("interrupted (SIGINT): cleaning up")
        return 130
    except SystemExit as e:
        run.log("terminated by a signal: cleaning up")
        return e.code if isinstance(e.code, int) else EXIT_INFRA
    except Exception:
        import traceback
        run.log("INFRASTRUCTURE FAILURE (suite error):\n%s" % traceback.format_exc())
        return EXIT_INFRA
    finally:
        run.cleanup()


if __name__ == "__main__":
    sys.exit(main())
