"""Self-tests for history.py and checker.py (stdlib unittest).

Run from the repo root:
    python3 -m unittest discover -s tests/jepsen-like -p 'test_*.py'
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
import history as hist  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def H(*rows, key="x"):
    """Build a history from rows (process, type, f, value[, key]) in real-time
    order; index and time are the row number."""
    evs = []
    for i, r in enumerate(rows):
        p, t, f, v = r[:4]
        k = r[4] if len(r) > 4 else key
        evs.append({"process": p, "type": t, "f": f, "key": k, "value": v,
                    "time": float(i), "node": None, "index": i})
    return evs


def seq(p, f, v, out="ok", key="x"):
    """An invoke immediately followed by its completion."""
    inv = None if f == "read" else v
    done = v
    return [(p, "invoke", f, inv, key), (p, out, f, done, key)]


class NoSimplify(checker.RegisterModel):
    """Register model without the info-op pre-filter: exercises the search."""
    simplify = None


def result(evs, **kw):
    return checker.check(evs, **kw)


class LinearizableTests(unittest.TestCase):
    def assertLin(self, evs, **kw):
        r = result(evs, **kw)
        self.assertIs(r["valid"], True, json.dumps(r, indent=1, default=str))
        return r

    def test_sequential(self):
        self.assertLin(H(*seq(0, "read", None), *seq(0, "write", 1),
                         *seq(1, "read", 1), *seq(1, "write", 2),
                         *seq(0, "cas", [2, 3]), *seq(2, "read", 3)))

    def test_read_overlapping_write_sees_old(self):
        self.assertLin(H(*seq(0, "write", 1),
                         (0, "invoke", "write", 2), (1, "invoke", "read", None),
                         (1, "ok", "read", 1), (0, "ok", "write", 2),
                         *seq(1, "read", 2)))

    def test_read_overlapping_write_sees_new(self):
        # read starts before the write and still sees its value
        self.assertLin(H(*seq(0, "write", 1),
                         (1, "invoke", "read", None), (0, "invoke", "write", 2),
                         (1, "ok", "read", 2), (0, "ok", "write", 2)))

    def test_concurrent_cas_chain(self):
        # listed in the "wrong" order: 1->2 invoked before 0->1
        self.assertLin(H(*seq(0, "write", 0),
                         (1, "invoke", "cas", [1, 2]), (2, "invoke", "cas", [0, 1]),
                         (1, "ok", "cas", [1, 2]), (2, "ok", "cas", [0, 1]),
                         *seq(0, "read", 2)))

    def test_failed_cas_and_failed_write_ignored(self):
        self.assertLin(H(*seq(0, "write", 5), *seq(1, "cas", [4, 9], "fail"),
                         *seq(1, "write", 7, "fail"), *seq(0, "read", 5)))

    def test_info_write_took_effect(self):
        self.assertLin(H(*seq(0, "write", 1), (1, "invoke", "write", 2),
                         (1, "info", "write", None), *seq(0, "read", 1),
                         *seq(0, "read", 2), *seq(2, "read", 2)))

    def test_info_write_never_took_effect(self):
        self.assertLin(H(*seq(0, "write", 1), (1, "invoke", "write", 2),
                         (1, "info", "write", None), *seq(0, "read", 1),
                         *seq(0, "read", 1)))

    def test_pending_invoke_at_end_is_info(self):
        self.assertLin(H(*seq(0, "write", 1), (1, "invoke", "cas", [1, 3]),
                         *seq(0, "read", 3)))

    def test_info_cas_and_info_read(self):
        self.assertLin(H(*seq(0, "write", 1), (1, "invoke", "cas", [1, 2]),
                         (1, "info", "cas", None), (2, "invoke", "read", None),
                         (2, "info", "read", None), *seq(0, "read", 2)))

    def test_many_keys(self):
        rows = []
        for i in range(30):
            k = "k%d" % i
            rows += seq(i, "write", i, key=k) + seq(i, "read", i, key=k)
            rows += seq(i, "cas", [i, i + 1], key=k) + seq(i, "read", i + 1, key=k)
        r = self.assertLin(H(*rows))
        self.assertEqual(len(r["keys"]), 30)
        self.assertTrue(all(k["result"] == checker.LINEARIZABLE for k in r["keys"]))

    def test_non_register_ops_ignored(self):
        self.assertLin(H(*seq(0, "write", 1), (1, "invoke", "transfer", {"a": 1}),
                         (1, "ok", "transfer", None), *seq(0, "read", 1)))


class NonLinearizableTests(unittest.TestCase):
    def assertNotLin(self, evs, bad_f="read", **kw):
        r = result(evs, **kw)
        self.assertIs(r["valid"], False, json.dumps(r, indent=1, default=str))
        a = r["anomaly"]
        self.assertEqual(a["key"], "x")
        self.assertEqual(a["op"]["f"], bad_f)
        self.assertIn("concurrent", a)
        self.assertTrue(a["last_states"])
        return r

    def test_stale_read(self):
        r = self.assertNotLin(H(*seq(0, "write", 1), *seq(0, "write", 2),
                                *seq(1, "read", 1)))
        self.assertEqual(r["anomaly"]["op"]["out"], 1)
        self.assertEqual(r["anomaly"]["last_states"], [2])

    def test_read_of_unwritten_value(self):
        r = self.assertNotLin(H((0, "invoke", "write", 1), (1, "invoke", "read", None),
                                (1, "ok", "read", 42), (0, "ok", "write", 1)))
        self.assertEqual(len(r["anomaly"]["concurrent"]), 1)

    def test_double_cas_from_same_value(self):
        self.assertNotLin(H(*seq(0, "write", 0), (1, "invoke", "cas", [0, 1]),
                            (2, "invoke", "cas", [0, 2]), (1, "ok", "cas", [0, 1]),
                            (2, "ok", "cas", [0, 2])), bad_f="cas")

    def test_read_goes_backwards(self):
        # both reads inside one long write; 2 then 1 is impossible
        self.assertNotLin(H(*seq(0, "write", 1), (0, "invoke", "write", 2),
                            *seq(1, "read", 2), *seq(2, "read", 1),
                            (0, "ok", "write", 2)))

    def test_lost_acknowledged_write(self):
        self.assertNotLin(H(*seq(0, "write", 1), *seq(1, "read", 1),
                            *seq(0, "write", 2), *seq(1, "read", 1)))

    def test_lost_write_to_absent(self):
        self.assertNotLin(H(*seq(0, "write", 1), *seq(1, "read", None)))

    def test_failed_write_must_not_be_seen(self):
        self.assertNotLin(H(*seq(0, "write", 7, "fail"), *seq(1, "read", 7)))

    def test_first_anomaly_among_keys(self):
        rows = (seq(0, "write", 1, key="a") + seq(0, "read", 1, key="a")
                + seq(1, "write", 1, key="b") + seq(1, "read", 5, key="b")
                + seq(2, "write", 1, key="c") + seq(2, "read", 6, key="c"))
        r = result(H(*rows))
        self.assertIs(r["valid"], False)
        self.assertEqual(r["anomaly"]["key"], "b")
        self.assertEqual([k["result"] for k in r["keys"]],
                         [checker.LINEARIZABLE, checker.NOT_LINEARIZABLE,
                          checker.NOT_LINEARIZABLE])


class BankTests(unittest.TestCase):
    ACC = ["a", "b", "c"]

    def bank(self, balances):
        rows = [(0, "invoke", "transfer", {"from": "a", "to": "b", "amount": 5}, None),
                (0, "ok", "transfer", None, None)]
        for i, b in enumerate(balances):
            rows += [(1, "invoke", "balance", None, None), (1, "ok", "balance", b, None)]
        rows += [(2, "invoke", "balance", None, None), (2, "fail", "balance", {"a": 999}, None)]
        return H(*rows)

    def test_good(self):
        h = self.bank([{"a": 10, "b": 10, "c": 10}, {"a": 5, "b": 15, "c": 10}])
        r = checker.check_bank(h, self.ACC, 30)
        self.assertTrue(r["valid"])
        self.assertEqual(r["reads"], 2)

    def test_bad_sum(self):
        h = self.bank([{"a": 10, "b": 10, "c": 10}, {"a": 5, "b": 10, "c": 10},
                       {"a": 0, "b": 0, "c": 0}])
        r = checker.check_bank(h, self.ACC, 30)
        self.assertFalse(r["valid"])
        self.assertEqual(r["anomaly"]["op"]["out"], {"a": 5, "b": 10, "c": 10})

    def test_negative(self):
        h = self.bank([{"a": -5, "b": 25, "c": 10}])
        self.assertFalse(checker.check_bank(h, self.ACC, 30)["valid"])
        self.assertTrue(checker.check_bank(h, self.ACC, 30, allow_negative=True)["valid"])

    def test_missing_account(self):
        h = self.bank([{"a": 15, "b": 15}])
        self.assertFalse(checker.check_bank(h, self.ACC, 30)["valid"])


class TimeBoundTests(unittest.TestCase):
    def test_pathological_gives_unknown(self):
        n = 40
        rows = [(p, "invoke", "write", p) for p in range(n)]
        rows += [(n, "invoke", "read", None), (n, "ok", "read", "never")]
        rows += [(p, "ok", "write", p) for p in range(n)]
        t0 = time.monotonic()
        r = result(H(*rows), time_limit=0.2)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertEqual(r["valid"], checker.UNKNOWN)
        self.assertEqual(r["keys"][0]["result"], checker.UNKNOWN)

    def test_many_info_ops_stay_fast(self):
        """Open info writes would be 2^n subsets without the dominance
        pruning (fewer info ops used is never worse)."""
        n = 60
        rows = seq(0, "write", "a") + [(p, "invoke", "write", p) for p in range(1, n)]
        rows += [(p, "info", "write", None) for p in range(1, n // 2)]
        rows += seq(n, "write", "b") + seq(n, "read", "a")    # stale read
        t0 = time.monotonic()
        r = result(H(*rows), time_limit=5, model=NoSimplify())
        self.assertIs(r["valid"], False)
        self.assertLess(time.monotonic() - t0, 1)
        r = result(H(*rows), time_limit=5)           # with simplify
        self.assertIs(r["valid"], False)


def random_history(rng, n_ops=80, n_procs=5, keys=("a", "b", "c")):
    """A random history that is linearizable by construction: ops take effect
    in sequence at increasing instants t, each inside a random [call, ret]
    interval; some ops fail (never applied) or end in info (applied or not)."""
    state = {k: None for k in keys}
    free = [0.0] * n_procs          # per slot: time the slot is idle again
    pid = list(range(n_procs))      # per slot: current process id
    stamped, t, uniq = [], 0.0, 0
    for _ in range(n_ops):
        t += rng.uniform(0.1, 1.0)
        idle = [p for p in range(n_procs) if free[p] < t]
        if not idle:
            p = min(range(n_procs), key=free.__getitem__)
            t = free[p] + 0.01
        else:
            p = rng.choice(idle)
        call = rng.uniform(max(free[p], t - 3.0), t)
        ret = t + rng.uniform(0.001, 3.0)
        free[p] = ret
        k = rng.choice(keys)
        uniq += 1
        f = rng.choice(("read", "read", "write", "cas"))
        outcome, inv, out = "ok", None, None
        if f == "read":
            out = state[k]
            if rng.random() < 0.05:
                outcome = "info"
        elif f == "write":
            inv = out = uniq
            r = rng.random()
            if r < 0.05:
                outcome = "fail"            # not applied
            elif r < 0.15:
                outcome = "info"
                if rng.random() < 0.5:      # applied
                    state[k] = uniq
            else:
                state[k] = uniq
        else:
            good = rng.random() < 0.6
            inv = out = [state[k] if good else -uniq, uniq]
            if good:
                state[k] = uniq
                outcome = "info" if rng.random() < 0.1 else "ok"
            else:
                outcome = "fail"
        stamped.append((call, 0, {"process": pid[p], "type": "invoke", "f": f,
                                  "key": k, "value": inv, "node": None}))
        if outcome == "info" and rng.random() < 0.5:
            pid[p] += n_procs * 1000         # left pending: crashed client,
            continue                         # the slot gets a new process id
        stamped.append((ret, 1, {"process": pid[p], "type": outcome, "f": f,
                                 "key": k, "value": out if outcome == "ok" else None,
                                 "node": None}))
    stamped.sort(key=lambda x: (x[0], x[1]))
    evs = []
    for i, (ts, _, ev) in enumerate(stamped):
        ev.update(time=ts, index=i)
        evs.append(ev)
    return evs


class RandomizedTests(unittest.TestCase):
    def test_random_histories(self):
        rng = random.Random(20240601)
        mutated = 0
        for trial in range(40):
            evs = random_history(rng, n_ops=rng.randint(20, 120),
                                 n_procs=rng.randint(2, 8))
            r = result(evs, time_limit=10)
            self.assertIs(r["valid"], True, "trial %d" % trial)
            reads = [e for e in evs if e["type"] == "ok" and e["f"] == "read"]
            if not reads:
                continue
            bad = rng.choice(reads)
            bad["value"] = "impossible"
            r = result(evs, time_limit=10)
            self.assertIs(r["valid"], False, "trial %d" % trial)
            self.assertEqual(r["anomaly"]["key"], bad["key"])
            mutated += 1
        self.assertGreater(mutated, 30)


def brute_force(ops, model):
    """Exhaustive reference: try every real-time-respecting order of every
    subset of the optional (info) ops."""
    ops = [o for o in ops if model.prepare(o) is not None]
    args = {o.id: model.prepare(o) for o in ops}

    def ready(o, done):
        return all(p.id in done for p in ops
                   if p.ret is not None and p.ret < o.call)

    def go(done, state):
        if all(o.id in done for o in ops if o.ret is not None):
            return True
        for o in ops:
            if o.id not in done and ready(o, done):
                ok, new = model.step(state, args[o.id])
                if ok and go(done | {o.id}, new):
                    return True
        return False
    return go(frozenset(), model.init())


class CrossCheckTests(unittest.TestCase):
    def test_against_brute_force(self):
        """Arbitrary small random histories (mostly NOT linearizable): WGL
        must agree with exhaustive search."""
        rng = random.Random(7)
        model = checker.RegisterModel()
        seen = {True: 0, False: 0}
        for _ in range(600):
            n, evs, open_ = rng.randint(1, 6), [], []
            for p in range(n):
                f = rng.choice(("read", "write", "cas"))
                v = {"read": None, "write": rng.randint(0, 2),
                     "cas": [rng.choice((None, 0, 1, 2)), rng.randint(0, 2)]}[f]
                evs.append([p, "invoke", f, v])
                open_.append((p, f, v))
            rng.shuffle(evs)
            for p, f, v in open_:
                t = rng.choice(("ok", "ok", "ok", "fail", "info"))
                out = rng.choice((None, 0, 1, 2)) if f == "read" else v
                evs.insert(rng.randint(next(i for i, e in enumerate(evs)
                                            if e[0] == p and e[1] == "invoke") + 1,
                                       len(evs)), [p, t, f, out])
            h = H(*[tuple(e) for e in evs])
            expect = brute_force(hist.pair(h), model)
            self.assertIs(result(h)["valid"], expect, json.dumps(h))
            self.assertIs(result(h, model=NoSimplify())["valid"], expect)
            seen[expect] += 1
        self.assertGreater(min(seen.values()), 50)


class HistoryIOTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "h.jsonl")

    def tearDown(self):
        self.dir.cleanup()

    def test_writer_load_pair(self):
        with hist.HistoryWriter(self.path) as w:
            w.invoke(0, "write", "k", 1, node="n1")
            w.invoke(1, "read", "k", None, node="n2")
            w.ok(0, "write", "k", 1, node="n1")
            w.ok(1, "read", "k", 1, node="n2")
            w.invoke(2, "cas", "k", [1, 2])
            w.info(2, "cas", "k", None)
        with open(self.path, "a") as fh:
            fh.write('{"process": 3, "type": "inv')   # crashed mid-line
        evs = hist.load(self.path)
        self.assertEqual([e["index"] for e in evs], list(range(6)))
        self.assertEqual(set(evs[0]), set(hist.FIELDS))
        ops = hist.pair(evs)
        self.assertEqual([(o.f, o.type, o.ret) for o in ops],
                         [("write", "ok", 2), ("read", "ok", 3), ("cas", "info", None)])
        self.assertEqual(ops[1].out, 1)

    def test_pair_errors(self):
        with self.assertRaises(ValueError):
            hist.pair(H((0, "invoke", "read", None), (0, "invoke", "read", None)))
        with self.assertRaises(ValueError):
            hist.pair(H((0, "ok", "read", None)))

    def test_cli_exit_codes(self):
        cases = [(H(*seq(0, "write", 1), *seq(1, "read", 1)), 0),
                 (H(*seq(0, "write", 1), *seq(1, "read", 2)), 1)]
        n = 40
        patho = [(p, "invoke", "write", p) for p in range(n)]
        patho += [(n, "invoke", "read", None), (n, "ok", "read", "never")]
        patho += [(p, "ok", "write", p) for p in range(n)]
        cases.append((H(*patho), 2))
        for evs, code in cases:
            hist.write(self.path, evs)
            p = subprocess.run([sys.executable, os.path.join(HERE, "checker.py"),
                                self.path, "--time-limit", "0.2"],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, code, p.stdout + p.stderr)
            self.assertIn("result", p.stdout)


if __name__ == "__main__":
    unittest.main()
