"""Self-tests of the suite's own pieces that need no root and no cluster:
the Billing API signature (spec 2.2 worked examples), partition grudges,
outcome classification, nemesis parsing and the bank ledger check.

    cd tests/jepsen-like && python3 -m unittest test_harness
"""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import history as hist  # noqa: E402
import jlclient  # noqa: E402
import jlnet  # noqa: E402
import nemesis  # noqa: E402
import workloads as wl  # noqa: E402


class SignatureTests(unittest.TestCase):
    def test_example_1_non_ascii(self):
        p = {"customer_id": "42", "id": "TX-1001", "amount": "150.5",
             "comment": "Оплата за май", "client_id": "1"}
        self.assertEqual(jlclient.signature(p, "top secret"),
                         "5db08c6035e8d02fd5c982c30322ea3c")

    def test_example_2_no_params(self):
        self.assertEqual(jlclient.signature({"client_id": "1"}, "top secret"),
                         "f13af303a747e1a1d2d2fd9732c06b8e")

    def test_example_3_list(self):
        p = {"client_id": "1", "tariff_id": "[1, 2, 3]"}
        self.assertEqual(jlclient.signature(p, "top secret"),
                         "0a0c2905ac8c95f76db011157afcf5a2")

    def test_sign_excludes_signature_and_adds_client(self):
        p = jlclient.sign({"tariff_id": "[1, 2, 3]"}, 1, "top secret")
        self.assertEqual(p["signature"], "0a0c2905ac8c95f76db011157afcf5a2")
        self.assertEqual(jlclient.signature(p, "top secret"), p["signature"])


class GrudgeTests(unittest.TestCase):
    def test_split(self):
        g = jlnet.grudge_split([[1, 2], [3]])
        self.assertEqual(g, {1: {3}, 2: {3}, 3: {1, 2}})

    def test_bridge(self):
        g, br, a, b = jlnet.grudge_bridge([1, 2, 3, 4, 5], random.Random(1))
        self.assertEqual(g[br], set())
        self.assertEqual(len(a), 2)
        self.assertEqual(len(b), 2)
        for s in a:
            self.assertEqual(g[s], set(b))

    def test_ring(self):
        g, ring = jlnet.grudge_ring([1, 2, 3, 4, 5], random.Random(2))
        for s in ring:
            hears = {1, 2, 3, 4, 5} - g[s] - {s}
            self.assertEqual(len(hears), 2)       # its two neighbours


class EdgeSlotTests(unittest.TestCase):
    def test_names(self):
        self.assertEqual(jlnet.ns_name(3), "jl-n3")
        self.assertEqual(jlnet.veth_name(3), "jlv3")
        t = jlnet.Topology(5, 90, nedges=2)
        self.assertEqual(t.edge_slots, [101, 102])
        self.assertEqual(t.all_slots, [1, 2, 3, 4, 5, 101, 102])
        self.assertEqual(jlnet.ns_name(102), "jl-e2")
        self.assertEqual(jlnet.veth_name(102), "jlve2")
        self.assertEqual(t.addr(102), "10.77.90.102")

    def test_conf_entries(self):
        import jledge
        e = jledge.conf_entries(jlnet.Topology(3, 91, nedges=2))
        self.assertEqual(e[1], {"id": "e2", "http_address": "10.77.91.102:8200",
                                "datacenter": "dc-b"})

    def test_token_of_uri(self):
        import jledge
        self.assertEqual(jledge.token_of_uri("http://fl/jla/index.m3u8?token=a-b_c&x=1"),
                         "a-b_c")
        self.assertIsNone(jledge.token_of_uri("http://fl/jla/index.m3u8"))
        self.assertIsNone(jledge.token_of_uri(None))


class ClassifyTests(unittest.TestCase):
    R = jlclient.Reply

    def test_outcomes(self):
        c = wl.classify_write
        self.assertEqual(c(self.R(200, {"error": 0})), ("ok", False))
        self.assertEqual(c(self.R(200, {"error": -1})), ("fail", False))
        self.assertEqual(c(self.R(200, {"error": 5}), (5,)), ("fail", False))
        self.assertEqual(c(self.R(200, {"error": 5})), ("fail", True))
        self.assertEqual(c(self.R(503, {"error": -503})), ("info", False))
        self.assertEqual(c(self.R(None, error="timeout")), ("info", False))
        self.assertEqual(c(self.R(None, error="refused", sent=False)), ("fail", False))
        self.assertEqual(c(self.R(500, None)), ("info", True))


class NemesisParseTests(unittest.TestCase):
    def test_parse(self):
        self.assertEqual(nemesis.parse_kinds("all"), list(nemesis.KINDS))
        self.assertEqual(nemesis.parse_kinds("none"), [])
        self.assertEqual(nemesis.parse_kinds("kill,pause"), ["kill", "pause"])
        with self.assertRaises(ValueError):
            nemesis.parse_kinds("kill,flood")


class FakeBilling:
    def __init__(self, ledger, balances):
        self.ledger, self.balances = ledger, balances

    def call(self, addr, method, params=None, query=None, timeout=None):
        if method == "customer/list":
            return jlclient.Reply(200, {"error": 0, "customers": [
                {"ext_id": c, "id": i + 1, "balance": b}
                for i, (c, b) in enumerate(self.balances.items())]})
        cid = params["customer_id"]
        c = "bank-%d" % cid
        pays = [{"transaction_id": t, "amount": "%.2f" % (a / 100), "processed": 1}
                for t, a in self.ledger.get(c, {}).items()]
        return jlclient.Reply(200, {"error": 0, "payments": pays})


class LedgerTests(unittest.TestCase):
    def setUp(self):
        self.bank = wl.BankWorkload(ncustomers=2, initial=100)
        self.bank.ids = {"bank-1": 1, "bank-2": 2}

    def ops(self, *rows):
        evs, i = [], 0
        for p, t, ids, amt in rows:
            v = {"from": "bank-1", "to": "bank-2", "amount": amt, "ids": ids}
            evs.append({"process": p, "type": "invoke", "f": "transfer", "key": None,
                        "value": v, "time": float(i), "node": None, "index": i})
            evs.append({"process": p, "type": t, "f": "transfer", "key": None,
                        "value": v, "time": float(i + 1), "node": None, "index": i + 1})
            i += 2
        return hist.pair(evs)

    def check(self, ledger, balances, ops):
        ctx = type("C", (), {})()
        ctx.billing, ctx.op_timeout = FakeBilling(ledger, balances), 3
        return self.bank.check_ledger(ctx, "x", ops)

    def test_good(self):
        led = {"bank-1": {"init-bank-1": 10000, "a-d": -500},
               "bank-2": {"init-bank-2": 10000, "a-c": 500}}
        probs, stats, _ = self.check(led, {"bank-1": 95, "bank-2": 105},
                                     self.ops((0, "ok", ["a-d", "a-c"], 5),
                                              (1, "info", ["b-d", "b-c"], 3)))
        self.assertEqual(probs, [])
        self.assertEqual(stats["ok_landed"], 1)
        self.assertEqual(stats["info_lost"], 1)

    def test_lost_partial_phantom_balance(self):
        led = {"bank-1": {"init-bank-1": 10000, "b-d": -300},
               "bank-2": {"init-bank-2": 10000, "zzz": 1}}
        probs, _, _ = self.check(led, {"bank-1": 97, "bank-2": 100},
                                 self.ops((0, "ok", ["a-d", "a-c"], 5),
                                          (1, "info", ["b-d", "b-c"], 3)))
        text = "\n".join(probs)
        self.assertIn("LOST acknowledged", text)
        self.assertIn("PARTIAL", text)
        self.assertIn("PHANTOM", text)
        self.assertIn("transactions sum to", text)


if __name__ == "__main__":
    unittest.main()
