"""The edges under test: tvmw-edge processes in their own namespaces on the
suite's bridge (jlnet: namespace jl-e<j>, address 10.77.S.<100+j>), their
health, and the two edge APIs the edge workload uses:

  device API   GET /tvmiddleware/api/login/?client_id&api_key&abonement&password
               GET /tvmiddleware/api/channel/url/?client_id&authkey&cid&redirect=0
                   -> {"error":0,"uri":"http://...?token=<token>"}
  token check  GET /tvmiddleware/api/streamservice/token/check/?token=&name=
                   -> 200 allow, 403 {"error":"<reason>"} deny (generic dialect)

Edge id "e<j>" is its `id` in the cluster file's `edges`; every edge follows
the initial control-plane nodes of that file.
"""

import os
import signal
import subprocess
import threading
import time
import urllib.parse

import jlclient
import jlnet

EDGE_HTTP_PORT = 8200
DATACENTERS = ("dc-a", "dc-b", "dc-c")
CHECK_PATH = "/tvmiddleware/api/streamservice/token/check/"


def conf_entries(topo):
    """The cluster file's `edges` for a topology's edge slots."""
    return [{"id": "e%d" % j, "http_address": "%s:%d" % (topo.addr(topo.edge_slot(j)),
                                                          EDGE_HTTP_PORT),
             "datacenter": DATACENTERS[(j - 1) % len(DATACENTERS)]}
            for j in range(1, topo.nedges + 1)]


class Edge:
    def __init__(self, j, topo, run_dir):
        self.j = j
        self.name = self.id = "e%d" % j
        self.slot = topo.edge_slot(j)
        self.ns = jlnet.ns_name(self.slot)
        self.ip = topo.addr(self.slot)
        self.http_address = "%s:%d" % (self.ip, EDGE_HTTP_PORT)
        self.data_dir = os.path.join(run_dir, "data", "edge-%s" % self.id)
        self.log_path = os.path.join(run_dir, "logs", "%s.log" % self.id)
        self.proc = None
        self.paused = False
        self.starts = 0
        self.expect_exit = False
        self.crash_reported = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Edges:
    """Every edge of a run; start/kill/pause by edge number j (1..n)."""

    def __init__(self, topo, run_dir, bin_path, conf_path, log=print, log_level="info"):
        self.topo, self.run_dir, self.bin = topo, run_dir, bin_path
        self.conf_path, self.log, self.log_level = conf_path, log, log_level
        self.edges = {j: Edge(j, topo, run_dir) for j in range(1, topo.nedges + 1)}
        self.lock = threading.RLock()
        self.crashes = []
        os.makedirs(os.path.join(run_dir, "logs"), exist_ok=True)

    def __iter__(self):
        return iter(self.edges.values())

    def by_name(self, name):
        for e in self.edges.values():
            if e.name == name:
                return e
        raise KeyError(name)

    # ---- processes ---------------------------------------------------------------
    def start(self, j):
        e = self.edges[j]
        with self.lock:
            if e.alive():
                raise RuntimeError("%s already running" % e.name)
            self._note_crash(e)
            os.makedirs(e.data_dir, exist_ok=True)
            args = ["ip", "netns", "exec", e.ns, self.bin, "--config", self.conf_path,
                    "--id", e.id, "--data-dir", e.data_dir, "--log-level", self.log_level]
            core_dir = os.path.join(self.run_dir, "cores", "%s-%d" % (e.name, e.starts + 1))
            os.makedirs(core_dir, exist_ok=True)
            fh = open(e.log_path, "a")
            fh.write("\n==== %s start #%d at %.3f ====\n" % (e.name, e.starts + 1, time.time()))
            fh.flush()
            env = {k: v for k, v in os.environ.items()
                   if k not in ("FAKETIME", "LD_PRELOAD", "DONT_FAKE_MONOTONIC")}
            e.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=fh,
                                      stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True, cwd=core_dir)
            fh.close()
            e.paused = False
            e.expect_exit = e.crash_reported = False
            e.starts += 1
            return e.proc.pid

    def kill(self, j):
        e = self.edges[j]
        with self.lock:
            if e.proc is None:
                return False
            self._note_crash(e)
            was = e.alive()
            e.expect_exit = True
            if was:
                try:
                    os.kill(e.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                e.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.log("warning: %s pid %d did not die" % (e.name, e.proc.pid))
            e.paused = False
            return was

    def signal(self, j, sig):
        e = self.edges[j]
        with self.lock:
            if not e.alive():
                return False
            try:
                os.kill(e.proc.pid, sig)
            except ProcessLookupError:
                return False
            if sig == signal.SIGSTOP:
                e.paused = True
            elif sig == signal.SIGCONT:
                e.paused = False
            return True

    def stop_all(self):
        for e in self.edges.values():
            e.expect_exit = True
            if e.alive():
                try:
                    os.kill(e.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for e in self.edges.values():
            if e.proc is not None:
                try:
                    e.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass

    def _note_crash(self, e):
        if e.proc is not None and not e.expect_exit and not e.crash_reported \
                and e.proc.poll() is not None:
            e.crash_reported = True
            self.crashes.append((e.j, e.proc.returncode, time.monotonic(), e.starts))

    def new_crashes(self):
        """[(j, returncode, time, start number)] of edges that ended on
        their own since the last call."""
        with self.lock:
            for e in self.edges.values():
                self._note_crash(e)
            out, self.crashes = self.crashes, []
        return out

    # ---- observation -------------------------------------------------------------
    def health(self, j, timeout=1.0):
        e = self.edges[j]
        if not e.alive() or e.paused:
            return None
        r = jlclient.request(e.http_address, "GET", "/healthz", timeout=timeout)
        return r.body if isinstance(r.body, dict) and r.status in (200, 503) else None

    def wait_state(self, timeout=30.0):
        """Wait until every edge has a state (/healthz 200).  True on success."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hs = [self.health(j) for j in self.edges]
            if all(h is not None and h.get("has_state") for h in hs):
                return True
            time.sleep(0.3)
        return False


# ---- the edge APIs --------------------------------------------------------------------

def device_get(addr, method, params, timeout=3.0):
    path = "/tvmiddleware/api/%s/?%s" % (method, urllib.parse.urlencode(params))
    return jlclient.request(addr, "GET", path, timeout=timeout)


def token_of_uri(uri):
    """The `token` query parameter of a stream URL, or None."""
    if not isinstance(uri, str):
        return None
    q = urllib.parse.urlsplit(uri).query
    v = urllib.parse.parse_qs(q).get("token")
    return v[0] if v else None


def check_token(addr, token, stream, timeout=3.0):
    """The generic token check.  Returns (verdict, Reply): verdict "allow"
    (200), "deny:<reason>" (403), or None (no answer, or any other
    status)."""
    path = CHECK_PATH + "?" + urllib.parse.urlencode({"token": token, "name": stream})
    r = jlclient.request(addr, "GET", path, timeout=timeout)
    if r.status == 200:
        return "allow", r
    if r.status == 403:
        reason = r.body.get("error") if isinstance(r.body, dict) else None
        return "deny:%s" % (reason or "?"), r
    return None, r
