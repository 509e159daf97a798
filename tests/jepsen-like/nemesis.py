"""Fault injection: partitions, crashes, pauses, clock skew, membership
changes and wiped-disk rejoins, alone and combined at random.

Kinds (--nemesis, comma-separated, or `all`, or `none`):
  partition  halves | one node isolated | leader isolated | bridge | ring
             (5+ nodes) | leader one-way (it hears nobody), with nftables
             inside the namespaces
  kill       SIGKILL of a random node (or two of five) or of the leader;
             restarted later from its data dir
  pause      SIGSTOP of a random node or the leader; SIGCONT later
  clock      restart a node under libfaketime: a clock offset of up to
             +-15 min, or a rate drift x0.5..x2 (wall and monotonic clocks
             both faked, see _start_clock); later restarted with the true clock
  member     add + promote a spare node, remove a voter (also the leader),
             transfer leadership
  wipe       kill a voter, remove it, wipe its data dir, start it with
             --join, add and promote it again (same id, as docs/operations.md)
  edge-partition  cut one edge, or every edge, off the control plane, or
             let one edge reach a single control-plane node (nftables in the
             edges' namespaces; the clients still reach the edges)
  edge-kill  SIGKILL of an edge; restarted later with its data dir
  edge-pause SIGSTOP of an edge; SIGCONT later
The edge kinds only exist in runs with edges (the edge workload).  Runs
with edges also get calm windows (calm_every / calm_len): every fault is
ended and none starts for a while, so that the edge checker sees
revocations on a healthy system too (its bound only applies there).

Every start and end of a fault is an event in nemesis.jsonl (with the
history index at that moment) and in the run log.
"""

import json
import signal
import threading
import time

import jlnet

KINDS = ("partition", "kill", "pause", "clock", "member", "wipe",
         "edge-partition", "edge-kill", "edge-pause")
EDGE_KINDS = ("edge-partition", "edge-kill", "edge-pause")


def parse_kinds(spec):
    if spec in ("all", ""):
        return list(KINDS)
    if spec == "none":
        return []
    kinds = [k.strip() for k in spec.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError("unknown nemesis %s (known: %s, all, none)"
                         % (bad, ", ".join(KINDS)))
    return kinds


class Nemesis:
    def __init__(self, cluster, topo, rng, kinds, events_path, history,
                 log=print, interval=(1.5, 4.0), duration=(2.0, 8.0),
                 max_active=2, edges=None, calm_every=None, calm_len=20.0):
        self.c, self.topo, self.rng, self.kinds = cluster, topo, rng, kinds
        self.edges = edges        # jledge.Edges or None
        self.calm_every, self.calm_len = calm_every, calm_len
        self.calm_until = None
        self.faulty_since = time.monotonic()
        self.history, self.log = history, log
        self.interval, self.duration, self.max_active = interval, duration, max_active
        self.events_fh = open(events_path, "a")
        self.events = []
        self.active = []          # [{"kind", "until", "undo": callable, "desc"}]
        self.stop_event = threading.Event()
        self.thread = None
        self.counts = {}
        self.errors = []
        self.lock = threading.Lock()

    # ---- recording -----------------------------------------------------------
    def event(self, f, value, phase="start"):
        with self.history.lock:
            idx = self.history.index
        ev = {"time": time.monotonic(), "wall": time.time(), "index": idx,
              "phase": phase, "f": f, "value": value}
        with self.lock:
            self.events.append(ev)
            self.events_fh.write(json.dumps(ev, default=str) + "\n")
            self.events_fh.flush()
            if phase == "start":
                self.counts[f] = self.counts.get(f, 0) + 1
        self.log("nemesis %-5s %-16s %s" % (phase, f, json.dumps(value, default=str)))

    # ---- helpers -----------------------------------------------------------------
    def up_slots(self):
        return [s for s, n in self.c.nodes.items() if n.alive() and not n.paused]

    def busy_slots(self):
        """Slots some active fault holds (killed, paused, skewed...)."""
        out = set()
        for a in self.active:
            out.update(a.get("slots", ()))
        return out

    def member_slots(self):
        m = self.c.members()
        return None if m is None else sorted(m)

    # ---- the loop ------------------------------------------------------------------
    def start(self):
        self.faulty_since = time.monotonic()
        self.thread = threading.Thread(target=self._loop, name="nemesis", daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        if self.thread:
            self.thread.join(timeout=120)

    def _loop(self):
        while not self.stop_event.wait(self.rng.uniform(*self.interval)):
            try:
                self._tick()
            except Exception as e:  # a nemesis bug must not kill the run silently
                self.errors.append(repr(e))
                self.log("nemesis error: %r" % (e,))

    def _tick(self):
        now = time.monotonic()
        for a in [a for a in self.active if a["until"] <= now]:
            self._end(a)
        if self.calm_every:
            if self.calm_until is not None:
                if now < self.calm_until:
                    return
                self.calm_until = None
                self.faulty_since = now
                self.event("calm", {"seconds": self.calm_len}, "end")
            elif now - self.faulty_since >= self.calm_every:
                for a in list(self.active):
                    self._end(a)
                self.calm_until = now + self.calm_len
                self.event("calm", {"seconds": self.calm_len}, "start")
                return
        if not self.kinds or len(self.active) >= self.max_active:
            return
        if self.active and self.rng.random() < 0.35:
            return
        kind = self.rng.choice(self.kinds)
        if kind in [a["kind"] for a in self.active] and kind != "kill":
            return
        getattr(self, "_start_" + kind.replace("-", "_"))()

    def _add(self, kind, desc, undo, slots=(), edges=()):
        d = self.rng.uniform(*self.duration)
        self.active.append({"kind": kind, "until": time.monotonic() + d,
                            "undo": undo, "desc": desc, "slots": set(slots),
                            "edges": set(edges)})

    def busy_edges(self):
        out = set()
        for a in self.active:
            out.update(a.get("edges", ()))
        return out

    def _end(self, a):
        self.active.remove(a)
        try:
            a["undo"]()
        except Exception as e:
            self.errors.append("undo %s: %r" % (a["kind"], e))
            self.log("nemesis undo error %s: %r" % (a["kind"], e))
        self.event(a["kind"], a["desc"], "end")

    def heal_all(self):
        """End every fault; make every member run, unpaused, with its true
        clock; leave no half-joined node behind."""
        for a in list(self.active):
            self._end(a)
        self.topo.heal()
        self._heal_edges()
        for s, n in self.c.nodes.items():
            if n.alive() and n.paused:
                self.c.signal(s, signal.SIGCONT)
            if n.alive() and n.faketime:
                self.c.kill(s)
                self.c.start(s)
                self.event("clock", {"node": n.name, "restart": "true clock"}, "end")
        members = None
        for _ in range(20):
            members = self.c.members()
            if members is not None:
                break
            # no leader: start every slot that has data and no process
            for s, n in self.c.nodes.items():
                if not n.alive() and n.starts and s in self._known_members():
                    self.c.start(s)
            time.sleep(1)
        if members is None:
            self.errors.append("heal_all: no leader")
            return False
        for s, n in self.c.nodes.items():
            if s in members and not n.alive():
                self.c.start(s)
                self.event("kill", {"node": n.name, "restart": "final heal"}, "end")
            elif s not in members and n.alive():
                self.c.kill(s)
                self.event("member", {"node": n.name, "stop": "not a member"}, "end")
        for mid, role in members.items():
            if role != "voter":
                self._promote(mid)
        return True

    def _heal_edges(self):
        if self.edges is None:
            return
        for e in self.edges:
            if e.alive() and e.paused:
                self.edges.signal(e.j, signal.SIGCONT)
            if not e.alive():
                self.edges.start(e.j)
                self.event("edge-kill", {"edges": [e.name], "restart": "final heal"}, "end")

    def _known_members(self):
        last = getattr(self, "_last_members", None)
        return last if last is not None else set(range(1, self.c.n_initial + 1))

    # ---- partitions -------------------------------------------------------------
    def _start_partition(self):
        nodes = sorted(s for s, n in self.c.nodes.items() if n.starts and n.alive())
        if len(nodes) < 2:
            return
        modes = ["halves", "one", "leader", "bridge", "leader-oneway"]
        if len(nodes) >= 5:
            modes.append("ring")
        mode = self.rng.choice(modes)
        desc = {"mode": mode}
        if mode == "halves":
            sh = list(nodes)
            self.rng.shuffle(sh)
            k = len(sh) // 2
            groups = [sorted(sh[:k]), sorted(sh[k:])]
            grudge = jlnet.grudge_split(groups)
            desc["groups"] = [["n%d" % s for s in g] for g in groups]
        elif mode in ("one", "leader", "leader-oneway"):
            if mode == "one":
                victim = self.rng.choice(nodes)
            else:
                victim, _ = self.c.leader()
                if victim is None:
                    return
            rest = [s for s in nodes if s != victim]
            if mode == "leader-oneway":
                grudge = {victim: set(rest)}     # it sends, but hears nobody
            else:
                grudge = jlnet.grudge_split([[victim], rest])
            desc["isolated"] = "n%d" % victim
        elif mode == "bridge":
            grudge, br, a, b = jlnet.grudge_bridge(nodes, self.rng)
            desc.update(bridge="n%d" % br, a=["n%d" % s for s in a],
                        b=["n%d" % s for s in b])
        else:
            grudge, ring = jlnet.grudge_ring(nodes, self.rng)
            desc["ring"] = ["n%d" % s for s in ring]
        self.topo.partition(grudge)
        self.event("partition", desc)
        # Heal the nodes only: an edge partition has its own end.
        self._add("partition", desc, lambda: self.topo.partition({}))

    # ---- crashes ------------------------------------------------------------------
    def _start_kill(self):
        up = [s for s in self.up_slots() if s not in self.busy_slots()]
        if not up:
            return
        if self.rng.random() < 0.4:
            ls, _ = self.c.leader()
            victims = [ls] if ls in up else []
        else:
            k = 1
            if len(self.c.running_slots()) >= 5 and self.rng.random() < 0.4:
                k = 2
            victims = self.rng.sample(up, min(k, len(up)))
        if not victims:
            return
        for s in victims:
            self.c.kill(s)
        desc = {"nodes": ["n%d" % s for s in victims]}
        self.event("kill", desc)

        def undo():
            for s in victims:
                if not self.c.nodes[s].alive():
                    self.c.start(s)
        self._add("kill", desc, undo, victims)

    def _start_pause(self):
        up = [s for s in self.up_slots() if s not in self.busy_slots()]
        if not up:
            return
        if self.rng.random() < 0.5:
            ls, _ = self.c.leader()
            victim = ls if ls in up else None
        else:
            victim = self.rng.choice(up)
        if victim is None:
            return
        self.c.signal(victim, signal.SIGSTOP)
        desc = {"node": "n%d" % victim}
        self.event("pause", desc)
        self._add("pause", desc, lambda: self.c.signal(victim, signal.SIGCONT),
                  [victim])

    # ---- clocks ---------------------------------------------------------------------
    def _start_clock(self):
        up = [s for s in self.up_slots() if s not in self.busy_slots()]
        if not up:
            return
        victim = self.rng.choice(up)
        # libfaketime fakes CLOCK_MONOTONIC too: with DONT_FAKE_MONOTONIC=1
        # its pthread_cond_timedwait wrapper returns at once for condvars on
        # CLOCK_MONOTONIC (verified), which no real clock does.  A constant
        # offset of the monotonic clock is harmless; a rate drifts both.
        if self.rng.random() < 0.6:
            off = self.rng.choice([-1, 1]) * self.rng.randint(1, 900)
            spec, mono = "%+ds" % off, True
        else:
            rate = self.rng.choice([0.5, 0.8, 1.25, 1.5, 2.0])
            spec, mono = "+0 x%s" % rate, True
        self.c.kill(victim)
        self.c.start(victim, faketime=(spec, mono))
        desc = {"node": "n%d" % victim, "FAKETIME": spec, "monotonic": mono}
        self.event("clock", desc)

        def undo():
            n = self.c.nodes[victim]
            if n.alive() and n.faketime:
                self.c.kill(victim)
                self.c.start(victim)
        self._add("clock", desc, undo, [victim])

    # ---- membership ---------------------------------------------------------------
    def _admin(self, method, path, obj=None, timeout=6.0):
        return self.c.admin_call(method, path, obj, timeout=timeout, rng=self.rng)

    def _wait_member(self, mid, want, timeout=15.0):
        """Wait until the leader's view has member mid with role `want`
        (None = absent).  Returns the last view's role or 'unknown'."""
        deadline = time.monotonic() + timeout
        role = "unknown"
        while time.monotonic() < deadline:
            m = self.c.members()
            if m is not None:
                self._last_members = set(m)
                role = m.get(mid)
                if role == want:
                    return role
            time.sleep(0.3)
        return role

    def _add_member(self, slot, timeout=20.0):
        n = self.c.nodes[slot]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self._admin("POST", "/admin/v1/cluster/members",
                            {"id": n.id, "raft_address": n.raft_address,
                             "http_address": n.http_address})
            if r.status == 200:
                return True
            m = self.c.members()
            if m is not None and n.id in m:
                return True
            time.sleep(0.5)
        return False

    def _promote(self, mid, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self._admin("POST", "/admin/v1/cluster/members/%d/promote" % mid,
                            timeout=8.0)
            if r.status == 200:
                return True
            m = self.c.members()
            if m is not None and m.get(mid) == "voter":
                return True
            if m is not None and mid not in m:
                return False
            time.sleep(0.5)
        return False

    def _remove_member(self, mid, timeout=20.0):
        """True if mid is (now) not a member, False if it still is or the
        outcome stayed unknown."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self._admin("DELETE", "/admin/v1/cluster/members/%d" % mid)
            if r.status in (200, 404):
                if self._wait_member(mid, None, 5.0) is None:
                    return True
            m = self.c.members()
            if m is not None and mid not in m:
                return True
            time.sleep(0.5)
        return False

    def _join(self, slot):
        """Start slot wiped with --join, add it, promote it."""
        n = self.c.nodes[slot]
        self.c.kill(slot)
        self.c.start(slot, join=True, wipe=True)
        if not self._add_member(slot):
            self.event("member", {"add": n.name, "result": "failed"}, "info")
            m = self.c.members()
            if m is not None and n.id not in m:
                self.c.kill(slot)
            return False
        ok = self._promote(n.id)
        self.event("member", {"promote": n.name, "result": "ok" if ok else "failed"},
                   "info")
        return ok

    def _start_member(self):
        members = self.c.members()
        if members is None:
            return
        self._last_members = set(members)
        voters = [i for i, r in members.items() if r == "voter"]
        busy = self.busy_slots()
        spares = [s for s, n in self.c.nodes.items()
                  if s not in members and s not in busy]
        standbys = [i for i, r in members.items() if r != "voter"
                    and self.c.nodes[i].alive()]
        choices = ["transfer"]
        if standbys:
            choices.append("promote")
        # Keep n or n+1 voters: grow to n+1 with a spare, shrink back to n.
        if spares and len(voters) <= self.c.n_initial:
            choices.append("grow")
        if len(voters) > self.c.n_initial:
            choices.append("shrink")
        what = self.rng.choice(choices)
        if what == "transfer":
            ls, _ = self.c.leader()
            cands = [v for v in voters if v != ls and self.c.nodes[v].alive()
                     and not self.c.nodes[v].paused]
            if not cands:
                return
            target = self.rng.choice(cands)
            self.event("member", {"transfer": "n%d" % target})
            r = self._admin("POST", "/admin/v1/cluster/transfer", {"id": target},
                            timeout=8.0)
            self.event("member", {"transfer": "n%d" % target, "reply": str(r)[:120]},
                       "end")
        elif what == "promote":
            mid = self.rng.choice(standbys)
            self.event("member", {"promote": "n%d" % mid})
            ok = self._promote(mid)
            self.event("member", {"promote": "n%d" % mid, "ok": ok}, "end")
        elif what == "grow":
            slot = self.rng.choice(spares)
            self.event("member", {"add": "n%d" % slot})
            ok = self._join(slot)
            self.event("member", {"add": "n%d" % slot, "ok": ok}, "end")
        else:
            cands = [v for v in voters if v not in busy]
            if not cands:
                return
            ls, _ = self.c.leader()
            victim = ls if (ls in cands and self.rng.random() < 0.3) \
                else self.rng.choice(cands)
            self.event("member", {"remove": "n%d" % victim,
                                  "leader": victim == ls})
            ok = self._remove_member(victim)
            if ok:
                self.c.kill(victim)
                self.c.wipe(victim)
            self.event("member", {"remove": "n%d" % victim, "ok": ok}, "end")

    def _start_wipe(self):
        members = self.c.members()
        if members is None:
            return
        self._last_members = set(members)
        busy = self.busy_slots()
        voters = [i for i, r in members.items() if r == "voter" and i not in busy
                  and self.c.nodes[i].alive()]
        if len(voters) < 3:
            return
        victim = self.rng.choice(voters)
        n = self.c.nodes[victim]
        self.event("wipe", {"node": n.name})
        self.c.kill(victim)
        if not self._remove_member(victim):
            # Still a member (or unknown): it keeps its data; never wipe a
            # voter that may still count.
            self.c.start(victim)
            self.event("wipe", {"node": n.name, "result": "remove failed; "
                                "restarted with its data"}, "end")
            return
        self.c.wipe(victim)
        ok = self._join(victim)
        self.event("wipe", {"node": n.name, "rejoined": ok}, "end")

    # ---- edges ------------------------------------------------------------------------
    def _free_edges(self, running=True):
        if self.edges is None:
            return []
        busy = self.busy_edges()
        return [e for e in self.edges if e.j not in busy
                and (not running or (e.alive() and not e.paused))]

    def _start_edge_partition(self):
        free = self._free_edges(running=False)
        if not free:
            return
        cp = [s for s, n in self.c.nodes.items() if n.starts]
        mode = self.rng.choice(["one", "one", "all", "one-node"])
        desc = {"mode": mode}
        if mode == "all" and len(free) == len(list(self.edges)):
            victims = free
        else:
            victims = [self.rng.choice(free)]
            mode = desc["mode"] = "one" if mode == "all" else mode
        grudge = {}
        for e in victims:
            if mode == "one-node":
                # It hears one control-plane node only: it must find it.
                keep = self.rng.choice(range(1, self.c.n_initial + 1))
                grudge[e.slot] = set(cp) - {keep}
                desc["reaches"] = "n%d" % keep
            else:
                grudge[e.slot] = set(cp)
        desc["edges"] = [e.name for e in victims]
        # Rules of edges already cut off stay (partition_edges heals the
        # edges not named).
        for a in self.active:
            if a["kind"] == "edge-partition":
                grudge.update(a["grudge"])
        self.topo.partition_edges(grudge)
        self.event("edge-partition", desc)
        mine = {e.slot: grudge[e.slot] for e in victims}

        def undo():
            rest = {}
            for a in self.active:
                if a["kind"] == "edge-partition":
                    rest.update(a["grudge"])
            self.topo.partition_edges(rest)
        self._add("edge-partition", desc, undo, edges=[e.j for e in victims])
        self.active[-1]["grudge"] = mine

    def _start_edge_kill(self):
        free = self._free_edges()
        if not free:
            return
        e = self.rng.choice(free)
        self.edges.kill(e.j)
        desc = {"edges": [e.name]}
        self.event("edge-kill", desc)

        def undo():
            if not e.alive():
                self.edges.start(e.j)
        self._add("edge-kill", desc, undo, edges=[e.j])

    def _start_edge_pause(self):
        free = self._free_edges()
        if not free:
            return
        e = self.rng.choice(free)
        self.edges.signal(e.j, signal.SIGSTOP)
        desc = {"edges": [e.name]}
        self.event("edge-pause", desc)
        self._add("edge-pause", desc, lambda: self.edges.signal(e.j, signal.SIGCONT),
                  edges=[e.j])
