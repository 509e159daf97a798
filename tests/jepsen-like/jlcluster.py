"""The tvmw-cp cluster under test: cluster file, node processes inside the
namespaces, health, leader discovery and membership changes.

Node id == slot number.  Slots 1..n are the initial voters (the cluster
file's `nodes`); slots n+1.. are spares that join at run time (--join with
explicit addresses).  A slot whose node was removed is wiped and may join
again under the same id (docs/operations.md, "A node that lost its disk").
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import threading
import time

import jlclient
import jlnet

RAFT_PORT = 9100
HTTP_PORT = 8100
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def allow_cores():
    """Let node processes (children) dump core: call once in the runner."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,
                                                  resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass


def remove_empty_core_dirs(run_dir):
    d = os.path.join(run_dir, "cores")
    if not os.path.isdir(d):
        return []
    kept = []
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isdir(p) and not os.listdir(p):
            os.rmdir(p)
        else:
            kept.append(p)
    if not kept:
        os.rmdir(d)
    return kept


class Node:
    def __init__(self, slot, topo, run_dir):
        self.slot = self.id = slot
        self.ns = jlnet.ns_name(slot)
        self.ip = topo.addr(slot)
        self.raft_address = "%s:%d" % (self.ip, RAFT_PORT)
        self.http_address = "%s:%d" % (self.ip, HTTP_PORT)
        self.data_dir = os.path.join(run_dir, "data", "node-%d" % slot)
        self.log_path = os.path.join(run_dir, "logs", "n%d.log" % slot)
        self.proc = None
        self.paused = False
        self.faketime = None      # FAKETIME spec of the running process
        self.starts = 0
        self.expect_exit = False  # set when the suite kills it
        self.crash_reported = False

    @property
    def name(self):
        return "n%d" % self.slot

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, topo, run_dir, bin_path, n_initial, admin_token,
                 unsafe=False, election_ms=1000, heartbeat_ms=100,
                 snapshot_threshold=64, snapshot_trailing=32,
                 request_timeout_ms=2000, log=print, log_level="info", edges=()):
        self.topo, self.run_dir, self.bin = topo, run_dir, bin_path
        self.n_initial = n_initial
        self.admin = jlclient.Admin(admin_token)
        self.token = admin_token
        self.unsafe, self.log, self.log_level = unsafe, log, log_level
        self.nodes = {s: Node(s, topo, run_dir)
                      for s in range(1, topo.nslots + 1)}
        self.lock = threading.RLock()
        self.crashes = []
        os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)
        os.makedirs(os.path.join(run_dir, "data"), exist_ok=True)
        self.conf_path = os.path.join(run_dir, "cluster.json")
        conf = {
            "cluster_name": "jepsen-like",
            "admin_token": admin_token,
            "data_root": os.path.join(run_dir, "data"),
            "raft": {"election_timeout_ms": election_ms,
                     "heartbeat_timeout_ms": heartbeat_ms,
                     "snapshot_threshold": snapshot_threshold,
                     "snapshot_trailing": snapshot_trailing,
                     "pre_vote": True},
            "http": {"max_body_bytes": 1048576,
                     "request_timeout_ms": request_timeout_ms,
                     "max_connections": 1024},
            "state": {"map_size_mb": 4096, "dedup_window_s": 600},
            "nodes": [{"id": s, "raft_address": self.nodes[s].raft_address,
                       "http_address": self.nodes[s].http_address,
                       "datacenter": "dc-%s" % "abc"[(s - 1) % 3]}
                      for s in range(1, n_initial + 1)],
        }
        if edges:
            # The edges (jledge.py) read the same file.  Tokens of the
            # expiry tenant must fail soon after their ttl: skew 1 s; no
            # health probes (the streaming services' hosts do not exist).
            conf["edges"] = list(edges)
            conf["stream_auth"] = {"skew_s": 1}
            conf["probe"] = {"interval_ms": 0}
        with open(self.conf_path, "w") as fh:
            json.dump(conf, fh, indent=2)
        self.conf = conf

    # ---- processes --------------------------------------------------------
    def start(self, slot, join=False, faketime=None, wipe=False):
        """Start slot's node in its namespace.  faketime: (FAKETIME spec,
        fake_monotonic) or None."""
        n = self.nodes[slot]
        with self.lock:
            if n.alive():
                raise RuntimeError("%s already running" % n.name)
            self._note_crash(n)
            if wipe and os.path.exists(n.data_dir):
                shutil.rmtree(n.data_dir)
            os.makedirs(n.data_dir, exist_ok=True)
            args = ["ip", "netns", "exec", n.ns, self.bin,
                    "--config", self.conf_path, "--id", str(n.id),
                    "--data-dir", n.data_dir, "--log-level", self.log_level]
            if join:
                args.append("--join")
            if slot > self.n_initial:
                args += ["--raft-address", n.raft_address,
                         "--http-address", n.http_address]
            if self.unsafe:
                args.append("--unsafe-ack-before-commit")
            env = dict(os.environ)
            for k in ("FAKETIME", "LD_PRELOAD", "DONT_FAKE_MONOTONIC",
                      "FAKETIME_NO_CACHE"):
                env.pop(k, None)
            if faketime:
                spec, fake_mono = faketime
                env["FAKETIME"] = spec
                env["LD_PRELOAD"] = FAKETIME_LIB
                if not fake_mono:
                    env["DONT_FAKE_MONOTONIC"] = "1"
            # Cores of crashed nodes land in cores/n<slot>-<start>/ (cwd).
            core_dir = os.path.join(self.run_dir, "cores", "%s-%d" % (n.name, n.starts + 1))
            os.makedirs(core_dir, exist_ok=True)
            fh = open(n.log_path, "a")
            fh.write("\n==== %s start #%d join=%s wipe=%s faketime=%s unsafe=%s "
                     "at %.3f ====\n" % (n.name, n.starts + 1, join, wipe,
                                         faketime, self.unsafe, time.time()))
            fh.flush()
            n.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=fh,
                                      stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True, cwd=core_dir)
            fh.close()
            n.paused, n.faketime = False, faketime
            n.expect_exit = n.crash_reported = False
            n.starts += 1
            return n.proc.pid

    def signal(self, slot, sig):
        n = self.nodes[slot]
        with self.lock:
            if not n.alive():
                return False
            try:
                os.kill(n.proc.pid, sig)
            except ProcessLookupError:
                return False
            if sig == signal.SIGSTOP:
                n.paused = True
            elif sig == signal.SIGCONT:
                n.paused = False
            return True

    def kill(self, slot):
        """SIGKILL and reap."""
        n = self.nodes[slot]
        with self.lock:
            if n.proc is None:
                return False
            self._note_crash(n)
            was = n.alive()
            n.expect_exit = True
            if was:
                try:
                    os.kill(n.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                n.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.log("warning: %s pid %d did not die" % (n.name, n.proc.pid))
            n.paused = False
            return was

    def wipe(self, slot):
        n = self.nodes[slot]
        if n.alive():
            raise RuntimeError("wipe of running %s" % n.name)
        if os.path.exists(n.data_dir):
            shutil.rmtree(n.data_dir)

    def stop_all(self):
        for s in self.nodes:
            n = self.nodes[s]
            n.expect_exit = True
            if n.proc is not None and n.proc.poll() is None:
                try:
                    os.kill(n.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for s in self.nodes:
            n = self.nodes[s]
            if n.proc is not None:
                try:
                    n.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass

    def _note_crash(self, n):
        """Call under self.lock: remember a process that ended without the
        suite killing it (each once)."""
        if n.proc is not None and not n.expect_exit and not n.crash_reported \
                and n.proc.poll() is not None:
            n.crash_reported = True
            self.crashes.append((n.slot, n.proc.returncode, time.monotonic(), n.starts))

    def new_crashes(self):
        """[(slot, returncode, time, start number)] of processes that ended
        on their own since the last call."""
        with self.lock:
            for n in self.nodes.values():
                self._note_crash(n)
            out, self.crashes = self.crashes, []
        return out

    # ---- observation ------------------------------------------------------
    def running_slots(self):
        return [s for s, n in self.nodes.items() if n.alive()]

    def health(self, slot, timeout=1.0):
        n = self.nodes[slot]
        if not n.alive() or n.paused:
            return None
        r = jlclient.healthz(n.http_address, timeout)
        return r.body if isinstance(r.body, dict) and r.status in (200, 503) else None

    def view(self, slot, timeout=1.5):
        """GET /admin/v1/cluster on slot (its own view, not forwarded)."""
        n = self.nodes[slot]
        if not n.alive() or n.paused:
            return None
        r = self.admin.call(n.http_address, "GET", "/admin/v1/cluster",
                            timeout=timeout)
        return r.body if r.status == 200 and isinstance(r.body, dict) else None

    def leader(self, timeout=1.0):
        """(slot, view) of the node that says it leads with the highest term
        and answers /healthz 200; (None, None) if none."""
        best = (None, None)
        for s in self.running_slots():
            v = self.view(s, timeout)
            if v and v.get("role") == "leader":
                if best[1] is None or v.get("term", 0) > best[1].get("term", 0):
                    best = (s, v)
        return best

    def members(self):
        """{id: role} from the leader's view, or None."""
        s, v = self.leader()
        if v is None:
            return None
        return {m["id"]: m.get("role") for m in v.get("members", [])}

    def voters(self):
        m = self.members()
        return None if m is None else sorted(i for i, r in m.items() if r == "voter")

    def wait_healthy(self, slots, timeout=30.0, same_applied=False):
        """Wait until every slot answers /healthz 200 (and, optionally, all
        report the same applied index).  Returns True on success."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hs = {s: self.health(s) for s in slots}
            ok = all(h is not None and h.get("status") == "ok" for h in hs.values())
            if ok and same_applied:
                applied = {h.get("applied_index") for h in hs.values()}
                commit = {h.get("commit_index") for h in hs.values()}
                ok = len(applied) == 1 and len(commit) == 1
            if ok:
                return True
            time.sleep(0.3)
        return False

    # ---- admin calls through any running node (forwarded to the leader) ---
    def admin_call(self, method, path, obj=None, timeout=6.0, prefer=None,
                   rng=None, headers=None):
        """Send to the leader if known, else to a running node.  Returns the
        Reply of the first node that answered anything but 'not sent'."""
        order = []
        if prefer is not None:
            order.append(prefer)
        ls, _ = self.leader()
        if ls is not None:
            order.append(ls)
        others = [s for s in self.running_slots() if s not in order
                  and not self.nodes[s].paused]
        if rng:
            rng.shuffle(others)
        order += others
        last = jlclient.Reply(None, error="no running node", sent=False)
        for s in order:
            n = self.nodes[s]
            if not n.alive() or n.paused:
                continue
            last = self.admin.call(n.http_address, method, path, obj,
                                   timeout=timeout, headers=headers)
            if last.sent:
                return last
        return last
