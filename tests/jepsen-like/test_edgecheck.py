"""Self-tests of the edge checker (edgecheck.py) on hand-made histories:
histories that keep the edge invariants pass, each kind of violation is
caught and reported with the operations involved.

    cd tests/jepsen-like && python3 -m unittest test_edgecheck
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edgecheck as ec  # noqa: E402
import history as hist  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Hist:
    """Builds a history: op(process, f, key, value, out, t0, t1, node)
    appends an invoke at time t0 and its completion at t1 (events are
    sorted by time, so index order is real-time order)."""

    def __init__(self):
        self.rows = []

    def op(self, p, f, key, value=None, out=None, t0=0.0, t1=None, node=None, type="ok"):
        t1 = t0 + 0.01 if t1 is None else t1
        self.rows.append((t0, 0, {"process": p, "type": "invoke", "f": f, "key": key,
                                  "value": value, "time": t0, "node": node}))
        if type != "open":
            self.rows.append((t1, 1, {"process": p, "type": type, "f": f, "key": key,
                                      "value": out if type == "ok" else None, "time": t1,
                                      "node": node}))
        return self

    def token(self, tid, account, edge, t, tenant="main", p=1):
        return self.op(p, "token", account, {"edge": edge, "tenant": tenant},
                       {"id": tid, "stream": "jla", "tenant": tenant}, t, node=edge)

    def check(self, tid, edge, verdict, t, p=2, type="ok"):
        return self.op(p, "check", tid, {"edge": edge}, verdict, t, node=edge, type=type)

    def revoke(self, account, t0, t1, type="ok", p=3):
        return self.op(p, "revoke", account, {"how": "deactivate"}, {"how": "deactivate"},
                       t0, t1, node="n1", type=type)

    def events(self):
        evs = []
        for i, (_, _, ev) in enumerate(sorted(self.rows, key=lambda r: (r[0], r[1]))):
            evs.append(dict(ev, index=i))
        return evs

    def ops(self):
        return hist.pair(self.events())


def nem(kind, value, t0, t1):
    return [{"time": t0, "index": 0, "phase": "start", "f": kind, "value": value},
            {"time": t1, "index": 0, "phase": "end", "f": kind, "value": value}]


def run(h, events=(), final=None):
    return ec.check(h.ops(), ec.disturbances(list(events)), final)


def rules(res):
    return sorted(p["rule"] for p in res["problems"])


def base(e2_deny=10.3):
    """T1 of account A issued at e1, allowed at both edges; A revoked
    (acknowledged at t=10); e1 denies at 10.2 s, e2 at e2_deny (or never)."""
    h = Hist()
    h.token("T1", "A", "e1", 1.0)
    h.check("T1", "e1", "allow", 2.0)
    h.check("T1", "e2", "allow", 2.5)
    h.revoke("A", 9.5, 10.0)
    h.check("T1", "e1", "deny:account_inactive", 10.2)
    if e2_deny is not None:
        h.check("T1", "e2", "deny:account_inactive", e2_deny)
    return h


class GoodHistories(unittest.TestCase):
    def test_revocation_seen_everywhere(self):
        res = run(base())
        self.assertEqual(res["problems"], [])
        self.assertEqual(res["stats"]["revocations_acked"], 1)
        self.assertEqual(res["stats"]["undisturbed_deny_latency_n"], 2)

    def test_allow_within_the_bound_is_fine(self):
        h = base(e2_deny=11.8)
        h.check("T1", "e2", "allow", 11.5)       # 1.5 s after the ack
        self.assertEqual(rules(run(h)), [])

    def test_partitioned_edge_may_lag(self):
        # e2 cut off from 9 s to 16 s: it keeps allowing while cut off and
        # during the recovery time (7 s + 4 s) after it.
        h = base(e2_deny=None)
        h.check("T1", "e2", "allow", 14.0)
        h.check("T1", "e2", "allow", 26.0)
        ev = nem("edge-partition", {"mode": "one", "edges": ["e2"]}, 9.0, 16.0)
        self.assertEqual(rules(run(h, ev)), [])

    def test_cut_off_edge_keeps_valid_tokens(self):
        h = Hist()
        h.token("T1", "A", "e1", 1.0)
        for t in (5.0, 6.0, 7.0):
            h.check("T1", "e1", "allow", t)
        ev = nem("edge-partition", {"mode": "all", "edges": ["e1", "e2"]}, 4.0, 8.0)
        self.assertEqual(rules(run(h, ev)), [])

    def test_lagging_edge_may_deny_an_unknown_account(self):
        # e2 has not seen the account yet: deny, then allow, is no regression
        h = Hist()
        h.token("T1", "A", "e1", 1.0)
        h.check("T1", "e2", "deny:account_inactive", 1.1)
        h.check("T1", "e2", "allow", 1.5)
        self.assertEqual(rules(run(h)), [])

    def test_unknown_revocation_outcome(self):
        h = Hist()
        h.token("T1", "A", "e1", 1.0)
        h.revoke("A", 5.0, 8.0, type="info")
        h.check("T1", "e1", "deny:account_inactive", 9.0)
        h.check("T1", "e2", "allow", 30.0)       # no ack: no bound
        self.assertEqual(rules(run(h)), [])


class BadHistories(unittest.TestCase):
    def test_revocation_bound_violated(self):
        """The self-test the suite relies on: an edge that still allows a
        revoked token well after the acknowledgement, undisturbed."""
        h = base(e2_deny=None)
        h.check("T1", "e2", "allow", 13.0, p=7)   # 3 s after the ack, e2 healthy
        res = run(h)
        self.assertEqual(rules(res), ["revocation bound"], res)
        p = res["problems"][0]
        self.assertIn("edge e2 allowed token T1 of account A", p["message"])
        fs = [(o["f"], o["node"], o["out"]) for o in p["ops"]]
        self.assertEqual(fs[0], ("revoke", "n1", {"how": "deactivate"}))
        self.assertEqual(fs[-1], ("check", "e2", "allow"))

    def test_revocation_bound_after_recovery(self):
        # e2 was cut off 9..12 s (recovery 3 + 4 s): allowed until 19 s plus
        # the 2 s bound of undisturbed time (from 10 to 19 s there is none).
        ev = nem("edge-partition", {"mode": "one", "edges": ["e2"]}, 9.0, 12.0)
        h = Hist()
        h.token("T1", "A", "e1", 1.0)
        h.revoke("A", 9.5, 10.0)
        h.check("T1", "e2", "allow", 20.5)
        self.assertEqual(rules(run(h, ev)), [])
        h.check("T1", "e2", "allow", 21.5, p=8)
        res = run(h, ev)
        self.assertEqual(rules(res), ["revocation bound"])
        self.assertEqual(res["problems"][0]["disturbed"], [[-1.0, 9.0]])

    def test_control_plane_fault_extends_every_edge(self):
        ev = nem("kill", {"nodes": ["n1"]}, 9.0, 11.0)     # blocked until 15 s
        h = Hist()
        h.token("T1", "A", "e1", 1.0)
        h.revoke("A", 9.5, 10.0)
        h.check("T1", "e2", "allow", 16.5)
        self.assertEqual(rules(run(h, ev)), [])
        h.check("T1", "e1", "allow", 17.5, p=8)
        self.assertEqual(rules(run(h, ev)), ["revocation bound"])
        # a partition of the control plane: its duration more (until 17 s)
        ev = nem("partition", {"mode": "halves"}, 9.0, 11.0)
        self.assertEqual(rules(run(h, ev)), [])

    def test_regression(self):
        h = Hist()
        h.token("T1", "A", "e1", 1.0)
        h.revoke("A", 5.0, 8.0, type="info")
        h.check("T1", "e1", "deny:account_inactive", 9.0)
        h.check("T1", "e1", "allow", 10.0)
        res = run(h)
        self.assertEqual(rules(res), ["no regression"])
        self.assertEqual([o["f"] for o in res["problems"][0]["ops"]],
                         ["revoke", "check", "check"])

    def test_valid_token_denied(self):
        h = Hist()
        h.token("T1", "A", "e2", 1.0)
        h.check("T1", "e1", "allow", 2.0)
        h.check("T1", "e1", "deny:account_inactive", 3.0)
        h.check("T1", "e2", "deny:not_entitled", 4.0)
        res = run(h, nem("edge-partition", {"edges": ["e1", "e2"]}, 2.5, 5.0))
        self.assertEqual(rules(res), ["valid stays valid", "valid stays valid"])
        self.assertIn("that it had allowed before", res["problems"][0]["message"])
        self.assertIn("that it had issued before", res["problems"][1]["message"])

    def test_failed_revocation_does_not_excuse_a_deny(self):
        h = Hist()
        h.token("T1", "A", "e1", 1.0)
        h.revoke("A", 2.0, 2.5, type="fail")
        h.check("T1", "e1", "deny:account_inactive", 3.0)
        self.assertEqual(rules(run(h)), ["valid stays valid"])

    def test_forged_allowed(self):
        h = Hist()
        h.token("T1", "A", "e1", 1.0)
        h.op(4, "forge", "F1", {"from": "T1"}, {"from": "T1"}, 1.5)
        h.check("F1", "e2", "deny:token_malformed", 2.0)
        h.check("F1", "e1", "allow", 3.0)
        self.assertEqual(rules(run(h)), ["forged"])

    def test_expired_allowed(self):
        h = Hist()
        h.token("X1", "7300001", "e1", 1.0, tenant="expiry")
        h.check("X1", "e2", "allow", 2.0)          # before expiry + skew
        h.check("X1", "e2", "deny:token_expired", 5.0)
        self.assertEqual(rules(run(h)), [])
        h.check("X1", "e1", "allow", 6.0, p=9)
        self.assertEqual(rules(run(h)), ["expired"])

    def test_convergence(self):
        h = base()
        h.token("T2", "B", "e2", 3.0)
        start = len(h.events())              # the final checks begin here
        h.check("T1", "e1", "deny:account_inactive", 100.0, p=10)
        h.check("T1", "e2", "allow", 100.0, p=11)          # A is revoked
        h.check("T2", "e1", "deny:account_inactive", 100.5, p=12)   # B is not
        h.check("T2", "e2", None, 100.5, p=13, type="fail")
        final = {"from_index": start, "target_index": 50,
                 "accounts": {"A": {"revoked": True}},
                 "edges": {"e1": {"converged": True, "applied_index": 50},
                           "e2": {"converged": False, "applied_index": 40, "secs": 60}}}
        res = ec.check(h.ops(), [], final)
        msgs = [p["message"] for p in res["problems"] if p["rule"] == "convergence"]
        self.assertEqual(len(msgs), 4, json.dumps(res["problems"], indent=1))
        self.assertIn("edge e2 did not reach", msgs[0])
        self.assertTrue(any("edge e2 answers allow for token T1" in m for m in msgs))
        self.assertTrue(any("edge e1 answers deny:account_inactive for token T2" in m
                            for m in msgs))
        self.assertTrue(any("edge e2 gave no answer for token T2" in m for m in msgs))


class Disturbances(unittest.TestCase):
    def test_pairing(self):
        evs = (nem("kill", {"nodes": ["n1"]}, 1.0, 3.0) +
               [{"time": 2.0, "phase": "start", "f": "edge-kill", "value": {"edges": ["e1"]}},
                {"time": 2.5, "phase": "start", "f": "pause", "value": {"node": "n2"}},
                {"time": 4.0, "phase": "end", "f": "pause", "value": {"node": "n2", "x": 1}},
                {"time": 6.0, "phase": "info", "f": "crash", "value": {"node": "n3"}},
                {"time": 9.0, "phase": "info", "f": "heal", "value": {"all": True}}])
        ds = sorted((d["kind"], d["scope"], d["start"], d["end"])
                    for d in ec.disturbances(evs))
        self.assertEqual(ds, [("crash", "cp", 6.0, 6.0), ("edge-kill", "e1", 2.0, 9.0),
                              ("kill", "cp", 1.0, 3.0), ("pause", "cp", 2.5, 4.0)])
        b = ec.Blocked(ec.disturbances(evs), "e2")
        # cp faults: [1, 3 + 4], [2.5, 4 + 4] and [6, 6 + 4] merge
        self.assertEqual(b.ivs, [[1.0, 10.0]])
        self.assertAlmostEqual(b.healthy(0.0, 12.0), 3.0)


class Cli(unittest.TestCase):
    def test_run_dir(self):
        h = base(e2_deny=None)
        h.check("T1", "e2", "allow", 13.0, p=7)
        with tempfile.TemporaryDirectory() as d:
            hist.write(os.path.join(d, "history.jsonl"), h.events())
            p = subprocess.run([sys.executable, os.path.join(HERE, "edgecheck.py"), d],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn('"rule": "revocation bound"', p.stdout)
            hist.write(os.path.join(d, "history.jsonl"), base().events())
            p = subprocess.run([sys.executable, os.path.join(HERE, "edgecheck.py"), d],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
