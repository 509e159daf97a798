#!/usr/bin/env python3
"""Checker of the edge workload's invariants (DESIGN.md 4 and 5).

The edge workload (edgeload.py) records these ops (history.py format):

  create  key = abonement               an account made through the Billing API
  token   key = abonement, node = edge  login + channel/url at that edge;
                                        ok value {"id", "stream", "tenant"}
  forge   key = forged token id         value {"from": token id}: one character
                                        of a real token changed
  check   key = token id, node = edge   the streamers' token check; ok value
                                        "allow" (200) or "deny:<reason>" (403);
                                        fail = no usable answer
  revoke  key = abonement               account/modify active=0 or the removal
                                        of the account's tariff (Billing API)

and the nemesis events of the run (nemesis.jsonl) say when each edge and the
control plane were disturbed.  Rules (each violation is a problem naming
the operations involved):

  revocation bound   after a revocation is acknowledged (ok), a check of any
                     token of that account at edge E that starts once E has
                     had BOUND_S of undisturbed time since the ack must deny.
                     E is disturbed while it, or the control plane, is under
                     a fault, and for a recovery time after the fault ends:
                     4 s, and after a partition min(its duration, 15 s) + 4 s
                     (see README, "The revocation bound").
  no regression      an edge that denied a token it knew (it issued it or
                     had allowed it) after a revocation was requested never
                     allows it again: its state does not go back.
  valid stays valid  an edge never denies a token it knew while no
                     revocation of the account has been requested
                     (partitioned or not: invariant 5).
  forged             a forged token is never allowed.
  expired            a token of the expiry tenant (ttl + skew seconds) is
                     never allowed once ttl + skew + 1.5 s have passed since
                     it was issued.
  convergence        after the final heal every edge reaches the control
                     plane's last command (the feed's last_index), and its
                     answer for every token
                     checked then equals the control plane's final state
                     (revoked -> deny, else allow; forged and expired ->
                     deny).

CLI: edgecheck.py RUN_DIR   (history.jsonl, nemesis.jsonl, edge_final.json)
exit 0 = no problem, 1 = problems.
"""

import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import history as hist  # noqa: E402

BOUND_S = 2.0            # feed latency bound of an undisturbed edge
RECOVERY_CAP_S = 15.0    # the edge's feed request timeout (10 s wait + 5 s)
RECOVERY_EXTRA_S = 4.0   # an election, a reconnect and a retry pause
EXPIRY_MARGIN_S = 1.5    # whole-second expiry times, scheduling

CP_KINDS = ("partition", "kill", "pause", "clock", "member", "wipe", "crash")
EDGE_KINDS = ("edge-partition", "edge-kill", "edge-pause", "edge-crash")


PARTITIONS = ("partition", "edge-partition")


def recovery(kind, duration):
    """How long after a fault of `duration` seconds ends an edge may still
    lag: an election, a reconnect and a retry pause (RECOVERY_EXTRA_S);
    after a partition also the retransmission of what was lost (TCP waits
    about as long as the loss lasted), at most until the feed request's
    timeout (RECOVERY_CAP_S)."""
    if kind in PARTITIONS:
        return min(max(duration, 0.0), RECOVERY_CAP_S) + RECOVERY_EXTRA_S
    return RECOVERY_EXTRA_S


def _vkey(v):
    return json.dumps(v, sort_keys=True, default=str)


def disturbances(events, end_time=None):
    """Fault intervals from nemesis events: [{"kind", "scope", "start",
    "end"}], scope "cp" or an edge name.  A start is closed by the next end
    of the same kind with the same description, else by the next end of the
    same kind, else by the final heal (or end_time)."""
    pending, out, heal_t = [], [], None
    for ev in sorted(events, key=lambda e: (e.get("time") or 0)):
        f, phase, t = ev.get("f"), ev.get("phase"), ev.get("time")
        if f == "heal":
            heal_t = t
            continue
        if f not in CP_KINDS and f not in EDGE_KINDS:
            continue
        if phase == "start":
            pending.append({"kind": f, "value": ev.get("value"), "start": t})
        elif phase == "end":
            m = next((p for p in pending if p["kind"] == f and
                      _vkey(p["value"]) == _vkey(ev.get("value"))), None)
            if m is None:
                m = next((p for p in pending if p["kind"] == f), None)
            if m is not None:
                pending.remove(m)
                out.append(dict(m, end=t))
        elif f in ("crash", "edge-crash"):
            out.append({"kind": f, "value": ev.get("value"), "start": t, "end": t})
    last = heal_t if heal_t is not None else end_time
    for p in pending:
        out.append(dict(p, end=last if last is not None else float("inf")))
    res = []
    for d in out:
        v = d.get("value") or {}
        if d["kind"] in EDGE_KINDS:
            names = v.get("edges") or ([v["node"]] if "node" in v else [])
            for n in names:
                res.append({"kind": d["kind"], "scope": n, "start": d["start"],
                            "end": d["end"], "value": v})
        else:
            res.append({"kind": d["kind"], "scope": "cp", "start": d["start"],
                        "end": d["end"], "value": v})
    return res


class Blocked:
    """The disturbed time of one edge: union of [start, end + recovery]."""

    def __init__(self, dists, edge):
        ivs = sorted((d["start"], d["end"] + recovery(d["kind"], d["end"] - d["start"]))
                     for d in dists if d["scope"] in ("cp", edge))
        self.ivs = []
        for a, b in ivs:
            if self.ivs and a <= self.ivs[-1][1]:
                self.ivs[-1][1] = max(self.ivs[-1][1], b)
            else:
                self.ivs.append([a, b])

    def healthy(self, t0, t1):
        """Seconds of [t0, t1] outside every disturbed interval."""
        if t1 <= t0:
            return 0.0
        total = t1 - t0
        for a, b in self.ivs:
            lo, hi = max(a, t0), min(b, t1)
            if hi > lo:
                total -= hi - lo
        return total

    def overlapping(self, t0, t1):
        return [(a, b) for a, b in self.ivs if a < t1 and b > t0]


def _desc(op):
    return {"process": op.process, "f": op.f, "key": op.key, "value": op.value,
            "type": op.type, "out": op.out, "node": op.node, "call": op.call,
            "ret": op.ret, "call_time": op.call_time, "ret_time": op.ret_time}


def check(ops, dists, final=None, bound_s=BOUND_S, expiry_s=None):
    """ops: paired history ops (any workloads; others are ignored);
    dists: disturbances(); final: the runner's edge_final.json or None;
    expiry_s: ttl + skew of the expiry tenant (default final["expiry_s"]
    or 2).  Returns {"problems": [...], "stats": {...}}."""
    final = final or {}
    if expiry_s is None:
        expiry_s = final.get("expiry_s", 2.0)
    problems = []

    def problem(rule, msg, involved, extra=None):
        p = {"rule": rule, "message": msg, "ops": [_desc(o) for o in involved]}
        if extra:
            p.update(extra)
        problems.append(p)

    tokens = {}      # id -> {"account", "tenant", "edge", "mint": op, "kind"}
    revokes = {}     # abonement -> [ops]
    checks = {}      # (edge, token) -> [ops]
    nchecks = {"allow": 0, "deny": 0, "fail": 0}
    for op in ops:
        if op.f == "token" and op.type == "ok" and isinstance(op.out, dict):
            kind = "expiry" if op.out.get("tenant") == "expiry" else "valid"
            tokens[op.out["id"]] = {"account": op.key, "tenant": op.out.get("tenant"),
                                    "edge": op.node, "mint": op, "kind": kind}
        elif op.f == "forge" and op.type == "ok":
            src = (op.value or {}).get("from")
            tokens[op.key] = {"account": tokens.get(src, {}).get("account"),
                              "tenant": "forged", "edge": None, "mint": op,
                              "kind": "forged"}
        elif op.f == "revoke":
            revokes.setdefault(op.key, []).append(op)
        elif op.f == "check":
            checks.setdefault((op.node, op.key), []).append(op)
            if op.type == "ok" and isinstance(op.out, str):
                nchecks["allow" if op.out == "allow" else "deny"] += 1
            else:
                nchecks["fail"] += 1
    edges = sorted({e for e, _ in checks} | {t["edge"] for t in tokens.values()
                                            if t["edge"]})
    blocked = {e: Blocked(dists, e) for e in edges}
    final_from = final.get("from_index")

    def requested(acct, before):
        """A revocation of acct (ok or unknown outcome) invoked before
        history index `before`."""
        return [r for r in revokes.get(acct, ())
                if r.type in ("ok", "info") and r.call < before]

    # ---- per edge and token: forged, expired, valid stays valid, no regression
    for (edge, tid), cs in sorted(checks.items(), key=lambda x: (str(x[0][0]), str(x[0][1]))):
        t = tokens.get(tid)
        if t is None:
            continue
        cs = sorted(cs, key=lambda o: o.call)
        for c in cs:
            if c.type != "ok" or c.out != "allow":
                continue
            if t["kind"] == "forged":
                problem("forged", "edge %s allowed forged token %s" % (edge, tid),
                        [t["mint"], c])
            elif t["kind"] == "expiry" and \
                    c.call_time > t["mint"].ret_time + expiry_s + EXPIRY_MARGIN_S:
                problem("expired", "edge %s allowed token %s %.1f s after it was issued "
                        "(it expires after %.0f s)" % (
                            edge, tid, c.call_time - t["mint"].ret_time, expiry_s),
                        [t["mint"], c])
        if t["kind"] != "valid":
            continue
        acct = t["account"]
        est = t["mint"].ret if t["edge"] == edge else None   # edge knew it from here
        est_op = t["mint"] if est is not None else None
        denied = None      # a deny of a known token after a revocation request
        for c in cs:
            if c.type != "ok" or not isinstance(c.out, str):
                continue
            if c.out == "allow":
                if denied is not None and c.call > denied.ret:
                    problem("no regression",
                            "edge %s allowed token %s of account %s again after it had "
                            "denied it (%s) following a revocation request" % (
                                edge, tid, acct, denied.out),
                            requested(acct, denied.ret) + [denied, c])
                if est is None or c.ret < est:
                    est, est_op = c.ret, c
            elif est is not None and c.call > est:
                if not requested(acct, c.ret):
                    problem("valid stays valid",
                            "edge %s denied token %s (%s) of account %s that it had %s "
                            "before, with no revocation requested" % (
                                edge, tid, c.out, acct,
                                "issued" if est_op is t["mint"] else "allowed"),
                            [est_op, c] + revokes.get(acct, []))
                elif denied is None or c.ret < denied.ret:
                    denied = c

    # ---- revocation bound
    by_account = {}
    for tid, t in tokens.items():
        if t["kind"] == "valid":
            by_account.setdefault(t["account"], []).append(tid)
    enforced, latencies, acked = 0, [], 0
    for acct, rs in revokes.items():
        oks = [r for r in rs if r.type == "ok"]
        if not oks:
            continue
        acked += 1
        r0 = min(oks, key=lambda r: r.ret_time)
        t_ack = r0.ret_time
        for edge in edges:
            b = blocked[edge]
            first_deny, bad, strict = None, None, False
            for tid in by_account.get(acct, ()):
                for c in checks.get((edge, tid), ()):
                    if c.type != "ok" or c.call_time is None or c.call_time <= t_ack:
                        continue
                    h = b.healthy(t_ack, c.call_time)
                    if h >= bound_s:
                        strict = True
                    if c.out == "allow" and h >= bound_s:
                        if bad is None or c.call < bad[0].call:
                            bad = (c, tid, h)
                    elif c.out != "allow":
                        if first_deny is None or c.ret_time < first_deny.ret_time:
                            first_deny = c
            enforced += strict
            if bad is not None:
                c, tid, h = bad
                hist_e = sorted((x for tid2 in by_account.get(acct, ())
                                 for x in checks.get((edge, tid2), ())
                                 if x.call < c.call), key=lambda o: o.call)[-4:]
                problem("revocation bound",
                        "edge %s allowed token %s of account %s %.2f s after its revocation "
                        "was acknowledged, %.2f s of it undisturbed (bound %g s)" % (
                            edge, tid, acct, c.call_time - t_ack, h, bound_s),
                        [r0] + hist_e + [c],
                        {"disturbed": [[round(a - t_ack, 2), round(b2 - t_ack, 2)]
                                       for a, b2 in b.overlapping(t_ack, c.call_time)],
                         "disturbed_note": "seconds after the ack"})
            if first_deny is not None and b.healthy(t_ack, first_deny.ret_time) >= \
                    first_deny.ret_time - t_ack - 1e-9:
                latencies.append(first_deny.ret_time - t_ack)

    # ---- convergence after the final heal
    for e, st in sorted((final.get("edges") or {}).items()):
        if not st.get("converged"):
            problem("convergence", "edge %s did not reach the control plane's last "
                    "index %s after the heal (it stood at %s after %.0f s)" % (
                        e, final.get("target_index"), st.get("applied_index"),
                        st.get("secs", 0)), [])
    final_accounts = final.get("accounts") or {}
    if final_from is not None:
        for (edge, tid), cs in sorted(checks.items(), key=lambda x: (str(x[0][0]),
                                                                       str(x[0][1]))):
            t = tokens.get(tid)
            fin = [c for c in cs if c.call >= final_from]
            if t is None or not fin:
                continue
            got = [c for c in fin if c.type == "ok" and isinstance(c.out, str)]
            if not got:
                problem("convergence", "edge %s gave no answer for token %s after the "
                        "heal" % (edge, tid), fin[-1:])
                continue
            c = got[-1]
            if t["kind"] == "forged":
                want = "deny"
            elif t["kind"] == "expiry":
                if c.call_time <= t["mint"].ret_time + expiry_s + EXPIRY_MARGIN_S:
                    continue
                want = "deny"
            else:
                st = final_accounts.get(t["account"])
                if st is None:
                    if revokes.get(t["account"]):
                        continue       # final state unknown
                    want = "allow"
                else:
                    want = "deny" if st.get("revoked") else "allow"
            have = "allow" if c.out == "allow" else "deny"
            if have != want:
                problem("convergence",
                        "after the heal edge %s answers %s for token %s (%s of account %s) "
                        "but the control plane's final state says %s" % (
                            edge, c.out, tid, t["kind"], t["account"], want),
                        [t["mint"]] + revokes.get(t["account"], []) + [c])

    stats = {"tokens": sum(1 for t in tokens.values() if t["kind"] == "valid"),
             "expiry_tokens": sum(1 for t in tokens.values() if t["kind"] == "expiry"),
             "forged": sum(1 for t in tokens.values() if t["kind"] == "forged"),
             "checks_allow": nchecks["allow"], "checks_deny": nchecks["deny"],
             "checks_no_answer": nchecks["fail"],
             "revocations_acked": acked,
             "revocations_unknown": sum(1 for rs in revokes.values()
                                        if not any(r.type == "ok" for r in rs)
                                        and any(r.type == "info" for r in rs)),
             "bound_enforced_pairs": enforced,
             "undisturbed_deny_latency_max": round(max(latencies), 3) if latencies else None,
             "undisturbed_deny_latency_median": round(statistics.median(latencies), 3)
             if latencies else None,
             "undisturbed_deny_latency_n": len(latencies)}
    return {"problems": problems, "stats": stats}


RULE_CHECK = {"revocation bound": "edge revocation", "no regression": "edge revocation",
              "valid stays valid": "edge validity", "forged": "edge validity",
              "expired": "edge validity", "convergence": "edge convergence"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: edgecheck.py RUN_DIR", file=sys.stderr)
        return 2
    d = argv[0]
    ops = hist.pair(hist.load(os.path.join(d, "history.jsonl")))
    evs = []
    p = os.path.join(d, "nemesis.jsonl")
    if os.path.exists(p):
        with open(p) as fh:
            evs = [json.loads(ln) for ln in fh if ln.strip()]
    final = None
    p = os.path.join(d, "edge_final.json")
    if os.path.exists(p):
        with open(p) as fh:
            final = json.load(fh)
    end = max((o.ret_time or o.call_time or 0) for o in ops) if ops else None
    res = check(ops, disturbances(evs, end), final)
    print(json.dumps(res["stats"], indent=1))
    for pr in res["problems"][:20]:
        print(json.dumps(pr, indent=1, default=str))
    print("%d problem(s)" % len(res["problems"]))
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
