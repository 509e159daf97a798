"""Workloads of the suite, through the real APIs.

register  read / write / compare-and-set of an account's `status_reason`
          (Billing API; keys = a few accounts):
            read  = account/info            -> status_reason
            write = account/modify status_reason=V
            cas   = account/modify if_status_reason=OLD&status_reason=NEW
                    (error 5 = precondition failed -> a definite "fail")
bank      transfers between customers, one raft entry each:
            transfer = POST /admin/v1/clients/{cid}/import with two
                       transaction/create items (debit A -x, credit B +x)
            balance  = customer/list (one read transaction) -> {ext_id: balance}

Outcome classification (honest: "fail" only when nothing can have happened):
  write-like ops  HTTP 200 + error 0           ok
                  HTTP 200 + error -1          fail (nothing done, spec 4.2)
                  HTTP 200 + error 5 (cas)     fail
                  HTTP 200 + other error       fail, also listed as unexpected
                  connection never made        fail (the request was not sent)
                  HTTP 503, no answer, timeout info (unknown)
                  anything else                info, listed as unexpected
  reads           HTTP 200 + error 0 -> ok; anything else -> fail
"""

import itertools
import json
import threading
import time
from decimal import Decimal

REG_INITIAL = "0"        # every register account is created with this value


def _num(v):
    """Billing API money (JSON number) -> int when integral."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def cents(s):
    return int((Decimal(str(s)) * 100).to_integral_value())


class Ctx:
    """What workers need: the cluster, API clients, history, target choice."""

    def __init__(self, cluster, billing, history, rng_factory, client_id,
                 stop_event, pick_node, unexpected, op_timeout=3.0):
        self.cluster, self.billing, self.history = cluster, billing, history
        self.rng_factory, self.client_id = rng_factory, client_id
        self.stop, self.pick_node = stop_event, pick_node
        self.unexpected = unexpected      # list of (op, reply) worth a look
        self.op_timeout = op_timeout
        self.unexpected_lock = threading.Lock()
        self.replies = None                   # file object, set by the runner

    def note_reply(self, ev, reply):
        """Keep the raw answer of a non-ok op (replies.jsonl), keyed by the
        completion's history index: the evidence behind its classification."""
        if self.replies is None:
            return
        rec = {"index": ev["index"], "process": ev["process"], "type": ev["type"],
               "f": ev["f"], "key": ev["key"], "node": ev["node"],
               "status": reply.status, "body": reply.body, "error": reply.error,
               "sent": reply.sent, "elapsed": round(reply.elapsed, 3)}
        line = json.dumps(rec, default=str)
        with self.unexpected_lock:
            self.replies.write(line + "\n")
            self.replies.flush()

    def note_unexpected(self, what, reply):
        with self.unexpected_lock:
            if len(self.unexpected) < 200:
                self.unexpected.append({"op": what, "reply": str(reply)[:300],
                                        "time": time.monotonic()})


def classify_write(reply, definite_fail_codes=()):
    """-> ('ok'|'fail'|'info', unexpected: bool)"""
    if not reply.sent:
        return "fail", False
    if reply.status == 200:
        code = reply.code
        if code == 0:
            return "ok", False
        if code == -1 or code in definite_fail_codes:
            return "fail", False
        if isinstance(code, int):
            return "fail", True
        return "info", True
    if reply.status == 503 or reply.status is None:
        return "info", False
    return "info", True


class Worker(threading.Thread):
    """Runs ops of one workload until ctx.stop; one outstanding op at a time.
    After an `info` the logical process id changes (the old op may still
    be in flight), as in Jepsen."""

    def __init__(self, ctx, workload, wid, nworkers, pause=(0.0, 0.05)):
        super().__init__(name="worker-%d" % wid, daemon=True)
        self.ctx, self.workload, self.nworkers = ctx, workload, nworkers
        self.process = wid
        self.rng = ctx.rng_factory(wid)
        self.pause = pause

    def run(self):
        while not self.ctx.stop.is_set():
            outcome = self.workload.op(self.ctx, self.process, self.rng)
            if outcome == "info":
                self.process += self.nworkers
            lo, hi = self.pause
            if hi > 0:
                self.ctx.stop.wait(self.rng.uniform(lo, hi))


class RegisterWorkload:
    name = "register"

    def __init__(self, nkeys=3):
        self.keys = ["71%05d" % i for i in range(1, nkeys + 1)]   # abonements
        self.counters = {k: itertools.count(1) for k in self.keys}
        self.last = {k: REG_INITIAL for k in self.keys}
        self.lock = threading.Lock()

    def setup_items(self):
        items = [{"method": "customer/create",
                  "params": {"ext_id": "reg-owner", "firstname": "Register"}}]
        for k in self.keys:
            items.append({"method": "account/create",
                          "params": {"ext_id": "reg-owner", "abonement": k,
                                     "password": "123456",
                                     "status_reason": REG_INITIAL}})
        return items

    def verify_setup(self, ctx, addr):
        for k in self.keys:
            r = ctx.billing.call(addr, "account/info", {"abonement": k})
            if r.status != 200 or r.code != 0 or \
                    r.body.get("status_reason") != REG_INITIAL:
                return "account %s: %s" % (k, r)
        return None

    def _next(self, key):
        with self.lock:
            return str(next(self.counters[key]))

    def _seen(self, key, value):
        with self.lock:
            self.last[key] = value

    def op(self, ctx, process, rng, key=None, f=None, slot=None):
        key = key or rng.choice(self.keys)
        if f is None:
            x = rng.random()
            f = "read" if x < 0.4 else ("write" if x < 0.7 else "cas")
        if slot is None:
            slot = ctx.pick_node(rng)
        node = ctx.cluster.nodes[slot]
        h = ctx.history
        if f == "read":
            h.invoke(process, "read", key, None, node=node.name)
            r = ctx.billing.call(node.http_address, "account/info",
                                 {"abonement": key}, timeout=ctx.op_timeout)
            if r.status == 200 and r.code == 0:
                v = r.body.get("status_reason")
                h.ok(process, "read", key, v, node=node.name)
                if v is not None:
                    self._seen(key, v)
                return "ok"
            if r.status == 200 and r.code not in (-1,):
                ctx.note_unexpected("read %s on %s" % (key, node.name), r)
            ctx.note_reply(h.fail(process, "read", key, None, node=node.name), r)
            return "fail"
        new = self._next(key)
        if f == "write":
            params = {"abonement": key, "status_reason": new}
            value = new
        else:
            with self.lock:
                old = self.last[key]
            params = {"abonement": key, "if_status_reason": old,
                      "status_reason": new}
            value = [old, new]
        h.invoke(process, f, key, value, node=node.name)
        r = ctx.billing.call(node.http_address, "account/modify", params,
                             timeout=ctx.op_timeout)
        t, unexpected = classify_write(r, (5,) if f == "cas" else ())
        if unexpected:
            ctx.note_unexpected("%s %s %s on %s" % (f, key, value, node.name), r)
        ev = h.record(process, t, f, key, value, node=node.name)
        if t != "ok":
            ctx.note_reply(ev, r)
        if t == "ok":
            self._seen(key, new)
        return t

    def final_ops(self, ctx, process_base, slots):
        """One linearizable read of every key on every given node."""
        p = process_base
        for slot in slots:
            for k in self.keys:
                for _ in range(3):
                    if self.op(ctx, p, None, key=k, f="read", slot=slot) == "ok":
                        break
                    time.sleep(0.5)
                p += 1
        return p


def fetch_audit(ctx, client_id, page=1000):
    """Every audit record of the client (GET .../audit, paged), in raft
    order.  Raises RuntimeError."""
    out, after = [], 0
    while True:
        r = ctx.cluster.admin_call("GET", "/admin/v1/clients/%d/audit?after=%d&limit=%d"
                                   % (client_id, after, page), timeout=15)
        if r.status != 200 or not isinstance(r.body, dict):
            raise RuntimeError("audit after=%d: %s" % (after, r))
        recs = r.body.get("records", [])
        out += recs
        if len(recs) < page or not r.body.get("next_after"):
            return out
        after = r.body["next_after"]


def check_register_audit(keys, audit, ops, replies=None):
    """The audit trail records every applied Billing API write with its raft
    index and result; register values are unique, so it says exactly which
    writes took effect.  Acknowledged writes must be there (error 0), failed
    ones must not, none may be applied twice.  Returns (problems, stats)."""
    keys = set(keys)
    applied = {}     # (key, value) -> [raft index, ...] with error 0
    for rec in audit:
        if rec.get("method") != "account/modify" or rec.get("error") != 0:
            continue
        prm = rec.get("params") or {}
        k, v = prm.get("abonement"), prm.get("status_reason")
        if k in keys and v is not None:
            applied.setdefault((k, v), []).append(rec.get("index"))
    problems, seen = [], set()
    stats = {"applied": sum(len(x) for x in applied.values()), "info_applied": 0,
             "info_not_applied": 0}
    for op in ops:
        if op.f not in ("write", "cas"):
            continue
        new = op.value if op.f == "write" else op.value[1]
        seen.add((op.key, new))
        idx = applied.get((op.key, new))
        desc = "%s %s %s by p%d on %s (%s, invoke index %d)" % (
            op.f, op.key, json.dumps(op.value), op.process, op.node, op.type, op.call)
        if idx and len(idx) > 1:
            problems.append("APPLIED TWICE %s at raft indexes %s" % (desc, idx))
        if op.type == "ok" and not idx:
            problems.append("LOST acknowledged %s: not in the audit trail" % desc)
        elif op.type == "fail" and idx:
            why = ""
            if replies is not None and op.ret in replies:
                rp = replies[op.ret]
                why = "; the reply was HTTP %s %s%s after %ss" % (
                    rp.get("status"), json.dumps(rp.get("body"))[:160],
                    (" " + rp["error"]) if rp.get("error") else "", rp.get("elapsed"))
            problems.append("APPLIED failed %s: applied at raft index %s%s" % (
                desc, idx, why))
        elif op.type == "info":
            stats["info_applied" if idx else "info_not_applied"] += 1
    for kv, idx in applied.items():
        if kv not in seen:
            problems.append("PHANTOM write %s=%s at raft index %s" % (kv[0], kv[1], idx))
    return problems, stats


class BankWorkload:
    name = "bank"

    def __init__(self, ncustomers=5, initial=100, max_transfer=5):
        self.customers = ["bank-%d" % i for i in range(1, ncustomers + 1)]
        self.initial, self.max_transfer = initial, max_transfer
        self.total = initial * ncustomers
        self.ids = {}             # ext_id -> customer id
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def setup_items(self):
        items = []
        for i, c in enumerate(self.customers):
            items.append({"method": "customer/create",
                          "params": {"ext_id": c, "firstname": "Bank %d" % (i + 1)}})
        return items

    def setup_items2(self):
        return [{"method": "transaction/create",
                 "params": {"customer_id": str(self.ids[c]), "id": "init-%s" % c,
                            "amount": str(self.initial), "processed": "1",
                            "comment": "initial"}}
                for c in self.customers]

    def read_balances(self, ctx, addr, stale=False):
        r = ctx.billing.call(addr, "customer/list", {},
                             query={"stale": 1} if stale else None,
                             timeout=ctx.op_timeout)
        if r.status != 200 or r.code != 0:
            return None, r
        out = {}
        for c in r.body.get("customers", []):
            if str(c.get("ext_id", "")).startswith("bank-"):
                out[c["ext_id"]] = _num(c.get("balance"))
        return out, r

    def load_ids(self, ctx, addr):
        r = ctx.billing.call(addr, "customer/list", {})
        if r.status != 200 or r.code != 0:
            return "customer/list: %s" % r
        for c in r.body.get("customers", []):
            if c.get("ext_id") in self.customers:
                self.ids[c["ext_id"]] = c["id"]
        missing = set(self.customers) - set(self.ids)
        return "missing customers %s" % sorted(missing) if missing else None

    def verify_setup(self, ctx, addr):
        b, r = self.read_balances(ctx, addr)
        if b is None:
            return "customer/list: %s" % r
        if b != {c: self.initial for c in self.customers}:
            return "initial balances %s" % b
        return None

    def op(self, ctx, process, rng, f=None, slot=None):
        if f is None:
            f = "balance" if rng.random() < 0.3 else "transfer"
        if slot is None:
            slot = ctx.pick_node(rng)
        node = ctx.cluster.nodes[slot]
        h = ctx.history
        if f == "balance":
            h.invoke(process, "balance", None, None, node=node.name)
            b, r = self.read_balances(ctx, node.http_address)
            if b is None:
                if r.status == 200 and r.code != -1:
                    ctx.note_unexpected("balance on %s" % node.name, r)
                ctx.note_reply(h.fail(process, "balance", None, None, node=node.name), r)
                return "fail"
            h.ok(process, "balance", None, b, node=node.name)
            return "ok"
        a, b = rng.sample(self.customers, 2)
        x = rng.randint(1, self.max_transfer)
        n = next(self.counter)
        ids = ["x%d-d" % n, "x%d-c" % n]
        value = {"from": a, "to": b, "amount": x, "ids": ids}
        items = [{"method": "transaction/create",
                  "params": {"customer_id": str(self.ids[a]), "id": ids[0],
                             "amount": str(-x), "processed": "1",
                             "comment": "to %s" % b}},
                 {"method": "transaction/create",
                  "params": {"customer_id": str(self.ids[b]), "id": ids[1],
                             "amount": str(x), "processed": "1",
                             "comment": "from %s" % a}}]
        h.invoke(process, "transfer", None, value, node=node.name)
        r = ctx.cluster.admin.call(node.http_address, "POST",
                                   "/admin/v1/clients/%d/import" % ctx.client_id,
                                   {"items": items}, timeout=ctx.op_timeout)
        if not r.sent:
            t = "fail"
        elif r.status == 200 and isinstance(r.body, dict):
            if r.body.get("failed") == 0 and r.body.get("ok") == 2:
                t = "ok"
            elif "results" not in r.body and r.body.get("error") == 0:
                t = "ok"      # a bare success answer (what --unsafe sends)
            else:
                t = "info"
                ctx.note_unexpected("transfer %s on %s" % (ids, node.name), r)
        elif r.status == 400:
            t = "fail"
            ctx.note_unexpected("transfer %s on %s" % (ids, node.name), r)
        else:
            t = "info"
            if r.status not in (None, 503):
                ctx.note_unexpected("transfer %s on %s" % (ids, node.name), r)
        ev = h.record(process, t, "transfer", None, value, node=node.name)
        if t != "ok":
            ctx.note_reply(ev, r)
        return t

    def final_ops(self, ctx, process_base, slots):
        p = process_base
        for slot in slots:
            for _ in range(3):
                if self.op(ctx, p, None, f="balance", slot=slot) == "ok":
                    break
                time.sleep(0.5)
            p += 1
        return p

    # ---- end-of-run ledger check ---------------------------------------------
    def ledger(self, ctx, addr):
        """{ext_id: {txid: cents}} of every bank customer (linearizable
        reads, paged), or raises RuntimeError."""
        out = {}
        for c in self.customers:
            txs, page = {}, 1
            while True:
                r = ctx.billing.call(addr, "customer/transaction/list",
                                     {"customer_id": self.ids[c], "limit": 100,
                                      "page": page}, timeout=10)
                if r.status != 200 or r.code != 0:
                    raise RuntimeError("transaction/list %s page %d: %s" % (c, page, r))
                pays = r.body.get("payments", [])
                for p in pays:
                    if p.get("processed") == 1:
                        txs[p["transaction_id"]] = cents(p["amount"])
                if len(pays) < 100:
                    break
                page += 1
            out[c] = txs
        return out

    def check_ledger(self, ctx, addr, history_ops):
        """Balances == sum of transactions; total conserved; every transfer
        landed entirely or not at all, and acknowledged ones landed.
        Returns (problems, stats)."""
        problems = []
        led = self.ledger(ctx, addr)
        bal, r = self.read_balances(ctx, addr)
        if bal is None:
            raise RuntimeError("final customer/list: %s" % r)
        for c in self.customers:
            s = sum(led[c].values())
            if cents(bal[c]) != s:
                problems.append("balance of %s is %s but its transactions sum to "
                                "%.2f" % (c, bal[c], s / 100))
        if sum(cents(v) for v in bal.values()) != self.total * 100:
            problems.append("final total %s != %s" % (sum(bal.values()), self.total))
        where = {}
        for c, txs in led.items():
            for t, amt in txs.items():
                where[t] = (c, amt)
        known = {"init-%s" % c for c in self.customers}
        stats = {"ok_landed": 0, "info_landed": 0, "info_lost": 0}
        for op in history_ops:
            if op.f != "transfer":
                continue
            v = op.value
            d, cr = v["ids"]
            known.update((d, cr))
            hd, hc = where.get(d), where.get(cr)
            present = (hd is not None, hc is not None)
            desc = "transfer %s %s->%s %d (%s, invoke index %d)" % (
                v["ids"], v["from"], v["to"], v["amount"], op.type, op.call)
            if present[0] != present[1]:
                problems.append("PARTIAL %s: debit %s, credit %s" % (
                    desc, "present" if present[0] else "missing",
                    "present" if present[1] else "missing"))
                continue
            if all(present):
                if hd != (v["from"], -v["amount"] * 100) or \
                        hc != (v["to"], v["amount"] * 100):
                    problems.append("WRONG %s: ledger has %s / %s" % (desc, hd, hc))
            if op.type == "ok":
                if not all(present):
                    problems.append("LOST acknowledged %s" % desc)
                else:
                    stats["ok_landed"] += 1
            elif op.type == "fail" and any(present):
                problems.append("APPLIED failed %s" % desc)
            elif op.type == "info":
                stats["info_landed" if all(present) else "info_lost"] += 1
        for t in where:
            if t not in known:
                problems.append("PHANTOM transaction %s in %s" % (t, where[t]))
        stats["transactions"] = len(where)
        return problems, stats, bal
